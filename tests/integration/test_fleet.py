"""A fleet from one laptop: rolling, canary-first reconciles over real SSH to four hosts (issue 18).

Every host is a real ``sshd`` on a loopback address of its own (fleet_helpers.py), reached with ansible's ssh
connection, key-only, with pinned host keys. They share this machine's podman, so each has its own state folder,
project prefix and ports (given to podman-compose through its podops_podman_env, as host-specific values would be).
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest
from conftest import IMAGE, EnvRepo, free_port, held_lock, http_get, sh, web_service
from fleet_helpers import Fleet

SERVICES_BY_HOST = {0: ["*"], 1: ["*"], 2: ["web"], 3: []}  # host 3: only web; host 4: all (the default)


@pytest.fixture
def fleet(request, tmp_path: Path):
    """A fleet of four hosts (parametrize ``fleet`` indirectly for another count); its sshd processes and containers
    go afterwards."""
    hosts = Fleet(tmp_path / "fleet", getattr(request, "param", 4))
    yield hosts
    hosts.stop()
    hosts.cleanup_containers()


class Controller:
    """ansible-playbook on the controller (this machine), started in a folder of its own like a user's."""

    def __init__(self, fleet: Fleet, base: Path):
        self.fleet = fleet
        self.cwd = base / "laptop"
        self.cwd.mkdir(exist_ok=True)
        self.inventory = fleet.inventory(self.cwd / "inventory.json", group_vars={"podops_trigger": "laptop"})

    def run(self, *args: str, **extra) -> subprocess.CompletedProcess:
        argv = ["ansible-playbook", "-i", str(self.inventory), "podops.gitops.reconcile", "-e", json.dumps(extra), *args]
        return subprocess.run(argv, cwd=self.cwd, env=self.fleet.env(), capture_output=True, text=True, timeout=300, check=False)

    def summaries(self) -> list[Path]:
        return sorted((self.cwd / "podops-reports").glob("*.json"), key=lambda path: path.stat().st_mtime)


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_summary_matches_reports(summary: dict, fleet: Fleet, reached: list[int]) -> None:
    for index in reached:
        host = fleet.hosts[index]
        own = host.last_run
        entry = summary["hosts"][host.name]
        assert entry["run_id"] == own["run_id"], host.name
        assert entry["status"] == own["result"], host.name
        assert {name: value["action"] for name, value in entry["services"].items()} == {name: value["action"] for name, value in own["services"].items()}, (
            host.name
        )


