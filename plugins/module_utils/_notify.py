# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tell people: what a finished run is worth a message about, the message, and the commit status to post.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

Pure functions over the run report and a small memory in the state folder (``notify-memory.json``); the
delivery (Apprise, HTTP) is in ``_deliver``. The rules:

- one message per run and host, listing every service that is not unchanged;
- a service that keeps failing with the same error notifies once (its *failure key*: the action and the error
  with container IDs and durations taken out), then again when the error changes or when it is healthy again
  (``recovered``); the same for a run that fails before any service (a fetch, a bad setting);
- an orphan is told once, not on every tick;
- a commit status goes to the commit a run deploys: ``pending`` when the commit is new for that context, then
  the final state; on a commit that already has one, only a change of state is posted (a retry that fails the
  same way again posts nothing, one that recovers posts ``success``). A no-op tick posts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from ._common import PodopsError
from ._redact import redact

EVENTS = ("failed", "rolled_back", "recovered", "deployed", "pruned", "orphaned")
DEFAULT_ON = ("failed", "rolled_back", "recovered")
PROVIDERS = ("github", "gitea", "forgejo", "gitlab")
DEFAULT_TIMEOUT = 5.0
MEMORY_FILE = "notify-memory.json"
SETTINGS_FILE = "notify.json"  # what the last full run was told (secret: 0600), for podops-pull's fast lane
STATUS_URL_FILE = "status-url"  # the webhook shim's status page, written by the webhook role
LOG_LINES = 10
RUN = ""  # the memory key of failures that are not one service's

# GitHub and Gitea/Forgejo: pending, success, failure, error. GitLab: pending, running, success, failed, canceled.
_STATES = {
    "github": {"pending": "pending", "success": "success", "failure": "failure", "error": "error"},
    "gitea": {"pending": "pending", "success": "success", "failure": "failure", "error": "error"},
    "gitlab": {"pending": "pending", "success": "success", "failure": "failed", "error": "failed"},
}
_DEFAULT_API = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
_API_SUFFIX = {"gitea": "/api/v1", "gitlab": "/api/v4"}
DESCRIPTION_MAX = 140


# -- settings ---------------------------------------------------------------------------------------------


