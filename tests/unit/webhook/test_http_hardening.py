# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shim's HTTP surface against hostile input, in-process: each test is the regression test of one
hardening item (docs/webhook.md, "Security model"). The same cases run against the real process, over real
sockets, in tests/integration/test_webhook_hostile.py."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys

import pytest
from podops_webhook import logs, verify
from podops_webhook.config import ConfigError, load
from podops_webhook.store import Store
from podops_webhook.verify import signature_hex
from shimtest import records, run_app

TOKEN = "s3cr3t-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def signed(body: bytes, event: str | None = "push", delivery: str | None = "d-1", secret: bytes = b"s3cr3t") -> dict:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + signature_hex(secret, body)}
    if event:
        headers["X-GitHub-Event"] = event
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    return headers


async def raw(client, data: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (aiohttp's client would refuse them) and read the answer's status and body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _sep, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def nothing_stored(store: Store, tmp_path) -> None:
    assert store.db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0, "a delivery was recorded"
    assert store.runs() == [], "a run was queued"
    assert records(tmp_path) == [], "the deploy command ran"


# 1 ------------------------------------------------------------------ deeply nested JSON
@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"a":' * 50_000, b"[" * 150 + b"]" * 150, b'{"x": ' + b"[" * 150 + b"]" * 150 + b"}"],
    ids=["arrays-100k", "objects-50k", "arrays-150", "object-holding-150"],
)
def test_deeply_nested_json_is_400_not_500(setup, body):
    config, store, worker = setup()

    async def probe(client):
        response = await client.post("/hooks/github", data=body, headers=signed(body))
        return response.status, await response.json()

    status, answer = run_app(config, store, worker, probe)
    assert status == 400 and "nest" in answer["error"], answer
    nothing_stored(store, setup.tmp)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"a": 1}'.encode("utf-16"), "UTF-8"),
        (b'{"ref": "\xff"}', "UTF-8"),
        (b'{"n": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b'"just a string"', "JSON object"),
    ],
    ids=["utf-16", "invalid-utf-8", "huge-integer", "bom", "string"],
)
def test_bodies_that_are_not_a_utf8_json_object_are_400(setup, body, fragment):
    config, store, worker = setup()

    async def probe(client):
        response = await client.post("/hooks/github", data=body, headers=signed(body))
        return response.status, await response.json()

    status, answer = run_app(config, store, worker, probe)
    assert status == 400 and fragment in answer["error"], answer
    nothing_stored(store, setup.tmp)


def test_payload_strings_with_lone_surrogates_are_answered_not_500(setup):
    """JSON may escape a lone surrogate (\\ud800): valid JSON, not storable as UTF-8 until escaped."""
    config, store, worker = setup()
    body = b'{"ref": "refs/heads/\\ud800", "after": "\\udfff"}'

    async def probe(client):
        response = await client.post("/hooks/github", data=body, headers=signed(body))
        return response.status, await response.json()

    status, answer = run_app(config, store, worker, probe)
    assert status == 200 and answer["status"] == "ignored", answer
    assert store.runs() == [] and records(setup.tmp) == []


# 2 ------------------------------------------------------------------ every method is guarded
PROTECTED = ("/", "/api/status", "/api/runs", "/api/runs/RUN", "/api/runs/nope", "/metrics", "/api", "/api/")


