# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_notify and _deliver: what a run tells, to whom, once; commit status requests per provider; deadlines."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest
from ansible_collections.podops.gitops.plugins.module_utils import _deliver
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._notify import (
    CommitStatusSettings,
    NotifySettings,
    build_message,
    counts,
    decide,
    failure_key,
    final_wanted,
    pending_wanted,
    remember_status,
    status_description,
    status_request,
    url_secrets,
    wanted,
)
from ansible_collections.podops.gitops.plugins.module_utils._redact import MASK, redact


def report(services=None, error=None, commit="a" * 40, run_id="20261201T000000Z-abcdef", trigger="timer"):
    data = {"run_id": run_id, "trigger": trigger, "commit": commit, "result": "ok", "services": services or {}}
    if error:
        data.update(error=error, result="failed")
    elif any(e["action"] in ("failed", "rolled_back") for e in data["services"].values()):
        data["result"] = "failed"
    return data


def svc(action, reason="changed", error=None, **extra):
    return {"action": action, "reason": reason, "error": error, **extra}


# --- what to tell, once ---------------------------------------------------------------------------------


def test_a_failure_is_an_event_once_then_again_when_its_error_changes_and_when_it_recovers():
    first, memory = decide(report({"web": svc("rolled_back", error="container web-1 exited with code 3")}), {})
    assert [(e.kind, e.service) for e in first] == [("rolled_back", "web")]
    same, memory = decide(report({"web": svc("rolled_back", "retry", error="container web-1 exited with code 3")}), memory)
    assert same == []
    other, memory = decide(report({"web": svc("rolled_back", "retry", error="container web-1 exited with code 1")}), memory)
    assert [e.kind for e in other] == ["rolled_back"]
    healthy, memory = decide(report({"web": svc("unchanged", "unchanged")}), memory)
    assert [e.kind for e in healthy] == ["recovered"]
    after, memory = decide(report({"web": svc("unchanged", "unchanged")}), memory)
    assert after == [] and memory["services"] == {}


def test_failure_key_ignores_ids_and_durations_but_not_the_error():
    a = failure_key("failed", "container 3f9a1c2b4d5e6f70 not healthy after 30.2s")
    b = failure_key("failed", "container 0123456789ab not healthy after 31s")
    assert a == b
    assert a != failure_key("rolled_back", "container 0123456789ab not healthy after 31s")
    assert a != failure_key("failed", "image localhost/x:1 not found")


def test_deploys_prunes_and_orphans_are_events_and_an_orphan_is_told_once():
    events, memory = decide(report({"a": svc("deployed"), "b": svc("pruned", "removed"), "c": svc("orphaned", "removed")}), {})
    assert sorted((e.kind, e.service) for e in events) == [("deployed", "a"), ("orphaned", "c"), ("pruned", "b")]
    events, memory = decide(report({"a": svc("unchanged", "unchanged"), "c": svc("orphaned", "removed")}), memory)
    assert events == []
    assert wanted([], ["failed"]) == []


def test_a_run_that_fails_before_any_service_is_told_once_and_keeps_what_was_known():
    _events, memory = decide(report({"web": svc("failed", error="bad image")}), {})
    events, memory = decide(report(error="cannot fetch the env repo: host down", commit=None), memory)
    assert [(e.kind, e.service) for e in events] == [("failed", "")]
    assert "web" in memory["services"], "a run that saw no service forgets nothing about them"
    events, memory = decide(report(error="cannot fetch the env repo: host down", commit=None), memory)
    assert events == []
    events, memory = decide(report({"web": svc("deployed")}), memory)
    assert sorted(e.kind for e in events) == ["deployed", "recovered", "recovered"]


# --- the message ----------------------------------------------------------------------------------------


