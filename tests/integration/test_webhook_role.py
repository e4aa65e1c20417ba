"""Role podops.gitops.webhook with real ansible-playbook on localhost, into a temporary install folder:
check mode changes nothing; a real run installs the shim, its config, a random 0600 secret per provider and
a token and the template unit (which `systemd-analyze verify` accepts); a second run changes nothing and
keeps the secrets; and the shim it installed starts from that config, with the secrets as systemd-style
credentials (the secrets folder loaded as one credential per file), accepts a delivery signed with the
generated GitHub secret and refuses one signed with the GitLab token. An install from before per-provider
secrets (only webhook.secret) keeps its shared secret, with a warning.

The rootless layout (podops_user) is rendered and checked with systemd-analyze verify too (the broker as the user's units).

The role runs with podops_webhook_start false: it installs the unit without starting it (with the default it
refuses a host without systemd, see test_no_systemd.py; where systemd is PID 1 it would start units of the test's
folder). The test starts the shim itself. Starting it under systemd is exercised in the molecule server.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT
from webhook_helpers import request, sign

PLAY = """\
---
- name: Install the webhook shim
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: podops.gitops.webhook
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PROVIDERS = ("github", "gitea", "forgejo", "gitlab")


def playbook(base: Path, port: int, *args: str) -> subprocess.CompletedProcess:
    variables = {
        "podops_install_dir": str(base / "opt"),
        "podops_venv_dir": str(Path(sys.executable).parents[1]),
        "podops_collections_dir": str(REPO_ROOT / ".work" / "collections"),
        "podops_state_dir": str(base / "state"),
        "podops_webhook_unit_dir": str(base / "units"),
        "podops_webhook_listen": {"a": f"127.0.0.1:{port}", "b": "127.0.0.1:1"},
        # An existing user, so the test creates none on this machine; the shim's folder and socket are the test's own.
        "podops_webhook_user": "daemon",
        "podops_webhook_group": "daemon",
        "podops_webhook_create_user": False,
        "podops_webhook_db_dir": str(base / "db"),
        "podops_webhook_broker_socket": str(base / "run" / "run.sock"),
        # install only: the test starts the shim itself (without systemd the default refuses: test_no_systemd.py)
        "podops_webhook_start": False,
    }
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        ["ansible-playbook", str(base / "play.yml"), "-e", json.dumps(variables), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def changed(proc: subprocess.CompletedProcess) -> int:
    out = json.loads(proc.stdout[proc.stdout.index("{") :])
    return out["stats"]["localhost"]["changed"]


def messages(proc: subprocess.CompletedProcess) -> list[str]:
    out = json.loads(proc.stdout[proc.stdout.index("{") :])
    for task in out["plays"][0]["tasks"]:
        if task["task"]["name"].endswith("Tell where to point the git host"):
            return task["hosts"]["localhost"]["msg"]
    return []


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("webhook-role")
    port = free_port()
    (base / "play.yml").write_text(PLAY)
    check = playbook(base, port, "--check")
    assert changed(check) > 0
    assert not (base / "opt").exists() and not (base / "units").exists(), "check mode created files"
    first = playbook(base, port)
    second = playbook(base, port)
    return base, port, first, second


def test_role_installs_shim_secret_and_unit_and_is_idempotent(installed):
    base, port, first, second = installed
    opt = base / "opt"
    assert (opt / "webhook" / "slot-a" / "podops_webhook" / "__main__.py").is_file()
    assert (opt / "webhook" / "slot-a" / "podops_webhook" / "templates" / "status.html.j2").is_file()
    files = [opt / "etc" / "webhook-secrets" / name for name in PROVIDERS] + [opt / "etc" / "webhook-status.token"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert len(path.read_text().strip()) >= 40
    assert len({path.read_text() for path in files}) == len(files), "two providers (or a provider and the token) share a secret"
    assert not (opt / "etc" / "webhook.secret").exists(), "a new install made the shared secret"
    assert stat.S_IMODE((opt / "etc" / "webhook-secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((base / "state").stat().st_mode) == 0o700
    db = (base / "db").stat()
    assert stat.S_IMODE(db.st_mode) == 0o700 and db.st_uid == pwd.getpwnam("daemon").pw_uid, "the shim's folder is its user's"
    config = yaml.safe_load((opt / "etc" / "webhook.yml").read_text())
    assert config["broker_socket"] == str(base / "run" / "run.sock") and config["db_path"] == str(base / "db" / "webhook.sqlite3")
    assert (opt / "webhook" / "broker" / "podops_webhook" / "broker.py").is_file()
    assert changed(first) > 0
    assert changed(second) == 0, "second run changed something"
    for path in files:
        assert path.read_text().strip() not in first.stdout + second.stdout, f"{path.name} was printed"
    text = "\n".join(messages(first))
    assert f"http://127.0.0.1:{port}/hooks/github" in text
    assert all(str(opt / "etc" / "webhook-secrets" / name) in text for name in PROVIDERS), text
    assert "Seed routes" in text and "off" in text
    config = yaml.safe_load((opt / "etc" / "webhook.yml").read_text())
    assert config["secret_file"] == "" and config["seed_routes"] is False
    assert config["provider_secret_files"] == {name: f"webhook-secret_{name}" for name in PROVIDERS}


def test_role_records_the_status_page_for_notification_links(installed):
    base, port, _first, _second = installed
    # podops.gitops.reconcile links messages and commit statuses to it (podops_status_url when unset).
    assert (base / "state" / "status-url").read_text() == f"http://127.0.0.1:{port}\n"


def test_unit_passes_systemd_analyze_verify(installed):
    base, _port, _first, _second = installed
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: run `make setup` as root (it installs systemd)"
    unit = (base / "units" / "podops-webhook@.service").read_text()
    assert f"LoadCredential=webhook-secret:{base / 'opt' / 'etc' / 'webhook-secrets'}" in unit, unit  # a folder: one credential per file
    assert "KillMode=mixed" in unit and "--slot %i" in unit
    assert "User=daemon" in unit and "NoNewPrivileges=yes" in unit and "CapabilityBoundingSet=\n" in unit and "ProtectSystem=strict" in unit
    socket_unit = (base / "units" / "podops-run.socket").read_text()
    assert "SocketGroup=daemon" in socket_unit and "SocketMode=0660" in socket_unit and "Accept=yes" in socket_unit
    units = [base / "units" / name for name in ("podops-webhook@a.service", "podops-run.socket", "podops-run@0.service")]
    proc = subprocess.run([analyze, "verify", *map(str, units)], capture_output=True, text=True, check=False)
    ours = [line for line in proc.stderr.splitlines() if "podops-webhook" in line or "podops-run" in line]  # not other units' noise
    assert proc.returncode == 0 and not ours, proc.stderr


def test_installed_shim_starts_from_the_role_config(installed, tmp_path):
    """What systemd would do: cwd = the install folder, the secrets as credentials, --slot a."""
    base, port, _first, _second = installed
    opt = base / "opt"
    creds = tmp_path / "credentials"
    creds.mkdir()
    for name in PROVIDERS:  # what LoadCredential=webhook-secret:<folder> gives the service
        shutil.copy(opt / "etc" / "webhook-secrets" / name, creds / f"webhook-secret_{name}")
    shutil.copy(opt / "etc" / "webhook-status.token", creds / "webhook-status-token")
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(creds), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    sock = base / "run" / "run.sock"
    sock.parent.mkdir(exist_ok=True)
    # podops-run.socket's work, done by systemd's own socket activation (no systemd as PID 1 here)
    broker = subprocess.Popen(
        [
            "systemd-socket-activate",
            "--inetd",
            "--accept",
            "--listen",
            str(sock),
            sys.executable,
            "-m",
            "podops_webhook.broker",
            "--config",
            str(opt / "etc" / "webhook.yml"),
        ],
        cwd=opt / "webhook" / "broker",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not sock.exists():
        assert time.monotonic() < deadline and broker.poll() is None, "the broker's socket did not appear"
        time.sleep(0.05)
    proc = subprocess.Popen(
        [sys.executable, "-m", "podops_webhook", "--config", str(opt / "etc" / "webhook.yml"), "--slot", "a"],
        cwd=opt / "webhook" / "slot-a",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                health = json.loads(urllib.request.urlopen(url + "/health", timeout=1).read())
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        body = b'{"zen": "role test", "hook_id": 1}'
        secret = (opt / "etc" / "webhook-secrets" / "github").read_bytes().strip()
        gitlab = (opt / "etc" / "webhook-secrets" / "gitlab").read_bytes().strip()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping", "X-GitHub-Delivery": "role-ping-1"}
        pong = request(url + "/hooks/github", data=body, headers={**headers, "X-Hub-Signature-256": "sha256=" + sign(body, secret)}, method="POST")
        assert pong.status == 200 and pong.json["status"] == "pong", pong
        assert health["status"] == "ok" and health["marker"] == "absent", "the broker answered the shim's view"
        leaked = {**headers, "X-GitHub-Delivery": "role-ping-2", "X-Hub-Signature-256": "sha256=" + sign(body, gitlab)}
        assert request(url + "/hooks/github", data=body, headers=leaked, method="POST").status == 401, "the GitLab token signs GitHub deliveries"
        seed = request(url + "/deploy-all-changed", data=body, headers={**leaked, "X-Hub-Signature-256": "sha256=" + sign(body, secret)}, method="POST")
        assert seed.status == 404 and "podops_webhook_seed_routes" in seed.json["error"], seed
        token = (opt / "etc" / "webhook-status.token").read_text().strip()
        assert request(url + "/api/status").status == 401
        assert request(url + "/api/status", headers={"Authorization": f"Bearer {token}"}).status == 200
    finally:
        proc.terminate()
        broker.terminate()
        broker.wait(timeout=10)
        assert proc.wait(timeout=20) == 0


def test_an_install_from_before_keeps_its_shared_secret_and_is_warned(tmp_path):
    """podops_webhook_secret_mode auto: only webhook.secret exists -> shared mode, the git hosts keep working."""
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "opt" / "etc").mkdir(parents=True)
    old = tmp_path / "opt" / "etc" / "webhook.secret"
    old.write_text("an-old-shared-secret-of-an-earlier-install\n")
    old.chmod(0o600)
    proc = playbook(tmp_path, free_port(), "-e", '{"podops_webhook_seed_routes": true}')
    assert old.read_text() == "an-old-shared-secret-of-an-earlier-install\n"
    assert not (tmp_path / "opt" / "etc" / "webhook-secrets").exists()
    config = yaml.safe_load((tmp_path / "opt" / "etc" / "webhook.yml").read_text())
    assert config["secret_file"] == "webhook-secret" and config["provider_secret_files"] == {} and config["seed_routes"] is True
    text = "\n".join(messages(proc))
    assert "WARNING: one shared secret" in text and "podops_webhook_secret_mode: per_provider" in text, text
    assert "/deploy-all-changed and /redeploy-and-update/SERVICE are served" in text


ROOTLESS_PLAY = """\
---
- name: Render the webhook role's units for a rootless host (podops_user), as the role does there
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Load the role's defaults
      ansible.builtin.include_vars: {roles}/webhook/defaults/main.yml
    - name: Render
      ansible.builtin.copy:
        content: "{{{{ lookup('ansible.builtin.template', '{roles}/webhook/templates/' ~ item.key ~ '.j2') }}}}"
        dest: "{out}/{{{{ item.value }}}}"
        mode: "0644"
      loop: "{{{{ {{'podops-run.socket': 'podops-run.socket', 'podops-run@.service': 'podops-run@.service',
        'podops-webhook@.service': 'podops-webhook@.service', 'podops-webhook.tmpfiles.conf': 'tmpfiles.conf'}} | dict2items }}}}"
"""


def test_rootless_units_run_the_broker_as_the_user_and_keep_the_shim_a_system_unit(tmp_path):
    """podops_user: the broker's units are the user's (no SocketUser/SocketGroup a user manager could not set; the
    socket's 0750 folder is the gate, from tmpfiles.d), the shim keeps its own user and sandbox and wants the user's
    systemd instead of a system podops-run.socket. The real thing runs in molecule/rootless."""
    out = tmp_path / "units"
    out.mkdir()
    (tmp_path / "play.yml").write_text(ROOTLESS_PLAY.format(roles=REPO_ROOT / "roles", out=out))
    variables = {
        "podops_user": "deploy",
        "podops_host_uid": 1000,
        "podops_webhook_use_credentials": True,
        "podops_install_dir": str(tmp_path / "opt"),
        "podops_venv_dir": str(Path(sys.executable).parents[1]),
    }
    proc = subprocess.run(
        ["ansible-playbook", str(tmp_path / "play.yml"), "-e", json.dumps(variables)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    socket_unit = (out / "podops-run.socket").read_text()
    assert "ListenStream=/run/podops-webhook/run.sock\n" in socket_unit and "SocketMode=0666\n" in socket_unit
    assert "SocketUser=" not in socket_unit and "SocketGroup=" not in socket_unit and "DirectoryMode=" not in socket_unit
    assert "WantedBy=sockets.target" in socket_unit and "a user unit of deploy" in socket_unit
    broker = (out / "podops-run@.service").read_text()
    assert "answered as deploy" in broker and "User=" not in broker
    shim = (out / "podops-webhook@.service").read_text()
    assert "Wants=user@1000.service\nAfter=user@1000.service\n" in shim and "podops-run.socket" not in shim.split("[Service]")[0]
    assert "User=podops-webhook\n" in shim and "ProtectSystem=strict\n" in shim and "ProtectHome=yes\n" in shim
    assert (out / "tmpfiles.conf").read_text().splitlines()[-1] == "d /run/podops-webhook 0750 deploy podops-webhook -"
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: run `make setup` as root (it installs systemd)"
    units = [out / name for name in ("podops-webhook@a.service", "podops-run.socket", "podops-run@0.service")]
    check = subprocess.run([analyze, "verify", *map(str, units)], capture_output=True, text=True, timeout=60, check=False)
    ours = [line for line in check.stderr.splitlines() if "podops-webhook" in line or "podops-run" in line]  # not other units' noise
    assert not ours, check.stderr