def test_canary_first_rollout_stops_at_a_failing_host_and_converges(fleet, tmp_path):
    repo = EnvRepo(tmp_path / "env-repo")
    ports = {}
    for index, host in enumerate(fleet.hosts):
        ports[index] = {"web": free_port(), "extra": free_port()}
        host.vars["podops_podman_env"] = dict(host.vars.get("podops_podman_env", {}), WEB_PORT=str(ports[index]["web"]), EXTRA_PORT=str(ports[index]["extra"]))
        if SERVICES_BY_HOST[index]:
            host.vars["podops_services"] = SERVICES_BY_HOST[index]
    repo.write("services/web/compose.yaml", web_service("${WEB_PORT}"))  # type: ignore[arg-type]
    repo.write("services/web/site/index.html", "web v1")
    first_commit = repo.commit("web v1")
    laptop = Controller(fleet, tmp_path)
    rollout = {"podops_repo_url": str(repo.path), "podops_serial": [1, 1, 2]}

    # 1. Canary first: the first host finishes its reconcile before any other host starts one.
    first = laptop.run(**rollout)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    reports = [host.last_run for host in fleet.hosts]
    assert all(report["commit"] == first_commit and report["services"]["web"]["action"] == "deployed" for report in reports)
    assert _time(reports[0]["finished"]) <= min(_time(report["started"]) for report in reports[1:])
    assert _time(reports[1]["finished"]) <= min(_time(report["started"]) for report in reports[2:])
    for index in range(4):
        assert http_get(ports[index]["web"]) == "web v1"
    (summary_path,) = laptop.summaries()
    summary = json.loads(summary_path.read_text())
    assert summary["result"] == "changed" and summary["skipped_hosts"] == []
    _assert_summary_matches_reports(summary, fleet, [0, 1, 2, 3])
    assert summary_path.with_suffix(".md").is_file()
    assert f"fleet {summary['run_id']}: 4 hosts" in first.stdout
    before = [host.container_ids() for host in fleet.hosts]

    # 2. A new service and a new web; on host 2 the new service's port is already taken (a container of the test's).
    repo.write("services/web/site/index.html", "web v2")
    repo.write("services/extra/compose.yaml", web_service("${EXTRA_PORT}"))  # type: ignore[arg-type]
    repo.write("services/extra/site/index.html", "extra v1")
    second_commit = repo.commit("web v2, extra")
    blocker = f"{fleet.hosts[1].prefix}blocker"
    sh("podman", "run", "-d", "--name", blocker, "-p", f"127.0.0.1:{ports[1]['extra']}:8080", IMAGE)
    try:
        stopped = laptop.run(**rollout)
        assert stopped.returncode != 0
        canary, failing = fleet.hosts[0].last_run, fleet.hosts[1].last_run
        assert canary["commit"] == second_commit and canary["result"] == "changed"
        assert {name: value["action"] for name, value in canary["services"].items()} == {"web": "deployed", "extra": "deployed"}
        assert failing["result"] == "failed" and failing["services"]["extra"]["action"] == "failed"
        assert http_get(ports[0]["extra"]) == "extra v1"
        # The hosts after the failing one were not touched: same containers, old content, no new service.
        for index in (2, 3):
            assert fleet.hosts[index].container_ids() == before[index], fleet.hosts[index].name
            assert fleet.hosts[index].last_run["commit"] == first_commit
            assert http_get(ports[index]["web"]) == "web v1"
        summary = json.loads(laptop.summaries()[-1].read_text())
        assert len(laptop.summaries()) == 2
        assert summary["result"] == "failed"
        assert summary["failed"] == {fleet.hosts[1].name: ["extra"]}
        assert summary["skipped_hosts"] == [fleet.hosts[2].name, fleet.hosts[3].name]
        # A skipped host lists the services its podops_services selects: host 3 only web.
        assert summary["hosts"][fleet.hosts[2].name]["services"] == {"web": {"action": "skipped", "reason": "not reached"}}
        assert set(summary["hosts"][fleet.hosts[3].name]["services"]) == {"web", "extra"}
        _assert_summary_matches_reports(summary, fleet, [0, 1])
        # The play's output names the failed host and service, and the hosts left as they were.
        assert f"{fleet.hosts[1].name}: extra:" in stopped.stdout
        assert f"not reached (left as they were): {fleet.hosts[2].name}, {fleet.hosts[3].name}" in stopped.stdout
    finally:
        sh("podman", "rm", "-f", "-t", "0", blocker, check=False)

    # 3. The port is free again: the rollout goes on; host 3 gets web only (its podops_services).
    resumed = laptop.run(**rollout)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert fleet.hosts[0].last_run["result"] == "ok"
    assert fleet.hosts[1].last_run["services"]["extra"]["action"] == "deployed"
    assert set(fleet.hosts[2].last_run["services"]) == {"web"}
    for index in range(4):
        assert fleet.hosts[index].last_run["commit"] == second_commit
        assert http_get(ports[index]["web"]) == "web v2"
    assert http_get(ports[3]["extra"]) == "extra v1"
    assert not fleet.hosts[2].containers("extra")

    # 4. Once more: nothing changes anywhere.
    after = [host.container_ids() for host in fleet.hosts]
    again = laptop.run(**rollout)
    assert again.returncode == 0, again.stdout[-3000:]
    assert [host.container_ids() for host in fleet.hosts] == after
    summary = json.loads(laptop.summaries()[-1].read_text())
    assert len(laptop.summaries()) == 4
    assert summary["result"] == "ok"
    assert set(summary["totals"]) == {"unchanged"}
    _assert_summary_matches_reports(summary, fleet, [0, 1, 2, 3])
    assert "changed=0" in again.stdout and "changed=1" not in again.stdout


