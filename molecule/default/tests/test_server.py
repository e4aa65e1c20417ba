# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a bootstrapped server looks like at the end of the scenario (pytest-testinfra over SSH)."""

from __future__ import annotations

import json

VENV = "/opt/podops/venv"
STATE = "/var/lib/podops"


def test_timer_enabled_and_active(host):
    timer = host.service("podops-pull.timer")
    assert timer.is_enabled
    assert timer.is_running


def test_timer_has_jitter_and_the_service_its_trigger(host):
    timer = host.file("/etc/systemd/system/podops-pull.timer").content_string
    assert "RandomizedDelaySec=5" in timer
    service = host.file("/etc/systemd/system/podops-pull.service").content_string
    assert "ExecStart=/opt/podops/bin/podops-pull -e podops_trigger=timer" in service


def test_last_service_run_succeeded(host):
    out = host.check_output("systemctl show podops-pull.service -p Result -p ExecMainStatus")
    assert "Result=success" in out
    assert "ExecMainStatus=0" in out


def test_state_folder_and_deploy_key_are_private(host):
    state = host.file(STATE)
    assert state.is_directory and state.user == "root" and state.mode == 0o700
    key = host.file(f"{STATE}/ssh/deploy_key")
    assert key.is_file and key.user == "root" and key.mode == 0o600
    assert "localhost ssh-ed25519 " in host.file(f"{STATE}/ssh/known_hosts").content_string


def test_venv_has_the_pinned_tools(host):
    assert "ansible-playbook [core 2.19.14]" in host.check_output(f"{VENV}/bin/ansible-playbook --version")
    assert "1.6.0" in host.check_output(f"{VENV}/bin/podman-compose --version")


def test_collections_installed_without_galaxy(host):
    for name in ("podops/gitops", "containers/podman"):
        manifest = json.loads(host.file(f"/opt/podops/collections/ansible_collections/{name}/MANIFEST.json").content_string)
        assert manifest["collection_info"]["namespace"] == name.split("/", maxsplit=1)[0]


def test_podops_pull_is_a_python_command(host):
    pull = host.file("/opt/podops/bin/podops-pull")
    assert pull.mode == 0o755 and pull.content_string.startswith(f"#!{VENV}/bin/python")


def test_web_serves_the_last_commit(host):
    fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:18081/').read().decode())"
    assert host.check_output(f'python3 -c "{fetch}"') == "podops web v3"


def test_journal_keeps_the_runs(host):
    log = host.check_output("journalctl -u podops-pull.service --no-pager -o cat")
    assert "podops-pull: run " in log and "result=failed" in log and "result=changed" in log
