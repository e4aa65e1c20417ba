"""Run the webhook shim as a real subprocess on a free port, and talk to it like a git host does.

Run as a script, this file is the *recording deploy command* of the gate tests: it appends its argv to a
file and writes the podops run report the real reconcile would write. The gate tests check the shim's
decisions (what it lets through, what it starts); the end-to-end tests run the real reconcile.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIM_DIR = REPO_ROOT / "roles" / "webhook" / "files"
COLLECTIONS = REPO_ROOT / ".work" / "collections"
SECRET = b"s3cr3t-for-tests-only"
TOKEN = b"status-token-for-tests"
OMIT = "<omit>"  # a header value that means: do not send this header


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def write_secret(path: Path, value: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(value + b"\n")
    path.chmod(mode)
    return path


class Response:
    def __init__(self, status: int, body: bytes, headers: dict, elapsed: float):
        self.status, self.body, self.headers, self.elapsed = status, body, headers, elapsed

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.body[:300]!r})"


def request(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None, timeout: float = 10) -> Response:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, resp.read(), dict(resp.headers), time.monotonic() - start)
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read(), dict(exc.headers), time.monotonic() - start)


def github_push(branch: str = "main", after: str = "0" * 39 + "1") -> dict:
    return {"ref": f"refs/heads/{branch}", "after": after, "before": "0" * 40, "repository": {"full_name": "me/env"}, "deleted": False}


class Shim:
    """``python -m podops_webhook`` as a subprocess: start, talk, stop."""

    def __init__(self, base: Path, *, reconcile_command: list[str], redeploy_command: list[str] | None = None, repo_dir: Path, state_dir: Path, **extra):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.secret_file = write_secret(base / "webhook.secret", SECRET)
        self.state_dir = state_dir
        self.config = {
            "listen": f"127.0.0.1:{self.port}",
            "state_dir": str(state_dir),
            "db_path": str(base / "webhook.sqlite3"),
            "repo_dir": str(repo_dir),
            "secret_file": str(self.secret_file),
            "collections_path": str(COLLECTIONS),
            "debounce_seconds": 0.3,
            "reconcile_command": reconcile_command,
            "redeploy_command": redeploy_command or reconcile_command,
        }
        self.config.update(extra)
        self.config_file = base / "webhook.yml"
        self.config_file.write_text(json.dumps(self.config))  # JSON is YAML
        self.log_file = base / "shim.log"
        self.proc: subprocess.Popen | None = None
        # How the shim is started (a test may run it as another user, with another Python).
        self.python: list[str] = [sys.executable]
        self.env: dict[str, str] = {"PYTHONPATH": str(SHIM_DIR)}
        self.token: bytes | None = None
        if self.config.get("status_token_file"):
            self.token = Path(self.config["status_token_file"]).read_bytes().strip()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *args: str, wait: bool = True) -> Shim:
        env = dict(os.environ, **self.env)
        log = open(self.log_file, "ab")  # noqa: SIM115 - the child writes to it for its whole life
        self.proc = subprocess.Popen(
            [*self.python, "-m", "podops_webhook", "--config", str(self.config_file), *args], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        if wait:
            deadline = time.monotonic() + 15
            while True:
                assert self.proc.poll() is None, f"shim exited with {self.proc.returncode}:\n{self.log()}"
                try:
                    urllib.request.urlopen(self.url + "/health", timeout=1).read()
                    break
                except urllib.error.HTTPError:
                    break  # 503 on a standby slot is an answer too
                except (urllib.error.URLError, OSError):
                    assert time.monotonic() < deadline, f"shim did not answer:\n{self.log()}"
                    time.sleep(0.05)
        return self

    def stop(self, timeout: float = 120) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def post(
        self,
        path: str,
        payload: dict | bytes,
        *,
        event: str | None = "push",
        delivery: str | None = "auto",
        provider: str = "github",
        secret: bytes = SECRET,
        content_type: str = "application/json",
        signature: str | None = None,
        headers: dict | None = None,
    ) -> Response:
        """A delivery as ``provider`` sends it: signed body, event and delivery headers."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        delivery = str(uuid.uuid4()) if delivery == "auto" else delivery
        sent = {"Content-Type": content_type}
        if provider == "github":
            sent["X-Hub-Signature-256"] = signature if signature is not None else "sha256=" + sign(body, secret)
            if event:
                sent["X-GitHub-Event"] = event
            if delivery:
                sent["X-GitHub-Delivery"] = delivery
        elif provider in ("gitea", "forgejo"):
            prefix = "X-Gitea-" if provider == "gitea" else "X-Forgejo-"
            sent[prefix + "Signature"] = signature if signature is not None else sign(body, secret)
            if event:
                sent[prefix + "Event"] = event
            if delivery:
                sent[prefix + "Delivery"] = delivery
        elif provider == "gitlab":
            sent["X-Gitlab-Token"] = signature if signature is not None else secret.decode()
            if event:
                sent["X-Gitlab-Event"] = event
            if delivery:
                sent["Idempotency-Key"] = delivery
        sent.update(headers or {})
        sent = {key: value for key, value in sent.items() if value != OMIT}
        return request(self.url + path, data=body, headers=sent, method="POST")

    def get(self, path: str) -> Response:
        headers = {"Authorization": "Bearer " + self.token.decode()} if self.token else {}
        return request(self.url + path, headers=headers)

    def runs(self) -> list[dict]:
        response = self.get("/api/runs?limit=500")
        assert response.status == 200, response
        return response.json["runs"]

    def wait_run(self, run_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/api/runs/{run_id}").json
            if run.get("status") not in ("queued", "running", None):
                return run
            assert time.monotonic() < deadline, f"run {run_id} did not finish: {run}\n{self.log()[-3000:]}"
            time.sleep(0.2)

    def wait_idle(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.get("/api/status").json
            if not status["running"] and not status["queued"]:
                return
            assert time.monotonic() < deadline, f"shim still busy: {status}"
            time.sleep(0.2)


def record_main(argv: list[str]) -> int:
    """The recording deploy command: ``python webhook_helpers.py RECORD_FILE STATE_DIR [SECONDS] -e ...``."""
    record, state_dir = Path(argv[0]), Path(argv[1])
    rest = argv[2:]
    sleep = 0.0
    if rest and not rest[0].startswith("-"):
        sleep, rest = float(rest[0]), rest[1:]
    extra = dict(rest[i + 1].split("=", 1) for i in range(0, len(rest) - 1, 2) if rest[i] == "-e")
    with record.open("a") as handle:
        handle.write(json.dumps(rest) + "\n")
    print(f"recorder: {' '.join(rest)}", flush=True)
    time.sleep(sleep)
    service = extra.get("podops_service")
    report = {
        "run_id": extra["podops_run_id"],
        "trigger": extra.get("podops_trigger"),
        "commit": "f" * 40,
        "result": "changed",
        "services": {service or "web": {"action": "deployed", "reason": "image" if service else "changed", "error": None}},
    }
    (state_dir / "runs").mkdir(parents=True, exist_ok=True)
    (state_dir / "runs" / f"{extra['podops_run_id']}.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(record_main(sys.argv[1:]))