@pytest.mark.parametrize("fleet", [2], indirect=True)
def test_push_without_repeating_the_bootstrap_settings_and_with_the_controllers_checkout(fleet, tmp_path):
    """Host 1 clones an SSH URL with the deploy key and known_hosts the bootstrap recorded (podops.fact), host 2 gets
    the controller's checkout as a git bundle (podops_repo_src); neither has a podman environment in the inventory."""
    git_server, shipped = fleet.hosts
    ports = {host.name: free_port() for host in fleet.hosts}
    for host in fleet.hosts:
        podman_env = dict(host.vars.pop("podops_podman_env", {}), WEB_PORT=str(ports[host.name]))
        deploy_key = host.base / "deploy_key"
        deploy_key.write_bytes(fleet.client_key.read_bytes())
        deploy_key.chmod(0o600)
        fact = {"podman_env": podman_env, "ssh_key": str(deploy_key), "ssh_known_hosts": str(fleet.known_hosts)}
        (host.base / "podops.fact").write_text(json.dumps(fact))
        host.vars["podops_host_fact_file"] = str(host.base / "podops.fact")
    laptop_dir = tmp_path / "laptop"
    laptop_dir.mkdir()
    repo = EnvRepo(laptop_dir / "env-repo")
    repo.write("services/web/compose.yaml", web_service("${WEB_PORT}"))  # type: ignore[arg-type]
    repo.write("services/web/site/index.html", "web v1")
    first = repo.commit("web v1")
    bare = tmp_path / "served.git"
    sh("git", "clone", "-q", "--bare", str(repo.path), str(bare))
    git_server.vars["podops_repo_url"] = f"ssh://root@{git_server.address}:{git_server.port}{bare}"
    shipped.vars["podops_repo_src"] = "env-repo"  # relative to where ansible-playbook starts
    laptop = Controller(fleet, tmp_path)

    # Not committed: never shipped (the bundle holds the commit, not the work tree).
    repo.write("services/web/site/index.html", "uncommitted")
    run = laptop.run()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for host in fleet.hosts:
        assert host.last_run["commit"] == first, host.name
        assert host.last_run["services"]["web"]["action"] == "deployed", host.name
        assert http_get(ports[host.name]) == "web v1"
    checkout = shipped.state_dir / "push-repo"
    assert sh("git", "-C", str(checkout), "rev-parse", "HEAD").stdout.strip() == first

    repo.write("services/web/site/index.html", "web v2")
    second = repo.commit("web v2")
    sh("git", "-C", str(repo.path), "push", "-q", str(bare), "main")
    run = laptop.run()
    assert run.returncode == 0, run.stdout[-3000:]
    for host in fleet.hosts:
        assert host.last_run["commit"] == second, host.name
        assert http_get(ports[host.name]) == "web v2"
    ids = [host.container_ids() for host in fleet.hosts]

    # --check previews the wanted commit (synced and shipped into a preview checkout) and changes nothing.
    repo.write("services/web/site/index.html", "web v3")
    repo.commit("web v3")
    sh("git", "-C", str(repo.path), "push", "-q", str(bare), "main")
    preview = laptop.run("--check")
    assert preview.returncode == 0, preview.stdout[-3000:]
    assert preview.stdout.count("web: would deploy (changed)") == 2, preview.stdout[-3000:]
    assert "(check mode: nothing was changed)" in preview.stdout
    for index, host in enumerate(fleet.hosts):
        assert host.container_ids() == ids[index], host.name
        assert http_get(ports[host.name]) == "web v2"
        assert host.last_run["commit"] == second, host.name
        assert sh("git", "-C", str(host.state_dir / "push-repo"), "rev-parse", "HEAD").stdout.strip() == second, host.name

    # A source that is not a checkout: a clear message, nothing changed.
    refused = laptop.run("--limit", shipped.name, podops_repo_src=str(tmp_path / "nowhere"))
    assert refused.returncode != 0
    assert "podops_repo_src: cannot ship main of" in refused.stdout
    assert shipped.container_ids() == ids[1]


@pytest.mark.parametrize("fleet", [1], indirect=True)
def test_a_host_reads_the_env_repos_settings_and_says_who_holds_its_lock(fleet, tmp_path):
    """On a host reached over SSH one probe (a raw command, no module) finds the env repo's group_vars/all.yml and a
    reconcile already running there: the role says who holds the lock while it waits, and applies the settings."""
    (host,) = fleet.hosts
    ports = {"web": free_port(), "extra": free_port()}
    host.vars["podops_podman_env"] = dict(host.vars.get("podops_podman_env", {}), WEB_PORT=str(ports["web"]), EXTRA_PORT=str(ports["extra"]))
    repo = EnvRepo(tmp_path / "env-repo")
    repo.write("services/web/compose.yaml", web_service("${WEB_PORT}"))  # type: ignore[arg-type]
    repo.write("services/web/site/index.html", "web v1")
    repo.write("services/extra/compose.yaml", web_service("${EXTRA_PORT}"))  # type: ignore[arg-type]
    repo.write("services/extra/site/index.html", "extra v1")
    repo.write("group_vars/all.yml", "---\npodops_services: [web]\n")
    commit = repo.commit("web and extra; this host runs web")
    laptop = Controller(fleet, tmp_path)
    host.state_dir.mkdir(parents=True)
    with held_lock(host.state_dir / "reconcile.lock"):
        waited = laptop.run(podops_repo_url=str(repo.path), podops_lock_timeout=2)
    assert waited.returncode != 0
    assert "another reconcile is running on this host (pid 4242, trigger timer, run held-by-test); waiting up to 2s" in waited.stdout
    assert "podops-settings-found" not in waited.stdout
    assert host.containers() == []

    run = laptop.run(podops_repo_url=str(repo.path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "another reconcile is running" not in run.stdout
    assert host.last_run["commit"] == commit
    assert sorted(host.last_run["services"]) == ["web"]
    assert http_get(ports["web"]) == "web v1"
    assert {container["Labels"]["io.podops.service"] for container in host.containers()} == {"web"}


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [("podops_serial", "one", "podops_serial must be a number of hosts"), ("podops_max_fail_percentage", "lots", "must be a percentage")],
)
def test_a_rollout_setting_ansible_cannot_read_is_refused_with_what_to_give(tmp_path, variable, value, says):
    repo = EnvRepo(tmp_path / "env-repo")
    repo.add_web("web", free_port())
    repo.commit()
    variables = {"podops_repo_dir": str(repo.path), "podops_state_dir": str(tmp_path / "state"), variable: value}
    run = subprocess.run(["ansible-playbook", "podops.gitops.reconcile", "-e", json.dumps(variables)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0
    assert says in run.stdout + run.stderr and "Nothing was changed" in run.stdout + run.stderr
    assert not (tmp_path / "state").exists()
