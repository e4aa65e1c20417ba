"""This machine does not run systemd (PID 1 is no systemd): the bootstrap playbook and the webhook role refuse
it before they install or write anything, and say what is missing and what to do instead.

Everything the plays could write is pointed into the test's own folder (install dir, state dir, unit dir, the
shim's folders), so "nothing was written" is checked by that folder staying empty, and "nothing was installed"
by no task of podops.gitops.podman_host having run (its first one installs packages with apt).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import REPO_ROOT, sh
from test_webhook_role import PLAY as WEBHOOK_PLAY


@pytest.fixture(autouse=True)
def _no_systemd_here():
    if Path("/run/systemd/system").is_dir():
        pytest.skip("this host runs systemd: the refusal is tested on hosts without it (CI, containers)")


def ansible(argv: list[str], cwd: Path) -> tuple[int, dict]:
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    proc = sh(*argv, env=env, cwd=str(cwd), check=False, timeout=300)
    return proc.returncode, json.loads(proc.stdout[proc.stdout.index("{") :])


def tasks_run(output: dict) -> list[tuple[str, dict]]:
    return [(task["task"]["name"], task["hosts"].get("localhost", {})) for play in output["plays"] for task in play["tasks"]]


def failure(output: dict) -> str:
    return next(result.get("msg", "") for _name, result in tasks_run(output) if result.get("failed"))


def test_bootstrap_refuses_before_it_installs_anything(tmp_path):
    target = tmp_path / "host"
    target.mkdir()
    variables = {
        "podops_repo_url": "https://git.example.invalid/me/env-repo.git",
        "podops_install_dir": str(target / "opt"),
        "podops_state_dir": str(target / "state"),
        "ansible_become": False,  # root already (and no sudo here)
        "ansible_python_interpreter": str(REPO_ROOT / ".venv" / "bin" / "python"),
    }
    rc, output = ansible(["ansible-playbook", "-i", "localhost,", "-c", "local", "podops.gitops.bootstrap", "-e", json.dumps(variables)], tmp_path)
    assert rc != 0
    message = failure(output)
    assert "does not run systemd" in message and "/run/systemd/system" in message, message
    assert "podops_pull_scheduler=cron" in message and "nothing was installed" in message, message
    names = [name for name, _result in tasks_run(output)]
    assert not any(name.startswith("podops.gitops.podman_host") or "Install podman" in name for name in names), names
    assert output["stats"]["localhost"]["changed"] == 0
    assert list(target.iterdir()) == [], "the refused bootstrap wrote files"
    fact = Path("/etc/ansible/facts.d/podops.fact")  # podman_host's one file outside the install dir
    assert not (fact.exists() and str(target) in fact.read_text()), "podops.gitops.podman_host ran"


def test_webhook_role_refuses_before_it_writes_a_config(tmp_path):
    target = tmp_path / "host"
    target.mkdir()
    (tmp_path / "play.yml").write_text(WEBHOOK_PLAY)
    variables = {
        "podops_install_dir": str(target / "opt"),
        "podops_state_dir": str(target / "state"),
        "podops_webhook_dir": str(target / "opt" / "webhook"),
        "podops_webhook_unit_dir": str(target / "units"),
        "podops_webhook_db_dir": str(target / "db"),
        "podops_webhook_broker_socket": str(target / "run" / "run.sock"),
        "podops_webhook_user": "daemon",
        "podops_webhook_create_user": False,
    }
    for check in ([], ["--check"]):
        rc, output = ansible(["ansible-playbook", str(tmp_path / "play.yml"), "-e", json.dumps(variables), *check], tmp_path)
        assert rc != 0
        message = failure(output)
        assert "does not run systemd" in message and "nothing was installed" in message, message
        assert "podops_pull_scheduler=cron" in message and "podops_webhook_start=false" in message, message
        assert output["stats"]["localhost"]["changed"] == 0
        assert list(target.iterdir()) == [], f"the refused role wrote files: {sorted(map(str, target.rglob('*')))}"
