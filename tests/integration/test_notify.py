"""Notifications and commit status (issue 16), end to end: real reconcile runs on real podman, the real Apprise
library sending to receivers on loopback that these tests start - a JSON webhook, an SMTP server (aiosmtpd) for
mailto://, one that is down and one that accepts and never answers - and a stand-in for the commit statuses API
of GitHub, Gitea/Forgejo and GitLab.

The stand-in exists because the real git hosts cannot be reached from this machine (no outside network); it
implements the statuses endpoints as each host documents them (path, auth header, JSON fields and states) and
refuses anything else, so a request the real API would refuse fails here too.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import typing as t
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from conftest import REPO_ROOT, EnvRepo, Host, free_port, sh, web_service
from test_images_and_drift import published  # noqa: F401 # pylint: disable=unused-import
from test_pull_lane import Pull, path_taken
from test_vault import encrypt

sys.path.insert(0, str(REPO_ROOT / ".work" / "collections"))
from ansible_collections.podops.gitops.plugins.module_utils._redact import MASK  # noqa: E402

SECRET = "vault-secret-5d2e9a"
TOKEN = "ghp_statustoken0123456789abcdef"
NTFY_TOKEN = "tk_hookpathsecret4242"
TIMEOUT = 3.0
FAST = "x-podops:\n  health: {timeout: 4, samples: 2, interval: 0.3}\n"


# -- receivers --------------------------------------------------------------------------------------------


class Recorder:
    """What a receiver got: every request or mail, raw bytes included (to look for secrets)."""

    def __init__(self) -> None:
        self.items: list[dict[str, t.Any]] = []
        self.cond = threading.Condition()

    def add(self, item: dict[str, t.Any]) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def count(self) -> int:
        with self.cond:
            return len(self.items)


class JsonReceiver:
    """A generic JSON webhook (Apprise json://): answers 200 and records the body."""

    def __init__(self) -> None:
        self.got = Recorder()
        recorder = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.add({"path": self.path, "headers": dict(self.headers), "raw": raw, "json": json.loads(raw or b"{}")})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: t.Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HangingReceiver:
    """Accepts connections, reads, never answers: the receiver that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[float] = []
        self.held: list[socket.socket] = []
        self.raw = b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.accepted.append(time.time())
            self.held.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            while chunk := conn.recv(65536):
                self.raw += chunk
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class MailHandler:
    def __init__(self) -> None:
        self.got = Recorder()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802, ANN001 - aiosmtpd's hook
        self.got.add({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "raw": envelope.content, "mail": message_from_bytes(envelope.content)})
        return "250 OK"


def mail_text(item: dict[str, t.Any]) -> str:
    mail = item["mail"]
    parts = [p for p in mail.walk() if p.get_content_type() == "text/plain"] or [mail]
    return str(mail["Subject"]) + "\n" + "\n".join(p.get_payload(decode=True).decode("utf-8", "replace") for p in parts)


@pytest.fixture
def receivers():
    hook, hang, mail = JsonReceiver(), HangingReceiver(), MailHandler()
    smtp = Controller(mail, hostname="127.0.0.1", port=free_port())
    smtp.start()
    down = free_port()  # nothing listens there
    yield {"hook": hook, "hang": hang, "mail": mail, "smtp_port": smtp.port, "down": down}
    smtp.stop()
    hook.close()
    hang.close()


def urls(r: dict[str, t.Any]) -> list[str]:
    return [
        f"json://127.0.0.1:{r['hook'].port}/hooks/{NTFY_TOKEN}",
        f"mailto://127.0.0.1:{r['smtp_port']}?from=podops@example.org&to=ops@example.org&mode=insecure",
        f"json://127.0.0.1:{r['down']}/",
        f"json://127.0.0.1:{r['hang'].port}/",
    ]


def secret_service(repo: EnvRepo, port: int, password: Path, broken: bool = False) -> None:
    """A web service with an ansible-vault env file; the broken version prints the secret and exits."""
    command = (
        '["sh", "-c", "echo starting with $$SECRET_VALUE; echo boom: config missing; exit 3"]'
        if broken
        else '["sh", "-c", "trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]'
    )
    repo.write(
        "services/web/compose.yaml",
        web_service(port, xpodops=FAST).replace("    volumes:", f"    command: {command}\n    env_file: [secret.env]\n    volumes:"),
    )
    repo.write("services/web/site/index.html", "web")
    encrypt(repo.write("services/web/secret.env", f"SECRET_VALUE={SECRET}\n"), password)


def test_failure_is_told_once_with_its_logs_then_recovery_and_no_secret_reaches_anyone(host: Host, repo: EnvRepo, tmp_path: Path, receivers):
    password = tmp_path / "vault-pass"
    password.write_text("correct horse\n")
    port = free_port()
    secret_service(repo, port, password)
    repo.commit("add web")
    settings = {"podops_notify_urls": urls(receivers), "podops_notify_timeout": TIMEOUT, "podops_status_url": "http://status.example.org:8095"}
    vault = ("--vault-password-file", str(password))
    hook, mail, hang = receivers["hook"].got, receivers["mail"].got, receivers["hang"]

    first = host.reconcile(repo, *vault, **settings)
    assert first.rc == 0, first
    assert first.report["services"]["web"]["action"] == "deployed"
    assert hook.count() == 0 and mail.count() == 0, "a plain deploy is not in the default podops_notify_on"
    assert "notifications" not in first.report or first.report["notifications"] == []

    secret_service(repo, port, password, broken=True)
    commit = repo.commit("Break the web config")
    checked = host.reconcile(repo, *vault, check=True, **settings)
    assert checked.report["check_mode"] is True and checked.report["services"]["web"]["action"] == "deployed"
    assert hook.count() == 0 and mail.count() == 0 and not hang.accepted, "check mode tells nobody"
    broken = host.reconcile(repo, *vault, **settings)
    assert broken.rc != 0
    report = broken.report
    assert report["services"]["web"]["action"] == "rolled_back"
    lines = report["services"]["web"]["failure_log"]["lines"]
    assert any("boom: config missing" in line for line in lines), report["services"]["web"]
    assert any(line.endswith(f"starting with {MASK}") for line in lines), "the container printed the vault secret: redacted"
    assert hook.count() == 1 and mail.count() == 1, "one message per run and receiver"
    body = hook.items[0]["json"]
    text = body["title"] + "\n" + body["message"]
    for expected in (
        f"run: {report['run_id']} (trigger cli",
        f"commit: {commit[:12]} Break the web config",
        "web: rolled_back (changed)",
        "boom: config missing",
    ):
        assert expected in text, text
    assert f"host: {socket.gethostname()}" in text
    assert "status page: http://status.example.org:8095/" in text
    assert body["type"] == "failure"
    assert "boom: config missing" in mail_text(mail.items[0]) and "rolled_back" in mail_text(mail.items[0])
    assert mail.items[0]["to"] == ["ops@example.org"]

    by_scheme = [(n["url_scheme"], n["ok"]) for n in report["notifications"]]
    assert by_scheme == [("json", True), ("mailto", True), ("json", False), ("json", False)], report["notifications"]
    assert report["notifications"][3]["error"].startswith(f"no answer within {TIMEOUT:g}s"), report["notifications"][3]
    assert report["notifications"][2]["error"], "the receiver that is down: an error text"
    # The hanging receiver held the run at most the notify timeout: the report was written soon after it connected.
    (accepted,) = hang.accepted
    written = (host.state_dir / "last-run.json").stat().st_mtime
    assert written - accepted < TIMEOUT + 2, (written - accepted, "a hanging receiver delayed the deploy")
    assert "notification (json) not delivered" in broken.stdout, "the failed delivery is logged as a warning"

    again = host.reconcile(repo, *vault, **settings)
    assert again.rc != 0
    assert again.report["services"]["web"]["action"] == "rolled_back"
    assert hook.count() == 1 and mail.count() == 1, "the same failure on the next tick is not told again"
    assert again.report.get("notifications", []) == []

    secret_service(repo, port, password)
    repo.commit("Fix the web config")
    fixed = host.reconcile(repo, *vault, **settings)
    assert fixed.rc == 0, fixed
    assert hook.count() == 2 and mail.count() == 2
    recovered = hook.items[1]["json"]
    assert "web recovered" in recovered["title"] and recovered["type"] == "success", recovered
    # The fix is the version the rollback put back: nothing to deploy, and the service is well again.
    assert "web: unchanged (unchanged), recovered" in recovered["message"], recovered["message"]

    everything = b"".join(item["raw"] for item in hook.items + mail.items) + hang.raw
    everything += b"".join(p.read_bytes() for p in (host.state_dir / "runs").iterdir())
    for secret in (SECRET, NTFY_TOKEN):
        assert secret.encode() not in everything, f"{secret} reached a receiver or a report"
        for run in (first, broken, again, fixed):
            assert secret not in run.stdout + run.stderr


# -- commit status ----------------------------------------------------------------------------------------

STATES = {"github": {"pending", "success", "failure", "error"}, "gitea": {"pending", "success", "error", "failure", "warning"}}
STATES["gitlab"] = {"pending", "running", "success", "failed", "canceled"}


class StatusApi:
    """Stand-in for the statuses endpoints (the real hosts are unreachable from here):
    GitHub   POST /repos/{owner}/{repo}/statuses/{sha}        Authorization: Bearer|token <t>; state, target_url, description, context
    Gitea    POST /api/v1/repos/{owner}/{repo}/statuses/{sha} Authorization: token <t>;        same fields
    GitLab   POST /api/v4/projects/{id}/statuses/{sha}        PRIVATE-TOKEN: <t>;              state, name, target_url, description
    Anything else (path, header, field, state, a description over 140 characters) is refused as the real API would."""

    def __init__(self, provider: str, token: str, repository: str) -> None:
        self.got = Recorder()
        self.errors: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                problem = api.check(provider, token, repository, self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                if problem:
                    api.errors.append(problem)
                    self.send_response(401 if "auth" in problem else 422)
                    payload = json.dumps({"message": problem}).encode()
                else:
                    api.got.add({"path": self.path, "json": json.loads(raw), "raw": raw})
                    self.send_response(201)
                    payload = b"{}"
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: t.Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def check(provider: str, token: str, repository: str, path: str, headers: dict[str, str], raw: bytes) -> str | None:
        """Why the real API would refuse this request (``headers`` by lower-case name), or None."""
        if provider == "github":
            prefix, auth = f"/repos/{repository}/statuses/", headers.get("authorization", "")
            if auth not in (f"Bearer {token}", f"token {token}"):
                return "auth: bad credentials"
        elif provider == "gitea":
            prefix, auth = f"/api/v1/repos/{repository}/statuses/", headers.get("authorization", "")
            if auth != f"token {token}":
                return "auth: bad credentials"
        else:
            prefix = f"/api/v4/projects/{repository.replace('/', '%2F')}/statuses/"
            if headers.get("private-token") != token:
                return "auth: 401 Unauthorized"
        if not path.startswith(prefix) or len(path[len(prefix) :]) != 40:
            return f"not found: {path}"
        try:
            body = json.loads(raw)
        except ValueError:
            return "body is not JSON"
        allowed = {"state", "target_url", "description", "name" if provider == "gitlab" else "context"}
        if set(body) - allowed or body.get("state") not in STATES[provider]:
            return f"invalid fields: {sorted(body)} state {body.get('state')}"
        if len(body.get("description") or "") > 140:
            return "description too long"
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def calls(api: StatusApi, provider: str) -> list[tuple[str, str, str]]:
    name = "name" if provider == "gitlab" else "context"
    return [(item["path"].rsplit("/", 1)[1], item["json"]["state"], item["json"][name]) for item in api.got.items]


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_commit_status_pending_then_final_only_for_new_commits_and_changes(provider: str, host: Host, repo: EnvRepo, tmp_path: Path):
    repository = "acme/env-repo"
    api = StatusApi(provider, TOKEN, repository)
    token_file = tmp_path / "status-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    status = {"provider": provider, "repository": repository, "api_url": api.url}
    if provider == "github":
        status["token"] = TOKEN  # from ansible-vault in real life
    else:
        status["token_file"] = str(token_file)
    status_url = "http://podops.example.org:8095"
    settings = {"podops_commit_status": status, "podops_status_url": status_url, "podops_notify_timeout": TIMEOUT}
    failure = "failed" if provider == "gitlab" else "failure"
    context = f"podops/{socket.gethostname()}"
    try:
        port = free_port()
        repo.add_web("web", port)
        good = repo.commit("first")
        run = host.reconcile(repo, **settings)
        assert run.rc == 0, run
        assert api.errors == []
        assert calls(api, provider) == [(good, "pending", context), (good, "success", context)]
        final = api.got.items[1]["json"]
        assert final["description"] == "1 deployed"
        assert final["target_url"] == f"{status_url}/"
        assert api.got.items[0]["json"]["description"] == "podops is deploying this commit"
        assert [n["ok"] for n in run.report["notifications"]] == [True, True]

        noop = host.reconcile(repo, **settings)
        assert noop.rc == 0
        assert api.got.count() == 2, "a no-op tick posts no status"

        repo.write("services/web/compose.yaml", web_service(port, image="localhost/podops-does-not-exist:1"))
        bad = repo.commit("missing image")
        failed = host.reconcile(repo, **settings, podops_trigger="webhook", podops_run_id="hook-run-1")
        assert failed.rc != 0
        assert calls(api, provider)[2:] == [(bad, "pending", context), (bad, failure, context)]
        assert api.got.items[3]["json"]["description"] == "1 failed"
        assert api.got.items[3]["json"]["target_url"] == f"{status_url}/#run-hook-run-1", "a webhook run links to its entry on the status page"

        retry = host.reconcile(repo, **settings)
        assert retry.rc != 0
        assert api.got.count() == 4, "the same failure on the same commit is not posted again"

        raw = b"".join(item["raw"] for item in api.got.items)
        reports = b"".join(p.read_bytes() for p in (host.state_dir / "runs").iterdir())
        assert TOKEN.encode() not in raw + reports
        for done in (run, noop, failed, retry):
            assert TOKEN not in done.stdout + done.stderr
    finally:
        api.close()


def test_commit_status_refused_is_recorded_and_the_deploy_goes_on(host: Host, repo: EnvRepo):
    api = StatusApi("github", TOKEN, "acme/env-repo")
    try:
        repo.add_web("web", free_port())
        repo.commit("first")
        status = {"provider": "github", "repository": "acme/env-repo", "api_url": api.url, "token": "wrong-token-123"}
        run = host.reconcile(repo, podops_commit_status=status, podops_notify_timeout=TIMEOUT)
        assert run.rc == 0, run
        assert run.report["services"]["web"]["action"] == "deployed"
        (pending, final) = run.report["notifications"]
        assert (pending["kind"], pending["state"], pending["ok"]) == ("commit_status", "pending", False)
        assert final["error"] == "HTTP 401 Unauthorized: auth: bad credentials", final
        assert "wrong-token-123" not in run.stdout + json.dumps(run.report)
    finally:
        api.close()


def test_fast_lane_and_fetch_failures_tell_the_same_people(host: Host, repo: EnvRepo, tmp_path: Path, receivers):
    """podops-pull's fast lane skips the playbook, and a fetch that fails never reaches it: both notify with the
    settings of the last full run."""
    port = free_port()
    repo.write("local.yml", "- name: Reconcile\n  hosts: localhost\n  gather_facts: false\n  roles: [podops.gitops.reconcile]\n")
    repo.add_web("web", port, xpodops=FAST)
    repo.commit("first")
    pull = Pull(host, repo, tmp_path)
    hook = receivers["hook"].got
    notify = json.dumps({"podops_notify_urls": urls(receivers)[:1], "podops_notify_timeout": TIMEOUT})

    full = pull("-e", notify)
    assert full.returncode == 0, full.stdout + full.stderr
    assert "full playbook run" in path_taken(full)
    assert hook.count() == 0

    repo.write("services/web/compose.yaml", web_service(port, xpodops=FAST, health='["CMD", "false"]'))
    repo.commit("unhealthy web")
    lane = pull("-e", notify)
    assert path_taken(lane).startswith("fast lane"), lane.stdout
    assert lane.returncode != 0
    report = json.loads((host.state_dir / "last-run.json").read_text())
    assert report["fast_lane"] is True and report["services"]["web"]["action"] == "rolled_back"
    assert hook.count() == 1
    assert "fast lane" in hook.items[0]["json"]["message"] and "web rolled back" in hook.items[0]["json"]["title"]
    assert report["notifications"] == [{"kind": "notification", "url_scheme": "json", "ok": True, "error": None}]
    assert (host.state_dir / "notify.json").stat().st_mode & 0o077 == 0, "the saved settings are the owner's only"
    assert sh("cat", str(host.state_dir / "engine.json")).stdout.count(NTFY_TOKEN) == 0, "the lane record holds no secret"

    config = json.loads(pull.config.read_text())
    config["repo_url"] = str(tmp_path / "moved-away")
    pull.config.write_text(json.dumps(config))
    unreachable = pull("-e", notify)
    assert unreachable.returncode == 1
    failed = json.loads((host.state_dir / "last-run.json").read_text())
    assert "cannot fetch the env repo" in failed["error"]
    assert hook.count() == 2, unreachable.stdout + unreachable.stderr
    told = hook.items[1]["json"]
    assert "run failed" in told["title"] and "cannot fetch the env repo" in told["message"], told
    assert failed["notifications"][0]["ok"] is True
    again = pull("-e", notify)
    assert again.returncode == 1
    assert hook.count() == 2, "the same fetch failure on the next tick is not told again"


def test_redeploy_of_a_broken_image_is_told(published, repo: EnvRepo, receivers):  # noqa: F811 - the fixture
    """podops.gitops.redeploy (a new image was published) tells like a reconcile ('published': v1 of a registry
    image deployed as service 'app')."""
    host, registry, name, _port = published
    hook = receivers["hook"].got
    registry.push("localhost/podops-demo:3", name)  # never gets healthy
    run = host.redeploy(repo, "app", podops_notify_urls=urls(receivers)[:2], podops_notify_timeout=TIMEOUT)
    assert run.rc != 0
    assert run.report["services"]["app"]["action"] == "rolled_back"
    assert hook.count() == 1 and receivers["mail"].got.count() == 1
    message = hook.items[0]["json"]
    assert "app rolled back" in message["title"]
    assert "- app: rolled_back (image): new image for web failed" in message["message"], message["message"]
