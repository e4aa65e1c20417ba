# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What runs where: one row per service, from the podops state file, the run history and ``podman ps``
(read here, or by the run broker for an unprivileged shim: ``host.py``).

- state: ``<state_dir>/state.json`` (written by every reconcile): status, commit, deployed when, last error
- last outcome: the newest run in the shim's history that names the service
- containers: ``podman ps -a --format json --filter label=io.podops.service`` (argv only), cached briefly
- details (the page's, not /health's): the host's last run (``last-run.json``, whoever started it), each
  service's published URLs, commit subjects and the git host's commit link (``Details``); a broker's
  answer is checked field by field (``check_details``) before the page uses any of it

A service whose last deploy failed while containers of its last good version still run is *serving the
previous version*, not down: the page says so instead of a bare "failed".
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import typing as t

from .config import Config
from .gitinfo import LINK_BASE_RE, MAX_COMMITS, MAX_SUBJECT, SHA_RE, commit_link
from .services import LABEL_PREFIX, LABEL_SERVICE, LAST_RUN_FILE, RUN_ID_RE, SERVICE_NAME_RE, STATE_FILE
from .store import Store

PS_CACHE_SECONDS = 2.0
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z$")
WORD_RE = re.compile(r"^[a-z_]{1,20}$")
# What x-podops ports look like in the collection's summary (``_reconcile.urls``): http://localhost:8080/,
# 127.0.0.1:8080, udp/53, udp/127.0.0.1:53, [::1]:8080.
URL_RE = re.compile(
    r"^(?:(?:https?://)?(?:localhost|[0-9.]{7,15}|\[[0-9a-fA-F:]{2,39}\]):\d{1,5}/?|[a-z]{3,4}/(?:[0-9.]{7,15}:|\[[0-9a-fA-F:]{2,39}\]:)?\d{1,5})$"
)
MAX_URLS = 8
MAX_FAILED_NAMES = 20
MAX_ERROR = 300
RESULTS = ("ok", "changed", "failed")


