# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deliver what ``_notify`` decided: Apprise messages and commit statuses, each within a hard deadline.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

The engine calls ``Announcer.started`` after the plan and ``Announcer.finished`` with the run report, so every
entry point (module, role, podops-pull's fast lane, the webhook shim through podops-pull, redeploy) tells the
same things. Every delivery runs in a thread of its own; the run waits for all of them together at most
``timeout`` seconds, so a receiver that is down or hangs costs the deploy that long at most and never fails
it. What happened goes to the run report as ``notifications: [{kind, url_scheme, ok, error}]`` - never a URL,
a token or anything a receiver sent back unredacted.

``apprise`` is imported only when there is a URL to send to: a host without it (and without URLs) works.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import typing as t

from ._common import TIMEOUT_DEFAULTS, PodopsError, Runner
from ._notify import (
    MEMORY_FILE,
    SETTINGS_FILE,
    STATUS_URL_FILE,
    NotifySettings,
    build_message,
    decide,
    final_state,
    final_wanted,
    load_memory,
    pending_wanted,
    remember_status,
    run_target_url,
    status_context,
    status_description,
    status_request,
    url_scheme,
    wanted,
)
from ._redact import redact
from ._state import write_json

NO_APPRISE = (
    "the apprise library is not installed in the Python that runs podops; install it in the podops venv "
    "(run the podops.gitops.bootstrap playbook again, role podman_host) or pip install apprise"
)

Result = dict[str, t.Any]


def unexpected(exc: BaseException) -> Result:
    """A bug while telling, for the report: its type only (its text could quote a URL)."""
    return {"kind": "notification", "url_scheme": "-", "ok": False, "error": f"podops could not notify: {type(exc).__name__} (a bug; please report it)"}


def host_name() -> str:
    return socket.gethostname() or "localhost"


# -- running with a deadline ------------------------------------------------------------------------------


def with_deadline(tasks: t.Sequence[t.Callable[[], str | None]], timeout: float) -> list[tuple[bool, str | None]]:
    """Run each task (returns None when it worked, else an error text) in a daemon thread; wait for all of
    them together at most ``timeout`` seconds. A task still running then counts as failed and is left behind
    (a daemon thread does not keep the process alive)."""
    results: list[tuple[bool, str | None] | None] = [None] * len(tasks)

    def runner(index: int, task: t.Callable[[], str | None]) -> None:
        try:
            error = task()
        except Exception as exc:  # noqa: BLE001 - a receiver's failure must never fail the deploy
            error = f"{type(exc).__name__}: {exc}"
        results[index] = (error is None, error)

    threads = [threading.Thread(target=runner, args=(i, task), name=f"podops-notify-{i}", daemon=True) for i, task in enumerate(tasks)]
    end = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return [result if result is not None else (False, f"no answer within {timeout:g}s (given up; the deploy went on)") for result in results]


# -- Apprise ----------------------------------------------------------------------------------------------


class _ThreadLog(logging.Handler):
    """The warnings Apprise logs while one thread sends: its error text (Apprise returns only False). The
    only handler of the ``apprise`` logger: nothing it says reaches stderr or a log unredacted."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_thread: dict[int, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        said = self.by_thread.setdefault(record.thread or 0, [])
        said.append(record.getMessage())
        del said[:-5]


_LOG = _ThreadLog()


def _apprise_log() -> _ThreadLog:
    logger = logging.getLogger("apprise")
    if _LOG not in logger.handlers:
        logger.addHandler(_LOG)
        logger.propagate = False
    return _LOG


def apprise_sender(url: str, title: str, body: str, kind: str, timeout: float, log: _ThreadLog) -> t.Callable[[], str | None]:
    def send() -> str | None:
        # optional, and slow to import: only when there is something to send
        import apprise  # pylint: disable=import-outside-toplevel

        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if not plugin:
            return f"not a valid Apprise URL for scheme {url_scheme(url)}:// (see the Apprise documentation of that service)"
        # Apprise's own socket timeouts, inside the deadline: a hanging receiver fails in the thread too.
        plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout or timeout), timeout)
        plugin.socket_read_timeout = min(float(plugin.socket_read_timeout or timeout), timeout)
        notify_type = {"failure": apprise.NotifyType.FAILURE, "success": apprise.NotifyType.SUCCESS}.get(kind, apprise.NotifyType.INFO)
        if plugin.notify(body=body, title=title, notify_type=notify_type):
            return None
        said = log.by_thread.get(threading.get_ident()) or []
        return said[-1] if said else "the service did not accept the message"

    return send


def apprise_available() -> bool:
    try:
        import apprise  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return False
    return True


# -- commit status over HTTP ------------------------------------------------------------------------------


def _opener():  # noqa: ANN202 - urllib's OpenerDirector
    """An opener that refuses redirects: a redirect would carry the token to another address.

    urllib is imported here, not with this file: most runs send no commit status, and urllib.request (with http.client,
    email and ssl) was about a tenth of the imports of a no-op module run."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 - urllib's signature
            raise urllib.error.HTTPError(req.full_url, code, f"redirected to {newurl}; set api_url to the address the API answers at", headers, fp)

    return urllib.request.build_opener(NoRedirect)


def http_sender(url: str, headers: t.Mapping[str, str], body: t.Mapping[str, t.Any], timeout: float) -> t.Callable[[], str | None]:
    def send() -> str | None:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=dict(headers), method="POST")  # noqa: S310 - http(s) checked
        opener = _opener()
        try:
            with opener.open(request, timeout=timeout) as response:
                response.read(65536)
                return None
        except urllib.error.HTTPError as exc:
            detail = ""
            with contextlib.suppress(ValueError, AttributeError, OSError):
                detail = str(json.loads(exc.read(4096) or b"{}").get("message") or "")
            return f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
        except urllib.error.URLError as exc:
            return f"cannot reach {url.split('/')[2] if '//' in url else url}: {exc.reason}"
        except TimeoutError:
            return f"no answer within {timeout:g}s"

    return send


