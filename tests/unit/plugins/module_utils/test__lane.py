# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_lane: when podops-pull may skip the playbook (real git repos; the engine itself runs in the integration tests)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from ansible_collections.podops.gitops.plugins.module_utils import _lane
from ansible_collections.podops.gitops.plugins.module_utils._digest import Secrets
from ansible_collections.podops.gitops.plugins.module_utils._reconcile import Options

ARGS = ["-e", '{"podops_project_prefix": "p-"}']


@pytest.fixture
def git(tmp_path, subprocess_env):
    repo = tmp_path / "repo"
    repo.mkdir()

    def run(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=subprocess_env).stdout.strip()

    run("init", "-q", "-b", "main")
    run.repo = repo  # type: ignore[attr-defined]
    return run


def commit(git, files: dict[str, str]) -> str:
    for rel, text in files.items():
        path = git.repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git("add", "-A")
    git("commit", "-q", "-m", "change")
    return git("rev-parse", "HEAD")


def full_run(git, state, run_id="r1", secrets=None, calls=1, environ=None) -> None:
    """What a successful playbook run leaves: the module's engine record (``calls`` times)."""
    options = Options(repo_dir=str(git.repo), state_dir=str(state), project_prefix="p-", secrets=secrets or Secrets())
    for _call in range(calls):
        _lane.record_engine_call(options, run_id, environ or {"PATH": "/usr/bin", "CONTAINERS_CONF": "/c.conf", "API_TOKEN": "x"})


@pytest.fixture
def state(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    return path


def test_promote_then_decide_no_new_commit(git, state):
    head = commit(git, {"services/web/compose.yaml": "services: {}\n"})
    full_run(git, state)
    assert _lane.promote(str(state), "r1", head, ARGS, "fp") is None
    lane, why = _lane.decide(str(state), str(git.repo), head, ARGS, "fp")
    assert why == "no new commit since the last run"
    assert lane.changed is False, "a tick at the same commit warms nothing up"
    assert lane.options["project_prefix"] == "p-" and lane.options["repo_dir"] == str(git.repo)
    # the podman environment is kept, anything else (a token in the playbook's environment) is not
    assert lane.env == {"PATH": "/usr/bin", "CONTAINERS_CONF": "/c.conf"}
    record = json.loads((state / "fast-lane.json").read_text())
    assert "secrets" not in record["options"] and "trigger" not in record["options"]


def test_service_only_changes_take_the_lane_anything_else_does_not(git, state):
    first = commit(git, {"services/web/compose.yaml": "a\n", "local.yml": "---\n"})
    full_run(git, state)
    _lane.promote(str(state), "r1", first, ARGS, "fp")
    second = commit(git, {"services/web/compose.yaml": "b\n", "services/api/compose.yaml": "c\n"})
    lane, why = _lane.decide(str(state), str(git.repo), second, ARGS, "fp")
    assert lane is not None and why == "2 changed file(s), all under services/"
    assert lane.changed is True, "a deploy is likely: the engine warms podman-compose up beside the plan"
    third = commit(git, {"local.yml": "--- # changed\n", "group_vars/all.yml": "x: 1\n", "services/web/compose.yaml": "d\n"})
    lane, why = _lane.decide(str(state), str(git.repo), third, ARGS, "fp")
    assert lane is None and why == "group_vars/all.yml and 1 more changed outside services/"
    # a folder merely named like the services folder is outside it
    fourth = commit(git, {"services-old/x": "y\n"})
    assert _lane.decide(str(state), str(git.repo), fourth, ARGS, "fp")[1].startswith("group_vars/all.yml and 2 more")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"fingerprint": "other"}, "the podops.gitops collection changed since the last full run"),
        ({"args": ["-e", "podops_prune=true"]}, "podops-pull's arguments differ from the last full run's"),
        ({"max_age": 10, "now_offset": 11}, "the last full run was 11s ago (fast_lane_max_age 10s)"),
        ({"max_age": 0}, "the fast lane is off (fast_lane_max_age 0)"),
        ({"repo": "/elsewhere"}, "the last full run reconciled another checkout"),
        ({"commit": "0" * 40}, "cannot compare"),
    ],
)
def test_what_closes_the_lane(git, state, change, expected):
    head = commit(git, {"services/web/compose.yaml": "a\n"})
    full_run(git, state)
    _lane.promote(str(state), "r1", head, ARGS, "fp", now=1000.0)
    lane, why = _lane.decide(
        str(state),
        change.get("repo", str(git.repo)),
        change.get("commit", head),
        change.get("args", ARGS),
        change.get("fingerprint", "fp"),
        max_age=change.get("max_age", 3600),
        now=1000.0 + change.get("now_offset", 0),
    )
    assert lane is None
    assert why.startswith(expected)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({"run_id": "other"}, "the playbook did not run podops.gitops.compose_deploy"),
        ({"calls": 2}, "the playbook ran podops.gitops.compose_deploy more than once"),
        ({"secrets": Secrets(provided=True)}, "the env repo has ansible-vault files"),
        ({"none": True}, "the playbook did not run podops.gitops.compose_deploy"),
    ],
)
def test_what_keeps_a_successful_run_from_opening_the_lane(git, state, setup, expected):
    head = commit(git, {"services/web/compose.yaml": "a\n"})
    full_run(git, state)
    _lane.promote(str(state), "r1", head, ARGS, "fp")  # an open lane from before must close too
    if setup.get("none"):
        os.unlink(state / "engine.json")
    else:
        full_run(git, state, run_id=setup.get("run_id", "r2"), secrets=setup.get("secrets"), calls=setup.get("calls", 1))
    why = _lane.promote(str(state), "r2", head, ARGS, "fp")
    assert why is not None and why.startswith(expected)
    assert not (state / "fast-lane.json").exists()
    assert _lane.decide(str(state), str(git.repo), head, ARGS, "fp")[0] is None


