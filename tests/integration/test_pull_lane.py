"""podops-pull's fast lane, end to end: the real podops_pull.py fetching a real git repo, the real playbook for
full runs, the engine in podops-pull's own process for lane runs, real podman underneath.

What a user sees: which path each run took (and why) in podops-pull's log, what was deployed (run report,
content served, container IDs), and that anything outside the services folder brings the playbook back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, EnvRepo, Host, free_port, http_get

PULL = REPO_ROOT / "roles" / "podman_host" / "files" / "podops_pull.py"


class Pull:
    """podops-pull on this machine, configured like the role configures it, fetching ``repo``."""

    def __init__(self, host: Host, repo: EnvRepo, base: Path, max_age: int = 3600):
        self.host = host
        self.config = base / "pull.json"
        self.checkout = base / "checkout"
        self.write_config(repo, max_age)

    def write_config(self, repo: EnvRepo, max_age: int) -> None:
        config = {
            "repo_url": str(repo.path),
            "repo_version": "main",
            "repo_dir": str(self.checkout),
            "state_dir": str(self.host.state_dir),
            "ansible_playbook": shutil.which("ansible-playbook"),
            "python": sys.executable,
            "collections_path": os.environ["ANSIBLE_COLLECTIONS_PATH"],
            "lock_timeout": 60,
            "fast_lane_max_age": max_age,
            "env": {},
        }
        self.config.write_text(json.dumps(config))

    def __call__(self, *extra: str, trigger: str = "timer") -> subprocess.CompletedProcess:
        variables = json.dumps({"podops_project_prefix": self.host.prefix})
        argv = [sys.executable, str(PULL), "--config", str(self.config), "-e", variables, "-e", f"podops_trigger={trigger}", *extra]
        env = dict(os.environ)
        env.pop("PODOPS_LOCK_HELD", None)
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


def path_taken(proc: subprocess.CompletedProcess) -> str:
    for line in proc.stdout.splitlines():
        if ": fast lane (" in line or ": full playbook run (" in line:
            return line.split(": ", 2)[2]
    raise AssertionError(f"podops-pull said nothing about its path: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")


def report(host: Host) -> dict:
    return json.loads((host.state_dir / "last-run.json").read_text())


def test_lane_takes_noops_and_service_commits_and_leaves_the_rest_to_the_playbook(host: Host, repo: EnvRepo, tmp_path: Path):
    port = free_port()
    repo.add_web("web", port, "v1")
    repo.add_web("api", free_port(), "api v1")
    repo.commit("two services")
    pull = Pull(host, repo, tmp_path)

    first = pull()
    assert first.returncode == 0, first.stderr
    assert path_taken(first).startswith("full playbook run (no full run recorded"), first.stdout
    assert http_get(port) == "v1"
    assert (host.state_dir / "fast-lane.json").is_file()
    assert "fast_lane" not in report(host)
    web_ids, api_ids = host.ids("web"), host.ids("api")

    noop = pull()
    assert noop.returncode == 0, noop.stderr
    assert path_taken(noop) == "fast lane (no new commit since the last run)"
    assert "ansible-playbook" not in noop.stdout
    assert {name: entry["action"] for name, entry in report(host)["services"].items()} == {"web": "unchanged", "api": "unchanged"}
    assert report(host)["trigger"] == "timer" and report(host)["fast_lane"] is True
    assert host.ids("web") == web_ids and host.ids("api") == api_ids

    repo.write("services/web/compose.yaml", (repo.path / "services/web/compose.yaml").read_text() + "    environment: {RELEASE: '2'}\n")
    repo.write("services/web/site/index.html", "v2")
    commit = repo.commit("web v2")
    change = pull(trigger="webhook")
    assert change.returncode == 0, change.stderr
    assert path_taken(change) == "fast lane (2 changed file(s), all under services/)"
    last = report(host)
    assert last["commit"] == commit and last["trigger"] == "webhook"
    assert last["services"]["web"]["action"] == "deployed" and last["services"]["api"]["action"] == "unchanged"
    assert http_get(port) == "v2"
    assert host.ids("web") != web_ids and host.ids("api") == api_ids

    repo.write("README.md", "what this repo deploys\n")
    repo.commit("docs")
    outside = pull()
    assert outside.returncode == 0, outside.stderr
    assert path_taken(outside) == "full playbook run (README.md changed outside services/)"
    again = pull()
    assert path_taken(again) == "fast lane (no new commit since the last run)"

    other_args = pull("-e", "podops_keep_runs=50")
    assert path_taken(other_args) == "full playbook run (podops-pull's arguments differ from the last full run's)"


def test_a_broken_commit_keeps_the_old_version_and_closes_the_lane_whichever_path_ran_it(host: Host, repo: EnvRepo, tmp_path: Path):
    port = free_port()
    repo.add_web("web", port, "v1")
    repo.commit("web")
    pull = Pull(host, repo, tmp_path)
    assert pull().returncode == 0

    # A service change that cannot start: the lane runs it, the health gate fails, v1 comes back.
    repo.write("services/web/compose.yaml", (repo.path / "services/web/compose.yaml").read_text() + "    command: ['false']\n")
    repo.commit("broken web")
    broken = pull()
    assert path_taken(broken).startswith("fast lane ("), broken.stdout
    assert broken.returncode == 2
    assert "service(s) failed: web" in broken.stderr
    assert "\nweb: " in broken.stderr, "the message gives each failed service its error"
    # The same state as after a failed playbook run: the next run is a full one (issue 15: one verdict).
    assert not (host.state_dir / "fast-lane.json").exists()
    assert report(host)["services"]["web"]["action"] == "rolled_back"
    assert http_get(port) == "v1"

    # The same broken service in a commit that also changes the repo outside services/: a full run that fails.
    repo.write("group_vars/all.yml", "---\npodops_keep_runs: 10\n")
    repo.commit("broken web and group vars")
    full = pull()
    assert path_taken(full).startswith("full playbook run ("), full.stdout
    assert full.returncode != 0
    assert not (host.state_dir / "fast-lane.json").exists()
    after_failure = pull()
    assert path_taken(after_failure).startswith("full playbook run (no full run recorded"), after_failure.stdout


def test_lane_off_runs_the_playbook_every_time(host: Host, repo: EnvRepo, tmp_path: Path):
    repo.add_web("web", free_port(), "v1")
    repo.commit("web")
    pull = Pull(host, repo, tmp_path, max_age=0)
    for _attempt in range(2):
        proc = pull()
        assert proc.returncode == 0, proc.stderr
        assert "fast lane (" not in proc.stdout
        assert "ansible-playbook" in proc.stdout
    assert not (host.state_dir / "fast-lane.json").exists()


def test_a_redeploy_takes_the_lane_with_the_last_full_runs_settings(host: Host, repo: EnvRepo, tmp_path: Path):
    """-e podops_service=NAME (what the webhook runs for a package or release event) skips ansible-playbook when the
    lane is open: only that service is reconciled, with the prefix of the last full run; the lane stays open."""
    port = free_port()
    repo.add_web("web", port, "v1")
    repo.add_web("api", free_port(), "api v1")
    repo.commit("two services")
    pull = Pull(host, repo, tmp_path)
    assert pull().returncode == 0
    api_ids = host.ids("api")

    redeploy = pull("-e", "podops_service=web", trigger="webhook")

    assert redeploy.returncode == 0, redeploy.stdout + redeploy.stderr
    assert path_taken(redeploy) == "fast lane (no new commit since the last run), redeploying web"
    assert "ansible-playbook" not in redeploy.stdout
    last = report(host)
    assert sorted(last["services"]) == ["web"], "only the service asked for"
    assert last["fast_lane"] is True and last["trigger"] == "webhook"
    assert {c["Labels"]["io.podman.compose.project"] for c in host.containers("web")} == {f"{host.prefix}web"}
    assert http_get(port) == "v1"
    assert host.ids("api") == api_ids
    assert path_taken(pull()) == "fast lane (no new commit since the last run)", "the lane is still open"

    refused = pull("-e", "podops_service=nope", trigger="webhook")
    assert refused.returncode != 0
    assert "podops_service 'nope' is not a service of this env repo. Services: api, web" in refused.stderr
    assert host.ids("api") == api_ids
