"""What a person sees when something goes wrong, and settings that must not silently do the wrong thing (issue 14).

Real podman, podman-compose, git and ansible-playbook; each test observes only its own prefix and state folder.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from conftest import IMAGE, EnvRepo, Host, free_port, held_lock, http_get, sh, web_service
from test_pull_lane import PULL, Pull

FAST = "x-podops:\n  health: {timeout: 30, samples: 2, interval: 0.3}\n"


def summary_lines(run) -> list[str]:
    for play in run.output.get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"].endswith("Summary"):
                return next(iter(task["hosts"].values()))["msg"]
    return []


def task_warnings(run) -> list[str]:
    return run.task.get("warnings") or []


def test_a_crashing_container_shows_its_last_log_lines_with_secrets_masked(host, repo):
    port = free_port()
    repo.add_web("app", port, "app v1")
    repo.write("services/app/app.env", "API_TOKEN=tok-9f8e7d6c5b4a\n")
    repo.write("services/app/compose.yaml", web_service(port, extra="    env_file: [app.env]\n"))
    repo.commit("good")
    assert host.reconcile(repo).rc == 0

    # The new version prints its token (a careless debug line) and dies.
    crash = '    command: ["sh", "-c", "echo starting app; echo using token $$API_TOKEN; echo fatal: config /etc/app.conf missing >&2; exit 3"]\n'
    repo.write("services/app/compose.yaml", web_service(port, extra="    env_file: [app.env]\n" + crash))
    repo.commit("crash")
    run = host.reconcile(repo)
    assert run.rc != 0
    entry = run.report["services"]["app"]
    assert entry["action"] == "rolled_back", entry
    failure = entry["failure_log"]
    assert failure["container"] == f"{host.prefix}app_web_1"
    assert "starting app" in failure["lines"]
    assert "fatal: config /etc/app.conf missing" in failure["lines"]
    assert "using token ********" in failure["lines"]
    assert "tok-9f8e7d6c5b4a" not in json.dumps(run.report) + run.stdout + run.stderr
    assert http_get(port) == "app v1", "captured before the rollback, which then put v1 back"
    # The task output: the summary and the failure message show the log lines too.
    lines = summary_lines(run)
    assert f"  last 3 log line(s) of {host.prefix}app_web_1 (before the rollback):" in lines, lines
    assert "  | fatal: config /etc/app.conf missing" in lines
    assert "exited with code 3" in run.first_failure()


def test_a_health_gate_that_never_passes_says_what_the_check_printed_and_the_url_of_the_version_serving(host, repo):
    old_port, new_port = free_port(), free_port()
    repo.add_web("svc", old_port, "svc v1", xpodops="x-podops:\n  url_scheme: http\n  health: {timeout: 30, samples: 2, interval: 0.3}\n")
    repo.commit("good")
    assert host.reconcile(repo).rc == 0

    xp = "x-podops:\n  url_scheme: http\n  health: {timeout: 3, samples: 2, interval: 0.3}\n"
    check = '["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]'
    repo.write("services/svc/compose.yaml", web_service(new_port, health=check, xpodops=xp))
    repo.commit("a health check on a page that does not exist, and a new port")
    run = host.reconcile(repo)
    assert run.rc != 0
    entry = run.report["services"]["svc"]
    assert entry["action"] == "rolled_back"
    assert "not healthy after 3s" in entry["error"]
    assert "its healthcheck said: wget: server returned error: HTTP/1.1 404 Not Found" in entry["error"], entry["error"]
    assert entry["failure_log"]["healthcheck"] == "wget: server returned error: HTTP/1.1 404 Not Found"
    assert http_get(old_port) == "svc v1"
    (line,) = [line for line in summary_lines(run) if line.startswith("svc: ")]
    assert f"http://127.0.0.1:{old_port}/" in line, line
    assert str(new_port) not in line.split(" - ")[0], "the summary links the version now serving, not the failed one"


def test_a_missing_local_image_says_build_or_load_it(host, repo):
    repo.add_web("app", free_port(), image="localhost/podops-not-built-here:7")
    repo.commit()
    run = host.reconcile(repo)
    assert run.rc != 0
    error = run.report["services"]["app"]["error"]
    assert error.startswith("image localhost/podops-not-built-here:7 is not on this host: build or load it"), error
    assert "ping" not in error and "registry" not in error


def test_a_container_name_another_env_repo_uses_is_refused_naming_its_owner(host, repo, tmp_path):
    name = f"shared-{secrets.token_hex(3)}"
    first_port = free_port()
    extra = f"    container_name: {name}\n"
    repo.add_web("api", first_port, "owner's api", extra=extra)
    first_commit = repo.commit()
    assert host.reconcile(repo).rc == 0
    owner_ids = host.ids("api")

    other = Host(tmp_path / "other")
    other_repo = EnvRepo(tmp_path / "other-repo")
    try:
        other_repo.add_web("web", free_port(), "intruder", extra=extra)
        other_repo.commit()
        run = other.reconcile(other_repo)
        assert run.rc != 0
        entry = run.report["services"]["web"]
        assert entry["action"] == "failed"
        error = entry["error"]
        assert f"container_name {name!r} is taken by a container podops deployed for another owner: service 'api' with project prefix {host.prefix!r}" in error
        assert f"compose project {host.prefix}api, commit {first_commit[:12]}" in error
        assert "Nothing was changed." in error
        assert other.containers() == []
        assert host.ids("api") == owner_ids, "the owner's container was not touched"
        assert http_get(first_port) == "owner's api"
        # The owner's next run sees nothing replaced by hand.
        again = host.reconcile(repo)
        assert again.rc == 0 and again.report["services"]["api"]["action"] == "unchanged"
    finally:
        other.cleanup()


def test_an_unset_variable_warns_naming_it_and_the_file_and_fails_where_it_empties_a_port(host, repo):
    port = free_port()
    repo.write(
        "services/greet/compose.yaml",
        FAST + f"services:\n  web:\n    image: {IMAGE}\n    ports: ['127.0.0.1:{port}:8080']\n    volumes: ['./site:/www:ro']\n"
        "    environment:\n      GREETING: ${GREETING}\n",
    )
    repo.write("services/greet/site/index.html", "hi")
    repo.write("services/portless/compose.yaml", FAST + f"services:\n  web:\n    image: {IMAGE}\n    ports: ['127.0.0.1:${{PORT}}:8080']\n")
    repo.commit()
    run = host.reconcile(repo)
    assert run.rc != 0
    warnings = task_warnings(run)
    assert any(
        "services/greet/compose.yaml: variable GREETING is not set (not in services/greet/.env nor the environment); it is replaced by an empty string" in w
        for w in warnings
    ), warnings
    assert run.report["services"]["greet"]["action"] == "deployed"
    entry = run.report["services"]["portless"]
    assert entry["action"] == "failed"
    assert "services.web.ports '127.0.0.1:${PORT}:8080' is invalid once interpolated: PORT is not set" in entry["error"], entry["error"]
    assert host.containers("portless") == []
    assert not any(":/" in line and "127.0.0.1:/" in line for line in summary_lines(run))


def test_a_relative_repo_dir_is_relative_to_where_ansible_playbook_runs(host, repo):
    port = free_port()
    repo.add_web("site", port, "relative")
    repo.commit()
    run = host.reconcile(repo, podops_repo_dir=".")  # the harness runs ansible-playbook in the repo
    assert run.rc == 0, run
    assert http_get(port) == "relative"


def test_check_diff_shows_file_diffs_against_the_deployed_version_and_never_a_secret(host, repo, tmp_path):
    port = free_port()
    repo.add_web("app", port, "<h1>v1</h1>\n")
    repo.write("services/app/.env", "DB_PASSWORD=pw-old-5a4b3c2d1e\nMODE=blue\n")
    repo.write("services/app/app.env", "API_TOKEN=tok-old-0a1b2c3d4e\n")
    repo.write("services/app/logo.bin", "\0\1\2old")
    repo.write("services/app/compose.yaml", web_service(port, extra="    env_file: [app.env]\n    environment: {DB: '${DB_PASSWORD}'}\n"))
    repo.commit("v1")
    real = host.reconcile(repo)
    assert real.rc == 0, real
    last_run = (host.state_dir / "last-run.json").read_text()
    ids = host.ids("app")

    repo.write("services/app/site/index.html", "<h1>v2</h1>\n")
    repo.write("services/app/.env", "DB_PASSWORD=pw-new-9z8y7x6w5v\nMODE=blue\nDEBUG=1\n")
    repo.write("services/app/app.env", "API_TOKEN=tok-new-1q2w3e4r5t\n")
    repo.write("services/app/logo.bin", "\0\1\2new")
    new_port = free_port()
    repo.add_web("fresh", new_port, "fresh")
    repo.commit("v2")
    check = host.reconcile(repo, check=True, diff=True)
    assert check.rc == 0, check
    diff = check.task["diff"]["prepared"]
    assert "~ app: deploy (changed)" in diff
    assert "    --- a/site/index.html\n    +++ b/site/index.html\n" in diff
    assert "    -<h1>v1</h1>\n    +<h1>v2</h1>\n" in diff
    assert "    +DEBUG=********" in diff, diff
    assert "    app.env: values changed (env file: values are not shown)" in diff
    assert "    Binary file logo.bin changed" in diff
    assert f"+ fresh: deploy (new)\n    images: {IMAGE}\n    published ports: 127.0.0.1:{new_port}\n" in diff
    everything = check.stdout + check.stderr + (host.state_dir / "last-check.json").read_text()
    for value in ("pw-old-5a4b3c2d1e", "pw-new-9z8y7x6w5v", "tok-old-0a1b2c3d4e", "tok-new-1q2w3e4r5t"):
        assert value not in everything, value
    assert any(line.startswith("app: would deploy (changed)") for line in summary_lines(check)), summary_lines(check)
    assert not any(" deployed" in line for line in summary_lines(check))
    # A check run writes its own report and leaves the last real run's alone.
    assert (host.state_dir / "last-run.json").read_text() == last_run
    assert json.loads((host.state_dir / "last-check.json").read_text())["check_mode"] is True
    assert host.ids("app") == ids and host.containers("fresh") == [], "check mode touches nothing"


def write_password(tmp_path: Path) -> Path:
    path = tmp_path / "vault-pass"
    path.write_text("not given to podops\n")
    return path


class SettingsPull(Pull):
    """podops-pull with no settings of its own on the command line: they come from the env repo."""

    def __call__(self, *extra: str, trigger: str = "timer") -> subprocess.CompletedProcess:
        argv = [sys.executable, str(PULL), "--config", str(self.config), "-e", f"podops_trigger={trigger}", *extra]
        env = dict(os.environ)
        env.pop("PODOPS_LOCK_HELD", None)
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_redeploy_runs_with_the_settings_of_the_reconcile_from_the_env_repo(host: Host, repo: EnvRepo, tmp_path: Path):
    """group_vars/all.yml of the env repo (prefix, podops_services) applies to the timer's run, the fast lane and
    podops-pull -e podops_service=NAME alike: a redeploy never makes an unprefixed duplicate."""
    service = f"w{secrets.token_hex(3)}"
    port = free_port()
    repo.add_web(service, port, "v1")
    repo.add_web("elsewhere", free_port(), "not this host's")
    repo.write("local.yml", "- name: Reconcile this host\n  ansible.builtin.import_playbook: podops.gitops.reconcile\n")
    # A vault value for a play of the user's own (no vault password here) is never read by podops.
    vaulted = sh("ansible-vault", "encrypt_string", "--vault-id", f"test@{write_password(tmp_path)}", "s3cret", "--name", "my_own_secret").stdout
    repo.write("group_vars/all.yml", f"podops_project_prefix: {host.prefix}\npodops_services: [{service}]\n{vaulted}\n")
    repo.commit("settings in the env repo")
    (tmp_path / "pull").mkdir()
    pull = SettingsPull(host, repo, tmp_path / "pull")

    first = pull()
    assert first.returncode == 0, first.stdout + first.stderr
    assert http_get(port) == "v1"
    assert {c["Labels"]["io.podman.compose.project"] for c in host.containers(service)} == {f"{host.prefix}{service}"}
    assert "elsewhere" not in json.loads((host.state_dir / "last-run.json").read_text())["services"]
    ids = host.ids(service)

    repo.write(f"services/{service}/site/index.html", "v2")
    repo.commit("v2")
    lane = pull()
    assert lane.returncode == 0, lane.stdout + lane.stderr
    assert ": fast lane (" in lane.stdout
    assert http_get(port) == "v2"
    assert {c["Labels"]["io.podman.compose.project"] for c in host.containers(service)} == {f"{host.prefix}{service}"}

    redeploy = pull("-e", f"podops_service={service}", trigger="webhook")
    assert redeploy.returncode == 0, redeploy.stdout + redeploy.stderr
    assert "podops.gitops.redeploy" not in redeploy.stdout
    report = json.loads((host.state_dir / "last-run.json").read_text())
    assert sorted(report["services"]) == [service]
    assert report["trigger"] == "webhook"
    unprefixed = sh("podman", "ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={service}").stdout.split()
    assert unprefixed == [], "no unprefixed duplicate project"
    assert {c["Labels"]["io.podman.compose.project"] for c in host.containers(service)} == {f"{host.prefix}{service}"}
    assert http_get(port) == "v2"

    refused = pull("-e", "podops_service=elsewhere")
    assert refused.returncode != 0
    assert "podops_service 'elsewhere' is not one of this host's services" in refused.stdout + refused.stderr
    assert sh("podman", "ps", "-a", "-q", "--filter", "label=io.podops.service=elsewhere", "--filter", f"label=io.podops.prefix={host.prefix}").stdout == ""
    assert host.ids(service).keys() == ids.keys()


def test_a_run_waiting_for_the_host_lock_says_so_and_who_holds_it(host, repo):
    repo.add_web("site", free_port(), "site")
    repo.commit()
    host.state_dir.mkdir(parents=True)
    with held_lock(host.state_dir / "reconcile.lock"):
        run = host.reconcile(repo, podops_lock_timeout=2)
        assert run.rc != 0
        waiting = [
            result.get("msg")
            for play in run.output["plays"]
            for task in play["tasks"]
            if task["task"]["name"].endswith("Say that this run waits for the one already running")
            for result in task["hosts"].values()
        ]
        assert waiting == [
            "another reconcile is running on this host (pid 4242, trigger timer, run held-by-test); waiting up to 2s for it to finish (podops_lock_timeout)"
        ]
        assert "another reconcile is running on this host" in run.first_failure()
        assert host.containers() == []


def test_podops_pull_prints_progress_of_a_long_health_wait_and_the_failing_containers_log(host, repo, tmp_path):
    port = free_port()
    repo.add_web("slow", port, "slow v1")
    repo.commit("good")
    (tmp_path / "pull").mkdir()
    pull = Pull(host, repo, tmp_path / "pull")
    assert pull().returncode == 0

    xp = "x-podops:\n  health: {timeout: 12, samples: 2, interval: 0.5}\n"
    check = '["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/ready"]'
    crashy = '    command: ["sh", "-c", "echo booting slowly; trap \\"exit 0\\" TERM; httpd -f -p 8080 -h /www & wait"]\n'
    repo.write("services/slow/compose.yaml", web_service(port, health=check, xpodops=xp, extra=crashy))
    repo.commit("never ready")
    run = pull()
    assert run.returncode != 0
    out = run.stdout
    progress = re.search(rf"run \S+: {host.prefix}slow: waiting for health for 1[01]s of 12s \(container {host.prefix}slow_web_1 is not healthy yet\)", out)
    assert progress, out
    assert "slow: rolled_back" in out and "its healthcheck said: wget: server returned error: HTTP/1.1 404 Not Found" in out
    assert f"last 1 log line(s) of {host.prefix}slow_web_1 (before the rollback):" in out
    assert "| booting slowly" in out
    assert progress.start() < out.index("result=failed"), "the progress line comes before the run's result"
    assert http_get(port) == "slow v1"