def test_every_method_on_protected_paths_needs_the_token(setup):
    marker = setup.tmp / "podman-called"
    podman = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x'); print('[]')"]
    config, store, worker = setup(podman_command=podman)
    store.create_run("RUN", "webhook", None)

    async def probe(client):
        found = {}
        for method in ("HEAD", "GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            for path in PROTECTED:
                response = await client.request(method, path, allow_redirects=False)
                found[method, path] = response.status
        return found

    found = run_app(config, store, worker, probe)
    assert set(found.values()) == {401}, {key: code for key, code in found.items() if code != 401}
    assert not marker.exists(), "an anonymous request made the shim query podman"


def test_head_with_the_token_answers_like_get(setup):
    config, store, worker = setup(podman_command=["true"])

    async def probe(client):
        return [(await client.head(path, headers=BEARER)).status for path in ("/", "/api/status", "/api/runs", "/metrics")]

    assert run_app(config, store, worker, probe) == [200, 200, 200, 200]


# 3 ------------------------------------------------------------------ non-UTF-8 tokens
@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer \xff\xfe",
        b"Authorization: \xffBearer x",
        b"Cookie: podops_status_token=\xff\xfe",
        b"Cookie: \xff=\xff; podops_status_token=\xc3",
    ],
    ids=["bearer", "scheme", "cookie", "cookie-name"],
)
def test_non_utf8_token_is_401_not_500(setup, header):
    config, store, worker = setup()

    async def probe(client):
        return await raw(client, b"GET /api/status HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n")

    status, _body = run_app(config, store, worker, probe)
    assert status == 401


# 4 ------------------------------------------------------------------ log injection
def test_request_data_reaches_the_log_escaped(setup, caplog):
    config, store, worker = setup(seed_routes=True)
    body = b'{"action": "published"}'

    async def probe(client):
        codes = [(await client.post("/redeploy-and-update/web%0D%0AWARNING%20forged", data=body, headers=signed(body, secret=b"wrong"))).status]
        event = "push\r\nWARNING forged"
        codes.append((await raw(client, b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[0])
        headers = {**signed(body, event=None), "X-GitHub-Event": event.replace("\r\n", " ")}
        codes.append((await client.post("/hooks/github", data=body, headers=headers)).status)
        push = json.dumps({"ref": "refs/heads/x\r\nWARNING forged\u2028\x1b[31m", "after": "1" * 40}).encode()
        codes.append((await client.post("/hooks/github", data=push, headers=signed(push, delivery="d-2"))).status)
        return codes

    with caplog.at_level(logging.INFO, logger="podops_webhook"):
        codes = run_app(config, store, worker, probe)
    assert codes == [401, 415, 200, 200]
    lines = [logs.SafeFormatter("%(levelname)s %(message)s").format(record) for record in caplog.records]
    assert any("forged" in line for line in lines), lines
    for line in lines:
        assert "\r" not in line and "\n" not in line and "\u2028" not in line and "\x1b" not in line, line


def test_the_formatter_is_a_safety_net_for_any_logger():
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "bad %s", ("x\r\nERROR forged",), None)
    try:
        raise ValueError("boom\nERROR forged too")
    except ValueError:
        record.exc_info = sys.exc_info()
    text = logs.SafeFormatter("%(levelname)s %(message)s").format(record)
    assert text.splitlines()[0] == "ERROR bad x\\r\\nERROR forged"
    assert all(not line.startswith("ERROR forged") for line in text.splitlines()), text


def test_clean_escapes_and_caps():
    assert logs.clean("a\r\nb\x00\x1b\u2028\udcff") == "a\\r\\nb\\x00\\x1b\\u2028\\udcff"
    assert len(logs.clean("x" * 1000)) <= 203


# 5 ------------------------------------------------------------------ the delivery table is bounded
def test_delivery_ids_are_bounded_by_count_and_age_and_pings_cannot_evict_runs(tmp_path):
    store = Store(str(tmp_path / "db.sqlite3"), keep_days=7, max_deliveries=200)
    store.claim_delivery("run-1", "github", "push", "/hooks/github", "queued", "push", None)
    for index in range(1000):  # a flood of signed pings
        store.claim_delivery(f"ping-{index}", "github", "ping", "/hooks/github", "ping", "pong", None)
    count = store.db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    assert count <= 1 + store.max_ignorable + store.PRUNE_EVERY, count
    assert store.delivery("run-1") is not None, "the flood evicted the id of a delivery that started a run"
    assert store.claim_delivery("run-1", "github", "push", "/hooks/github", "queued", "push", None) == "queued", "replay not recognised"
    for index in range(400):
        store.claim_delivery(f"run-{index + 2}", "github", "push", "/hooks/github", "queued", "push", None)
    assert store.db.execute("SELECT COUNT(*) FROM deliveries WHERE decision = 'queued'").fetchone()[0] <= 200 + store.PRUNE_EVERY
    store.db.execute("UPDATE deliveries SET received = '2000-01-01T00:00:00.000000Z'")
    store.prune_deliveries()
    assert store.db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0


# 6 ------------------------------------------------------------------ one secret per provider
def _config(tmp_path, text: str):
    for name, value in (("one", "s3cr3t"), ("two", "other"), ("three", "s3cr3t")):
        (tmp_path / name).write_text(value + "\n")
        (tmp_path / name).chmod(0o600)
    (tmp_path / "cfg.yml").write_text(text.replace("DIR", str(tmp_path)))
    return load(str(tmp_path / "cfg.yml"))


@pytest.mark.parametrize(
    "text",
    [
        "provider_secret_files: {github: DIR/one, gitlab: DIR/one}\n",
        "provider_secret_files: {github: DIR/one, gitlab: DIR/three}\n",  # another file, the same secret
        "secret_file: DIR/one\nprovider_secret_files: {github: DIR/two}\n",  # gitlab falls back to the shared one, as gitea does
    ],
    ids=["same-file", "same-content", "shared-fallback"],
)
def test_gitlab_token_equal_to_another_providers_secret_is_refused(tmp_path, monkeypatch, text):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="gitlab"):
        _config(tmp_path, text)