def read_state(state_dir: str) -> dict[str, dict]:
    try:
        with open(os.path.join(state_dir, STATE_FILE), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    services = data.get("services") if isinstance(data, dict) else None
    return services if isinstance(services, dict) else {}


def read_last_run(state_dir: str) -> dict[str, t.Any] | None:
    """A short summary of ``last-run.json``: the host's newest run, whoever started it (timer, webhook, CLI)."""
    try:
        with open(os.path.join(state_dir, LAST_RUN_FILE), encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    services = report.get("services") if isinstance(report.get("services"), dict) else {}
    actions: dict[str, int] = {}
    failed = []
    for name, entry in sorted(services.items()):
        action = entry.get("action") if isinstance(entry, dict) else None
        if not isinstance(action, str):
            continue
        actions[action] = actions.get(action, 0) + 1
        if action in ("failed", "rolled_back"):
            failed.append(name)
    return check_last_run(
        {
            "run_id": report.get("run_id"),
            "trigger": report.get("trigger"),
            "commit": report.get("commit"),
            "started": report.get("started"),
            "finished": report.get("finished"),
            "check_mode": report.get("check_mode"),
            "result": report.get("result"),
            "error": report.get("error"),
            "actions": actions,
            "failed": failed[:MAX_FAILED_NAMES],
        }
    )


def _text(value: t.Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    value = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _count(value: t.Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 100000


def check_last_run(raw: t.Any) -> dict[str, t.Any] | None:
    """The last-run summary with every field checked; None when it is not one (wrong type, bad run id)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("run_id"), str) or not RUN_ID_RE.fullmatch(raw["run_id"]):
        return None
    actions = raw.get("actions") if isinstance(raw.get("actions"), dict) else {}
    failed = raw.get("failed") if isinstance(raw.get("failed"), list) else []
    return {
        "run_id": raw["run_id"],
        "trigger": raw["trigger"] if isinstance(raw.get("trigger"), str) and WORD_RE.fullmatch(raw["trigger"]) else None,
        "commit": raw["commit"] if isinstance(raw.get("commit"), str) and SHA_RE.fullmatch(raw["commit"]) else None,
        "started": raw["started"] if isinstance(raw.get("started"), str) and TIME_RE.fullmatch(raw["started"]) else None,
        "finished": raw["finished"] if isinstance(raw.get("finished"), str) and TIME_RE.fullmatch(raw["finished"]) else None,
        "check_mode": raw.get("check_mode") is True,
        "result": raw["result"] if raw.get("result") in RESULTS else "failed",
        "error": _text(raw.get("error"), MAX_ERROR),
        "actions": {k: v for k, v in sorted(actions.items())[:16] if isinstance(k, str) and WORD_RE.fullmatch(k) and _count(v)},
        "failed": [name for name in failed[:MAX_FAILED_NAMES] if isinstance(name, str) and SERVICE_NAME_RE.fullmatch(name)],
    }


HTTP_URL_RE = re.compile(r"^(?P<scheme>https?)://(?P<host>localhost|[0-9.]{7,15}|\[[0-9a-fA-F:]{2,39}\]):(?P<port>\d{1,5})/?$")
PAGE_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


def url_link(url: str, page_host: str | None) -> dict[str, t.Any]:
    """How the page shows one published URL: ``{"text", "href" or None, "note"}``. A port published on
    all interfaces (``localhost`` in the summary) is linked on the host name the page was opened with, so
    it works from the viewer's machine; a port bound to loopback is linked only for a viewer on this host."""
    match = HTTP_URL_RE.fullmatch(url)
    if match is None:
        return {"text": url, "href": None, "note": ""}
    scheme, host, port = match["scheme"], match["host"], match["port"]
    page = page_host if page_host and PAGE_HOST_RE.fullmatch(page_host) else None
    local_viewer = page is None or page in LOOPBACK_HOSTS
    if host == "localhost":
        host = page or "localhost"
    elif host in LOOPBACK_HOSTS and not local_viewer:
        return {"text": url, "href": None, "note": "on this host only"}
    href = f"{scheme}://{host}:{port}/"
    return {"text": href, "href": href, "note": ""}


MAX_LOG_LINES = 40
MAX_LOG_LINE = 500


def failure_log(entry: t.Any) -> dict[str, t.Any] | None:
    """A run report entry's ``failure_log`` (the failing container's last log lines and its healthcheck's
    output, written by the reconcile since issue 14), read defensively: absent, or of another shape, is None;
    lines are cut to MAX_LOG_LINES of MAX_LOG_LINE characters. The page escapes all of it."""
    raw = entry.get("failure_log") if isinstance(entry, dict) else None
    if not isinstance(raw, dict):
        return None
    lines = raw.get("lines") if isinstance(raw.get("lines"), list) else []
    lines = [_text(line, MAX_LOG_LINE) or "" for line in lines[-MAX_LOG_LINES:] if isinstance(line, str)]
    container, healthcheck = _text(raw.get("container"), 200), _text(raw.get("healthcheck"), 2000)
    if not (lines or healthcheck):
        return None
    return {"container": container, "lines": lines, "healthcheck": healthcheck}


def check_details(raw: t.Any) -> dict[str, t.Any]:
    """The page's details (as ``LocalHost.details`` builds them), every field checked: what does not fit is
    left out, never passed on. A broker's answer goes through here before the page sees it."""
    raw = raw if isinstance(raw, dict) else {}
    urls_in = raw.get("urls") if isinstance(raw.get("urls"), dict) else {}
    urls = {}
    for name, found in list(urls_in.items())[:1000]:
        if isinstance(name, str) and SERVICE_NAME_RE.fullmatch(name) and isinstance(found, list):
            good = [url for url in found[:MAX_URLS] if isinstance(url, str) and URL_RE.fullmatch(url)]
            if good:
                urls[name] = good
    subjects_in = raw.get("subjects") if isinstance(raw.get("subjects"), dict) else {}
    subjects = {
        sha: _text(subject, MAX_SUBJECT).replace("\n", " ")
        for sha, subject in list(subjects_in.items())[:MAX_COMMITS]
        if isinstance(sha, str) and SHA_RE.fullmatch(sha) and _text(subject, MAX_SUBJECT)
    }
    base = raw.get("commit_link_base")
    return {
        "last_run": check_last_run(raw.get("last_run")),
        "urls": urls,
        "subjects": subjects,
        "commit_link_base": base if isinstance(base, str) and LINK_BASE_RE.fullmatch(base) else None,
    }


class Containers:
    """``podman ps`` of the podops containers, at most once per PS_CACHE_SECONDS."""

    def __init__(self, config: Config):
        self.config = config
        self._at = 0.0
        self._value: dict[str, list[dict]] = {}
        self.error: str | None = None
        self._lock = asyncio.Lock()

    def argv(self) -> list[str]:
        argv = [*self.config.podman_command, "ps", "-a", "--format", "json", "--filter", f"label={LABEL_SERVICE}"]
        if self.config.project_prefix:
            argv += ["--filter", f"label={LABEL_PREFIX}={self.config.project_prefix}"]
        return argv

    async def by_service(self) -> dict[str, list[dict]]:
        async with self._lock:
            if time.monotonic() - self._at < PS_CACHE_SECONDS:
                return self._value
            env = dict(os.environ)
            env.pop("CREDENTIALS_DIRECTORY", None)
            env.update(self.config.environment)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
                )
                out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
            except (OSError, TimeoutError) as exc:
                self.error = f"podman ps failed: {exc}"
                self._at = time.monotonic()
                return self._value
            if proc.returncode != 0:
                self.error = f"podman ps failed: {err.decode(errors='replace').strip()[-300:]}"
                self._at = time.monotonic()
                return self._value
            try:
                listed = json.loads(out or b"[]") or []
            except ValueError:
                listed = []
            found: dict[str, list[dict]] = {}
            for item in listed:
                labels = item.get("Labels") or {}
                names = item.get("Names") or ["?"]
                found.setdefault(labels.get(LABEL_SERVICE, "?"), []).append(
                    {
                        "name": names[0],
                        "state": item.get("State", ""),
                        "status": item.get("Status", ""),
                        "image": item.get("Image", ""),
                        "id": (item.get("Id") or "")[:12],
                        "commit": labels.get("io.podops.commit", ""),
                    }
                )
            self._value, self.error, self._at = found, None, time.monotonic()
            return found


def last_outcomes(store: Store, limit: int = 50) -> dict[str, dict]:
    """The newest run outcome per service, from the shim's history."""
    found: dict[str, dict] = {}
    for run in store.runs(limit=limit):
        for name, entry in run["outcome"].items():
            found.setdefault(name, {**entry, "run_id": run["id"], "finished": run["finished"]})
    return found


def condition(status: str, entry: dict, up: int, total: int) -> tuple[str, str]:
    """``(condition, what the page says)`` of one service. ``condition`` is one word for CSS and tests:
    ok, degraded (deployed, not all containers running), serving-previous, failed, not-deployed,
    orphaned, unknown."""
    if status == "failed":
        if entry.get("digest") and up:
            return "serving-previous", "serving the previous version; last deploy failed"
        return "failed", "failed" if entry.get("digest") else "failed; never deployed"
    if status == "ok" and total and up < total:
        return "degraded", f"deployed; {up} of {total} containers running"
    return status.replace(" ", "-"), status


async def services_view(host: t.Any, store: Store, details: dict | None = None) -> list[dict[str, t.Any]]:
    """One row per service; ``host`` is the shim's ``host.Host`` (what runs here, from the host or the broker);
    ``details`` as ``check_details`` returns them (URLs, commit subjects and links)."""
    details = details or check_details({})
    state = await host.state()
    outcomes = last_outcomes(store)
    running, _error = await host.containers()
    in_repo = set(await host.names())
    names = sorted(in_repo | set(state) | set(running))
    rows = []
    for name in names:
        entry = state.get(name) or {}
        ctrs = running.get(name, [])
        up = sum(1 for c in ctrs if c["state"] == "running")
        if not entry:
            status = "not deployed" if name in in_repo else "unknown"
        elif name not in in_repo:
            status = "orphaned"
        else:
            status = entry.get("status") or "unknown"
        outcome = outcomes.get(name, {})
        cond, summary = condition(status, entry, up, len(ctrs))
        commit = entry.get("commit")
        rows.append(
            {
                "name": name,
                "state": status,
                "condition": cond,
                "summary": summary,
                "serving_previous": cond == "serving-previous",
                "healthy": status == "ok" and (not ctrs or up == len(ctrs)),
                "commit": commit,
                "commit_subject": details["subjects"].get(commit) if isinstance(commit, str) else None,
                "commit_url": commit_link(details["commit_link_base"], commit),
                "deployed_at": entry.get("deployed_at"),
                "failed_at": entry.get("failed_at") if status == "failed" else None,
                "error": entry.get("error") or outcome.get("error"),
                "last_action": outcome.get("action"),
                "failure_log": failure_log(outcome) if status == "failed" else None,
                "last_run": outcome.get("run_id"),
                "urls": details["urls"].get(name, []) if up else [],  # where it serves: nothing while nothing runs
                "containers": ctrs,
                "running": f"{up}/{len(ctrs)}",
            }
        )
    return rows
