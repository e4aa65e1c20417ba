"""Fresh images through a real registry on loopback, and drift repair (issue 3, points 1-3)."""

from __future__ import annotations

import subprocess
import textwrap
import time
import urllib.error
import urllib.request

import bcrypt  # the registry's htpasswd wants bcrypt; Python 3.13 has no crypt module
import pytest
from conftest import free_port, http_get, sh

FAST_HEALTH = "x-podops:\n  health: {timeout: 6, samples: 2, interval: 0.3}\n"


def image_service(image: str, port: int, xpodops: str = FAST_HEALTH) -> str:
    """A service that serves what its image holds (no bind mount): the image decides the content."""
    return xpodops + textwrap.dedent(
        f"""\
        services:
          web:
            image: {image}
            ports: ["127.0.0.1:{port}:8080"]
            healthcheck:
              test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
              interval: 30s
          sidecar:
            image: localhost/podops-demo:1
            command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
        """
    )


@pytest.fixture
def published(registry, registry_host, repo):
    """v1 of <registry>/app:latest deployed as service 'app'; returns (host, registry, ref, port)."""
    name = f"app-{registry_host.prefix.strip('-')}:latest"
    ref = registry.push("localhost/podops-demo:1", name)
    port = free_port()
    repo.write("services/app/compose.yaml", image_service(ref, port))
    repo.write("services/other/compose.yaml", image_service("localhost/podops-demo:1", free_port()))
    repo.commit()
    first = registry_host.reconcile(repo)
    assert first.rc == 0, first.stdout + first.stderr
    assert http_get(port).strip() == "podops demo 1"
    return registry_host, registry, name, port


def test_redeploy_pulls_new_image_and_rolls_back_a_broken_one(published, repo):
    host, registry, name, port = published
    sidecar = {k: v for k, v in host.ids("app").items() if "sidecar" in k}
    other = host.ids("other")

    same = host.redeploy(repo, "app")
    assert same.rc == 0 and not same.changed, "same image: nothing restarted, no change"
    assert same.report["services"]["app"]["action"] == "unchanged"

    registry.push("localhost/podops-demo:2", name)  # v2 published under the same tag
    v2 = host.redeploy(repo, "app", podops_trigger="webhook")
    assert v2.rc == 0, v2.stdout + v2.stderr
    assert v2.changed
    assert http_get(port).strip() == "podops demo 2"
    entry = v2.report["services"]["app"]
    assert (entry["action"], entry["reason"]) == ("deployed", "image")
    assert v2.report["trigger"] == "webhook"
    assert {k: v for k, v in host.ids("app").items() if "sidecar" in k} == sidecar, "only the container whose image changed"
    assert host.ids("other") == other
    web = next(c for c in host.containers("app") if "sidecar" not in c["Names"][0])
    assert web["Labels"]["io.podops.image"] == web["ImageID"]

    again = host.redeploy(repo, "app")
    assert again.rc == 0 and not again.changed

    registry.push("localhost/podops-demo:3", name)  # v3 never gets healthy
    v3 = host.redeploy(repo, "app")
    assert v3.rc != 0
    entry = v3.report["services"]["app"]
    assert entry["action"] == "rolled_back"
    assert "new image for web failed" in entry["error"] and "not healthy" in entry["error"]
    assert http_get(port).strip() == "podops demo 2", "v2 still served"
    previous = f"localhost/podops-previous/{host.prefix}app_web:latest"
    assert sh("podman", "image", "exists", previous, check=False).returncode == 0, "the previous image is kept tagged"

    # a normal reconcile afterwards leaves the rolled-back service alone (image updates are opt-in)
    quiet = host.reconcile(repo)
    assert quiet.rc == 0 and not quiet.changed
    assert http_get(port).strip() == "podops demo 2"


@pytest.mark.parametrize("name", ["../x", "a/b", "", "nope"])
def test_redeploy_refuses_bad_names_before_anything_runs(host, repo, name):
    repo.add_web("site", free_port(), "site")
    repo.commit()
    run = host.redeploy(repo, name)
    assert run.rc != 0
    message = run.first_failure()
    assert "podops_service" in message and "Services: site" in message
    assert host.containers() == []
    assert not (host.state_dir / "last-run.json").exists(), "refused before the run started"


def test_image_updates_during_reconcile_are_opt_in(published, repo):
    host, registry, name, port = published
    registry.push("localhost/podops-demo:2", name)
    plain = host.reconcile(repo)
    assert plain.rc == 0 and not plain.changed
    assert http_get(port).strip() == "podops demo 1"

    updated = host.reconcile(repo, podops_image_updates=True)
    assert updated.rc == 0, updated.stdout + updated.stderr
    entry = updated.report["services"]["app"]
    assert (entry["action"], entry["reason"]) == ("deployed", "image")
    assert updated.report["services"]["other"]["action"] == "unchanged"
    assert http_get(port).strip() == "podops demo 2"

    again = host.reconcile(repo, podops_image_updates=True)
    assert again.rc == 0 and not again.changed