# -- the engine's hook ------------------------------------------------------------------------------------


def commit_subject(runner: Runner, repo_dir: str, commit: str | None) -> str | None:
    """The subject line of the deployed commit (a shallow clone has that one commit)."""
    if not commit:
        return None
    args = ["git", "-c", f"safe.directory={os.path.realpath(repo_dir)}", "-C", repo_dir, "log", "-1", "--format=%s", commit, "--"]
    try:
        rc, out, _err = runner(args, timeout=TIMEOUT_DEFAULTS["podman"])
    except PodopsError:
        return None
    return out.strip()[:200] or None if rc == 0 else None


def status_url_of(settings: NotifySettings, state_dir: str) -> str:
    """The status page: the setting, else what the webhook role recorded when it installed the shim."""
    if settings.status_url:
        return settings.status_url
    try:
        with open(os.path.join(state_dir, STATUS_URL_FILE), encoding="utf-8") as handle:
            url = handle.read().strip().rstrip("/")
    except OSError:
        return ""
    return url if url.startswith(("http://", "https://")) else ""


class Announcer:
    """Notifications and commit status of one run (real runs only: check mode tells nobody)."""

    def __init__(self, settings: NotifySettings, state_dir: str, runner: Runner | None = None, repo_dir: str | None = None, host: str | None = None):
        self.settings = settings
        self.state_dir = state_dir
        self.runner = runner
        self.repo_dir = repo_dir
        self.host = host or host_name()
        self.results: list[Result] = []
        self.pending_commit: str | None = None
        self.memory = load_memory(state_dir)
        self.status_url = status_url_of(settings, state_dir)
        self.extra_secrets: set[str] = set()

    @property
    def secrets(self) -> list[str]:
        return [*self.settings.secrets(), *self.extra_secrets]

    def _context(self) -> str:
        return status_context(self.settings.commit_status, self.host) if self.settings.commit_status else ""

    def _status_task(
        self, commit: str, state: str, report: t.Mapping[str, t.Any] | None, run_id: str, trigger: str
    ) -> tuple[Result, t.Callable[[], str | None]] | None:
        settings = t.cast("t.Any", self.settings.commit_status)
        entry: Result = {"kind": "commit_status", "url_scheme": settings.api_root().split("://", 1)[0], "provider": settings.provider, "state": state}
        try:
            token = settings.read_token()
        except PodopsError as exc:
            entry.update(ok=False, error=str(exc))
            self.results.append(entry)
            return None
        self.extra_secrets.add(token)
        target = run_target_url(self.status_url, report or {"trigger": trigger, "run_id": run_id})
        request = status_request(settings, token, commit, state, status_description(report, state), self._context(), target)
        return entry, http_sender(request.url, request.headers, request.body, self.settings.timeout)

    def _deliver(self, jobs: list[tuple[Result, t.Callable[[], str | None]]]) -> list[Result]:
        outcomes = with_deadline([job for _entry, job in jobs], self.settings.timeout)
        done = []
        for (entry, _job), (ok, error) in zip(jobs, outcomes, strict=True):
            entry.update(ok=ok, error=None if ok else redact(str(error), self.secrets)[:500])
            done.append(entry)
        self.results.extend(done)
        return done

    def started(self, commit: str | None, run_id: str, trigger: str) -> None:
        """After the plan: ``pending`` on a commit that is new for this context."""
        if not self.settings.commit_status or not pending_wanted(commit, self.memory, self._context()):
            return
        task = self._status_task(t.cast(str, commit), "pending", None, run_id, trigger)
        self.pending_commit = commit
        if task is None:
            return
        (entry,) = self._deliver([task])
        if entry["ok"]:
            self.memory = remember_status(self.memory, self._context(), t.cast(str, commit), "pending")

    def finished(self, report: t.Mapping[str, t.Any]) -> list[Result]:
        """With the run report: the message and the final commit status. Returns the report's
        ``notifications``; saves the memory of what was told."""
        jobs: list[tuple[Result, t.Callable[[], str | None]]] = []
        events, memory = decide(report, self.memory)
        told = wanted(events, self.settings.on)
        message_jobs = 0
        if told and self.settings.urls:
            subject = commit_subject(self.runner, self.repo_dir, report.get("commit")) if self.runner and self.repo_dir else None
            message = build_message(report, told, self.host, subject, self.status_url, self.secrets)
            if apprise_available():
                log = _apprise_log()
                for url in self.settings.urls:
                    jobs.append(
                        (
                            {"kind": "notification", "url_scheme": url_scheme(url)},
                            apprise_sender(url, message.title, message.body, message.kind, self.settings.timeout, log),
                        )
                    )
                    message_jobs += 1
            else:
                self.results += [{"kind": "notification", "url_scheme": url_scheme(url), "ok": False, "error": NO_APPRISE} for url in self.settings.urls]
        commit = report.get("commit") or self.pending_commit
        state = final_state(report)
        status_job = None
        if self.settings.commit_status and final_wanted(commit, state, self.memory, self._context(), self.pending_commit == commit):
            status_job = self._status_task(t.cast(str, commit), state, report, str(report.get("run_id")), str(report.get("trigger")))
            if status_job:
                jobs.append(status_job)
        done = self._deliver(jobs) if jobs else []
        messages = done[:message_jobs]
        if told and self.settings.urls and not any(entry["ok"] for entry in messages):
            memory = dict(memory, services=self.memory.get("services") or {})  # nobody heard it: tell again next run
        if status_job and status_job[0].get("ok"):
            memory = remember_status(memory, self._context(), t.cast(str, commit), state)
        elif "commit_status" in self.memory:
            memory["commit_status"] = self.memory["commit_status"]
        self.memory = memory
        with contextlib.suppress(OSError):  # the next run tells again rather than failing this one
            write_json(os.path.join(self.state_dir, MEMORY_FILE), memory)
        return list(self.results)

    def warnings(self) -> list[str]:
        return [f"{entry['kind'].replace('_', ' ')} ({entry['url_scheme']}) not delivered: {entry['error']}" for entry in self.results if not entry.get("ok")]


# -- what podops-pull's fast lane replays ----------------------------------------------------------------


def save_settings(state_dir: str, settings: NotifySettings | None) -> None:
    """After a full run: keep what it was told (URLs and token are secret: the file is 0600 in the 0700 state
    folder, like the snapshots of env files) so that podops-pull's fast lane tells the same people. Without
    settings the file goes."""
    path = os.path.join(state_dir, SETTINGS_FILE)
    if settings is None or not settings.active:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    write_json(path, settings.as_dict())


def load_settings(state_dir: str) -> NotifySettings | None:
    try:
        with open(os.path.join(state_dir, SETTINGS_FILE), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        settings = NotifySettings.from_dict(data)
        settings.validate()
    except PodopsError:
        return None
    return settings
