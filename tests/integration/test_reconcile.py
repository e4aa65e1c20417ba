"""Reconcile against real podman: deploy, no-op, change detection, check/diff (issue 2, points 2-5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import free_port, http_get, sh


def test_quartet_check_real_check_real(host, repo):
    """community.docker's quartet: check -> real -> check -> real is changed, changed, not, not."""
    port = free_port()
    repo.add_web("site", port, "quartet v1")
    commit = repo.commit()

    check1 = host.reconcile(repo, check=True, diff=True)
    assert check1.rc == 0, check1.stdout + check1.stderr
    assert check1.changed
    assert host.containers() == [], "check mode must not start anything"
    assert check1.report["check_mode"] is True
    assert check1.report["services"]["site"]["action"] == "deployed"
    assert "+ site: deploy (new)" in check1.task["diff"]["prepared"]

    real1 = host.reconcile(repo)
    assert real1.rc == 0, real1.stdout + real1.stderr
    assert real1.changed
    assert http_get(port) == "quartet v1"
    report = real1.report
    assert report["result"] == "changed" and report["check_mode"] is False and report["commit"] == commit
    assert report["services"]["site"]["action"] == "deployed" and report["services"]["site"]["reason"] == "new"
    for key in ("run_id", "trigger", "started", "finished"):
        assert report[key]
    assert (host.state_dir / "runs" / f"{report['run_id']}.json").is_file()

    (container,) = host.containers("site")
    labels = container["Labels"]
    assert labels["io.podops.service"] == "site"
    assert labels["io.podops.commit"] == commit
    assert labels["io.podops.digest"] == report["services"]["site"]["digest"]

    check2 = host.reconcile(repo, check=True)
    assert check2.rc == 0 and not check2.changed
    real2 = host.reconcile(repo)
    assert real2.rc == 0 and not real2.changed
    assert real2.report["services"]["site"]["action"] == "unchanged"
    assert real2.report["result"] == "ok"
    # Run on every ansible-core of the matrix (make compat's lanes: 2.19 and the newest): no deprecation warning
    # (a non-zero rc read as failure, injected facts, ...) is triggered by the playbook, its role or its modules.
    assert [run.deprecations for run in (check1, real1, check2, real2)] == [[], [], [], []]


def test_noop_restarts_nothing(host, repo):
    ports = {name: free_port() for name in ("alpha", "beta")}
    for name, port in ports.items():
        repo.add_web(name, port, name)
    repo.commit()
    assert host.reconcile(repo).rc == 0
    before = {name: host.ids(name) for name in ports}

    again = host.reconcile(repo)
    assert again.rc == 0 and not again.changed
    assert {name: host.ids(name) for name in ports} == before, "same container IDs and start times"
    assert {svc["action"] for svc in again.report["services"].values()} == {"unchanged"}


