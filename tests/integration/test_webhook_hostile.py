"""Hostile input against the real shim process on a loopback port of its own: signatures, bodies, content
types, routes and methods, headers, tokens, slow clients, floods, replays, and what reaches the log.

After every hostile request: the expected status, no new delivery row and no new run in the shim's SQLite
database, no deploy command started (the recorder writes record.jsonl) and, for anonymous requests, no
podman query (the configured podman command writes a marker). Raw sockets send what urllib refuses to
(CR/LF, non-UTF-8 bytes, trickled bytes). Waiting is done by polling with a deadline, never by sleeping
for a timer to pass.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sqlite3
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_webhook_gate import make_repo, recorded, recorder
from webhook_helpers import OMIT, Shim, github_push, request, sign, write_secret

SECRETS = {"github": b"gh-hostile-secret", "gitea": b"gitea-hostile-secret", "forgejo": b"forgejo-hostile-secret", "gitlab": b"gitlab-hostile-token"}
TOKEN = b"hostile-status-token-0123456789"
MAX_BODY = 65536
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 3.0
MAX_UNVERIFIED = 3
LINGER_SECONDS = 2.0  # podops_webhook.__main__.LINGER_SECONDS: how long aiohttp drains an unread body after an answer


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    repo = make_repo(base / "repo")
    state = base / "state"
    files = {name: str(write_secret(base / f"{name}.secret", value)) for name, value in SECRETS.items()}
    marker = base / "podman-called"
    podman = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x\\n'); print('[]')"]
    shim = Shim(
        base / "shim",
        reconcile_command=recorder(base, state),
        repo_dir=repo,
        state_dir=state,
        provider_secret_files=files,
        status_token_file=str(write_secret(base / "status.token", TOKEN)),
        podman_command=podman,
        max_body_bytes=MAX_BODY,
        header_timeout_seconds=HEADER_TIMEOUT,
        body_timeout_seconds=BODY_TIMEOUT,
        max_unverified_requests=MAX_UNVERIFIED,
        seed_routes=True,
    )
    shim.start()
    shim.record_base = base
    shim.podman_marker = marker
    yield shim
    assert shim.stop() == 0, shim.log()


# ---------------------------------------------------------------- what "nothing happened" means
def db_counts(shim: Shim) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(f"file:{shim.config['db_path']}?mode=ro", uri=True)) as db:
        return db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0], db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


@contextlib.contextmanager
def changes_nothing(shim: Shim, anonymous: bool = True, deliveries: int = 0):
    before = db_counts(shim)
    yield
    assert db_counts(shim) == (before[0] + deliveries, before[1]), "a delivery row or a run was added"
    assert recorded(shim.record_base) == [], "the deploy command ran"
    if anonymous:
        assert not shim.podman_marker.exists(), "an anonymous request made the shim query podman"
    assert shim.proc.poll() is None, shim.log()


# ---------------------------------------------------------------- raw HTTP
def raw(shim: Shim, data: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send bytes as they are, read until the server closes; (status, body), status 0 when it said nothing."""
    with socket.create_connection(("127.0.0.1", shim.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    answer = b"".join(chunks)
    if not answer:
        return 0, b""
    head, _sep, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def http(method: bytes, path: bytes, headers: list[bytes], body: bytes = b"") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *headers]
    if body or method == b"POST":
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def signed_push(extra: list[bytes] | None = None, body: bytes | None = None, skip: bytes = b"", path: bytes = b"/hooks/github") -> bytes:
    body = json.dumps(github_push()).encode() if body is None else body
    headers = {
        b"Content-Type": b"application/json",
        b"X-GitHub-Event": b"push",
        b"X-GitHub-Delivery": str(uuid.uuid4()).encode(),
        b"X-Hub-Signature-256": b"sha256=" + sign(body, SECRETS["github"]).encode(),
    }
    lines = [name + b": " + value for name, value in headers.items() if name != skip]
    return http(b"POST", path, lines + (extra or []), body)


# ---------------------------------------------------------------- signatures, bodies, content types
PUSH = github_push()
GH = SECRETS["github"]
NESTED = b"[" * 30_000
DEEP_OBJECTS = b'{"a":' * 10_000
# (id, path, post() keyword arguments, status, fragment of the answer)
SIGNED_MATRIX = [
    ("sig-missing", "/hooks/github", {"signature": OMIT}, 401, "missing X-Hub-Signature-256"),
    ("sig-wrong", "/hooks/github", {"signature": "sha256=" + "0" * 64}, 401, "does not match"),
    ("sig-bad-hex", "/hooks/github", {"signature": "sha256=" + "g" * 64}, 401, "64 hex digits"),
    ("sig-short", "/hooks/github", {"signature": "sha256=abc"}, 401, "64 hex digits"),
    ("sig-uppercase-prefix", "/hooks/github", {"signature": "SHA256=" + sign(json.dumps(PUSH).encode(), GH)}, 401, "sha256="),
    ("sig-uppercase-wrong-hex", "/hooks/github", {"signature": "sha256=" + "AB" * 32}, 401, "does not match"),
    ("sig-bare-hex-on-github", "/hooks/github", {"signature": sign(json.dumps(PUSH).encode(), GH)}, 401, "sha256="),
    ("sig-wrong-provider-header", "/hooks/github", {"provider": "gitea", "secret": SECRETS["gitea"]}, 401, "/hooks/gitea"),
    ("sig-github-headers-on-gitlab", "/hooks/gitlab", {"secret": GH}, 401, "missing X-Gitlab-Token"),
    ("sig-gitea-secret-on-github", "/hooks/github", {"secret": SECRETS["gitea"]}, 401, "does not match"),
    ("sig-gitlab-token-signs-github", "/hooks/github", {"secret": SECRETS["gitlab"]}, 401, "does not match"),
    ("sig-github-secret-as-gitlab-token", "/hooks/gitlab", {"provider": "gitlab", "event": "Push Hook", "secret": GH}, 401, "does not match"),
    ("sig-gitlab-token-prefix", "/hooks/gitlab", {"provider": "gitlab", "event": "Push Hook", "signature": "gitlab-hostile"}, 401, "does not match"),
    ("sig-forgejo-with-gitea-secret", "/hooks/forgejo", {"provider": "forgejo", "secret": SECRETS["gitea"]}, 401, "does not match"),
    ("sig-seed-route-wrong", "/deploy-all-changed", {"signature": "sha256=" + "1" * 64, "event": None}, 401, "does not match"),
    ("body-empty", "/hooks/github", {"payload": b""}, 400, "not valid JSON"),
    ("body-not-json", "/hooks/github", {"payload": b"hello"}, 400, "not valid JSON"),
    ("body-nested-arrays", "/hooks/github", {"payload": NESTED}, 400, "nested deeper"),
    ("body-nested-objects", "/hooks/github", {"payload": DEEP_OBJECTS}, 400, "nested deeper"),
    ("body-huge", "/hooks/github", {"payload": b'{"pad": "' + b"x" * (MAX_BODY + 1) + b'"}'}, 413, "max_body_bytes"),
    ("body-array", "/hooks/github", {"payload": b"[1, 2]"}, 400, "JSON object"),
    ("body-string", "/hooks/github", {"payload": b'"push"'}, 400, "JSON object"),
    ("body-null", "/hooks/github", {"payload": b"null"}, 400, "JSON object"),
    ("body-number", "/hooks/github", {"payload": b"1e999"}, 400, "JSON object"),
    ("body-invalid-utf8", "/hooks/github", {"payload": b'{"ref": "\xc3\x28"}'}, 400, "not UTF-8"),
    ("body-utf16", "/hooks/github", {"payload": json.dumps(PUSH).encode("utf-16")}, 400, "not UTF-8"),
    ("body-huge-integer", "/hooks/github", {"payload": b'{"n": ' + b"7" * 10000 + b"}"}, 400, "not valid JSON"),
    ("ctype-missing", "/hooks/github", {"content_type": ""}, 415, "application/json"),
    ("ctype-text", "/hooks/github", {"content_type": "text/plain"}, 415, "application/json"),
    ("ctype-form", "/hooks/github", {"payload": b"payload=%7B%7D", "content_type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ("ctype-multipart", "/hooks/github", {"content_type": "multipart/form-data; boundary=x"}, 415, "application/json"),
    ("ctype-lookalike", "/hooks/github", {"content_type": "application/jsonx"}, 415, "application/json"),
    ("delivery-missing", "/hooks/github", {"delivery": None}, 400, "delivery id"),
    ("delivery-bad-chars", "/hooks/github", {"delivery": "../../etc/passwd"}, 400, "delivery id"),
    ("event-non-ascii", "/hooks/github", {"event": "push\u00e9"}, 400, "event header"),
    ("service-traversal", "/redeploy-and-update/..%2F..%2Fetc", {"payload": {"action": "published"}, "event": None}, 404, "no service"),
    ("service-nul", "/redeploy-and-update/web%00", {"payload": {"action": "published"}, "event": None}, 404, "no service"),
    ("provider-unknown", "/hooks/bitbucket", {}, 404, "unknown provider"),
]


@pytest.mark.parametrize(("path", "kwargs", "status", "fragment"), [case[1:] for case in SIGNED_MATRIX], ids=[case[0] for case in SIGNED_MATRIX])
def test_hostile_deliveries_are_4xx_and_change_nothing(shim, path, kwargs, status, fragment):
    kwargs = dict(kwargs)
    payload = kwargs.pop("payload", PUSH)
    provider = kwargs.get("provider", "github")
    kwargs.setdefault("secret", SECRETS[provider])
    with changes_nothing(shim):
        response = shim.post(path, payload, **kwargs)
    assert response.status == status, response
    assert fragment in response.body.decode(), response


# ---------------------------------------------------------------- routes and methods
ROUTES = [
    "/hooks/github",
    "/hooks/gitlab",
    "/deploy-all-changed",
    "/redeploy-and-update/web",
    "/health",
    "/ready",
    "/",
    "/api/status",
    "/api/runs",
    "/api/runs/nope",
    "/metrics",
]
PROTECTED = {"/", "/api/status", "/api/runs", "/api/runs/nope", "/metrics"}


def expected(method: str, path: str) -> int:
    if path in PROTECTED:
        return 401  # anonymous: whatever the method, the token first
    if path in ("/health", "/ready") and method in ("GET", "HEAD"):
        return 200
    return 405  # POST routes answer only POST; /health and /ready only GET/HEAD


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"])
def test_every_method_on_every_route(shim, method):
    with changes_nothing(shim):
        found = {path: request(shim.url + path, data=b"{}" if method in ("PUT", "PATCH") else None, method=method).status for path in ROUTES}
    assert found == {path: expected(method, path) for path in ROUTES}


@pytest.mark.parametrize(
    "path", ["/hooks", "/hooks/", "/hooks/github/", "/hooks/github/x", "/HOOKS/github", "/.env", "/api/runs/x/y", "/metricsx", "/%2e%2e/etc/passwd"]
)
def test_unknown_routes_are_4xx(shim, path):
    with changes_nothing(shim):
        response = request(shim.url + path, data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
    assert 400 <= response.status < 500 and response.status != 202, response


# ---------------------------------------------------------------- headers
HEADER_CASES = [
    ("crlf-in-value", signed_push(extra=[b"X-Test: a\rInjected: b"]), 400),
    ("lf-in-value", signed_push(extra=[b"X-Test: a\nX-GitHub-Event: ping"]), 400),
    ("obs-fold", signed_push(extra=[b"X-Test: a", b" folded"]), 400),
    ("nul-in-value", signed_push(extra=[b"X-Test: a\x00b"]), 400),
    ("oversized-value", signed_push(extra=[b"X-Test: " + b"a" * 9000]), 400),
    ("too-many-headers", signed_push(extra=[b"X-T%d: a" % index for index in range(200)]), 400),
    ("oversized-url", http(b"GET", b"/api/runs/" + b"a" * 9000, []), 400),
    ("non-utf8-event", signed_push(skip=b"X-GitHub-Event", extra=[b"X-GitHub-Event: push\xff"]), 400),
    ("non-utf8-signature", signed_push(skip=b"X-Hub-Signature-256", extra=[b"X-Hub-Signature-256: sha256=\xff\xfe"]), 401),
    ("non-utf8-delivery", signed_push(skip=b"X-GitHub-Delivery", extra=[b"X-GitHub-Delivery: \xff"]), 400),
    ("two-content-lengths", signed_push(extra=[b"Content-Length: 5"]), 400),
    ("chunked-and-length", signed_push(extra=[b"Transfer-Encoding: chunked"]), 400),
    ("space-before-colon", signed_push(extra=[b"X-GitHub-Event : ping"]), 400),
    ("bad-chunked", http(b"POST", b"/hooks/github", [b"Content-Type: application/json", b"Transfer-Encoding: chunked"]) + b"zz\r\n{}\r\n0\r\n\r\n", 400),
    ("http-0.9", b"GET /\r\n\r\n", 400),
    ("lowercase-method", http(b"post", b"/hooks/github", [b"Content-Type: application/json"], b"{}"), 400),
]


@pytest.mark.parametrize(("data", "status"), [case[1:] for case in HEADER_CASES], ids=[case[0] for case in HEADER_CASES])
def test_hostile_headers_are_4xx(shim, data, status):
    with changes_nothing(shim):
        code, body = raw(shim, data)
    assert code == status or (status == 400 and 400 <= code < 500), (code, body[:300])


# ---------------------------------------------------------------- tokens
TOKEN_CASES = [
    ("query-on-api", "GET", "/api/status?token=" + TOKEN.decode(), [], 401),
    ("query-on-runs", "GET", "/api/runs?token=" + TOKEN.decode(), [], 401),
    ("query-on-metrics", "GET", "/metrics?token=" + TOKEN.decode(), [], 401),
    ("query-on-page-head", "HEAD", "/?token=" + TOKEN.decode(), [], 401),
    ("query-on-page-post", "POST", "/?token=" + TOKEN.decode(), [], 401),
    ("query-wrong-on-page", "GET", "/?token=nope", [], 401),
    ("query-empty-on-page", "GET", "/?token=", [], 401),
    ("bad-cookie", "GET", "/", [b"Cookie: podops_status_token=nope"], 401),
    ("cookie-prefix", "GET", "/api/status", [b"Cookie: podops_status_token=" + TOKEN[:10]], 401),
    ("cookie-garbage", "GET", "/api/status", [b'Cookie: ;;;="=\\; podops_status_token'], 401),
    ("cookie-non-utf8", "GET", "/api/status", [b"Cookie: podops_status_token=\xff\xfe"], 401),
    ("bearer-non-utf8", "GET", "/api/status", [b"Authorization: Bearer \xff\xfe\xfd"], 401),
    ("bearer-prefix", "GET", "/api/runs", [b"Authorization: Bearer " + TOKEN[:-1]], 401),
    ("bearer-longer", "GET", "/api/runs", [b"Authorization: Bearer " + TOKEN + b"x"], 401),
    ("bearer-empty", "GET", "/metrics", [b"Authorization: Bearer "], 401),
    ("basic-auth", "GET", "/metrics", [b"Authorization: Basic " + TOKEN], 401),
    ("token-as-header-name", "GET", "/api/status", [b"X-Token: " + TOKEN], 401),
]


@pytest.mark.parametrize(("method", "path", "headers", "status"), [case[1:] for case in TOKEN_CASES], ids=[case[0] for case in TOKEN_CASES])
def test_tokens_only_where_they_belong(shim, method, path, headers, status):
    with changes_nothing(shim):
        code, body = raw(shim, http(method.encode(), path.encode(), headers))
    assert code == status, (code, body[:300])
    assert TOKEN not in body


def test_the_page_trades_the_query_token_for_a_strict_cookie_and_runs_no_podman_for_anyone_else(shim):
    with changes_nothing(shim, anonymous=False):
        code, _body = raw(shim, http(b"GET", b"/?token=" + TOKEN, []))
    assert code == 303
    with socket.create_connection(("127.0.0.1", shim.port), timeout=10) as sock:
        sock.sendall(http(b"GET", b"/?token=" + TOKEN, []))
        head = sock.recv(65536).split(b"\r\n\r\n")[0].decode()
    cookie = next(line for line in head.split("\r\n") if line.lower().startswith("set-cookie:"))
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie, cookie
    location = next(line for line in head.split("\r\n") if line.lower().startswith("location:"))
    assert location.split(":", 1)[1].strip() == "/"


# ---------------------------------------------------------------- slow clients
def _closed_within(sock: socket.socket, data: bytes, seconds_per_byte: float, limit: float) -> tuple[float, bytes]:
    """Trickle ``data`` until the server closes the connection; (seconds it took, what it answered)."""
    start = time.monotonic()
    answer = b""
    for index in range(len(data) + 10**6):
        assert time.monotonic() - start < limit, f"still connected after {limit}s; answered {answer[:300]!r}"
        if index < len(data):
            try:
                sock.send(data[index : index + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
        readable, _w, _x = select.select([sock], [], [], seconds_per_byte)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    return time.monotonic() - start, answer


def test_a_client_trickling_its_headers_is_cut_off(shim):
    with changes_nothing(shim), socket.create_connection(("127.0.0.1", shim.port), timeout=30) as sock:
        took, answer = _closed_within(sock, signed_push(), seconds_per_byte=0.5, limit=HEADER_TIMEOUT + 5)
    assert took < HEADER_TIMEOUT + 2 and b"202" not in answer, (took, answer)


def test_a_client_that_sends_nothing_is_cut_off(shim):
    with changes_nothing(shim), socket.create_connection(("127.0.0.1", shim.port), timeout=30) as sock:
        took, _answer = _closed_within(sock, b"", seconds_per_byte=0.2, limit=HEADER_TIMEOUT + 5)
    assert took < HEADER_TIMEOUT + 2, took


def test_a_client_trickling_its_body_gets_408(shim):
    data = signed_push()
    head, body = data.split(b"\r\n\r\n", 1)
    with changes_nothing(shim), socket.create_connection(("127.0.0.1", shim.port), timeout=30) as sock:
        sock.sendall(head + b"\r\n\r\n")
        took, answer = _closed_within(sock, body, seconds_per_byte=0.5, limit=BODY_TIMEOUT + 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert took < BODY_TIMEOUT + LINGER_SECONDS + 2, took  # answered at BODY_TIMEOUT, closed after at most the linger time


# ---------------------------------------------------------------- floods
def unverified(shim: Shim) -> int:
    metrics = shim.get("/metrics").body.decode()
    return int(next(line for line in metrics.splitlines() if line.startswith("podops_webhook_unverified_in_flight ")).split()[1])


def wait_unverified(shim: Shim, want: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while (now := unverified(shim)) != want:
        assert time.monotonic() < deadline, f"{now} unverified requests in flight, not {want}"
        time.sleep(0.02)


def test_a_flood_of_unverified_requests_gets_503_beyond_the_cap(shim):
    held = []
    data = signed_push()
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    with changes_nothing(shim, anonymous=False):
        try:
            for _index in range(MAX_UNVERIFIED):
                sock = socket.create_connection(("127.0.0.1", shim.port), timeout=30)
                sock.sendall(head)  # headers, then not the body: in flight, unverified
                held.append(sock)
            wait_unverified(shim, MAX_UNVERIFIED)
            code, body = raw(shim, signed_push())
            assert code == 503 and b"max_unverified_requests" in body, (code, body)
        finally:
            for sock in held:
                sock.close()
        wait_unverified(shim, 0)
    pong = shim.post("/hooks/github", {"zen": "after the flood"}, event="ping", secret=GH)
    assert pong.status == 200 and pong.json["status"] == "pong", pong


# ---------------------------------------------------------------- replays
def test_replays_are_answered_duplicate_on_any_route_and_change_nothing(shim):
    body = json.dumps({"zen": "replay me", "hook_id": 7}).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping", "X-GitHub-Delivery": "replay-1", "X-Hub-Signature-256": "sha256=" + sign(body, GH)}
    with changes_nothing(shim, anonymous=False, deliveries=1):
        first = request(shim.url + "/hooks/github", data=body, headers=headers, method="POST")
    assert first.status == 200 and first.json["status"] == "pong", first
    with changes_nothing(shim, anonymous=False):
        for path in ("/hooks/github", "/hooks/github", "/deploy-all-changed", "/redeploy-and-update/web"):
            again = request(shim.url + path, data=body, headers=headers, method="POST")
            assert again.status == 200 and again.json["status"] == "duplicate", (path, again)


# ---------------------------------------------------------------- the log
def test_request_data_cannot_forge_log_lines(shim):
    forged = "WARNING forged"
    with changes_nothing(shim):
        assert shim.post("/redeploy-and-update/web%0D%0AWARNING%20forged", {"action": "published"}, event=None, signature="sha256=" + "0" * 64).status == 401
        assert raw(shim, signed_push(path=b"/hooks/github%0d%0aWARNING%20forged"))[0] == 404
        assert raw(shim, signed_push(skip=b"X-Hub-Signature-256", extra=[b"X-Hub-Signature-256: sha256=\r\nWARNING forged"]))[0] == 400
    # a valid delivery whose payload carries CR/LF, ANSI and U+2028 in what the log prints (its reason)
    push = {"ref": "refs/heads/x\r\nWARNING forged\u2028\u001b[31m", "after": "1" * 40}
    with changes_nothing(shim, anonymous=False, deliveries=1):
        assert shim.post("/hooks/github", push, secret=GH).status == 200
    deadline = time.monotonic() + 10
    while "forged" not in shim.log():
        assert time.monotonic() < deadline, shim.log()[-2000:]
        time.sleep(0.05)
    text = Path(shim.log_file).read_bytes().decode("utf-8", "replace")
    assert "\r" not in text and "\u2028" not in text and "\x1b" not in text
    assert not [line for line in text.split("\n") if line.startswith(forged) or line.startswith(("INFO forged", "ERROR forged"))], text[-3000:]
    assert "\\r\\nWARNING forged" in text, text[-3000:]
