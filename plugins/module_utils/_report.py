# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run report: ``<state_dir>/last-run.json`` and ``<state_dir>/runs/<run_id>.json``.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

Written atomically at the end of every reconcile, check mode included. The format is part of the
public contract (see the README): the webhook's status page and users' scripts read it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import typing as t
from dataclasses import dataclass

from ._common import utcnow
from ._state import atomic_write, ensure_dir, json_text

TRIGGERS = ("cli", "timer", "webhook", "laptop")
# A caller-chosen run id (the webhook shim passes its own) names the file runs/<run_id>.json.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


def new_run_id(started: str, kind: str = "") -> str:
    """Sortable and unique: ``20261126T123456Z-3f9a1c`` (``20261126T123456Z-pull-3f9a1c`` with ``kind`` pull)."""
    stamp = started.replace("-", "").replace(":", "").split(".")[0].rstrip("Z") + "Z"
    return f"{stamp}-{kind + '-' if kind else ''}{secrets.token_hex(3)}"


def service_entry(
    action: str,
    reason: str,
    digest: str | None = None,
    previous_digest: str | None = None,
    changed_files: t.Sequence[str] = (),
    error: str | None = None,
    duration_s: float = 0.0,
    failure_log: t.Mapping[str, t.Any] | None = None,
) -> dict[str, t.Any]:
    entry = {
        "action": action,
        "reason": reason,
        "changed_files": list(changed_files),
        "digest": digest,
        "previous_digest": previous_digest,
        "error": error,
        "duration_s": round(duration_s, 3),
    }
    if failure_log:
        # A failed or rolled-back service: {"container", "lines" (its last log lines), "healthcheck" (what the
        # check printed, or null)}, secret values masked; captured before the rollback reused the name.
        entry["failure_log"] = dict(failure_log)
    return entry


FAILED_ACTIONS = ("failed", "rolled_back")  # the service does not run the version in the repo
CHANGED_ACTIONS = ("deployed", "rolled_back", "pruned")  # podops changed containers of the service


def overall_result(services: t.Mapping[str, t.Mapping[str, t.Any]], fatal: bool = False) -> str:
    if fatal or any(entry["action"] in FAILED_ACTIONS for entry in services.values()):
        return "failed"
    if any(entry["action"] in ("deployed", "pruned") for entry in services.values()):
        return "changed"
    return "ok"


@dataclass
class Verdict:
    """What a run means to whoever started it - the one place it is decided, for the module, the role and
    podops-pull's fast lane alike."""

    changed: bool
    failed_services: list[str]
    message: str | None  # the text a run with failed services ends with (None: none failed)

    @property
    def exit_code(self) -> int:
        """podops-pull's exit status for the run (ansible-playbook's for a failed task)."""
        return 2 if self.failed_services else 0


def verdict(services: t.Mapping[str, t.Mapping[str, t.Any]], report_path: str) -> Verdict:
    failed = sorted(name for name, entry in services.items() if entry["action"] in FAILED_ACTIONS)
    message = None
    if failed:
        reasons = "".join(f"\n{name}: {services[name].get('error') or services[name]['action']}" for name in failed)
        message = f"service(s) failed: {', '.join(failed)}.{reasons}\nTheir last good version was kept where there was one; see {report_path}."
    return Verdict(any(entry["action"] in CHANGED_ACTIONS for entry in services.values()), failed, message)


def build_report(
    run_id: str,
    trigger: str,
    commit: str | None,
    started: str,
    check_mode: bool,
    services: t.Mapping[str, dict],
    error: str | None = None,
    warnings: t.Sequence[str] = (),
    fast_lane: bool = False,
) -> dict[str, t.Any]:
    report = {
        "run_id": run_id,
        "trigger": trigger,
        "commit": commit,
        "started": started,
        "finished": utcnow(),
        "check_mode": check_mode,
        "result": overall_result(services, fatal=error is not None),
        "services": dict(sorted(services.items())),
    }
    if error:
        report["error"] = error
    if warnings:
        report["warnings"] = list(warnings)
    if fast_lane:
        report["fast_lane"] = True  # podops-pull ran the engine itself, without the playbook (see _lane)
    return report


LAST_RUN = "last-run.json"
LAST_CHECK = "last-check.json"  # a check-mode run's report: it never replaces the last real run's
PROGRESS_FILE = "progress.log"  # the engine's notices about long waits while a run goes on (podops-pull tails it)


def write_report(state_dir: str, report: t.Mapping[str, t.Any], keep: int = 100) -> str:
    """Write the run's file, then last-run.json (last-check.json for a check-mode run, which changed nothing
    and must not hide what the last real run did); drop the oldest run files beyond ``keep``."""
    runs = os.path.join(state_dir, "runs")
    ensure_dir(runs)
    path = os.path.join(runs, f"{report['run_id']}.json")
    text = json_text(report)  # once for both files: a report of 2000 services takes a while to encode
    atomic_write(path, text)
    atomic_write(os.path.join(state_dir, LAST_CHECK if report.get("check_mode") else LAST_RUN), text)
    names = sorted((os.stat(os.path.join(runs, name)).st_mtime_ns, name) for name in os.listdir(runs) if name.endswith(".json"))
    for _mtime, name in names[: max(0, len(names) - keep)]:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(runs, name))
    return path
