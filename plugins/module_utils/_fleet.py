# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet summary: one table host x service -> action, built from the hosts' own run reports.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

A laptop run over many hosts (``serial`` batches, canary first) ends with one picture on the controller: for every
host of the play its result and, per service, what its run report says (deployed, unchanged, rolled_back, failed,
...). A host the rollout never reached is ``skipped`` (with the services it would have reconciled); a host that
failed before podops ran on it (unreachable, a failed sync) is ``failed`` with the reason. Pure data in, data out:
the action plugin ``podops.gitops.fleet_report`` collects the inputs from the play and writes the files.
"""

from __future__ import annotations

import fnmatch
import typing as t
from dataclasses import dataclass, field

from ._common import PodopsError
from ._plan import select

FLEET_VERSION = 1
# The order the totals and the console table list actions in; other actions of a run report follow, sorted.
ACTIONS = ("deployed", "unchanged", "rolled_back", "failed", "skipped", "pruned", "orphaned")
MISSING = "-"  # a service that is not part of that host's run


@dataclass
class HostInput:
    """What the play knows about one host."""

    name: str
    report: dict | None = None  # the run report the engine returned (podops_result.report)
    error: str = ""  # why the host failed without a report (unreachable, the sync failed, bad settings)
    reached: bool = False  # the rollout got to this host (its batch ran)
    selection: list[str] = field(default_factory=list)  # its podops_services (names or globs; empty: all)


def _selected(names: t.Iterable[str], selection: t.Sequence[str]) -> list[str]:
    """The services a host would reconcile: what ``podops_services`` selects (the engine's rule), never an error."""
    names = sorted(set(names))
    try:
        chosen, _warnings = select(names, list(selection))
    except PodopsError:  # a plain name the repo does not have: the host's own run says so when it runs
        chosen = {name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in selection)}
    return sorted(chosen)


def _host_entry(host: HostInput, all_services: list[str]) -> dict:
    report = host.report
    if report:
        services = {
            name: {key: value for key, value in (("action", entry.get("action")), ("reason", entry.get("reason")), ("error", entry.get("error"))) if value}
            for name, entry in sorted((report.get("services") or {}).items())
        }
        return {
            "status": report.get("result") or "failed",
            "run_id": report.get("run_id"),
            "commit": report.get("commit"),
            "started": report.get("started"),
            "finished": report.get("finished"),
            "check_mode": bool(report.get("check_mode")),
            "error": host.error or None,
            "services": services,
        }
    if host.reached or host.error:
        return {"status": "failed", "error": host.error or "failed before podops ran on it (unreachable?)", "services": {}}
    return {
        "status": "skipped",
        "error": None,
        "services": {name: {"action": "skipped", "reason": "not reached"} for name in _selected(all_services, host.selection)},
    }


def build_summary(hosts: t.Sequence[HostInput], *, run_id: str, generated: str, check_mode: bool = False) -> dict:
    """The fleet summary (JSON-ready) of ``hosts``, in the play's host order."""
    all_services = sorted({name for host in hosts if host.report for name in (host.report.get("services") or {})})
    entries = {host.name: _host_entry(host, all_services) for host in hosts}
    services = sorted({name for entry in entries.values() for name in entry["services"]})
    totals: dict[str, int] = {}
    for entry in entries.values():
        for service in entry["services"].values():
            totals[service["action"]] = totals.get(service["action"], 0) + 1
    failed = {
        name: sorted(service for service, value in entry["services"].items() if value["action"] == "failed")
        for name, entry in entries.items()
        if entry["status"] == "failed"
    }
    statuses = [entry["status"] for entry in entries.values()]
    if "failed" in statuses:
        result = "failed"
    elif "skipped" in statuses:
        result = "incomplete"
    else:
        result = "changed" if "changed" in statuses else "ok"
    return {
        "version": FLEET_VERSION,
        "run_id": run_id,
        "generated": generated,
        "check_mode": check_mode,
        "result": result,
        "hosts": entries,
        "services": services,
        "totals": dict(sorted(totals.items(), key=lambda item: (_action_rank(item[0]), item[0]))),
        "failed": failed,
        "skipped_hosts": [name for name, entry in entries.items() if entry["status"] == "skipped"],
        "commits": sorted({entry["commit"] for entry in entries.values() if entry.get("commit")}),
    }


def _action_rank(action: str) -> int:
    return ACTIONS.index(action) if action in ACTIONS else len(ACTIONS)


def _rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    header = ["host", "result", *summary["services"]]
    rows = []
    for name, entry in summary["hosts"].items():
        cells = [entry["services"].get(service, {}).get("action", MISSING) for service in summary["services"]]
        rows.append([name, entry["status"], *cells])
    return header, rows


def _headline(summary: dict) -> str:
    counts: dict[str, int] = {}
    for entry in summary["hosts"].values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    hosts = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    actions = ", ".join(f"{count} {action}" for action, count in summary["totals"].items()) or "no services"
    mode = " (check mode: nothing was changed)" if summary["check_mode"] else ""
    return f"fleet {summary['run_id']}: {len(summary['hosts'])} hosts ({hosts}); services: {actions}{mode}"


def _failure_lines(summary: dict) -> list[str]:
    lines = []
    for name in summary["failed"]:
        entry = summary["hosts"][name]
        failed = [f"{service}: {entry['services'][service].get('error') or 'failed'}" for service in summary["failed"][name]]
        lines.append(f"{name}: " + ("; ".join(failed) if failed else entry.get("error") or "failed"))
    if summary["skipped_hosts"]:
        lines.append("not reached (left as they were): " + ", ".join(summary["skipped_hosts"]))
    return lines


def render_lines(summary: dict) -> list[str]:
    """The summary as aligned text lines, for the play's output."""
    header, rows = _rows(summary)
    widths = [max(len(str(row[index])) for row in [header, *rows]) for index in range(len(header))]
    table = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return [_headline(summary), *table, *_failure_lines(summary)]


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: dict) -> str:
    """The summary as a markdown page (a table host x service, then the failures)."""
    header, rows = _rows(summary)
    lines = [f"# podops fleet run {summary['run_id']}", "", _headline(summary), ""]
    lines.append("| " + " | ".join(_md_cell(cell) for cell in header) + " |")
    lines.append("|" + "---|" * len(header))
    lines.extend("| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows)
    failures = _failure_lines(summary)
    if failures:
        lines += ["", "## Failed and not reached", ""] + [f"- {_md_cell(line)}" for line in failures]
    if summary["commits"]:
        lines += ["", "Commit: " + ", ".join(f"`{commit}`" for commit in summary["commits"])]
    return "\n".join(lines) + "\n"


def rollout_stops(summary: dict, batch: t.Sequence[str], max_fail_percentage: float) -> bool:
    """Whether this batch's failures end the rollout (Ansible's rule: more than max_fail_percentage, or all failed)."""
    if not batch:
        return True
    failed = sum(1 for name in batch if summary["hosts"].get(name, {}).get("status") == "failed")
    return failed == len(batch) or failed * 100.0 / len(batch) > max_fail_percentage