@dataclass
class CommitStatusSettings:
    provider: str
    repository: str
    api_url: str = ""
    token: str = field(default="", repr=False)
    token_file: str = ""
    context: str = ""

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any] | None) -> CommitStatusSettings | None:
        if not data:
            return None
        unknown = sorted(set(data) - {"provider", "repository", "api_url", "token", "token_file", "context"})
        if unknown:
            raise PodopsError(
                f"podops_commit_status has unknown key(s) {', '.join(unknown)}; it takes provider, repository, api_url, token or token_file, context"
            )
        return cls(
            provider=str(data.get("provider") or "").lower(),
            repository=str(data.get("repository") or "").strip("/"),
            api_url=str(data.get("api_url") or "").rstrip("/"),
            token=str(data.get("token") or ""),
            token_file=str(data.get("token_file") or ""),
            context=str(data.get("context") or ""),
        )

    @property
    def flavour(self) -> str:
        """The API the provider speaks: Forgejo is Gitea's."""
        return "gitea" if self.provider == "forgejo" else self.provider

    def validate(self) -> None:
        if self.provider not in PROVIDERS:
            raise PodopsError(f"podops_commit_status.provider must be one of {', '.join(PROVIDERS)}, not {self.provider!r}")
        if self.flavour == "gitlab":
            if not self.repository:
                raise PodopsError("podops_commit_status.repository must name the GitLab project: its ID (1234) or its path (group/project)")
        elif not re.match(r"^[\w.-]+/[\w.-]+$", self.repository):
            raise PodopsError(f"podops_commit_status.repository must be owner/name (for example acme/env-repo), not {self.repository!r}")
        if self.flavour == "gitea" and not self.api_url:
            raise PodopsError(f"podops_commit_status.api_url is needed for {self.provider}: the address of the server, such as https://codeberg.org")
        scheme = urllib.parse.urlsplit(self.api_url).scheme if self.api_url else "https"
        if scheme not in ("http", "https"):
            raise PodopsError(f"podops_commit_status.api_url must be an http(s) URL, not {self.api_url!r}")
        if not self.token and not self.token_file:
            raise PodopsError("podops_commit_status needs a token (from ansible-vault) or a token_file on the host (root only)")

    def api_root(self) -> str:
        root = self.api_url or _DEFAULT_API.get(self.flavour, "")
        suffix = _API_SUFFIX.get(self.flavour)
        if suffix and not root.endswith(suffix):
            root += suffix
        return root

    def read_token(self) -> str:
        if self.token:
            return self.token.strip()
        try:
            with open(self.token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise PodopsError(f"cannot read podops_commit_status.token_file {self.token_file}: {exc.strerror}") from None
        if not token:
            raise PodopsError(f"podops_commit_status.token_file {self.token_file} is empty")
        return token


@dataclass
class NotifySettings:
    urls: list[str] = field(default_factory=list, repr=False)
    on: list[str] = field(default_factory=lambda: list(DEFAULT_ON))
    commit_status: CommitStatusSettings | None = None
    status_url: str = ""
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_params(
        cls,
        urls: t.Sequence[str] | None,
        on: t.Sequence[str] | None,
        commit_status: t.Mapping[str, t.Any] | None,
        status_url: str | None = None,
        timeout: float | None = None,
    ) -> NotifySettings:
        return cls(
            urls=[str(url).strip() for url in urls or [] if str(url).strip()],
            on=list(DEFAULT_ON if on is None else on),
            commit_status=CommitStatusSettings.from_dict(commit_status),
            status_url=str(status_url or "").rstrip("/"),
            timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
        )

    @property
    def active(self) -> bool:
        return bool(self.urls or self.commit_status)

    def validate(self) -> None:
        wrong = [name for name in self.on if name not in EVENTS]
        if wrong:
            raise PodopsError(f"podops_notify_on may only name {', '.join(EVENTS)}, not {', '.join(map(repr, wrong))}")
        for index, url in enumerate(self.urls):
            if "://" not in url:
                # The URL itself may hold a token: say which entry, never what it says.
                raise PodopsError(f"podops_notify_urls entry {index + 1} is not an Apprise URL (scheme://...), such as ntfys://ntfy.sh/topic")
        if self.timeout <= 0 or self.timeout > 60:
            raise PodopsError(f"podops_notify_timeout must be between 0 and 60 seconds, not {self.timeout:g}")
        if self.status_url and urllib.parse.urlsplit(self.status_url).scheme not in ("http", "https"):
            raise PodopsError(f"podops_status_url must be an http(s) URL, not {self.status_url!r}")
        if self.commit_status:
            self.commit_status.validate()

    def secrets(self) -> list[str]:
        """Every string of these settings that must never be shown."""
        found = set()
        for url in self.urls:
            found.update(url_secrets(url))
        if self.commit_status and self.commit_status.token:
            found.add(self.commit_status.token.strip())
        return sorted((s for s in found if s), key=len, reverse=True)

    def as_dict(self) -> dict[str, t.Any]:
        status = self.commit_status
        return {
            "urls": list(self.urls),
            "on": list(self.on),
            "status_url": self.status_url,
            "timeout": self.timeout,
            "commit_status": None
            if status is None
            else {
                "provider": status.provider,
                "repository": status.repository,
                "api_url": status.api_url,
                "token": status.token,
                "token_file": status.token_file,
                "context": status.context,
            },
        }

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any]) -> NotifySettings:
        return cls.from_params(data.get("urls"), data.get("on"), data.get("commit_status"), data.get("status_url"), data.get("timeout"))


def url_scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "?"


def url_secrets(url: str) -> set[str]:
    """The parts of an Apprise URL that may be secret: all but the scheme and the host (user, password, path
    segments such as ntfy topics and webhook tokens, query values), and the URL itself."""
    found = {url}
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return found
    found.update(p for p in (parts.username, parts.password) if p)
    if parts.username:
        found.add(urllib.parse.unquote(parts.username))
    if parts.password:
        found.add(urllib.parse.unquote(parts.password))
    for segment in parts.path.split("/"):
        if len(segment) >= 4:
            found.update({segment, urllib.parse.unquote(segment)})
    for _key, value in urllib.parse.parse_qsl(parts.query):
        if len(value) >= 4:
            found.add(value)
    if len(parts.fragment) >= 4:
        found.add(parts.fragment)
    return found


# -- memory -----------------------------------------------------------------------------------------------


def load_memory(state_dir: str) -> dict[str, t.Any]:
    try:
        with open(os.path.join(state_dir, MEMORY_FILE), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_VARYING = (
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "<id>"),  # container and image IDs
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|s|seconds?)\b"), "<time>"),  # durations
    (re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z?"), "<date>"),
)


def failure_key(action: str, error: str | None) -> str:
    """Two failures with the same key are the same failure (told once)."""
    text = error or ""
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return hashlib.sha256(f"{action}\0{text}".encode()).hexdigest()[:16]


# -- what to tell -----------------------------------------------------------------------------------------


@dataclass
class Event:
    kind: str  # one of EVENTS
    service: str  # RUN for the run itself
    entry: dict[str, t.Any] = field(default_factory=dict)


