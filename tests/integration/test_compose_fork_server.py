"""The podman-compose fork server with the real podman-compose and podman: ``up -d`` through it starts the
container, a failing ``up`` fails as it does when podman-compose runs as a program, and no server outlives
the reconcile that started it."""

from __future__ import annotations

import concurrent.futures
import json
import secrets
import subprocess
import sys
import time

import pytest
from conftest import IMAGE, REPO_ROOT, free_port, http_get, own_processes, sh

sys.path.insert(0, str(REPO_ROOT / ".work" / "collections"))

from ansible_collections.podops.gitops.plugins.module_utils._forkserver import ForkServer, command_environment  # noqa: E402
from ansible_collections.podops.gitops.plugins.module_utils._podman import PodmanCompose, find_executable  # noqa: E402

MARKER = "# podops podman-compose fork server"


def runner(argv, cwd=None, env=None):
    proc = subprocess.run(argv, cwd=cwd, env=command_environment(env), capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


runner.command_environment = command_environment  # type: ignore[attr-defined]  # the server may serve it


def servers(tag: str) -> set[int]:
    """Fork servers started by the runs of the test whose Host has ``tag`` - not any other podops run here."""
    return own_processes(tag, MARKER.encode())


@pytest.fixture
def project(tmp_path):
    name = "tfs" + secrets.token_hex(3)
    yield name
    ids = sh("podman", "ps", "-aq", "--filter", f"label=io.podman.compose.project={name}", check=False).stdout.split()
    if ids:
        sh("podman", "rm", "-f", "-t", "0", *ids, check=False)
    sh("podman", "network", "rm", "-f", f"{name}_default", check=False)


def compose_dir(tmp_path, port: int, image: str = IMAGE):
    folder = tmp_path / "svc"
    (folder / "site").mkdir(parents=True)
    (folder / "site" / "index.html").write_text("forked\n")
    (folder / "compose.yaml").write_text(f'services:\n  web:\n    image: {image}\n    ports: ["127.0.0.1:{port}:8080"]\n    volumes: ["./site:/www:ro"]\n')
    return folder


def test_up_through_the_fork_server_starts_the_container(tmp_path, project):
    executable = find_executable("podman-compose")
    compose = PodmanCompose(runner, executable)
    port = free_port()
    folder = compose_dir(tmp_path, port)
    argv = [executable, "--in-pod", "false", "--project-name", project, "-f", str(folder / "compose.yaml"), "up", "-d"]
    try:
        assert isinstance(compose.fork_server(), ForkServer), "the venv's podman-compose is a pip console script"
        rc, _out, err = compose.call(argv, cwd=str(folder))
    finally:
        compose.close()

    assert rc == 0, err
    listed = json.loads(sh("podman", "ps", "--format", "json", "--filter", f"label=io.podman.compose.project={project}").stdout or "[]")
    assert [c["Names"][0] for c in listed] == [f"{project}_web_1"]
    assert http_get(port) == "forked\n"


def test_a_failing_up_fails_alike_through_the_server_and_as_a_program(tmp_path, project):
    executable = find_executable("podman-compose")
    folder = compose_dir(tmp_path, free_port(), image="localhost/podops-no-such-image:1")
    argv = [executable, "--in-pod", "false", "--project-name", project, "-f", str(folder / "compose.yaml"), "up", "-d"]
    server = ForkServer(executable, sys.executable)
    server.start()
    try:
        served = server.run(argv, cwd=str(folder))
    finally:
        server.close()
    ran = runner(argv, cwd=str(folder))

    assert served[0] == ran[0] != 0
    assert served[2].splitlines()[-1] == ran[2].splitlines()[-1]


def test_no_fork_server_outlives_a_reconcile(host, repo):
    """Watches only the fork servers of this test's own reconcile (tagged through its environment): other podops
    runs on the machine (another checkout's tests, a user's timer) start and stop servers of their own."""
    port = free_port()
    repo.add_web("site", port, "served by a forked podman-compose")
    repo.commit()
    assert servers(host.tag) == set()

    seen: set[int] = set()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(host.reconcile, repo)
        while not running.done():
            seen |= servers(host.tag)
            time.sleep(0.02)
        run = running.result()

    assert run.rc == 0, run.first_failure()
    assert http_get(port) == "served by a forked podman-compose"
    assert seen, "the reconcile ran podman-compose through a fork server of its own (the observation works)"
    # A server exits when its run's request pipe closes; give it a moment, not a run's worth.
    deadline = time.monotonic() + 3
    while servers(host.tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert servers(host.tag) == set(), f"fork servers outlived the reconcile: {sorted(servers(host.tag))} (seen {sorted(seen)})"