def test_legacy_shared_secret_still_loads_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = _config(tmp_path, "secret_file: DIR/one\n")
    assert set(config.secrets) == {"github", "gitea", "forgejo", "gitlab"}
    assert any("gitlab" in warning.lower() and "provider_secret_files" in warning for warning in config.warnings), config.warnings


def test_a_provider_without_a_secret_is_404_not_500(setup):
    config, store, worker = setup(secret_file="", provider_secret_files={"github": str(setup.tmp / "secret")})
    body = b"{}"

    async def probe(client):
        response = await client.post("/hooks/gitlab", data=body, headers={"Content-Type": "application/json", "X-Gitlab-Token": "s3cr3t"})
        return response.status, await response.json()

    status, answer = run_app(config, store, worker, probe)
    assert status == 404 and "provider_secret_files" in answer["error"]
    nothing_stored(store, setup.tmp)


# 7 ------------------------------------------------------------------ seed routes are opt-in
def test_seed_routes_are_off_by_default(setup):
    config, store, worker = setup()
    body = b'{"action": "published"}'

    async def probe(client):
        found = []
        for method, path in (("POST", "/deploy-all-changed"), ("POST", "/redeploy-and-update/web"), ("GET", "/deploy-all-changed")):
            response = await client.request(method, path, data=body, headers=signed(body, event=None, delivery=None))
            found.append((response.status, (await response.json())["error"]))
        return found

    for status, error in run_app(config, store, worker, probe):
        assert status == 404 and "seed_routes" in error and "podops_webhook_seed_routes" in error
    nothing_stored(store, setup.tmp)


# 8 ------------------------------------------------------------------ the token in a query string
def test_query_token_only_on_the_page_and_only_to_set_a_strict_secure_cookie(setup):
    config, store, worker = setup()

    async def probe(client):
        found = {path: (await client.get(f"{path}?token={TOKEN}", allow_redirects=False)).status for path in ("/api/status", "/api/runs", "/metrics")}
        found["head-page"] = (await client.head(f"/?token={TOKEN}", allow_redirects=False)).status
        login = await client.get(f"/?token={TOKEN}", allow_redirects=False)
        found["login"] = login.status
        found["cookie"] = login.headers["Set-Cookie"]
        found["location"] = login.headers["Location"]
        return found

    found = run_app(config, store, worker, probe)
    assert found["/api/status"] == found["/api/runs"] == found["/metrics"] == 401
    assert found["head-page"] == 401
    assert found["login"] == 303 and found["location"] == "/" and TOKEN not in found["location"]
    attributes = {part.strip().split("=")[0].lower() for part in found["cookie"].split(";")}
    assert {"httponly", "secure", "samesite"} <= attributes and "SameSite=Strict" in found["cookie"], found["cookie"]