def decide(report: t.Mapping[str, t.Any], memory: t.Mapping[str, t.Any]) -> tuple[list[Event], dict[str, t.Any]]:
    """The events of a finished run and the memory to keep for the next one (whatever ``on`` says: a
    failure nobody is told of still makes its recovery an event)."""
    past: dict[str, dict] = dict(memory.get("services") or {})
    now: dict[str, dict] = {}
    events: list[Event] = []
    services: t.Mapping[str, dict] = report.get("services") or {}
    for name, entry in services.items():
        service_events, remembered = _service_events(name, entry, past.get(name) or {})
        events += service_events
        if remembered:
            now[name] = remembered
    error = report.get("error")
    before = past.get(RUN) or {}
    if error:
        key = failure_key("run", str(error))
        if before.get("key") != key:
            events.append(Event("failed", RUN, {"action": "failed", "reason": "run", "error": error}))
        now[RUN] = {"kind": "failure", "key": key}
        # A run that failed early saw no service: what was known of them still holds.
        for name, value in past.items():
            now.setdefault(name, value)
    elif before.get("kind") == "failure":
        events.append(Event("recovered", RUN, {"action": "ok", "reason": "run"}))
    return events, dict(memory, services=now)


def _service_events(name: str, entry: t.Mapping[str, t.Any], before: t.Mapping[str, t.Any]) -> tuple[list[Event], dict[str, t.Any]]:
    """One service's events of a run, and what to remember of it for the next (empty: nothing)."""
    action = entry.get("action")
    if action in ("failed", "rolled_back"):
        key = failure_key(str(action), entry.get("error"))
        return ([] if before.get("key") == key else [Event(str(action), name, dict(entry))]), {"kind": "failure", "key": key}
    if action in ("deployed", "unchanged"):
        events = [Event("recovered", name, dict(entry))] if before.get("kind") == "failure" else []
        return events + ([Event("deployed", name, dict(entry))] if action == "deployed" else []), {}
    if action == "pruned":
        return [Event("pruned", name, dict(entry))], {}
    if action == "orphaned":
        return ([] if before.get("kind") == "orphaned" else [Event("orphaned", name, dict(entry))]), {"kind": "orphaned"}
    return [], dict(before)  # skipped: nothing known, keep what was


COUNT_WORDS = {"rolled_back": "rolled back"}


def counts(report: t.Mapping[str, t.Any]) -> str:
    """``3 deployed, 1 rolled back`` (unchanged services left out; ``no change`` when that is all)."""
    tally: dict[str, int] = {}
    for entry in (report.get("services") or {}).values():
        action = str(entry.get("action"))
        if action != "unchanged":
            tally[action] = tally.get(action, 0) + 1
    order = ["deployed", "failed", "rolled_back", "pruned", "orphaned", "skipped"]
    parts = [f"{tally[a]} {COUNT_WORDS.get(a, a)}" for a in sorted(tally, key=lambda a: (order.index(a) if a in order else 99, a))]
    return ", ".join(parts) or "no change"


@dataclass
class Message:
    title: str
    body: str
    kind: str  # apprise notify type: failure, success, info, warning


def run_target_url(status_url: str, report: t.Mapping[str, t.Any]) -> str:
    """Where the status page shows this run: the shim's page lists its own runs (webhook) by their ID."""
    if not status_url:
        return ""
    if report.get("trigger") == "webhook":
        return f"{status_url}/#run-{report.get('run_id')}"
    return f"{status_url}/"


def build_message(
    report: t.Mapping[str, t.Any],
    events: t.Sequence[Event],
    host: str,
    subject: str | None,
    status_url: str = "",
    secrets: t.Iterable[str] = (),
) -> Message:
    """One message for the run: what happened to each service that is not unchanged, errors and log lines of
    the failures."""
    kinds = {event.kind for event in events}
    bad = kinds & {"failed", "rolled_back"}
    run_failed = any(e.service == RUN and e.kind == "failed" for e in events)
    title = f"podops {host}: " + _headline(events, run_failed)
    commit = report.get("commit")
    lines = [
        f"host: {host}",
        f"run: {report.get('run_id')} (trigger {report.get('trigger')}{', fast lane' if report.get('fast_lane') else ''})",
        f"commit: {commit[:12] + (' ' + subject if subject else '') if commit else '-'}",
        f"result: {report.get('result')} ({counts(report)})",
    ]
    target = run_target_url(status_url, report)
    if target:
        lines.append(f"status page: {target}")
    if report.get("error"):
        lines += ["", f"error: {report['error']}"]
    body_services = _service_lines(report.get("services") or {}, {e.service for e in events if e.kind == "recovered"})
    if body_services:
        lines += ["", *body_services]
    kind = "failure" if bad or run_failed else ("success" if kinds & {"recovered", "deployed"} else "info")
    secrets = list(secrets)
    return Message(redact(title, secrets), redact("\n".join(lines), secrets), kind)