def test_the_message_names_host_run_commit_services_errors_and_log_lines_and_hides_secrets():
    data = report(
        {
            "web": svc(
                "rolled_back",
                error="container web-1 exited with code 3",
                failure_log={"container": "web-1", "lines": ["using token hunter2-secret", "boom"], "healthcheck": None},
            ),
            "api": svc("deployed"),
            "db": svc("unchanged", "unchanged"),
        },
        trigger="webhook",
    )
    events, _memory = decide(data, {})
    message = build_message(data, events, "server1", "Fix the proxy", "http://status:8095", secrets=["hunter2-secret"])
    assert message.title == "podops server1: web rolled back; api deployed"
    assert message.kind == "failure"
    body = message.body
    for line in (
        "host: server1",
        "run: 20261201T000000Z-abcdef (trigger webhook)",
        f"commit: {'a' * 12} Fix the proxy",
        "result: failed (1 deployed, 1 rolled back)",
        "status page: http://status:8095/#run-20261201T000000Z-abcdef",
        "- web: rolled_back (changed): container web-1 exited with code 3",
        "    | web-1: boom",
        "- api: deployed (changed)",
        "- 1 unchanged",
    ):
        assert line in body.splitlines(), body
    assert "hunter2-secret" not in body and f"using token {MASK}" in body


def test_counts_and_descriptions():
    assert counts(report({"a": svc("deployed"), "b": svc("deployed"), "c": svc("rolled_back"), "d": svc("unchanged")})) == "2 deployed, 1 rolled back"
    assert counts(report({"d": svc("unchanged")})) == "no change"
    assert status_description(None, "pending") == "podops is deploying this commit"
    long = status_description(report(error="x" * 300, commit=None), "error")
    assert len(long) == 140 and long.startswith("podops run failed: xxx")


# --- secrets --------------------------------------------------------------------------------------------


def test_url_secrets_cover_credentials_tokens_in_paths_and_query_values():
    found = url_secrets("ntfys://user:pa%40ss@ntfy.example.org/alerts-topic-9f?auth=tk_abcdef&priority=high")
    assert {"user", "pa%40ss", "pa@ss", "alerts-topic-9f", "tk_abcdef", "high"} <= found
    assert "ntfy.example.org" not in found
    assert redact("sent to alerts-topic-9f with tk_abcdef", found) == f"sent to {MASK} with {MASK}"


def test_settings_are_checked_without_quoting_a_url():
    with pytest.raises(PodopsError, match="entry 1 is not an Apprise URL") as caught:
        NotifySettings.from_params(["hunter2-token-only"], None, None).validate()
    assert "hunter2" not in str(caught.value)
    with pytest.raises(PodopsError, match="podops_notify_on may only name"):
        NotifySettings.from_params([], ["sometimes"], None).validate()
    with pytest.raises(PodopsError, match="owner/name"):
        NotifySettings.from_params([], None, {"provider": "github", "repository": "nope", "token": "t"}).validate()
    with pytest.raises(PodopsError, match="api_url is needed for forgejo"):
        NotifySettings.from_params([], None, {"provider": "forgejo", "repository": "a/b", "token": "t"}).validate()
    with pytest.raises(PodopsError, match="needs a token"):
        NotifySettings.from_params([], None, {"provider": "gitlab", "repository": "a/b"}).validate()
    settings = NotifySettings.from_params(["json://h/x"], None, {"provider": "github", "repository": "a/b", "token": "tok-1234"})
    settings.validate()
    assert "tok-1234" in settings.secrets() and "tok-1234" not in repr(settings)


