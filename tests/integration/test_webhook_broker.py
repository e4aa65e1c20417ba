"""The unprivileged shim and its root-side run broker, started the way systemd starts them.

- The shim runs as ``nobody`` and can read neither the env repo nor the state folder (both in a root-only
  folder): everything it shows and starts goes through the broker.
- The broker runs as root, one process per connection, started by ``systemd-socket-activate --inetd
  --accept`` - systemd's own implementation of what ``podops-run.socket`` (``Accept=yes``) does.
- Stand-in: without systemd here, the socket's access rule (``SocketGroup=``/``SocketMode=0660`` in the real
  unit) is a mode 0666 socket in a folder of the test's own. molecule checks the real units under systemd.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest
from test_webhook_gate import make_repo, recorded, recorder
from webhook_helpers import COLLECTIONS, SECRET, SHIM_DIR, Shim, github_push, write_secret

SYSTEM_PYTHON = "/usr/bin/python3"
FRAME = struct.Struct(">cI")
HEADER_SIZE = 5  # FRAME.size (one type byte, a 4-byte length), as a plain int for pylint


def nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


def as_nobody() -> list[str]:
    user = nobody()
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]


def nobody_python_env() -> dict[str, str]:
    # The venv's Python lives under /root here, which nobody cannot enter: the system Python of the same
    # minor version runs the shim with the venv's packages on its path.
    return {"PYTHONPATH": os.pathsep.join([str(SHIM_DIR), sysconfig.get_paths()["purelib"]]), "PYTHONDONTWRITEBYTECODE": "1"}


def wait_for(predicate, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ask(sock_path: str, request: bytes) -> tuple[list[bytes], dict]:
    """One raw request to the broker: (output frames, result)."""
    output = []
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(sock_path)
        conn.sendall(request)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    while data:
        kind, size = FRAME.unpack(data[:HEADER_SIZE])
        payload, data = data[HEADER_SIZE : HEADER_SIZE + size], data[HEADER_SIZE + size :]
        if kind == b"o":
            output.append(payload)
        else:
            return output, json.loads(payload)
    raise AssertionError("the broker sent no result frame")


@pytest.fixture(scope="module")
def broker_and_shim(tmp_path_factory):
    if shutil.which("systemd-socket-activate") is None or shutil.which("setpriv") is None:
        pytest.skip("needs systemd-socket-activate (package systemd) and setpriv (util-linux)")
    probe_argv = [*as_nobody(), SYSTEM_PYTHON, "-c", "import aiohttp, yaml, podops_webhook"]
    probe = subprocess.run(probe_argv, env=dict(os.environ, **nobody_python_env()), capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run the shim from this checkout (is it in a folder only root can enter?): {probe.stderr.decode()[-300:]}")

    root_side = tmp_path_factory.mktemp("broker")  # root only (0700): the repo, the state, the recorder's log
    os.chmod(root_side, 0o700)
    repo = make_repo(root_side / "repo")
    state = root_side / "state"
    state.mkdir(mode=0o700)
    (state / "state.json").write_text(json.dumps({"version": 1, "services": {"web": {"status": "ok", "commit": "a" * 40}}}))
    (state / "ab").mkdir()
    (state / "ab" / "webhook.json").write_text(json.dumps({"active": "a"}))

    shared = Path(tempfile.mkdtemp(prefix="podops-broker-test-"))  # what the shim's user may reach
    os.chmod(shared, 0o711)
    home = shared / "shim"
    home.mkdir(mode=0o700)
    run_dir = shared / "run"
    run_dir.mkdir(mode=0o755)
    sock_path = str(run_dir / "run.sock")
    os.chown(home, nobody().pw_uid, nobody().pw_gid)

    shim = Shim(
        home,
        reconcile_command=recorder(root_side, state),
        repo_dir=repo,
        state_dir=state,
        debounce_seconds=0.05,
        broker_socket=sock_path,
        project_prefix=f"brk{os.getpid()}-",
    )
    shim.config["listen"] = {"a": f"127.0.0.1:{shim.port}", "b": "127.0.0.1:1"}
    shim.config["collections_path"] = str(COLLECTIONS)
    write_secret(Path(shim.config["secret_file"]), SECRET)
    config_file = shared / "webhook.yml"
    config_file.write_text(json.dumps(shim.config))
    config_file.chmod(0o644)
    shim.config_file = config_file
    for path in home.iterdir():
        os.chown(path, nobody().pw_uid, nobody().pw_gid)
    shim.python = [*as_nobody(), SYSTEM_PYTHON]
    shim.env = nobody_python_env()

    broker_log = open(root_side / "broker.log", "ab")  # noqa: SIM115 - the broker writes to it for its whole life
    broker = subprocess.Popen(
        [
            *("systemd-socket-activate", "--inetd", "--accept", "--listen", sock_path, f"--setenv=PYTHONPATH={SHIM_DIR}"),
            *(sys.executable, "-m", "podops_webhook.broker", "--config", str(config_file)),
        ],
        env=dict(os.environ, PYTHONPATH=str(SHIM_DIR)),
        stdout=broker_log,
        stderr=subprocess.STDOUT,
    )
    broker_log.close()
    try:
        wait_for(lambda: os.path.exists(sock_path), "the broker's socket")
        os.chmod(sock_path, 0o666)
        shim.start("--slot", "a")
        shim.root_side = root_side
        shim.sock_path = sock_path
        yield shim
        assert shim.stop() == 0, shim.log()
    finally:
        shim.stop()
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(shared, ignore_errors=True)


def test_the_shim_runs_as_nobody_and_cannot_read_the_repo(broker_and_shim):
    shim = broker_and_shim
    status = Path(f"/proc/{shim.proc.pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(nobody().pw_uid)}
    probe = subprocess.run([*as_nobody(), "cat", str(Path(shim.config["repo_dir"]) / "services" / "web" / "compose.yaml")], capture_output=True, check=False)
    assert probe.returncode != 0, "the test's repo must be out of the shim's reach"


def test_status_and_health_come_from_the_broker(broker_and_shim):
    shim = broker_and_shim
    health = shim.get("/health")
    assert health.status == 200 and health.json["active"] == "a", health
    status = shim.get("/api/status").json
    rows = {row["name"]: row for row in status["services"]}
    assert set(rows) == {"web", "other"} and rows["web"]["state"] == "ok" and rows["web"]["commit"] == "a" * 40
    assert shim.post("/hooks/github", github_push(branch="main"), event="ping").status == 200


def test_a_push_runs_through_the_broker_as_root(broker_and_shim):
    shim = broker_and_shim
    before = len(recorded(shim.root_side))
    response = shim.post("/hooks/github", github_push())
    assert response.status == 202, response
    run = shim.wait_run(response.json["run_id"])
    assert run["status"] == "changed" and run["outcome"]["web"]["action"] == "deployed", run
    assert "recorder: -e podops_trigger=webhook" in shim.get(f"/api/runs/{run['id']}").json["log"]
    calls = recorded(shim.root_side)[before:]
    assert calls == [["-e", "podops_trigger=webhook", "-e", f"podops_run_id={run['id']}"]]


def test_a_package_event_redeploys_the_service_using_it(broker_and_shim):
    shim = broker_and_shim
    before = len(recorded(shim.root_side))
    package = {"action": "published", "package": {"name": "app", "namespace": "team", "package_type": "container"}}
    response = shim.post("/hooks/github", {**package, "registry_package": package["package"]}, event="registry_package")
    assert response.status == 202 and response.json["services"] == ["web"], response
    run = shim.wait_run(response.json["run_id"])
    assert run["status"] == "changed", run
    assert recorded(shim.root_side)[before:] == [["-e", "podops_trigger=webhook", "-e", f"podops_run_id={run['id']}", "-e", "podops_service=web"]]


@pytest.mark.parametrize(
    ("request_line", "message"),
    [
        (b"not json\n", "not JSON"),
        (b"[]\n", "JSON object"),
        (b'{"op": "shell", "argv": ["id"]}\n', "op must be one of"),
        (b'{"op": "run", "run_id": "x", "service": null, "command": ["id"]}\n', "unknown field 'command'"),
        (b'{"op": "run", "run_id": "../../etc/x", "service": null}\n', "run_id must be"),
        (b'{"op": "run", "run_id": "r1", "service": "../web"}\n', "service must be"),
        (b'{"op": "run", "run_id": "r1", "service": "nope"}\n', "no service 'nope'"),
        (b'{"op": "using", "packages": ["a b"]}\n', "packages must be"),
        (b'{"op": "view"}', "one JSON line"),  # no newline: the broker does not wait for ever either
        (b"[" * 100000 + b"\n", "one JSON line"),
        (b"[" * 50000 + b"\n", "not JSON"),
    ],
)
def test_the_broker_refuses_what_the_shim_must_not_ask(broker_and_shim, request_line, message):
    shim = broker_and_shim
    before = len(recorded(shim.root_side))
    if not request_line.endswith(b"\n") and len(request_line) < 100:
        with socket.socket(socket.AF_UNIX) as conn:  # half-close: the request ends without a newline
            conn.settimeout(30)
            conn.connect(shim.sock_path)
            conn.sendall(request_line)
            conn.shutdown(socket.SHUT_WR)
            data = b"".join(iter(lambda: conn.recv(65536), b""))
        result = json.loads(data[HEADER_SIZE:])
    else:
        _output, result = ask(shim.sock_path, request_line)
    assert message in result.get("error", ""), result
    assert len(recorded(shim.root_side)) == before, "a refused request ran nothing"


def test_without_the_broker_a_delivery_is_refused_for_now_and_nothing_is_kept(tmp_path):
    """The broker is down (no socket): health says unknown, a delivery that needs the repo gets 503 (the git
    host delivers it again), nothing is stored and nothing runs."""
    state = tmp_path / "state"
    shim = Shim(
        tmp_path / "shim", reconcile_command=recorder(tmp_path, state), repo_dir=tmp_path / "repo", state_dir=state, broker_socket=str(tmp_path / "none.sock")
    )
    shim.config["listen"] = {"a": f"127.0.0.1:{shim.port}", "b": "127.0.0.1:1"}
    shim.config_file.write_text(json.dumps(shim.config))
    shim.start("--slot", "a")
    try:
        health = shim.get("/health")
        assert health.status == 503 and "none.sock" not in health.body.decode(), health
        package = {"action": "published", "package": {"name": "app", "namespace": "team", "package_type": "container"}}
        refused = shim.post("/hooks/github", {**package, "registry_package": package["package"]}, event="registry_package", delivery="d-broker-down")
        assert refused.status == 503 and refused.headers.get("Retry-After"), refused
        assert shim.post("/redeploy-and-update/web", {"action": "published"}, event="package").status in (503, 404)
        redelivered = shim.post("/hooks/github", {**package, "registry_package": package["package"]}, event="registry_package", delivery="d-broker-down")
        assert redelivered.status == 503, "the refused delivery was not kept as handled"
        assert "run broker" in shim.log()
    finally:
        assert shim.stop() == 0, shim.log()
    assert recorded(tmp_path) == []


def test_the_page_details_come_through_the_broker_without_the_remote_url(broker_and_shim):
    """``view`` with details: the host's last run, commit subjects and the commit link base (never the origin
    URL, whose token stays on the root side); the shim shows them, checked."""
    shim = broker_and_shim
    repo, state = Path(shim.config["repo_dir"]), Path(shim.config["state_dir"])

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", "web: served through the broker")
    git("remote", "add", "origin", "https://deploy:glpat-SECRETVALUE@gitlab.example.org/team/env.git")
    head = git("rev-parse", "HEAD")
    original = (state / "state.json").read_text()
    (state / "state.json").write_text(json.dumps({"version": 1, "services": {"web": {"status": "ok", "commit": head, "digest": "d"}}}))
    last_run = {"run_id": "20261201T100000Z-aaaaaa", "trigger": "timer", "commit": head, "result": "changed", "services": {"web": {"action": "deployed"}}}
    (state / "last-run.json").write_text(json.dumps(last_run))
    try:
        _output, view = ask(shim.sock_path, b'{"op": "view", "details": true}\n')
        assert "SECRETVALUE" not in json.dumps(view)
        details = view["details"]
        assert details["commit_link_base"] == "https://gitlab.example.org/team/env/-/commit/"
        assert details["subjects"] == {head: "web: served through the broker"}
        assert details["last_run"]["run_id"] == last_run["run_id"] and details["last_run"]["actions"] == {"deployed": 1}
        assert "details" not in ask(shim.sock_path, b'{"op": "view"}\n')[1], "/health's view stays small"
        assert "details must be" in ask(shim.sock_path, b'{"op": "view", "details": "yes"}\n')[1].get("error", "")

        wait_for(lambda: (shim.get("/api/status").json.get("host_last_run") or {}).get("run_id") == last_run["run_id"], "the shim's view of the new run")
        web = next(row for row in shim.get("/api/status").json["services"] if row["name"] == "web")
        assert web["commit_url"] == f"https://gitlab.example.org/team/env/-/commit/{head}" and web["commit_subject"] == "web: served through the broker"
        page = shim.get("/").body.decode()
        assert "SECRETVALUE" not in page and 'data-result="changed"' in page and "web: served through the broker" in page
    finally:
        (state / "state.json").write_text(original)
        (state / "last-run.json").unlink()