def _headline(events: t.Sequence[Event], run_failed: bool) -> str:
    """``web, api failed; db deployed`` (at most three names per kind)."""
    what = ["run failed"] if run_failed else []
    for kind in ("failed", "rolled_back", "recovered", "deployed", "pruned", "orphaned"):
        names = [e.service for e in events if e.kind == kind and e.service != RUN]
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            what.append(f"{shown} {COUNT_WORDS.get(kind, kind)}")
    if any(e.service == RUN and e.kind == "recovered" for e in events):
        what.append("runs work again")
    return "; ".join(what)


def _service_lines(services: t.Mapping[str, dict], recovered: set[str]) -> list[str]:
    """A line per service that is not simply unchanged (with the failures' healthcheck and log lines), then
    how many are."""
    unchanged = 0
    lines = []
    for name, entry in services.items():
        action = entry.get("action")
        if action == "unchanged" and name not in recovered:
            unchanged += 1
            continue
        text = f"- {name}: {action} ({entry.get('reason')})" + (", recovered" if name in recovered else "")
        lines.append(text + (f": {entry['error']}" if entry.get("error") else ""))
        failure = entry.get("failure_log") if action in ("failed", "rolled_back") else None
        if isinstance(failure, dict):
            if failure.get("healthcheck"):
                lines.append(f"    healthcheck: {failure['healthcheck']}")
            lines += [f"    | {failure.get('container') or '?'}: {log_line}" for log_line in (failure.get("lines") or [])[-LOG_LINES:]]
    if unchanged:
        lines.append(f"- {unchanged} unchanged")
    return lines


def wanted(events: t.Sequence[Event], on: t.Sequence[str]) -> list[Event]:
    return [event for event in events if event.kind in on]


# -- commit status ----------------------------------------------------------------------------------------


@dataclass
class StatusRequest:
    url: str
    headers: dict[str, str] = field(repr=False)
    body: dict[str, t.Any]
    state: str  # podops' own: pending, success, failure, error


def status_description(report: t.Mapping[str, t.Any] | None, state: str) -> str:
    if state == "pending":
        text = "podops is deploying this commit"
    elif report and report.get("error") and not report.get("services"):
        text = f"podops run failed: {report['error']}"
    else:
        text = counts(report or {})
    return text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 1] + "…"


def final_state(report: t.Mapping[str, t.Any]) -> str:
    if report.get("error"):
        return "error"
    return "failure" if report.get("result") == "failed" else "success"


def status_request(settings: CommitStatusSettings, token: str, sha: str, state: str, description: str, context: str, target_url: str) -> StatusRequest:
    """The HTTP request that sets a commit status, as each provider documents it."""
    flavour = settings.flavour
    provider_state = _STATES[flavour][state]
    root = settings.api_root()
    if flavour == "gitlab":
        project = urllib.parse.quote(settings.repository, safe="")
        url = f"{root}/projects/{project}/statuses/{sha}"
        headers = {"PRIVATE-TOKEN": token}
        body: dict[str, t.Any] = {"state": provider_state, "name": context, "description": description}
    else:
        owner, _sep, name = settings.repository.partition("/")
        url = f"{root}/repos/{urllib.parse.quote(owner)}/{urllib.parse.quote(name)}/statuses/{sha}"
        if flavour == "github":
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        else:
            headers = {"Authorization": f"token {token}"}
        body = {"state": provider_state, "context": context, "description": description}
    if target_url:
        body["target_url"] = target_url
    headers.update({"Content-Type": "application/json", "User-Agent": "podops"})
    return StatusRequest(url, headers, body, state)


def status_context(settings: CommitStatusSettings, host: str) -> str:
    return settings.context or f"podops/{host}"


def pending_wanted(commit: str | None, memory: t.Mapping[str, t.Any], context: str) -> bool:
    """At the start of a run: ``pending`` goes to a commit that has no status of this context yet."""
    posted = (memory.get("commit_status") or {}).get(context) or {}
    return bool(commit) and posted.get("commit") != commit


def final_wanted(commit: str | None, state: str, memory: t.Mapping[str, t.Any], context: str, pending_posted: bool) -> bool:
    """At the end: after a ``pending``, always; else only when the state of that commit changes."""
    if not commit:
        return False
    if pending_posted:
        return True
    posted = (memory.get("commit_status") or {}).get(context) or {}
    return posted.get("commit") != commit or posted.get("state") != state


def remember_status(memory: dict[str, t.Any], context: str, commit: str, state: str) -> dict[str, t.Any]:
    statuses = dict(memory.get("commit_status") or {})
    statuses[context] = {"commit": commit, "state": state}
    return dict(memory, commit_status=statuses)
