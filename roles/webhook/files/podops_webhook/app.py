# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP surface: webhook routes, health, status page, JSON API and metrics.

A webhook is handled in this order, and each step answers on its own when it fails, with nothing stored
and nothing run: draining (503) -> route off or provider without a secret (404) -> content type (415) ->
too many unverified requests at once (503) -> body size (413) -> body read timeout (408) -> signature
(401) -> UTF-8 JSON object, nesting depth (400) -> delivery id and event header (400) -> service name
(404) -> event/action/branch (200 ignored, ping 200) -> replay (200 duplicate) -> queued (202 with the run
id). The signature is checked on the raw bytes before anything is parsed.

The status page, ``/api/*`` and ``/metrics`` need the status token for every method (HEAD included); the
token is taken from ``Authorization: Bearer`` or the cookie, and from a query string only on ``GET /``,
where it is traded for an HttpOnly, Secure, SameSite=Strict cookie. Every answer carries
Content-Security-Policy, X-Content-Type-Options, Referrer-Policy and X-Frame-Options. Request data reaches
the log only through ``logs.clean``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import ipaddress
import json
import logging
import os
import secrets
import typing as t
from dataclasses import dataclass

import jinja2
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from . import __version__
from .config import PROVIDERS, Config
from .events import Decision, classify
from .gitinfo import commit_link
from .host import Host, HostUnavailable
from .logs import clean
from .status import failure_log, services_view, url_link
from .store import Store
from .verify import DELIVERY_HEADERS, AuthError, delivery_id, event_name, same_secret, valid_delivery_id, valid_event_name, verify
from .worker import Worker

LOG = logging.getLogger("podops_webhook")
TOKEN_COOKIE = "podops_status_token"  # noqa: S105 - the cookie name, not a token
# Everything under these needs the status token, whatever the method; "/" (the page) too.
PROTECTED_PREFIXES = ("/api", "/metrics")
PROTECTED_ROUTES = ("/", "/api/status", "/api/runs", "/api/runs/{run_id}", "/metrics")
SEED_ROUTES = ("/deploy-all-changed", "/redeploy-and-update/{service}")
MAX_JSON_DEPTH = 64  # webhook payloads nest about 6 deep; json.loads alone stops at the recursion limit (500)
# Every answer; the status page replaces the CSP with one that lets its own (nonce) style block in.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# No inline script: the one script (times in the viewer's local time) is a fixed file served from here.
PAGE_CSP = "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
LOCALTIME_JS = "/static/localtime.js"

CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
STORE: web.AppKey[Store] = web.AppKey("store", Store)
WORKER: web.AppKey[Worker] = web.AppKey("worker", Worker)
HOST: web.AppKey[Host] = web.AppKey("host", Host)
COUNTERS: web.AppKey[collections.Counter] = web.AppKey("counters", collections.Counter)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates", jinja2.Environment)


@dataclass
class Gate:
    """Requests in flight whose signature is not checked yet (reading their body, or verifying it)."""

    unverified: int = 0
    health_error: str = ""  # the last /health problem logged, so a polling proxy does not flood the log


GATE: web.AppKey[Gate] = web.AppKey("gate", Gate)


class BadBody(ValueError):
    """The body is not a UTF-8 JSON object of sane depth (HTTP 400); the message says which."""


def _json(http_status: int, /, headers: dict | None = None, **body: t.Any) -> web.Response:
    return web.json_response(body, status=http_status, headers=headers, dumps=lambda data: json.dumps(data, sort_keys=True))


def parse_payload(raw: bytes) -> dict:
    """The body as a JSON object: strict UTF-8 (no UTF-16/32 guessing, no BOM), at most MAX_JSON_DEPTH deep."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"body is not UTF-8 (byte {exc.start}); webhooks send UTF-8 JSON") from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise BadBody(f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing a number of thousands of digits
        raise BadBody(f"body is not valid JSON: {exc}") from None
    if _depth_over(payload, MAX_JSON_DEPTH):
        raise BadBody(f"body is JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(payload, dict):
        raise BadBody("body must be a JSON object")
    return payload


def _depth_over(value: t.Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


# ---------------------------------------------------------------- health and A/B
async def health(config: Config, worker: Worker, host: Host, gate: Gate | None = None) -> tuple[int, dict]:
    """/health: no paths and no exception text in the answer (anyone may ask); the detail goes to the log."""
    if worker.draining:
        return 503, {"status": "draining", "slot": config.slot, "reason": "this instance is stopping; its run in progress finishes first"}
    if config.slot is None:
        return 200, {"status": "ok", "slot": None}
    marker, error = await host.marker()
    if error:
        if gate is not None and gate.health_error != error:  # once per new error, not once per probe
            gate.health_error = error
            LOG.warning("health: %s", clean(error, limit=500))
        return 503, {"status": "unknown", "slot": config.slot, "reason": "the A/B marker is unreadable; the shim's log says why"}
    if marker is None:
        return 200, {"status": "ok", "slot": config.slot, "marker": "absent"}
    active = marker.get("active")
    if active == config.slot:
        return 200, {"status": "ok", "slot": config.slot, "active": active}
    return 503, {"status": "standby", "slot": config.slot, "active": active, "reason": f"the A/B marker names slot {active!r} as active"}


async def handle_health(request: web.Request) -> web.Response:
    code, body = await health(request.app[CONFIG], request.app[WORKER], request.app[HOST], request.app[GATE])
    return _json(code, **body)


async def handle_ready(request: web.Request) -> web.Response:
    """200 once this instance serves and is not draining, active or not: what the A/B switch waits for
    before it makes a new instance the active one (whose /health then answers 200)."""
    config, worker = request.app[CONFIG], request.app[WORKER]
    if worker.draining:
        return _json(503, status="draining", slot=config.slot)
    return _json(200, status="ready", slot=config.slot)


# ---------------------------------------------------------------- webhooks
async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await request.read()  # aiohttp enforces client_max_size on chunked bodies too


def _unavailable(exc: Exception) -> web.Response:
    """Nothing stored, nothing run: the git host delivers again."""
    LOG.warning("delivery not taken: %s", clean(exc, limit=500))
    return web.json_response({"error": "podops cannot take this delivery right now; send it again"}, status=503, headers={"Retry-After": "30"})


def _rejected(request: web.Request, status: int, reason: str) -> None:
    LOG.warning("rejected %s %s from %s: %d %s", clean(request.method), clean(request.path), clean(request.remote), status, clean(reason))


async def _verified_body(request: web.Request, provider: str) -> bytes | web.Response:
    """The raw body once its signature is valid, or the answer saying why not. Counts as unverified while
    it runs: more than max_unverified_requests at once get 503 before anything is read."""
    app = request.app
    config, gate = app[CONFIG], app[GATE]
    if gate.unverified >= config.max_unverified_requests:
        _rejected(request, 503, "too many unverified requests at once")
        return _json(
            503, headers={"Retry-After": "5"}, error=f"more than max_unverified_requests ({config.max_unverified_requests}) unverified requests at once"
        )
    gate.unverified += 1
    try:
        try:
            raw = await asyncio.wait_for(_read_body(request, config.max_body_bytes), config.body_timeout_seconds)
        except web.HTTPRequestEntityTooLarge:
            return _json(413, error=f"body larger than max_body_bytes ({config.max_body_bytes} bytes)")
        except TimeoutError:
            _rejected(request, 408, "body not received in time")
            response = _json(408, error=f"the body did not arrive within body_timeout_seconds ({config.body_timeout_seconds:g} s)")
            response.force_close()
            return response
        except (RequestPayloadError, ConnectionError) as exc:
            _rejected(request, 400, f"body unreadable: {exc}")
            return _json(400, error="the body could not be read (broken chunked encoding or a connection cut short)")
        try:
            verify(provider, request.headers, raw, config.secrets[provider])
        except AuthError as exc:
            _rejected(request, 401, str(exc))
            return _json(401, error=str(exc))
        return raw
    finally:
        gate.unverified -= 1


async def _webhook(request: web.Request, provider: str, route: str, service: str | None = None) -> web.Response:
    app = request.app
    config, store, worker = app[CONFIG], app[STORE], app[WORKER]
    if worker.draining:
        return _json(503, headers={"Retry-After": "5"}, error="this instance is stopping; send again (the other slot takes it)")
    if provider not in config.secrets:
        return _json(404, error=f"no secret is configured for {provider}: set provider_secret_files.{provider} (or secret_file) in the config")
    if request.content_type != "application/json":
        return _json(415, error=f"content type {request.content_type or 'none'!r} is not accepted: set the webhook's content type to application/json")
    raw = await _verified_body(request, provider)
    if isinstance(raw, web.Response):
        return raw
    try:
        payload = parse_payload(raw)
    except BadBody as exc:
        return _json(400, error=str(exc))
    delivery = delivery_id(provider, request.headers)
    if delivery is None and route.startswith("/hooks/"):
        return _json(400, error=f"no delivery id header ({', '.join(DELIVERY_HEADERS[provider])}); it is needed to recognise replays")
    if delivery is not None and not valid_delivery_id(delivery):
        return _json(400, error="the delivery id header holds characters other than letters, digits and . _ : -")
    event = event_name(provider, request.headers)
    if event and not valid_event_name(event):
        return _json(400, error="the event header must be a short ASCII name (letters, digits, space and . _ : -)")

    host = app[HOST]
    wanted: list[str] = []
    if service is not None:
        try:
            known = await host.exists(service)
        except HostUnavailable as exc:
            return _unavailable(exc)
        if not known:
            return _json(404, error=f"no service {service!r} in {config.services_dir}/ of the env repo")
        if event and event.lower() == "ping":
            decision = Decision("ping", "pong: the webhook reaches podops and its signature is valid")
        elif payload.get("action") == "published":
            decision, wanted = Decision("service", f"published: redeploy {service}"), [service]
        else:
            decision = Decision("ignore", f"action {payload.get('action')!r} is not 'published'; nothing to redeploy")
    elif route == "/deploy-all-changed" and not event:
        decision = Decision("reconcile", "deploy-all-changed")
    else:
        decision = classify(provider, event, payload, config.branch)
    if decision.kind == "packages":
        try:
            using = await host.using(decision.packages)
        except HostUnavailable as exc:
            return _unavailable(exc)
        if using:
            wanted = sorted(using)
            decision.reason += f" -> redeploy {', '.join(wanted)}"
        else:
            decision = Decision("ignore", f"no service uses an image named {decision.packages[0]}")

    kind = {"reconcile": "queued", "packages": "queued", "service": "queued"}.get(decision.kind, decision.kind)
    record_id = delivery or f"local-{secrets.token_hex(8)}"
    earlier = store.claim_delivery(record_id, provider, event, route, kind, decision.reason, config.slot)
    LOG.info("delivery %s %s event=%s -> %s (%s)", clean(record_id), route, clean(event or "-"), "duplicate" if earlier else kind, clean(decision.reason))
    if earlier is not None:
        return _json(200, status="duplicate", delivery=record_id, reason=f"delivery {record_id} was already handled ({earlier}); nothing run again")
    if decision.kind in ("ping", "ignore"):
        return _json(200, status="pong" if decision.kind == "ping" else "ignored", delivery=record_id, reason=decision.reason)
    run_id = worker.submit(decision.kind == "reconcile", wanted, decision.commit, record_id)
    return _json(202, status="queued", run_id=run_id, delivery=record_id, reason=decision.reason, services=wanted)


async def handle_hook(request: web.Request) -> web.Response:
    provider = request.match_info["provider"]
    if provider not in PROVIDERS:
        return _json(404, error=f"unknown provider {provider!r}; use /hooks/{'|'.join(PROVIDERS)}")
    return await _webhook(request, provider, f"/hooks/{provider}")


async def handle_deploy_all(request: web.Request) -> web.Response:
    return await _webhook(request, "github", "/deploy-all-changed")


async def handle_redeploy(request: web.Request) -> web.Response:
    return await _webhook(request, "github", "/redeploy-and-update", service=request.match_info["service"])


async def handle_seed_off(request: web.Request) -> web.Response:
    return _json(
        404,
        error="this is a route of the seed's deploy server, off by default: set seed_routes: true in the shim's config "
        "(role podops.gitops.webhook: podops_webhook_seed_routes: true) to serve it, or use /hooks/github",
    )


# ---------------------------------------------------------------- status page, API, metrics
def _offered_token(request: web.Request) -> str:
    offered = request.headers.get("Authorization", "")
    if offered[:7].lower() == "bearer ":
        return offered[7:].strip()
    try:
        return request.cookies.get(TOKEN_COOKIE, "")
    except Exception:  # noqa: BLE001 - a cookie header that does not parse is no token
        return ""


def _authorized(request: web.Request, config: Config) -> bool:
    if config.status_token is None:
        try:
            return ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            return False
    token = _offered_token(request)
    return bool(token) and same_secret(token, config.status_token)


def _protected(request: web.Request) -> bool:
    """The page, the API and the metrics: by path (whatever the method, matched or not) and by route."""
    if request.path == "/" or request.path.startswith(PROTECTED_PREFIXES):
        return True
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in PROTECTED_ROUTES


def _check_token(request: web.Request, config: Config) -> None:
    """Raise the answer for a request to a protected path that may not have it; return when it may."""
    query_token = request.query.get("token")
    if query_token is not None and request.path == "/" and request.method == "GET" and config.status_token:
        if same_secret(query_token, config.status_token):
            # the one place a token in a URL is taken: traded for a cookie, and the URL without it
            response = web.HTTPSeeOther("/")
            response.set_cookie(TOKEN_COOKIE, query_token, httponly=True, secure=True, samesite="Strict", path="/", max_age=30 * 86400)
            raise response
        _rejected(request, 401, "wrong status token in the query string")
        raise web.HTTPUnauthorized(text="wrong status token\n")
    if _authorized(request, config):
        return
    if config.status_token is None:
        raise web.HTTPForbidden(text="the status page and API are served to loopback clients only; set status_token_file to serve them elsewhere\n")
    where = "" if query_token is None else " (a ?token= is accepted only by GET /, where it sets a cookie)"
    raise web.HTTPUnauthorized(text=f"send the status token: Authorization: Bearer <token>, or open /?token=<token> once in a browser{where}\n")


@web.middleware
async def guard(request: web.Request, handler: t.Callable) -> web.StreamResponse:
    counters = request.app[COUNTERS]
    config = request.app[CONFIG]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    try:
        if _protected(request):
            _check_token(request, config)
        response = await handler(request)
    except web.HTTPException as exc:
        counters[(route, exc.status)] += 1
        raise
    except Exception as exc:
        counters[(route, 500)] += 1
        LOG.exception("%s %s failed: %s", clean(request.method), clean(request.path), clean(exc))
        return _json(500, error="internal error; the shim's log has the details")
    counters[(route, response.status)] += 1
    return response


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")


def _ago(value: str | None) -> str:
    if not value:
        return ""
    try:
        then = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return value
    seconds = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") + " UTC" if value else ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _duration(run: dict) -> str:
    try:
        start = datetime.datetime.strptime(run["started"], "%Y-%m-%dT%H:%M:%S.%fZ")
        end = datetime.datetime.strptime(run["finished"], "%Y-%m-%dT%H:%M:%S.%fZ")
    except (TypeError, ValueError, KeyError):
        return ""
    return f"{(end - start).total_seconds():.1f} s"


async def _status(app: web.Application, details: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    config, store, worker = app[CONFIG], app[STORE], app[WORKER]
    host = app[HOST]
    code, body = await health(config, worker, host, app[GATE])
    details = details if details is not None else await host.details()
    services = await services_view(host, store, details)
    conditions = collections.Counter(svc["condition"] for svc in services)
    last = details["last_run"]
    if last is not None:
        last = {**last, "commit_url": commit_link(details["commit_link_base"], last["commit"]), "commit_subject": details["subjects"].get(last["commit"] or "")}
    return {
        "version": __version__,
        "slot": config.slot,
        "pid": os.getpid(),
        "health": body,
        "healthy": code == 200,
        "draining": worker.draining,
        "running": worker.current.id if worker.current else None,
        "queued": worker.pending.id if worker.pending else None,
        "branch": config.branch,
        "services": services,
        "conditions": dict(sorted(conditions.items())),
        "containers_error": (await host.containers())[1],
        "last_run": store.last_finished(),
        # the host's newest run (last-run.json), whoever started it: the timer's and the CLI's too
        "host_last_run": last,
        "commit_link_base": details["commit_link_base"],
    }


async def handle_page(request: web.Request) -> web.Response:
    app = request.app
    details = await app[HOST].details()
    status = await _status(app, details)
    store, worker = app[STORE], app[WORKER]
    runs = store.runs(limit=20, with_log=True)
    if worker.current and worker.current_log:
        for run in runs:
            if run["id"] == worker.current.id:
                run["log"] = worker.current_log.text()
    busy = any(run["status"] in ("queued", "running") for run in runs)
    for run in runs:
        run["failure_logs"] = {name: found for name, entry in (run.get("outcome") or {}).items() if (found := failure_log(entry))}
        run["commit_url"] = commit_link(details["commit_link_base"], run.get("commit"))
        run["commit_subject"] = details["subjects"].get(run.get("commit") or "")
    page_host = request.url.host
    for svc in status["services"]:
        svc["links"] = [url_link(url, page_host) for url in svc["urls"]]
    nonce = secrets.token_urlsafe(18)
    html = (
        app[TEMPLATES]
        .get_template("status.html.j2")
        .render(
            status=status,
            runs=runs,
            busy=busy,
            refresh=3,
            ago=_ago,
            when=_when,
            duration=_duration,
            nonce=nonce,
            script=LOCALTIME_JS,
            plural=_plural,
        )
    )
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP.format(nonce=nonce)})


async def handle_localtime_js(request: web.Request) -> web.Response:
    """The page's only script (no data in it): writes each <time datetime> in the viewer's local time too."""
    with open(os.path.join(STATIC_DIR, "localtime.js"), encoding="utf-8") as handle:
        text = handle.read()
    return web.Response(text=text, content_type="text/javascript", charset="utf-8", headers={"Cache-Control": "no-cache"})


async def handle_api_status(request: web.Request) -> web.Response:
    return _json(200, **(await _status(request.app)))


async def handle_api_runs(request: web.Request) -> web.Response:
    try:
        limit = max(1, min(500, int(request.query.get("limit", "50"))))
    except ValueError:
        return _json(400, error="limit must be a number")
    return _json(200, runs=request.app[STORE].runs(limit=limit))


async def handle_api_run(request: web.Request) -> web.Response:
    store, worker = request.app[STORE], request.app[WORKER]
    run = store.run(request.match_info["run_id"])
    if run is None:
        return _json(404, error=f"no run {request.match_info['run_id'][:100]!r}")
    if worker.current and worker.current.id == run["id"] and worker.current_log:
        run["log"] = worker.current_log.text()
    return _json(200, **run)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


async def handle_metrics(request: web.Request) -> web.Response:
    app = request.app
    config, store, worker = app[CONFIG], app[STORE], app[WORKER]
    code, _body = await health(config, worker, app[HOST], app[GATE])
    lines = [
        "# HELP podops_webhook_info The shim's version and slot.",
        "# TYPE podops_webhook_info gauge",
        f'podops_webhook_info{{version="{__version__}",slot="{config.slot or ""}"}} 1',
        "# HELP podops_webhook_healthy 1 when /health answers 200 (the active slot, not draining).",
        "# TYPE podops_webhook_healthy gauge",
        f"podops_webhook_healthy {int(code == 200)}",
        "# HELP podops_webhook_deliveries_total Accepted deliveries by provider and decision (all slots, from the database).",
        "# TYPE podops_webhook_deliveries_total counter",
    ]
    lines += [f'podops_webhook_deliveries_total{{provider="{p}",decision="{d}"}} {n}' for p, d, n in sorted(store.delivery_counts())]
    lines += ["# HELP podops_webhook_runs Runs by status (all slots, from the database).", "# TYPE podops_webhook_runs gauge"]
    lines += [f'podops_webhook_runs{{status="{s}"}} {n}' for s, n in sorted(store.run_counts().items())]
    lines += [
        "# HELP podops_webhook_run_in_progress 1 while this instance runs a deploy.",
        "# TYPE podops_webhook_run_in_progress gauge",
        f"podops_webhook_run_in_progress {int(worker.current is not None)}",
        "# HELP podops_webhook_run_queued 1 while a coalesced run waits.",
        "# TYPE podops_webhook_run_queued gauge",
        f"podops_webhook_run_queued {int(worker.pending is not None)}",
        "# HELP podops_webhook_unverified_in_flight Webhook requests being read or verified now (capped by max_unverified_requests).",
        "# TYPE podops_webhook_unverified_in_flight gauge",
        f"podops_webhook_unverified_in_flight {app[GATE].unverified}",
    ]
    last = store.last_finished()
    if last:
        lines += [
            "# HELP podops_webhook_last_run_success 1 when the newest finished run did not fail.",
            "# TYPE podops_webhook_last_run_success gauge",
            f"podops_webhook_last_run_success {int(last['status'] in ('ok', 'changed'))}",
        ]
        finished = datetime.datetime.strptime(last["finished"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
        lines += [
            "# HELP podops_webhook_last_run_timestamp_seconds When the newest run finished.",
            "# TYPE podops_webhook_last_run_timestamp_seconds gauge",
            f"podops_webhook_last_run_timestamp_seconds {finished.timestamp():.3f}",
        ]
    lines += ["# HELP podops_webhook_requests_total HTTP requests answered by this instance.", "# TYPE podops_webhook_requests_total counter"]
    for (route, status), count in sorted(app[COUNTERS].items()):
        lines.append(f'podops_webhook_requests_total{{route="{route}",code="{status}"}} {count}')
    lines += [
        "# HELP process_resident_memory_bytes Resident memory of the shim.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {_rss_bytes()}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})


def create_app(config: Config, store: Store, worker: Worker, host: Host) -> web.Application:
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[guard])
    app[CONFIG] = config
    app[STORE] = store
    app[WORKER] = worker
    app[HOST] = host
    app[COUNTERS] = collections.Counter()
    app[GATE] = Gate()
    app.on_response_prepare.append(_security_headers)
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app.router.add_post("/hooks/{provider}", handle_hook)
    if config.seed_routes:
        app.router.add_post("/deploy-all-changed", handle_deploy_all)
        app.router.add_post("/redeploy-and-update/{service}", handle_redeploy)
    else:
        for path in SEED_ROUTES:
            app.router.add_route("*", path, handle_seed_off)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/ready", handle_ready)
    app.router.add_get("/", handle_page)
    app.router.add_get(LOCALTIME_JS, handle_localtime_js)
    app.router.add_get("/api/status", handle_api_status)
    app.router.add_get("/api/runs", handle_api_runs)
    app.router.add_get("/api/runs/{run_id}", handle_api_run)
    app.router.add_get("/metrics", handle_metrics)
    return app