def test_forget_closes_the_lane(git, state):
    head = commit(git, {"services/web/compose.yaml": "a\n"})
    full_run(git, state)
    _lane.promote(str(state), "r1", head, ARGS, "fp")
    _lane.forget(str(state))
    _lane.forget(str(state))  # twice is fine
    lane, why = _lane.decide(str(state), str(git.repo), head, ARGS, "fp")
    assert lane is None and why == "no full run recorded since the last change of the playbook, the collection or a failure"


def test_fingerprint_follows_the_installed_files(tmp_path):
    root = tmp_path / "collection"
    (root / "plugins" / "module_utils").mkdir(parents=True)
    source = root / "plugins" / "module_utils" / "_x.py"
    source.write_text("a = 1\n")
    before = _lane.collection_fingerprint(str(root))
    assert _lane.collection_fingerprint(str(root)) == before
    (root / "plugins" / "module_utils" / "__pycache__").mkdir()
    (root / "plugins" / "module_utils" / "__pycache__" / "_x.pyc").write_bytes(b"x")
    assert _lane.collection_fingerprint(str(root)) == before
    source.write_text("a = 22\n")
    assert _lane.collection_fingerprint(str(root)) != before


def test_the_lane_runs_only_under_the_host_lock(git, state, monkeypatch):
    monkeypatch.delenv("PODOPS_LOCK_HELD", raising=False)
    lane = _lane.Lane(Options(repo_dir="/r", state_dir="/s").replayable(), {})
    with pytest.raises(_lane.PodopsError, match="under the host lock"):
        _lane.run(lane, "timer", "r9", {})


def test_process_runner_uses_the_given_environment_and_no_shell(tmp_path):
    run = _lane.process_runner({"PATH": os.environ["PATH"], "PODOPS_X": "1"})
    rc, out, _err = run(["sh", "-c", 'echo "$PODOPS_X $LC_ALL $EXTRA"'], env={"EXTRA": "e"})
    assert (rc, out) == (0, "1 C e\n")
    rc, _out, err = run([str(tmp_path / "missing")])
    assert rc == 127 and "cannot run" in err


def test_process_runner_tells_the_compose_fork_server_its_environment():
    from ansible_collections.podops.gitops.plugins.module_utils._forkserver import runner_environment

    run = _lane.process_runner({"PATH": "/usr/bin", "PODOPS_X": "1"})
    environment = runner_environment(run)
    assert environment is not None
    # exactly what the runner gives a command: no INVOCATION_ID or anything else from this process
    assert environment({"EXTRA": "e"}) == {"PATH": "/usr/bin", "PODOPS_X": "1", "LC_ALL": "C", "LANG": "C", "EXTRA": "e"}


def test_a_tick_at_the_last_full_runs_commit_asks_git_nothing(tmp_path, monkeypatch):
    """Most ticks find the commit of the last full run: no ``git diff`` is started for them."""
    started = []
    monkeypatch.setattr(_lane, "run_process", lambda *args, **kwargs: started.append(args) or (0, "", ""))

    assert _lane.changed_paths(str(tmp_path), "a" * 40, "a" * 40) == []
    assert started == []
    assert _lane.changed_paths(str(tmp_path), "a" * 40, "b" * 40) == []
    assert len(started) == 1 and "diff" in started[0][0]
