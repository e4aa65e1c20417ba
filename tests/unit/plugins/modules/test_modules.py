"""The modules' main(): argument handling, check and diff mode, errors - against a real git repo and podman ps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.podops.gitops.plugins.modules import compose_deploy, image_update, service_plan

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="the modules read `podman ps`; run through `make unit`")


def run_module(module, args: dict, capsys, check_mode: bool = False, diff: bool = False) -> dict:
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def env_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "services/web").mkdir(parents=True)
    (repo / "services/web/compose.yaml").write_text("services:\n  app:\n    image: localhost/podops-demo:1\n")
    env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_SYSTEM="/dev/null")
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@podops.invalid", "commit", "-q", "-m", "x"]):
        subprocess.run(["git", "-C", str(repo), *argv], check=True, env=env)
    return repo


def test_missing_repo_dir_fails_with_the_fix(tmp_path, capsys):
    result = run_module(compose_deploy, {"repo_dir": str(tmp_path / "nope"), "state_dir": str(tmp_path / "state")}, capsys)
    assert result["failed"] is True
    assert result["msg"] == f"podops_repo_dir {tmp_path / 'nope'} does not exist or is not a folder; point it at a checkout of your env repo"
    assert not (tmp_path / "state").exists(), "bad input changes nothing"


def test_check_mode_plans_and_starts_nothing(env_repo, tmp_path, capsys):
    state = tmp_path / "state"
    prefix = f"u{os.getpid()}-"
    result = run_module(compose_deploy, {"repo_dir": str(env_repo), "state_dir": str(state), "project_prefix": prefix}, capsys, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["prepared"] == "+ web: deploy (new)\n    images: localhost/podops-demo:1\n    published ports: none\n"
    assert result["report"]["check_mode"] is True
    assert result["report"]["services"]["web"]["action"] == "deployed"
    assert json.loads((state / "last-check.json").read_text())["run_id"] == result["report"]["run_id"]
    assert not (state / "last-run.json").exists(), "a check run never replaces the last real run's report"
    assert not (state / "state.json").exists()
    listed = subprocess.run(["podman", "ps", "-a", "-q", "--filter", f"label=io.podops.prefix={prefix}"], capture_output=True, text=True, check=True)
    assert listed.stdout == ""


def test_service_plan_is_read_only(env_repo, tmp_path, capsys):
    state = tmp_path / "state"
    result = run_module(service_plan, {"repo_dir": str(env_repo), "state_dir": str(state)}, capsys, diff=True)
    assert result["changed"] is True
    assert result["plan"]["web"]["action"] == "deploy" and result["plan"]["web"]["reason"] == "new"
    assert len(result["commit"]) == 40
    assert not state.exists()


def test_service_plan_takes_prune_as_compose_deploy_does(env_repo, tmp_path, capsys):
    state = tmp_path / "state"
    result = run_module(service_plan, {"repo_dir": str(env_repo), "state_dir": str(state), "prune": True}, capsys, diff=True)
    assert result["changed"] is True and result["plan"]["web"]["action"] == "deploy"
    bad = run_module(service_plan, {"repo_dir": str(env_repo), "state_dir": str(state), "prune": "perhaps"}, capsys)
    assert bad["failed"] is True and "prune" in bad["msg"]
    assert not state.exists()


@pytest.mark.parametrize("name", ["../x", "a/b", "", "nope"])
def test_image_update_refuses_bad_names(env_repo, tmp_path, capsys, name):
    result = run_module(image_update, {"repo_dir": str(env_repo), "state_dir": str(tmp_path / "state"), "service": name}, capsys)
    assert result["failed"] is True
    assert "podops_service" in result["msg"] and result["msg"].endswith("Services: web")
    assert not (tmp_path / "state").exists()


def test_caller_chosen_run_id_names_the_report(env_repo, tmp_path, capsys):
    state = tmp_path / "state"
    args = {"repo_dir": str(env_repo), "state_dir": str(state), "run_id": "wh-42.a", "trigger": "webhook"}
    result = run_module(compose_deploy, args, capsys, check_mode=True)
    assert result["report"]["run_id"] == "wh-42.a"
    assert json.loads((state / "runs/wh-42.a.json").read_text())["trigger"] == "webhook"


@pytest.mark.parametrize("run_id", ["../x", "a/b", ".hidden", "x" * 65, "a b"])
def test_bad_run_id_is_refused_before_anything(env_repo, tmp_path, capsys, run_id):
    state = tmp_path / "state"
    result = run_module(compose_deploy, {"repo_dir": str(env_repo), "state_dir": str(state), "run_id": run_id}, capsys, check_mode=True)
    assert result["failed"] is True
    assert result["msg"].startswith("podops_run_id may only use letters")
    assert not state.exists()


@pytest.mark.parametrize(
    ("option", "value", "least"),
    [("parallel", 0, "at least 1"), ("keep_runs", 0, "at least 1"), ("parallel", -2, "at least 1"), ("lock_timeout", -1, "0 (do not wait)")],
)
def test_a_number_below_its_least_is_refused_not_turned_into_the_default(env_repo, tmp_path, capsys, option, value, least):
    state = tmp_path / "state"
    for module, extra in ((compose_deploy, {}), (image_update, {"service": "web"})):
        result = run_module(module, {"repo_dir": str(env_repo), "state_dir": str(state), option: value, **extra}, capsys, check_mode=True)
        assert result["failed"] is True
        assert result["msg"].startswith(f"podops_{option} must be {least}"), result["msg"]
        assert str(value) in result["msg"]
    assert not state.exists()
