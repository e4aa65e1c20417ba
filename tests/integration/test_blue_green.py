"""Blue-green (issue 6): real containers behind a real nginx, switched A -> B -> A while a client polls.

nginx (Debian's nginx-light, installed by `make setup`; benchmarks/nginx_proxy.py) runs as a plain process
with its own config; the service's x-podops.slots renders its upstream file and reloads it (`nginx -s reload`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO_ROOT, free_port, http_get, sh

CRASH_AFTER = Path(__file__).parent / "crash_after"
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT / ".work" / "collections"))
from ansible_collections.podops.gitops.plugins.module_utils._state import RuntimeStore  # noqa: E402
from nginx_proxy import NginxProxy  # noqa: E402 - the benchmark's proxy, shared

HEALTH = '["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]'


class Poller(threading.Thread):
    """A client that GETs the proxy every 20 ms and remembers every answer and failure."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/"
        self.bodies: list[str] = []
        self.failures: list[str] = []
        self.longest_gap = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self._halt.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    self.bodies.append(response.read().decode())
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last_ok)
                last_ok = now
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(str(exc))
            time.sleep(0.02)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def versions(self) -> list[str]:
        """The distinct answers in the order they were first seen."""
        seen: list[str] = []
        for body in self.bodies:
            if not seen or seen[-1] != body:
                seen.append(body)
        return seen


@pytest.fixture
def nginx(tmp_path):
    proxy = NginxProxy(tmp_path / "nginx", free_port(), free_port())
    yield proxy
    proxy.stop()


def blue_green_service(ports: dict[str, int], nginx: NginxProxy, health: str = HEALTH) -> str:
    slots = {
        "ports": ports,
        "upstream_file": str(nginx.upstream),
        "reload_command": nginx.reload_command,
        "drain": 1,
        "stop_timeout": 1,
    }
    return (
        "x-podops:\n"
        "  strategy: blue-green\n"
        "  health: {timeout: 20, samples: 2, interval: 0.3}\n"
        f"  slots: {json.dumps(slots)}\n"
        "services:\n"
        "  web:\n"
        "    image: localhost/podops-demo:1\n"
        '    ports: ["127.0.0.1:${PODOPS_SLOT_PORT}:8080"]\n'
        '    volumes: ["./site:/www:ro"]\n'
        "    healthcheck:\n"
        f"      test: {health}\n"
        "      interval: 30s\n"
    )


def summary_line(run, service: str) -> str:
    """The playbook summary's line for ``service``."""
    for play in run.output.get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"].endswith("Summary"):
                lines = next(iter(task["hosts"].values()))["msg"]
                return next(line for line in lines if line.startswith(f"{service}: "))
    raise AssertionError(f"no summary line for {service}")


def marker(host, name: str) -> dict:
    return json.loads((host.state_dir / "ab" / f"{name}.json").read_text())


def slot_projects(host) -> dict[str, str]:
    """{compose project: state} of the running blue-green containers of this test."""
    return {c["Labels"]["io.podman.compose.project"]: c["State"] for c in host.containers("bg")}


def test_switch_a_b_a_with_zero_failed_requests(host, repo, nginx):
    ports = {"a": free_port(), "b": free_port()}
    repo.write("services/bg/compose.yaml", blue_green_service(ports, nginx))
    repo.write("services/bg/site/index.html", "v1")
    repo.commit("v1")

    first = host.reconcile(repo)
    assert first.rc == 0, first
    assert first.report["services"]["bg"]["action"] == "deployed"
    assert f"127.0.0.1:{ports['a']}" in summary_line(first, "bg"), "the summary links the active slot's port"
    assert marker(host, "bg")["active"] == "a"
    assert http_get(nginx.port) == "v1"
    assert http_get(ports["a"]) == "v1"
    projects = slot_projects(host)
    assert projects == {f"{host.prefix}bg-a": "running"}
    assert {c["Labels"]["io.podops.slot"] for c in host.containers("bg")} == {"a"}

    poller = Poller(nginx.port)
    poller.start()
    after_switch: list[tuple[str, int, int]] = []  # (version, first and last answer index once it was live)
    try:
        for version, slot in (("v2", "b"), ("v3", "a")):
            if after_switch:
                after_switch[-1] = (*after_switch[-1][:2], len(poller.bodies))
            repo.write("services/bg/site/index.html", version)
            repo.commit(version)
            run = host.reconcile(repo)
            assert run.rc == 0, run
            assert run.report["services"]["bg"]["action"] == "deployed"
            assert marker(host, "bg")["active"] == slot
            assert f"127.0.0.1:{ports[slot]}" in summary_line(run, "bg")
            assert slot_projects(host) == {f"{host.prefix}bg-{slot}": "running"}, "the old slot is stopped after the switch"
            after_switch.append((version, len(poller.bodies), -1))
            time.sleep(0.5)
    finally:
        poller.stop()

    assert poller.failures == [], f"{len(poller.failures)} failed requests during the switches: {poller.failures[:3]}"
    assert poller.versions()[0] == "v1" and poller.versions()[-1] == "v3"
    for version, first, last in after_switch:
        answers = poller.bodies[first:last] if last >= 0 else poller.bodies[first:]
        assert answers and set(answers) == {version}, f"once the switch to {version} returned, only {version} is served"
    assert len(poller.bodies) > 50

    again = host.reconcile(repo)
    assert again.rc == 0 and not again.changed, "nothing to switch: the second run changes nothing"
    assert again.report["services"]["bg"]["action"] == "unchanged"


