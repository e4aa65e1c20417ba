"""podops-pull's argument handling (the whole command runs in tests/integration/test_pull_lane.py and molecule)."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import sys
from pathlib import Path

import pytest

PULL = Path(__file__).resolve().parents[3] / "roles" / "podman_host" / "files" / "podops_pull.py"
spec = importlib.util.spec_from_file_location("podops_pull", PULL)
podops_pull = importlib.util.module_from_spec(spec)
spec.loader.exec_module(podops_pull)


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["-e", "podops_trigger=timer"], []),
        (["-e", "podops_trigger=webhook", "-e", "podops_run_id=abc-1"], []),
        (["-e", '{"podops_project_prefix": "p-"}', "-e", "podops_trigger=timer"], ["-e", '{"podops_project_prefix": "p-"}']),
        # anything else stays, so it makes the arguments differ from the last full run's
        (["-e", "podops_trigger=timer podops_prune=true"], ["-e", "podops_trigger=timer podops_prune=true"]),
        # a redeploy's service: the package event takes the lane the last full run opened
        (["-e", "podops_service=web", "-v"], ["-v"]),
        (["-e", "podops_service=web podops_prune=true"], ["-e", "podops_service=web podops_prune=true"]),
        (["--extra-vars", "podops_run_id=x"], []),
        (["-e"], ["-e"]),
    ],
)
def test_lane_args_drop_only_the_trigger_the_run_id_and_the_service(args, kept):
    assert podops_pull.lane_args(args) == kept


def test_extra_vars_reads_key_value_forms_only():
    given = podops_pull.extra_vars(["-e", "podops_trigger=webhook podops_run_id=r1", "--extra-vars=a=b", "-e@vars.yml", "-e", '{"x": 1}'])
    assert given == {"podops_trigger": "webhook", "podops_run_id": "r1", "a": "b"}


def test_lane_is_off_with_max_age_zero():
    assert podops_pull.load_lane({"fast_lane_max_age": 0}) is None


def test_a_hanging_git_is_ended_and_fails_the_pull(tmp_path, monkeypatch):
    import time

    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nsleep 60 &\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    git = podops_pull.Git({"repo_url": "https://git.invalid/env.git", "git_timeout": 1, "repo_dir": str(tmp_path / "checkout")})
    started = time.monotonic()
    with pytest.raises(podops_pull.PullError, match=r"'git fetch' timed out after 1s; its processes were ended"):
        git.run("-C", str(tmp_path / "checkout"), "fetch", "--quiet", "origin", "main")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--config", "/nonexistent/pull.json", "--help"]])
def test_help_only_prints_help(argv, capsys, tmp_path, monkeypatch):
    # No config, no lock, no fetch: a git on PATH that would record a call is never run.
    marker = tmp_path / "git-ran"
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    assert podops_pull.main(argv) == 0
    out = capsys.readouterr()
    assert out.out.startswith("usage: podops-pull")
    assert "podops_service=NAME" in out.out
    assert out.err == ""
    assert not marker.exists()


def test_a_fetch_error_keeps_gits_whole_message():
    git = podops_pull.Git({"repo_url": "https://git.invalid/env.git", "repo_dir": "/nonexistent", "repo_version": "main"})
    stderr = "fatal: unable to access 'https://git.invalid/env.git/': Could not resolve host: git.invalid\nerror: something more\n"
    message = git.fetch_error(stderr)
    assert "Could not resolve host: git.invalid" in message
    assert "error: something more" in message


def test_an_empty_service_to_redeploy_is_refused_before_anything_runs(capsys, tmp_path):
    config = tmp_path / "pull.json"
    fields = {"repo_url": str(tmp_path / "repo"), "repo_version": "main", "repo_dir": str(tmp_path / "checkout"), "state_dir": str(tmp_path / "state")}
    config.write_text(json.dumps(dict(fields, ansible_playbook="/nonexistent/ansible-playbook", python="/nonexistent/python")))
    assert podops_pull.main(["--config", str(config), "-e", "podops_service="]) == podops_pull.EXIT_ERROR
    assert "podops_service is empty" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_a_busy_host_lock_is_waited_for_then_ends_with_75_and_fetches_nothing(capsys, tmp_path, monkeypatch):
    """podops-pull takes the engine's own host lock (one lock for every entry point), even where the variable
    that tells the engine a wrapper holds it is set: podops-pull is that wrapper."""
    monkeypatch.setenv("PODOPS_LOCK_HELD", "1")
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "pull.json"
    fields = {"repo_url": str(tmp_path / "repo"), "repo_version": "main", "repo_dir": str(tmp_path / "checkout"), "state_dir": str(state)}
    config.write_text(json.dumps(dict(fields, ansible_playbook="/nonexistent/ansible-playbook", python="/nonexistent/python", lock_timeout=0.3)))
    with open(state / "reconcile.lock", "w", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("held-by-test\n")
        held.flush()
        assert podops_pull.main(["--config", str(config), "-e", "podops_trigger=timer"]) == podops_pull.EXIT_BUSY
    out, err = capsys.readouterr()
    assert "waiting up to 0.3s for the reconcile already running (held-by-test)" in out
    assert "another reconcile is running on this host (held-by-test" in err and "waited 0.3s" in err
    assert not (tmp_path / "checkout").exists(), "nothing was fetched"


def test_the_log_of_a_full_run_shows_each_failed_service_and_its_last_log_lines(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    failure = {"container": "app_web_1", "lines": ["booting", "fatal: no config"], "healthcheck": None}
    report = {
        "result": "failed",
        "commit": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "services": {
            "app": {"action": "rolled_back", "error": "container app_web_1 exited with code 3", "failure_log": failure},
            "web": {"action": "unchanged", "error": None},
        },
    }
    (runs / "r1.json").write_text(json.dumps(report))
    podops_pull.summarize(str(tmp_path), "r1")
    assert capsys.readouterr().out.splitlines() == [
        "podops-pull: run r1: app: rolled_back - container app_web_1 exited with code 3",
        "podops-pull: run r1: app: last 2 log line(s) of app_web_1 (before the rollback):",
        "podops-pull: run r1: app: | booting",
        "podops-pull: run r1: app: | fatal: no config",
        f"podops-pull: run r1: result=failed commit=4b825dc642cb (1 rolled_back, 1 unchanged); report {runs / 'r1.json'}",
    ]


def test_progress_lines_are_printed_as_the_engine_writes_them(tmp_path, capsys):
    (tmp_path / "progress.log").write_text("left over from the last run\n")
    tail = podops_pull.ProgressTail(str(tmp_path / "progress.log"), "r2", interval=0.05)
    assert not (tmp_path / "progress.log").exists(), "the last run's lines are not this run's"
    with tail:
        (tmp_path / "progress.log").write_text("")  # the engine empties it when its run starts
        with open(tmp_path / "progress.log", "a") as handle:
            handle.write("web: waiting for health for 10s of 60s (container web_1 is not healthy yet)\n")
            handle.write("half a li")
    assert capsys.readouterr().out.splitlines() == ["podops-pull: run r2: web: waiting for health for 10s of 60s (container web_1 is not healthy yet)"]


def test_bytecode_cache_is_a_private_folder_under_ansible_home(tmp_path, monkeypatch):
    """What podops-pull imports is compiled once into <ANSIBLE_HOME>/podops/pycache, also under
    PYTHONDONTWRITEBYTECODE (sys.dont_write_bytecode), not beside the collection."""
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    home = tmp_path / "ansible-home"

    path = podops_pull.bytecode_cache({"env": {"ANSIBLE_HOME": str(home)}})

    assert path == str(home / "podops" / "pycache")
    assert sys.pycache_prefix == path and sys.dont_write_bytecode is False
    assert (home / "podops" / "pycache").stat().st_mode & 0o777 == 0o700


def test_no_bytecode_cache_where_the_folder_cannot_be_made(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("ANSIBLE_HOME", str(blocked))

    assert podops_pull.bytecode_cache({}) == ""
    assert sys.pycache_prefix is None and sys.dont_write_bytecode is True
