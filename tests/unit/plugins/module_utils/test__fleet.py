# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet summary (module_utils/_fleet.py): host x service from the hosts' own run reports."""

from __future__ import annotations

import json

from ansible_collections.podops.gitops.plugins.module_utils._fleet import HostInput, build_summary, render_lines, render_markdown, rollout_stops


def report(result: str, services: dict, commit: str = "c0ffee", run_id: str = "r1") -> dict:
    return {
        "run_id": run_id,
        "trigger": "laptop",
        "commit": commit,
        "started": "2026-01-01T12:00:00Z",
        "finished": "2026-01-01T12:00:05Z",
        "check_mode": False,
        "result": result,
        "services": {name: dict(entry, changed_files=["compose.yaml"], digest="d", duration_s=1.0) for name, entry in services.items()},
    }


def rollout() -> list[HostInput]:
    return [
        HostInput(
            "canary", report("changed", {"web": {"action": "deployed", "reason": "changed"}, "api": {"action": "unchanged", "reason": ""}}), reached=True
        ),
        HostInput("web2", report("failed", {"web": {"action": "rolled_back", "reason": "changed", "error": "port 8080 taken"}}), reached=True),
        HostInput("web3", selection=["web"]),
        HostInput("web4"),
    ]


def summary(hosts=None, **kwargs) -> dict:
    return build_summary(rollout() if hosts is None else hosts, run_id="fleet-1", generated="2026-01-01T12:01:00+00:00", **kwargs)


def test_each_host_has_its_reports_actions_and_the_unreached_ones_are_skipped():
    result = summary()
    assert list(result["hosts"]) == ["canary", "web2", "web3", "web4"]  # the play's order
    assert result["hosts"]["canary"]["services"] == {"web": {"action": "deployed", "reason": "changed"}, "api": {"action": "unchanged"}}
    assert result["hosts"]["canary"]["status"] == "changed"
    assert result["hosts"]["canary"]["run_id"] == "r1"
    assert result["hosts"]["web2"]["services"]["web"] == {"action": "rolled_back", "reason": "changed", "error": "port 8080 taken"}
    # A skipped host lists the services its podops_services selects, of those the other hosts' reports know.
    assert result["hosts"]["web3"] == {"status": "skipped", "error": None, "services": {"web": {"action": "skipped", "reason": "not reached"}}}
    assert set(result["hosts"]["web4"]["services"]) == {"api", "web"}
    assert result["skipped_hosts"] == ["web3", "web4"]
    assert result["services"] == ["api", "web"]
    assert result["totals"] == {"deployed": 1, "unchanged": 1, "rolled_back": 1, "skipped": 3}
    assert result["failed"] == {"web2": []}  # failed host; its service was rolled back, not left failed
    assert result["result"] == "failed"
    assert result["commits"] == ["c0ffee"]
    json.dumps(result)  # JSON-ready


def test_a_host_that_failed_before_podops_ran_is_failed_with_the_reason():
    ssh_error = "Failed to connect to the host via ssh"
    hosts = [HostInput("a", report("ok", {"web": {"action": "unchanged"}}), reached=True), HostInput("b", error=ssh_error, reached=True)]
    result = summary(hosts)
    assert result["hosts"]["b"] == {"status": "failed", "error": "Failed to connect to the host via ssh", "services": {}}
    assert result["failed"] == {"b": []}
    reached_only = summary([HostInput("c", reached=True)])
    assert reached_only["hosts"]["c"]["status"] == "failed"
    assert "before podops ran" in reached_only["hosts"]["c"]["error"]


def test_failed_services_are_named_per_host():
    hosts = [HostInput("a", report("failed", {"web": {"action": "failed", "error": "unhealthy"}, "db": {"action": "unchanged"}}), reached=True)]
    result = summary(hosts)
    assert result["failed"] == {"a": ["web"]}
    lines = render_lines(result)
    assert "a: web: unhealthy" in lines


def test_the_fleet_result_is_ok_changed_incomplete_or_failed():
    ok = HostInput("a", report("ok", {"web": {"action": "unchanged"}}), reached=True)
    changed = HostInput("b", report("changed", {"web": {"action": "deployed"}}), reached=True)
    assert summary([ok])["result"] == "ok"
    assert summary([ok, changed])["result"] == "changed"
    assert summary([ok, HostInput("c")])["result"] == "incomplete"


def test_a_skipped_host_with_a_name_the_repo_lacks_is_not_an_error():
    hosts = [HostInput("a", report("ok", {"web": {"action": "unchanged"}}), reached=True), HostInput("b", selection=["nope", "w*"])]
    assert summary(hosts)["hosts"]["b"]["services"] == {"web": {"action": "skipped", "reason": "not reached"}}


def test_text_and_markdown_tables_have_one_row_per_host_and_one_column_per_service():
    result = summary()
    lines = render_lines(result)
    assert lines[0].startswith("fleet fleet-1: 4 hosts (1 changed, 1 failed, 2 skipped)")
    header, *rows = lines[1:6]
    assert header.split() == ["host", "result", "api", "web"]
    assert rows[0].split() == ["canary", "changed", "unchanged", "deployed"]
    assert rows[1].split() == ["web2", "failed", "-", "rolled_back"]  # api is not part of web2's run
    assert rows[2].split() == ["web3", "skipped", "-", "skipped"]
    assert "not reached (left as they were): web3, web4" in lines
    markdown = render_markdown(result)
    assert "| host | result | api | web |" in markdown
    assert "| web2 | failed | - | rolled_back |" in markdown
    assert "`c0ffee`" in markdown


def test_markdown_cells_cannot_break_the_table():
    hosts = [HostInput("a", report("failed", {"web": {"action": "failed", "error": "bad | value\nsecond line"}}), reached=True)]
    markdown = render_markdown(summary(hosts))
    assert "bad \\| value second line" in markdown


def test_check_mode_is_said():
    assert "check mode" in render_lines(summary(check_mode=True))[0]


def test_a_batch_stops_the_rollout_as_ansible_does():
    result = summary()
    assert rollout_stops(result, ["web2"], 0)  # the whole batch failed
    assert rollout_stops(result, ["canary", "web2"], 0)
    assert not rollout_stops(result, ["canary", "web2"], 50)  # 50% failed is not more than 50%
    assert not rollout_stops(result, ["canary"], 0)