def test_each_kind_of_change_replaces_only_that_service(host, repo, tmp_path):
    """Compose file, .env, podman-compose.env, a mounted config file, an env file outside the folder."""
    other_port, port = free_port(), free_port()
    repo.add_web("other", other_port, "other")
    repo.write(
        "services/app/compose.yaml",
        "x-podops:\n  health: {timeout: 30, samples: 2, interval: 0.3}\n"
        "services:\n  web:\n    image: localhost/podops-demo:1\n"
        '    command: ["sh", "-c", "trap \'exit 0\' TERM; echo \\"$$GREETING $$MODE $$SECRET\\" > /www/index.html; '
        'cat /conf/extra.txt >> /www/index.html; httpd -f -p 8080 -h /www & wait"]\n'
        '    ports: ["127.0.0.1:${APP_PORT:-1}:8080"]\n'
        "    volumes: [./conf:/conf:ro]\n"
        "    environment:\n      GREETING: ${GREETING:-none}\n"
        "    env_file:\n      - podman-compose.env\n      - path: ../../secrets/app.env\n        required: true\n",
    )
    repo.write("services/app/.env", f"APP_PORT={port}\nGREETING=hello\n")
    repo.write("services/app/podman-compose.env", "MODE=one\n")
    repo.write("services/app/conf/extra.txt", "extra-1\n")
    repo.write(".gitignore", "secrets/\n")
    repo.write("secrets/app.env", "SECRET=s1\n")
    repo.commit()
    first = host.reconcile(repo)
    assert first.rc == 0, first.stdout + first.stderr
    assert http_get(port).split() == ["hello", "one", "s1", "extra-1"]
    other_ids = host.ids("other")

    # .env is read by compose interpolation only: the new one moves the port and drops GREETING.
    new_port = free_port()
    steps = [
        ("services/app/podman-compose.env", "MODE=two\n", "podman-compose.env", ["hello", "two", "s1", "extra-1"], port),
        ("services/app/conf/extra.txt", "extra-2\n", "conf/extra.txt", ["hello", "two", "s1", "extra-2"], port),
        ("secrets/app.env", "SECRET=s2\n", "../../secrets/app.env", ["hello", "two", "s2", "extra-2"], port),
        ("services/app/.env", f"APP_PORT={new_port}\n", ".env", ["none", "two", "s2", "extra-2"], new_port),
    ]
    for rel, content, changed_file, served, serve_port in steps:
        app_ids = host.ids("app")
        repo.write(rel, content)
        repo.commit(f"change {rel}")
        run = host.reconcile(repo)
        assert run.rc == 0, run.stdout + run.stderr
        entry = run.report["services"]["app"]
        assert entry["action"] == "deployed" and entry["reason"] == "changed", entry
        assert entry["changed_files"] == [changed_file]
        assert run.report["services"]["other"]["action"] == "unchanged"
        assert host.ids("other") == other_ids, "the other service must not be touched"
        assert host.ids("app") != app_ids
        assert http_get(serve_port).split() == served

    # the compose file itself
    compose = (repo.path / "services/app/compose.yaml").read_text().replace("extra.txt >> /www", "extra.txt >>/www")
    repo.write("services/app/compose.yaml", compose)
    repo.commit("compose change")
    run = host.reconcile(repo)
    assert run.report["services"]["app"]["changed_files"] == ["compose.yaml"]
    assert host.ids("other") == other_ids


def test_stray_and_untracked_files_are_ignored(host, repo):
    port = free_port()
    repo.add_web("site", port, "v1")
    repo.write("services/README.md", "stray file\n")
    repo.commit()
    assert host.reconcile(repo).rc == 0
    ids = host.ids("site")

    repo.write("services/NOTES.txt", "another stray file, not committed\n")
    repo.write("services/site/junk.tmp", "untracked junk inside the service folder\n")
    (repo.path / "services/empty-dir").mkdir()
    run = host.reconcile(repo)
    assert run.rc == 0 and not run.changed
    assert host.ids("site") == ids
    assert run.report["services"]["site"]["action"] == "unchanged"
    assert set(run.report["services"]) == {"site"}


def test_check_diff_shows_the_plan_and_touches_nothing(host, repo):
    ports = [free_port(), free_port()]
    repo.add_web("one", ports[0], "one-v1")
    repo.add_web("two", ports[1], "two-v1")
    repo.commit()
    assert host.reconcile(repo).rc == 0
    ids = {name: host.ids(name) for name in ("one", "two")}
    state_before = (host.state_dir / "state.json").read_text()

    repo.write("services/one/site/index.html", "one-v2")
    repo.commit()
    run = host.reconcile(repo, check=True, diff=True)
    assert run.rc == 0 and run.changed
    diff = run.task["diff"]["prepared"]
    assert "~ one: deploy (changed): site/index.html" in diff
    assert "= two: unchanged" in diff
    assert run.report["check_mode"] is True
    assert run.report["services"]["one"]["changed_files"] == ["site/index.html"]
    assert {name: host.ids(name) for name in ("one", "two")} == ids
    assert (host.state_dir / "state.json").read_text() == state_before


