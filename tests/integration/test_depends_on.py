"""depends_on conditions podops waits for itself (issue 17): a dependent starts only once its dependency passed
podops' health gate, on every podman version (podman 4.3 ignores the condition; podman >= 4.6 makes
podman-compose wait inside `up` with no time limit)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import yaml
from conftest import IMAGE, REPO_ROOT, free_port, http_get, sh

sys.path.insert(0, str(REPO_ROOT / ".work" / "collections"))
from ansible_collections.podops.gitops.plugins.module_utils._apply import override_document  # noqa: E402
from ansible_collections.podops.gitops.plugins.module_utils._compose import load_project  # noqa: E402


def health_log(container: str) -> list[dict]:
    """The healthcheck results podman keeps for a container (podman 4.3: State.Healthcheck, 5: State.Health)."""
    (entry,) = json.loads(sh("podman", "container", "inspect", "--format", "json", container).stdout)
    state = entry.get("State") or {}
    return list((state.get("Health") or state.get("Healthcheck") or {}).get("Log") or [])


def by_service(host, service: str) -> dict[str, dict]:
    return {c["Labels"]["com.docker.compose.service"]: c for c in host.containers(service)}


def test_podops_override_leaves_podman_compose_nothing_to_wait_for(tmp_path):
    """What podman-compose runs: the file and podops' override merged by podman-compose itself. Every condition
    podops waits for is service_started there; required/restart and the other dependencies stay as written."""
    (tmp_path / "compose.yaml").write_text(
        f"""services:
  db:
    image: {IMAGE}
  migrate:
    image: {IMAGE}
  cache:
    image: {IMAGE}
  web:
    image: {IMAGE}
    depends_on:
      db: {{condition: service_healthy, restart: true}}
      migrate: {{condition: service_completed_successfully}}
      cache: {{condition: service_started, required: false}}
  worker:
    image: {IMAGE}
    depends_on: [db]
"""
    )
    project = load_project(str(tmp_path))
    (tmp_path / "podops.yml").write_text(override_document(project, {"io.podops.service": "app"}))
    proc = subprocess.run(
        ["podman-compose", "-f", "compose.yaml", "-f", "podops.yml", "config"], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert services["web"]["depends_on"] == {
        "db": {"condition": "service_started", "restart": True},
        "migrate": {"condition": "service_started"},
        "cache": {"condition": "service_started", "required": False},
    }
    assert services["worker"]["depends_on"] == {"db": {"condition": "service_started"}}


def test_a_dependent_starts_only_after_its_dependency_is_healthy(host, repo, tmp_path):
    """db gets healthy only when the test says so (a file in a folder it mounts): until then web must not run."""
    port = free_port()
    flag = tmp_path / "flag"
    flag.mkdir()
    repo.write(
        "services/app/compose.yaml",
        f"""x-podops:
  health: {{timeout: 120, samples: 2, interval: 0.3}}
services:
  db:
    image: {IMAGE}
    volumes: ["{flag}:/flag:ro"]
    healthcheck: {{test: ["CMD", "sh", "-c", "test -f /flag/ready"], interval: 30s}}
  web:
    image: {IMAGE}
    ports: ["127.0.0.1:{port}:8080"]
    depends_on:
      db:
        condition: service_healthy
""",
    )
    repo.commit()
    result = {}
    thread = threading.Thread(target=lambda: result.update(run=host.reconcile(repo)))
    thread.start()
    try:
        # podops ran db's healthcheck and saw it fail: web must not have been started by then.
        deadline = time.monotonic() + 120
        while True:
            containers = by_service(host, "app")
            if "db" in containers and any(entry.get("ExitCode") not in (0, None) for entry in health_log(containers["db"]["Id"])):
                break
            assert thread.is_alive(), result.get("run")
            assert time.monotonic() < deadline, "podops never ran db's healthcheck"
            time.sleep(0.2)
        web = containers.get("web")
        assert web is None or web["State"].lower() == "created", f"web was started while db was not healthy: {web['State']}"
        ready_at = int(time.time())
        (flag / "ready").write_text("")
    finally:
        thread.join(300)
    run = result["run"]
    assert run.rc == 0, run
    assert run.report["services"]["app"]["action"] == "deployed"
    assert http_get(port).strip() == "podops demo 1"
    containers = by_service(host, "app")
    assert containers["web"]["State"] == "running"
    assert containers["web"]["StartedAt"] >= ready_at, "web started before db was healthy"
    passed = [entry for entry in health_log(containers["db"]["Id"]) if entry.get("ExitCode") == 0]
    assert passed, "db's healthcheck passed before web started"


def test_a_dependency_that_never_gets_healthy_fails_within_the_health_timeout_naming_it(host, repo):
    """The error names the dependency, the service that waited for it and what its healthcheck said; the last good
    version serves again; the run ends in the health timeout (plus the rollback), not in podman-compose's `up`."""
    port = free_port()

    def compose(check: str, timeout: int) -> str:
        return (
            f"x-podops:\n  health: {{timeout: {timeout}, samples: 2, interval: 0.3}}\n"
            "services:\n"
            f"  db:\n    image: {IMAGE}\n"
            f'    healthcheck: {{test: ["CMD", "sh", "-c", "{check}"], interval: 30s}}\n'
            f'  web:\n    image: {IMAGE}\n    ports: ["127.0.0.1:{port}:8080"]\n'
            "    depends_on:\n      db: {condition: service_healthy}\n"
        )

    # The working version gets time for a loaded machine; the broken one the short limit the test observes.
    repo.write("services/app/compose.yaml", compose("true", 120))
    repo.commit("healthy db")
    first = host.reconcile(repo)
    assert first.rc == 0, first
    assert http_get(port).strip() == "podops demo 1"

    repo.write("services/app/compose.yaml", compose("echo db is still recovering; exit 1", 8))
    repo.commit("db never healthy")
    begun = time.monotonic()
    broken = host.reconcile(repo, timeout=300)
    elapsed = time.monotonic() - begun
    assert broken.rc != 0
    entry = broken.report["services"]["app"]
    assert entry["action"] == "rolled_back", entry.get("error")
    error = entry["error"]
    assert (
        "compose service db did not get healthy in 8s (x-podops.health.timeout), so web (depends_on: {db: {condition: service_healthy}}) was not started"
        in error
    ), error
    assert "db is still recovering" in error, error
    assert http_get(port).strip() == "podops demo 1", "the version that worked serves again"
    # 8 s of health gate, stops of busybox httpd (it ignores SIGTERM: 10 s each) and the rollback's own start.
    assert elapsed < 180, f"the run took {elapsed:.0f}s (podman-compose's own wait would last until the 300 s up time limit)"