def test_a_broken_standby_is_rejected_and_the_active_slot_keeps_serving(host, repo, nginx):
    ports = {"a": free_port(), "b": free_port()}
    repo.write("services/bg/compose.yaml", blue_green_service(ports, nginx))
    repo.write("services/bg/site/index.html", "good")
    repo.commit("good")
    assert host.reconcile(repo).rc == 0
    active_ids = host.ids("bg")

    repo.write("services/bg/compose.yaml", blue_green_service(ports, nginx, health='["CMD", "false"]'))
    repo.write("services/bg/site/index.html", "broken")
    repo.commit("broken")
    run = host.reconcile(repo)

    assert run.rc != 0
    entry = run.report["services"]["bg"]
    assert entry["action"] == "rolled_back"
    assert "slot b" in entry["error"] and "did not get healthy, so it was stopped and slot a stays active" in entry["error"]
    # the standby's log was read before the switch stopped it; the summary links the slot still serving (issue 14)
    assert entry["failure_log"]["container"] == f"{host.prefix}bg-b_web_1", entry
    assert f"127.0.0.1:{ports['a']} - " in summary_line(run, "bg") and str(ports["b"]) not in summary_line(run, "bg").split(" - ")[0]
    assert http_get(nginx.port) == "good"
    assert host.ids("bg") == active_ids, "the active slot was not touched"
    assert marker(host, "bg")["active"] == "a"
    assert nginx.upstream.read_text() == f"server 127.0.0.1:{ports['a']};\n"


@pytest.mark.parametrize("step", ["standby_started", "flipped", "upstream_reloaded", "drained"])
def test_a_run_killed_at_each_step_converges_on_the_next(host, repo, nginx, step, tmp_path):
    ports = {"a": free_port(), "b": free_port()}
    repo.write("services/bg/compose.yaml", blue_green_service(ports, nginx))
    repo.write("services/bg/site/index.html", "before")
    repo.commit("before")
    assert host.reconcile(repo).rc == 0

    repo.write("services/bg/site/index.html", "after")
    repo.commit("after")
    # The module process dies (os._exit) right after the step: a real crash, not an exception. The hook is
    # the test's own (crash_after/sitecustomize.py), loaded into the module process through PYTHONPATH.
    saved = dict(host.env)
    proof = tmp_path / "crashed"
    host.env.update(
        PODOPS_TEST_CRASH_AFTER=step, PODOPS_TEST_CRASHED=str(proof), PYTHONPATH=os.pathsep.join(filter(None, [str(CRASH_AFTER), host.env.get("PYTHONPATH")]))
    )
    crashed = host.reconcile(repo)
    host.env = saved
    assert crashed.rc != 0
    assert proof.read_text() == step, "the module process died right after the step"
    active = marker(host, "bg")["active"]
    assert active in ("a", "b"), "never none"
    assert http_get(nginx.port) in ("before", "after"), "something serves at every step"

    rerun = host.reconcile(repo)
    assert rerun.rc == 0, rerun
    assert marker(host, "bg")["active"] == "b"
    assert http_get(nginx.port) == "after"
    assert slot_projects(host) == {f"{host.prefix}bg-b": "running"}, "exactly one slot runs"
    assert nginx.upstream.read_text() == f"server 127.0.0.1:{ports['b']};\n"
    assert host.reconcile(repo).changed is False


def test_prune_removes_both_slots(host, repo, nginx):
    ports = {"a": free_port(), "b": free_port()}
    repo.write("services/bg/compose.yaml", blue_green_service(ports, nginx))
    repo.write("services/bg/site/index.html", "x")
    repo.add_web("other", free_port())
    repo.commit()
    assert host.reconcile(repo).rc == 0
    repo.remove("services/bg")
    repo.commit("bg leaves")

    run = host.reconcile(repo, podops_prune=True)
    assert run.rc == 0, run
    assert run.report["services"]["bg"]["action"] == "pruned"
    assert host.containers("bg") == []
    assert not (host.state_dir / "ab" / "bg.json").exists()
    # Nothing podops kept for it stays behind: slot overrides, slot copies, snapshots (its run reports do).
    kept = [str(p.relative_to(host.state_dir)) for p in host.state_dir.rglob("*bg*") if "runs" not in p.parts]
    assert kept == []


