"""No command without a time limit (issue 13, point 1): a podman-compose up that never returns is cut off,
that service fails, and the run goes on, reports and releases the host lock."""

from __future__ import annotations

import os
import shutil
import time

from conftest import alive, free_port, http_get, web_service

HANGING_COMPOSE = """#!/bin/sh
# podman-compose for this test: 'up' of the project {project} never returns (it and a child wait), the
# rest is the real podman-compose.
case " $* " in
  *" --project-name {project} "*" up "*)
    sleep 600 &
    echo $! > {pid_file}
    wait
    exit 1 ;;
esac
exec {real} "$@"
"""


def test_a_hanging_compose_up_is_cut_off_and_the_run_goes_on(host, repo, tmp_path):
    real = shutil.which("podman-compose")
    assert real, "podman-compose is not on PATH: run the tests through `make test`"
    pid_file = tmp_path / "hanging.pid"
    wrapper = tmp_path / "bin" / "podman-compose"
    wrapper.parent.mkdir()
    wrapper.write_text(HANGING_COMPOSE.format(project=f"{host.prefix}hang", pid_file=pid_file, real=real))
    wrapper.chmod(0o755)
    good_port, hang_port = free_port(), free_port()
    repo.add_web("good", good_port, "good")
    repo.add_web("hang", hang_port, "hang", xpodops="x-podops:\n  health: {timeout: 20, samples: 2, interval: 0.3}\n  timeouts: {up: 3}\n")
    repo.commit()

    started = time.monotonic()
    run = host.reconcile(repo, podops_compose_executable=str(wrapper), timeout=300)
    assert time.monotonic() - started < 120, "the run did not wait for the hanging command"
    assert run.rc != 0, "a failed service fails the playbook"
    services = run.report["services"]
    assert services["good"]["action"] == "deployed", run
    assert http_get(good_port) == "good"
    assert services["hang"]["action"] == "failed"
    assert "'podman-compose up' timed out after 3s" in services["hang"]["error"], services["hang"]["error"]
    assert "service(s) failed: hang" in run.first_failure()
    deadline = time.monotonic() + 10
    while alive(int(pid_file.read_text())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(int(pid_file.read_text())), "the processes the hanging command started were ended"

    # The run ended instead of hanging with the host lock: the next run gets it at once (waiting a second at
    # most) and retries the failed service.
    again = host.reconcile(repo, podops_compose_executable=str(wrapper), podops_lock_timeout=1, timeout=300)
    assert "another reconcile is running" not in again.stdout, again
    assert again.report["services"]["hang"]["reason"] == "retry"
    assert again.report["services"]["good"]["action"] == "unchanged"
    assert os.path.isfile(host.state_dir / "last-run.json")


def test_a_service_with_ordinary_timeouts_deploys(host, repo):
    port = free_port()
    xpodops = "x-podops:\n  health: {timeout: 20}\n  timeouts: {pull: 1200, up: 600, healthcheck: 30}\n"
    repo.write("services/web/compose.yaml", web_service(port, xpodops=xpodops))
    repo.write("services/web/site/index.html", "web")
    repo.commit()
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert http_get(port) == "web"


def waiting_podman(prefix: str) -> list[str]:
    """Command lines of processes still running a 'podman wait' for containers of this test."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "wait" in argv and any(prefix in arg for arg in argv) and alive(int(pid)):
            found.append(" ".join(argv))
    return found


def test_a_job_that_never_completes_is_cut_off_at_the_health_timeout(host, repo):
    """A job other services wait for (service_completed_successfully) never completes. podman-compose used to wait
    for it inside `up` (podman >= 4.6, with no limit of its own: podops' `up` time limit ended it); podops waits for
    it itself now, for the health timeout, and nothing is left waiting (see test_depends_on.py)."""
    port = free_port()
    repo.write(
        "services/stuck/compose.yaml",
        "x-podops:\n  health: {timeout: 20, samples: 2, interval: 0.3}\n  timeouts: {up: 8}\n"
        f"""services:
  migrate:
    image: localhost/podops-demo:1
    command: ["sleep", "600"]
  web:
    image: localhost/podops-demo:1
    ports: ["127.0.0.1:{port}:8080"]
    depends_on:
      migrate: {{condition: service_completed_successfully}}
""",
    )
    good_port = free_port()
    repo.add_web("good", good_port, "good")
    repo.commit()
    started = time.monotonic()
    run = host.reconcile(repo, timeout=300)
    assert time.monotonic() - started < 120, run
    services = run.report["services"]
    assert services["stuck"]["action"] == "failed"
    error = services["stuck"]["error"]
    assert "compose service migrate did not complete successfully in 20s (x-podops.health.timeout), so web" in error, error
    assert services["good"]["action"] == "deployed"
    assert http_get(good_port) == "good"
    deadline = time.monotonic() + 10
    while waiting_podman(host.prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert waiting_podman(host.prefix) == [], "no podman wait is left behind"
    assert all(c["State"] != "running" for c in host.containers("stuck")), "a failed first deploy is stopped"