# --- commit status requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "api_url", "url", "auth", "name_field", "failure"),
    [
        ("github", "", "https://api.github.com/repos/acme/env/statuses/SHA", ("Authorization", "Bearer TOK"), "context", "failure"),
        (
            "gitea",
            "https://git.example.org",
            "https://git.example.org/api/v1/repos/acme/env/statuses/SHA",
            ("Authorization", "token TOK"),
            "context",
            "failure",
        ),
        (
            "forgejo",
            "https://codeberg.org/api/v1",
            "https://codeberg.org/api/v1/repos/acme/env/statuses/SHA",
            ("Authorization", "token TOK"),
            "context",
            "failure",
        ),
        ("gitlab", "", "https://gitlab.com/api/v4/projects/acme%2Fenv/statuses/SHA", ("PRIVATE-TOKEN", "TOK"), "name", "failed"),
    ],
)
def test_status_request_per_provider(provider, api_url, url, auth, name_field, failure):
    settings = CommitStatusSettings(provider=provider, repository="acme/env", api_url=api_url, token="TOK")
    settings.validate()
    request = status_request(settings, "TOK", "SHA", "failure", "1 rolled back", "podops/server1", "http://status/#run-1")
    assert request.url == url
    assert request.headers[auth[0]] == auth[1]
    assert request.body == {"state": failure, name_field: "podops/server1", "description": "1 rolled back", "target_url": "http://status/#run-1"}
    assert "TOK" not in repr(request)


def test_pending_goes_to_new_commits_and_finals_only_follow_pending_or_a_change():
    memory = {}
    assert pending_wanted("c1", memory, "ctx")
    assert final_wanted("c1", "success", memory, "ctx", pending_posted=True)
    memory = remember_status(memory, "ctx", "c1", "success")
    assert not pending_wanted("c1", memory, "ctx")
    assert not final_wanted("c1", "success", memory, "ctx", pending_posted=False), "a no-op tick posts nothing"
    assert final_wanted("c1", "failure", memory, "ctx", pending_posted=False), "a failure on the same commit is posted"
    assert pending_wanted("c1", memory, "other-host"), "each context has its own memory"
    assert not final_wanted(None, "error", memory, "ctx", pending_posted=False)


# --- delivery -------------------------------------------------------------------------------------------


def test_with_deadline_gives_up_on_a_hanging_task_in_time():
    release = threading.Event()
    started = time.monotonic()
    results = _deliver.with_deadline([lambda: None, lambda: "refused", lambda: release.wait(30) and None, lambda: 1 / 0], timeout=0.5)
    took = time.monotonic() - started
    release.set()
    assert took < 2
    assert results[0] == (True, None) and results[1] == (False, "refused")
    assert results[2][0] is False and results[2][1].startswith("no answer within 0.5s")
    assert results[3] == (False, "ZeroDivisionError: division by zero")


def test_without_apprise_each_url_is_reported_and_nothing_fails(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise -> ImportError
    settings = NotifySettings.from_params(["ntfys://ntfy.sh/secret-topic-1"], None, None)
    announcer = _deliver.Announcer(settings, str(tmp_path), host="h1")
    results = announcer.finished(report({"web": svc("failed", error="boom")}))
    assert results == [{"kind": "notification", "url_scheme": "ntfys", "ok": False, "error": _deliver.NO_APPRISE}]
    assert "apprise library is not installed" in announcer.warnings()[0]
    memory = json.loads((tmp_path / "notify-memory.json").read_text())
    assert memory["services"] == {}, "nobody heard of the failure: the next run tells it again"


def test_saved_settings_are_private_and_removed_when_unset(tmp_path):
    settings = NotifySettings.from_params(["json://h/x"], ["failed"], {"provider": "gitlab", "repository": "7", "token": "glpat-1"})
    _deliver.save_settings(str(tmp_path), settings)
    path = tmp_path / "notify.json"
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = _deliver.load_settings(str(tmp_path))
    assert loaded is not None and loaded.as_dict() == settings.as_dict()
    _deliver.save_settings(str(tmp_path), NotifySettings())
    assert not path.exists()
    assert _deliver.load_settings(str(tmp_path)) is None


def test_status_url_comes_from_the_setting_or_the_webhook_role(tmp_path):
    assert _deliver.status_url_of(NotifySettings(status_url="http://a:1"), str(tmp_path)) == "http://a:1"
    assert _deliver.status_url_of(NotifySettings(), str(tmp_path)) == ""
    (tmp_path / "status-url").write_text("https://deploy.example.org/\n")
    assert _deliver.status_url_of(NotifySettings(), str(tmp_path)) == "https://deploy.example.org"