def test_prune_of_a_vault_blue_green_service_removes_its_decrypted_copies(host, repo, nginx, tmp_path):
    """Each slot of a service with ansible-vault files runs from its own decrypted copy (root-only runtime
    folder); a prune removes both, not only the copy of the service itself."""
    password = tmp_path / "vault-pass"
    password.write_text("pw-bg\n")
    ports = {"a": free_port(), "b": free_port()}
    repo.write("services/bg/compose.yaml", blue_green_service(ports, nginx).replace('["./site:/www:ro"]', '["./site:/www:ro", "./conf:/conf:ro"]'))
    repo.write("services/bg/site/index.html", "x")
    repo.write("services/bg/conf/token", "bg-secret-token")
    sh("ansible-vault", "encrypt", "--vault-password-file", str(password), str(repo.path / "services/bg/conf/token"))
    repo.add_web("other", free_port())
    repo.commit()
    assert host.reconcile(repo, "--vault-password-file", str(password)).rc == 0
    runtime = Path(RuntimeStore(str(host.state_dir)).base)
    assert [p.name for p in runtime.iterdir() if p.name.startswith("bg")] == ["bg-a"], "the active slot runs from its decrypted copy"
    repo.remove("services/bg")
    repo.commit("bg leaves")

    run = host.reconcile(repo, "--vault-password-file", str(password), podops_prune=True)
    assert run.rc == 0, run
    assert run.report["services"]["bg"]["action"] == "pruned"
    assert [p.name for p in runtime.iterdir() if p.name.startswith("bg")] == []
    assert [str(p) for p in host.state_dir.rglob("*bg*") if "runs" not in p.parts] == []


def test_ab_switch_module_quartet_with_a_compose_project(tmp_path, nginx):
    """The standalone module: check -> real -> check -> real is changed, changed, not, not."""
    src = tmp_path / "shop"
    (src / "site").mkdir(parents=True)
    (src / "site/index.html").write_text("shop v1")
    (src / "compose.yaml").write_text(
        'services:\n  web:\n    image: localhost/podops-demo:1\n    ports: ["127.0.0.1:${PODOPS_SLOT_PORT}:8080"]\n    volumes: ["./site:/www:ro"]\n'
    )
    ports = {"a": free_port(), "b": free_port()}
    name = f"shop{time.monotonic_ns() % 100000}"
    args = {
        "name": name,
        "project_src": str(src),
        "state_dir": str(tmp_path / "state"),
        "ports": ports,
        "health_url": "http://127.0.0.1:{port}/",
        "upstream_file": str(nginx.upstream),
        "reload_command": nginx.reload_command,
        "drain": 0.5,
        "stop_timeout": 1,
    }

    def task(*flags: str) -> dict:
        proc = subprocess.run(
            ["ansible", "localhost", "-m", "podops.gitops.ab_switch", "-a", json.dumps(args), *flags],
            capture_output=True,
            text=True,
            check=False,
            env={**__import__("os").environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]

    try:
        check1 = task("--check", "--diff")
        assert (check1["changed"], check1["active"], check1["outcome"]) == (True, "a", "started")
        assert sh("podman", "ps", "-q", "--filter", f"label=io.podops.switch={name}").stdout == ""
        real1 = task()
        assert (real1["changed"], real1["active"]) == (True, "a")
        assert http_get(nginx.port) == "shop v1"
        assert task("--check")["changed"] is False
        assert task()["changed"] is False

        (src / "site/index.html").write_text("shop v2")
        switched = task("--diff")
        assert (switched["changed"], switched["active"], switched["previous"]) == (True, "b", "a")
        assert switched["diff"]["before"]["active"] == "a" and switched["diff"]["after"]["active"] == "b"
        assert http_get(nginx.port) == "shop v2"
        running = json.loads(sh("podman", "ps", "--format", "json", "--filter", f"label=io.podops.switch={name}").stdout)
        assert {ctr["Labels"]["io.podops.slot"] for ctr in running} == {"b"}
    finally:
        ids = sh("podman", "ps", "-aq", "--filter", f"label=io.podops.switch={name}").stdout.split()
        if ids:
            sh("podman", "rm", "-f", "-t", "0", *ids, check=False)
        for slot in ("a", "b"):
            sh("podman", "network", "rm", "-f", f"{name}-{slot}_default", check=False)


def test_strategy_changes_both_ways(host, repo, nginx):
    """recreate -> blue-green: slot a takes over and the old project goes; back: the slots and marker go."""
    port = free_port()
    ports = {"a": free_port(), "b": free_port()}
    repo.add_web("bg", port, "plain")
    repo.commit("recreate")
    assert host.reconcile(repo).rc == 0
    assert http_get(port) == "plain"

    repo.write("services/bg/compose.yaml", blue_green_service(ports, nginx))
    repo.write("services/bg/site/index.html", "slotted")
    repo.commit("blue-green")
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert slot_projects(host) == {f"{host.prefix}bg-a": "running"}, "the recreate project is gone"
    assert http_get(nginx.port) == "slotted"

    repo.add_web("bg", port, "plain again")
    repo.commit("recreate again")
    back = host.reconcile(repo)
    assert back.rc == 0, back
    assert slot_projects(host) == {f"{host.prefix}bg": "running"}
    assert http_get(port) == "plain again"
    assert not (host.state_dir / "ab" / "bg.json").exists()
    assert host.reconcile(repo).changed is False