# 9 ------------------------------------------------------------------ no length leak in token compares
def test_token_compares_see_only_equal_length_digests(monkeypatch):
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(verify.hmac, "compare_digest", spy)
    assert not verify.same_secret("short", b"a-much-longer-secret-value")
    assert verify.same_secret("a-much-longer-secret-value", b"a-much-longer-secret-value")
    assert not verify.same_secret("\udcff", b"x")
    with pytest.raises(verify.AuthError):
        verify.verify("gitlab", {"X-Gitlab-Token": "x"}, b"{}", b"a-much-longer-secret-value")
    assert seen and all(pair == (32, 32) for pair in seen), seen


# 10 ----------------------------------------------------------------- CSP and security headers
def test_page_has_a_nonce_csp_and_every_answer_the_security_headers(setup):
    config, store, worker = setup(podman_command=["true"])

    async def probe(client):
        page = await client.get("/", headers=BEARER)
        others = [await client.get(path, headers=BEARER) for path in ("/api/status", "/metrics", "/health")]
        others.append(await client.get("/api/status"))  # a 401 too
        script = await client.get("/static/localtime.js")
        others.append(script)
        return page.headers, await page.text(), [response.headers for response in others], await script.text()

    headers, html, others, script = run_app(config, store, worker, probe)
    csp = headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<style nonce="{nonce}">' in html and html.count("<style") == 1 and " style=" not in html
    # one script, a file of the shim's own (no inline script: the CSP has no nonce or hash for one)
    assert html.count("<script") == 1 and '<script src="/static/localtime.js" defer></script>' in html
    assert "script-src 'self'" in csp and "script-src 'nonce" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert others[-1]["Content-Type"].startswith("text/javascript") and "time[datetime]" in script
    for each in [headers, *others]:
        assert each["X-Content-Type-Options"] == "nosniff" and each["Referrer-Policy"] == "no-referrer" and each["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in each["Content-Security-Policy"]


# 11 ----------------------------------------------------------------- /health tells no paths or errors
@pytest.mark.parametrize("marker", ["{oops", "dir"], ids=["bad-json", "a-directory"])
def test_health_errors_print_no_path_or_exception(setup, marker):
    config, store, worker = setup(slot="a", listen={"a": "127.0.0.1:1", "b": "127.0.0.1:2"})
    path = setup.tmp / "state" / "ab" / "webhook.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if marker == "dir":
        path.mkdir()
    else:
        path.write_text(marker)

    async def probe(client):
        response = await client.get("/health")
        return response.status, await response.text()

    status, text = run_app(config, store, worker, probe)
    assert status == 503 and json.loads(text)["status"] == "unknown"
    assert str(setup.tmp) not in text and "Errno" not in text and "Expecting" not in text and "webhook.json" not in text, text


# 12 ----------------------------------------------------------------- bad headers are 4xx, nothing stored
@pytest.mark.parametrize(
    "header",
    [b"X-GitHub-Event: push\xff", b"X-GitHub-Event: " + b"p" * 100, b"X-GitHub-Delivery: \xff\xfe", b"X-Hub-Signature-256: sha256=\xff"],
    ids=["event-not-utf8", "event-too-long", "delivery-not-utf8", "signature-not-utf8"],
)
def test_bad_header_bytes_are_4xx_and_store_nothing(setup, header):
    config, store, worker = setup()
    body = json.dumps({"ref": "refs/heads/main", "after": "1" * 40}).encode()
    head = b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
    name = header.split(b":", 1)[0]
    base = {b"X-GitHub-Event": b"push", b"X-GitHub-Delivery": b"d-9", b"X-Hub-Signature-256": b"sha256=" + signature_hex(b"s3cr3t", body).encode()}
    lines = b"".join(key + b": " + value + b"\r\n" for key, value in base.items() if key != name) + header + b"\r\n"

    async def probe(client):
        return await raw(client, head + lines + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    status, _body = run_app(config, store, worker, probe)
    assert 400 <= status < 500, status
    nothing_stored(store, setup.tmp)