def test_per_service_image_updates_setting(published, repo):
    host, registry, name, port = published
    compose = (repo.path / "services/app/compose.yaml").read_text()
    repo.write("services/app/compose.yaml", compose.replace("x-podops:\n", "x-podops:\n  image_updates: true\n"))
    repo.commit("opt in")
    assert host.reconcile(repo).rc == 0
    registry.push("localhost/podops-demo:2", name)
    run = host.reconcile(repo)
    assert run.rc == 0
    assert run.report["services"]["app"]["reason"] == "image"
    assert http_get(port).strip() == "podops demo 2"


def test_drift_is_repaired(host, repo):
    port, bystander_port = free_port(), free_port()
    repo.add_web("site", port, "the repo's content")
    repo.commit()
    assert host.reconcile(repo).rc == 0
    (name,) = host.ids("site")
    bystander = f"{host.prefix}bystander"
    sh("podman", "run", "-d", "--name", bystander, "-p", f"127.0.0.1:{bystander_port}:8080", "localhost/podops-demo:1")

    sh("podman", "stop", "-t", "0", name)
    stopped = host.reconcile(repo)
    assert stopped.rc == 0
    entry = stopped.report["services"]["site"]
    assert (entry["action"], entry["reason"]) == ("deployed", "drift")
    assert "exited" in entry["error"] or "stopped" in entry["error"]
    assert http_get(port) == "the repo's content"

    sh("podman", "rm", "-f", "-t", "0", name)
    removed = host.reconcile(repo)
    assert removed.report["services"]["site"]["reason"] == "drift"
    assert http_get(port) == "the repo's content"

    # recreated by hand with other settings: same name, no podops labels, other content
    sh("podman", "rm", "-f", "-t", "0", name)
    sh("podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "localhost/podops-demo:1")
    assert http_get(port).strip() == "podops demo 1"
    by_hand = host.reconcile(repo)
    assert by_hand.rc == 0, by_hand.stdout + by_hand.stderr
    assert by_hand.report["services"]["site"]["reason"] == "drift"
    assert "replaced by hand" in by_hand.report["services"]["site"]["error"]
    assert http_get(port) == "the repo's content"
    (container,) = host.containers("site")
    assert container["Labels"]["io.podops.digest"] == by_hand.report["services"]["site"]["digest"]

    quiet = host.reconcile(repo)
    assert quiet.rc == 0 and not quiet.changed
    state = sh("podman", "inspect", "--format", "{{.State.Status}}", bystander).stdout.strip()
    assert state == "running", "a container podops never deployed is never touched"
    sh("podman", "rm", "-f", "-t", "0", bystander)


def test_private_registry_login_from_the_role(host, repo, tmp_path):
    """A registry that wants a password: the role logs in (podman_login, no_log) before anything is pulled."""
    password = "pw-registry-5e7d"
    port = free_port()
    (tmp_path / "htpasswd").write_text(f"deploy:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n")
    (tmp_path / "reg.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: podops\n    path: {tmp_path / 'htpasswd'}\n"
    )
    registry = subprocess.Popen(["docker-registry", "serve", str(tmp_path / "reg.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            except urllib.error.HTTPError:
                break  # 401: up and asking for a password
            except OSError:
                assert time.monotonic() < deadline, "registry did not start"
                time.sleep(0.1)
        ref = f"127.0.0.1:{port}/private-{host.prefix.strip('-')}:latest"
        pusher_auth = str(tmp_path / "pusher-auth.json")  # the push's credentials stay out of podman's default auth file
        sh("podman", "tag", "localhost/podops-demo:2", ref)
        sh("podman", "login", "--tls-verify=false", "--authfile", pusher_auth, "-u", "deploy", "-p", password, f"127.0.0.1:{port}")
        sh("podman", "push", "-q", "--tls-verify=false", "--authfile", pusher_auth, ref)
        sh("podman", "rmi", ref)
        host.env["CONTAINERS_REGISTRIES_CONF"] = str(tmp_path / "registries.conf")
        (tmp_path / "registries.conf").write_text(f'[[registry]]\nlocation = "127.0.0.1:{port}"\ninsecure = true\n')
        site_port = free_port()
        repo.write("services/private/compose.yaml", image_service(ref, site_port))
        repo.commit()

        anonymous = host.reconcile(repo)
        assert anonymous.rc != 0
        assert "could not be pulled" in anonymous.report["services"]["private"]["error"]

        login = [{"registry": f"127.0.0.1:{port}", "username": "deploy", "password": password, "tls_verify": False}]
        run = host.reconcile(repo, "-vvv", podops_registry_logins=login)
        assert run.rc == 0, run
        assert http_get(site_port).strip() == "podops demo 2"
        assert password not in run.stdout + run.stderr, "no_log: the password is never printed, -vvv included"
    finally:
        sh("podman", "logout", f"127.0.0.1:{port}", check=False)
        registry.terminate()
        registry.wait(timeout=10)
