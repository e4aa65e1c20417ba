# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_report: the run report is a public contract (DESIGN.md, "Run report"): its fields are fixed."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import utcnow
from ansible_collections.podops.gitops.plugins.module_utils._report import build_report, new_run_id, overall_result, service_entry, verdict, write_report

REPORT_KEYS = ["check_mode", "commit", "finished", "result", "run_id", "services", "started", "trigger"]
SERVICE_KEYS = ["action", "changed_files", "digest", "duration_s", "error", "previous_digest", "reason"]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# --- run ids --------------------------------------------------------------------------------------------------------


def test_run_id_format():
    assert re.fullmatch(r"20261126T123456Z-[0-9a-f]{6}", new_run_id("2026-11-26T12:34:56.123456Z"))
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", new_run_id(utcnow()))


def test_run_ids_sort_by_start_time():
    starts = [
        "2025-12-31T23:59:59.999999Z",
        "2026-01-01T00:00:00.000000Z",
        "2026-01-01T00:00:01.000000Z",
        "2026-01-01T00:01:00.000000Z",
        "2026-01-01T09:00:00.000000Z",
        "2026-01-01T10:00:00.000000Z",
        "2026-01-02T00:00:00.000000Z",
        "2026-10-01T00:00:00.000000Z",
    ]
    ids = [new_run_id(started) for started in starts]

    assert sorted(reversed(ids)) == ids


def test_run_ids_of_one_second_differ():
    assert len({new_run_id("2026-11-26T12:34:56.000001Z") for attempt in range(20)}) == 20


def test_run_id_of_a_start_without_fraction():
    assert re.fullmatch(r"20261126T123456Z-[0-9a-f]{6}", new_run_id("2026-11-26T12:34:56Z"))


# --- result --------------------------------------------------------------------------------------------------------


def entries(*actions):
    return {f"s{index}": service_entry(action, "x") for index, action in enumerate(actions)}


@pytest.mark.parametrize(
    ("actions", "fatal", "expected"),
    [
        ((), False, "ok"),
        (("unchanged", "orphaned", "skipped"), False, "ok"),
        (("unchanged", "deployed"), False, "changed"),
        (("pruned",), False, "changed"),
        (("deployed", "failed"), False, "failed"),
        (("deployed", "rolled_back"), False, "failed"),
        (("unchanged",), True, "failed"),
        ((), True, "failed"),
    ],
)
def test_overall_result(actions, fatal, expected):
    assert overall_result(entries(*actions), fatal=fatal) == expected


# --- report --------------------------------------------------------------------------------------------------------


def test_service_entry_has_the_contract_fields():
    entry = service_entry("deployed", "changed", digest="d" * 64, previous_digest="p" * 64, changed_files=("conf/app.conf",), error=None, duration_s=12.345678)

    assert entry == {
        "action": "deployed",
        "reason": "changed",
        "changed_files": ["conf/app.conf"],
        "digest": "d" * 64,
        "previous_digest": "p" * 64,
        "error": None,
        "duration_s": 12.346,
    }
    assert sorted(service_entry("unchanged", "unchanged")) == SERVICE_KEYS


def test_report_has_exactly_the_contract_fields():
    started = "2026-11-26T12:34:56.123456Z"
    services = {"web": service_entry("deployed", "new", digest="d" * 64), "api": service_entry("unchanged", "unchanged")}

    report = build_report("20261126T123456Z-abcdef", "timer", "c" * 40, started, False, services)

    assert sorted(report) == REPORT_KEYS
    assert {key: value for key, value in report.items() if key != "finished"} == {
        "run_id": "20261126T123456Z-abcdef",
        "trigger": "timer",
        "commit": "c" * 40,
        "started": started,
        "check_mode": False,
        "result": "changed",
        "services": services,
    }
    assert list(report["services"]) == ["api", "web"]
    assert ISO_UTC.match(report["finished"])
    assert report["finished"] >= started
    assert json.loads(json.dumps(report)) == report


def test_report_of_a_failed_run_carries_the_error_and_warnings():
    report = build_report("r", "webhook", None, utcnow(), True, {}, error="another reconcile is running", warnings=["services/x ignored"])

    assert sorted(report) == sorted([*REPORT_KEYS, "error", "warnings"])
    assert (report["result"], report["error"], report["warnings"], report["commit"], report["check_mode"]) == (
        "failed",
        "another reconcile is running",
        ["services/x ignored"],
        None,
        True,
    )


def run_report(run_id, result_action="unchanged"):
    return build_report(run_id, "cli", None, "2026-11-26T12:00:00.000000Z", False, {"web": service_entry(result_action, "unchanged")})


def test_write_report_writes_the_run_and_last_run(tmp_path):
    report = run_report("20261126T120000Z-aaaaaa")

    path = write_report(str(tmp_path), report)

    assert path == str(tmp_path / "runs" / "20261126T120000Z-aaaaaa.json")
    for written in (path, tmp_path / "last-run.json"):
        with open(written, encoding="utf-8") as handle:
            assert json.load(handle) == report
        assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["last-run.json", "runs"]
    assert os.listdir(tmp_path / "runs") == ["20261126T120000Z-aaaaaa.json"]


def test_write_report_keeps_the_newest_runs(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("not a run")
    ids = [f"2026112{day}T120000Z-{day}{day}{day}{day}{day}{day}" for day in range(1, 7)]

    for run_id in ids:
        write_report(str(tmp_path), run_report(run_id), keep=3)

    assert sorted(os.listdir(tmp_path / "runs")) == sorted([f"{run_id}.json" for run_id in ids[-3:]] + ["notes.txt"])
    with open(tmp_path / "last-run.json", encoding="utf-8") as handle:
        assert json.load(handle)["run_id"] == ids[-1]


# --- the verdict: one for the module, the role and the fast lane ---------------------------------------------------


def test_verdict_of_a_run_with_failures_names_each_service_with_its_error():
    services = {
        "web": service_entry("deployed", "changed"),
        "api": service_entry("rolled_back", "changed", error="not healthy after 30s"),
        "db": service_entry("failed", "invalid", error="compose.yaml: no services"),
        "old": service_entry("pruned", "removed"),
    }
    outcome = verdict(services, "/state/runs/r1.json")
    assert outcome.changed is True
    assert outcome.failed_services == ["api", "db"]
    assert outcome.exit_code == 2
    assert outcome.message == (
        "service(s) failed: api, db.\napi: not healthy after 30s\ndb: compose.yaml: no services\n"
        "Their last good version was kept where there was one; see /state/runs/r1.json."
    )


@pytest.mark.parametrize(("actions", "changed"), [(["unchanged", "orphaned"], False), (["unchanged", "pruned"], True), (["deployed"], True)])
def test_verdict_of_a_run_without_failures(actions, changed):
    outcome = verdict({f"s{i}": service_entry(action, "x") for i, action in enumerate(actions)}, "/r.json")
    assert (outcome.changed, outcome.failed_services, outcome.message, outcome.exit_code) == (changed, [], None, 0)