def test_example_env_repo_real_world_compose(host, tmp_path):
    """The shipped example: name:, container_name, named volume, custom network, env_file outside the
    folder (long form, required), .env defaults, depends_on service_healthy, healthchecks, bind mounts."""
    repo_dir = tmp_path / "example"
    sh("cp", "-r", str(os.path.join(os.path.dirname(__file__), "../../examples/env-repo")), str(repo_dir))
    hello_port, notes_port = free_port(), free_port()
    (repo_dir / "services/hello/.env").write_text(f"HOST_PORT={hello_port}\n")
    compose = (repo_dir / "services/notes/podman-compose.yml").read_text()
    # container_name is global: make it unique to this test run
    compose = compose.replace("container_name: notes-app", f"container_name: {host.prefix}notes-app")
    compose = compose.replace("${NOTES_PORT:-8082}", str(notes_port))
    (repo_dir / "services/notes/podman-compose.yml").write_text(compose)
    abs_dir = tmp_path / "abs-bind"
    abs_dir.mkdir()
    (abs_dir / "motd").write_text("absolute bind mount\n")
    hello = (repo_dir / "services/hello/compose.yaml").read_text()
    (repo_dir / "services/hello/compose.yaml").write_text(hello.replace("- ./site:/www:ro", f"- ./site:/www:ro\n      - {abs_dir}:/motd:ro"))
    sh("git", "init", "-q", "-b", "main", str(repo_dir))
    sh("git", "-C", str(repo_dir), "add", "-A")
    sh("git", "-C", str(repo_dir), "-c", "user.name=t", "-c", "user.email=t@podops.invalid", "commit", "-q", "-m", "example")

    missing = host.reconcile(repo_dir)
    assert missing.rc != 0
    assert missing.report["services"]["notes"]["action"] == "failed"
    assert "secrets/notes.env" in missing.report["services"]["notes"]["error"]
    assert missing.report["services"]["hello"]["action"] == "deployed"

    (repo_dir / "secrets/notes.env").write_text("NOTES_GREETING=hi from a secret\n")
    run = host.reconcile(repo_dir)
    assert run.rc == 0, run.stdout + run.stderr
    assert http_get(hello_port).strip() == "<h1>hello from podops</h1>"
    assert http_get(notes_port).strip() == "hi from a secret (demo)"
    names = {c["Names"][0] for c in host.containers("notes")}
    assert f"{host.prefix}notes-app" in names
    projects = {c["Labels"]["io.podman.compose.project"] for c in host.containers("notes")}
    assert projects == {f"{host.prefix}notes"}, "top-level name: is the project name (with the prefix)"
    volumes = sh("podman", "volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"{host.prefix}notes_notes-data" in volumes
    summary = next(task for task in run.output["plays"][0]["tasks"] if task["task"]["name"].endswith("Summary"))
    lines = next(iter(summary["hosts"].values()))["msg"]
    assert f"hello: unchanged http://127.0.0.1:{hello_port}/" in lines
    assert any(line.startswith("notes: deployed (new, ") and line.endswith(f"s) http://127.0.0.1:{notes_port}/") for line in lines), lines

    again = host.reconcile(repo_dir)
    assert again.rc == 0 and not again.changed


def test_compose_service_removed_from_the_file_is_removed(host, repo):
    port = free_port()
    compose = (
        "x-podops:\n  health: {timeout: 30, samples: 2, interval: 0.3}\n"
        "services:\n"
        "  web:\n    image: localhost/podops-demo:1\n"
        f'    ports: ["127.0.0.1:{port}:8080"]\n'
        "  worker:\n    image: localhost/podops-demo:1\n"
        '    command: ["sh", "-c", "trap \'exit 0\' TERM; sleep 100000 & wait"]\n'
    )
    repo.write("services/app/compose.yaml", compose)
    repo.commit()
    assert host.reconcile(repo).rc == 0
    assert sorted(c["Labels"]["com.docker.compose.service"] for c in host.containers("app")) == ["web", "worker"]

    repo.write("services/app/compose.yaml", compose.split("  worker:", maxsplit=1)[0])
    repo.commit("drop worker")
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert [c["Labels"]["com.docker.compose.service"] for c in host.containers("app")] == ["web"]
    assert http_get(port).strip() == "podops demo 1"


def test_ansible_pull_runs_the_repos_local_yml(host, tmp_path):
    """ansible-pull checks the repo out and runs its local.yml, which imports podops.gitops.reconcile."""
    src = tmp_path / "origin"
    sh("cp", "-r", str(os.path.join(os.path.dirname(__file__), "../../examples/env-repo")), str(src))
    sh("rm", "-rf", str(src / "services/notes"))
    port = free_port()
    (src / "services/hello/.env").write_text(f"HOST_PORT={port}\n")
    sh("git", "init", "-q", "-b", "main", str(src))
    sh("git", "-C", str(src), "add", "-A")
    sh("git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@podops.invalid", "commit", "-q", "-m", "origin")

    def pull() -> dict:
        extra = {
            "podops_state_dir": str(host.state_dir),
            "podops_project_prefix": host.prefix,
            "podops_trigger": "timer",
            "ansible_python_interpreter": sys.executable,
        }
        argv = ["ansible-pull", "-U", f"file://{src}", "-d", str(tmp_path / "checkout"), "-i", "localhost,", "-e", json.dumps(extra), "local.yml"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=dict(host.env, ANSIBLE_STDOUT_CALLBACK="default"), check=False, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return json.loads((host.state_dir / "last-run.json").read_text())

    first = pull()
    head = sh("git", "-C", str(src), "rev-parse", "HEAD").stdout.strip()
    assert (first["trigger"], first["commit"], first["services"]["hello"]["action"]) == ("timer", head, "deployed")
    assert http_get(port).strip() == "<h1>hello from podops</h1>"

    (src / "services/hello/site/index.html").write_text("pushed\n")
    sh("git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@podops.invalid", "commit", "-q", "-am", "push")
    second = pull()
    assert second["services"]["hello"]["changed_files"] == ["site/index.html"]
    assert http_get(port).strip() == "pushed"
    assert pull()["services"]["hello"]["action"] == "unchanged"


def test_secrets_shared_binds_and_builds_count(host, repo):
    """Compose secrets from a host-local file, a bind mount from ../../shared, and a built image."""
    port, built_port = free_port(), free_port()
    repo.write(".gitignore", "secrets/\nshared/data/\n")
    repo.write("secrets/token.txt", "token-1")
    repo.write("shared/banner.txt", "banner-1")
    repo.write(
        "services/app/compose.yaml",
        "x-podops:\n  health: {timeout: 30, samples: 2, interval: 0.3}\n"
        "services:\n  web:\n    image: localhost/podops-demo:1\n"
        '    command: ["sh", "-c", "trap \'exit 0\' TERM; cat /run/secrets/token /banner.txt > /www/index.html; httpd -f -p 8080 -h /www & wait"]\n'
        f'    ports: ["127.0.0.1:{port}:8080"]\n'
        "    secrets: [token]\n"
        '    volumes: ["../../shared/banner.txt:/banner.txt:ro", "../../shared/data:/data"]\n'
        "secrets:\n  token:\n    file: ../../secrets/token.txt\n",
    )
    repo.write("services/built/Containerfile", "FROM localhost/podops-demo:1\nCOPY index.html /www/index.html\n")
    repo.write("services/built/index.html", "built-1")
    repo.write(
        "services/built/compose.yaml",
        "x-podops:\n  health: {timeout: 30, samples: 2, interval: 0.3}\n"
        f"services:\n  web:\n    build: {{context: ., dockerfile: Containerfile}}\n    image: localhost/podops-built-{host.prefix.strip('-')}:1\n"
        f'    ports: ["127.0.0.1:{built_port}:8080"]\n',
    )
    repo.commit()
    first = host.reconcile(repo)
    assert first.rc == 0, first
    assert http_get(port) == "token-1banner-1"
    assert http_get(built_port) == "built-1"

    (repo.path / "shared/data").mkdir(exist_ok=True)
    (repo.path / "shared/data/app.db").write_text("data the service writes")
    quiet = host.reconcile(repo)
    assert quiet.rc == 0 and not quiet.changed, "untracked data under a bind mount never redeploys"

    repo.write("secrets/token.txt", "token-2")
    run = host.reconcile(repo)
    assert run.report["services"]["app"]["changed_files"] == ["../../secrets/token.txt"]
    assert http_get(port) == "token-2banner-1"

    repo.write("shared/banner.txt", "banner-2")
    repo.commit("banner")
    run = host.reconcile(repo)
    assert run.report["services"]["app"]["changed_files"] == ["../../shared/banner.txt"]
    assert run.report["services"]["built"]["action"] == "unchanged"
    assert http_get(port) == "token-2banner-2"

    repo.write("services/built/index.html", "built-2")
    repo.commit("rebuild")
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert run.report["services"]["built"]["changed_files"] == ["index.html"]
    assert http_get(built_port) == "built-2", "a changed build context is rebuilt"
    sh("podman", "rm", "-f", "-t", "0", *[c["Id"] for c in host.containers("built")])
    sh("podman", "rmi", "-f", f"localhost/podops-built-{host.prefix.strip('-')}:1")
