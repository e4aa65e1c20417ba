# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the status page says about a service, the last run, commits and URLs - and that nothing a broker
could send that does not fit reaches the page."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from podops_webhook import gitinfo
from podops_webhook.status import check_details, condition, read_last_run, services_view, url_link
from shimtest import local_host, run_app

BEARER = {"Authorization": "Bearer s3cr3t-token"}
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("remote", "base"),
    [
        ("https://github.com/me/env.git", "https://github.com/me/env/commit/"),
        ("https://x-access-token:ghp_SECRET@github.com/me/env.git", "https://github.com/me/env/commit/"),
        ("git@github.com:me/env.git", "https://github.com/me/env/commit/"),
        ("ssh://git@git.example.org:2222/team/env.git", "https://git.example.org/team/env/commit/"),
        ("https://codeberg.org/me/env", "https://codeberg.org/me/env/commit/"),
        ("https://oauth2:glpat-SECRET@gitlab.com/group/sub/env.git", "https://gitlab.com/group/sub/env/-/commit/"),
        ("git@gitlab.example.org:group/env.git", "https://gitlab.example.org/group/env/-/commit/"),
        ("/srv/env-repo", None),
        ("file:///srv/env-repo", None),
        ("https://github.com/me", None),
        ("https://github.com/me/env.git?x=1", None),
        ("https://github.com/me/../env", None),
        ("git@github.com:me/env name.git", None),
        ("", None),
        (None, None),
    ],
)
def test_commit_links_come_from_git_host_urls_without_their_credentials(remote, base):
    assert gitinfo.commit_link_base(remote) == base
    if base:
        assert gitinfo.LINK_BASE_RE.fullmatch(base) and "SECRET" not in base
        assert gitinfo.commit_link(base, SHA) == base + SHA
        assert gitinfo.commit_link(base, "HEAD") is None


def test_subjects_are_read_from_the_checkout_one_line_each(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "--allow-empty", "-m", "web: v2 <b>bold</b>\n\nbody text")
    head = git("rev-parse", "HEAD")
    found = asyncio.run(gitinfo.subjects(str(tmp_path), [head, "f" * 40, "not-a-sha"]))
    assert found == {head: "web: v2 <b>bold</b>"}
    assert asyncio.run(gitinfo.subjects(str(tmp_path / "nothing"), [head])) == {}


@pytest.mark.parametrize(
    ("status", "entry", "up", "total", "expected"),
    [
        ("failed", {"digest": "d1"}, 1, 1, "serving-previous"),
        ("failed", {"digest": "d1"}, 0, 1, "failed"),
        ("failed", {"digest": None}, 0, 0, "failed"),
        ("ok", {"digest": "d1"}, 1, 2, "degraded"),
        ("ok", {"digest": "d1"}, 2, 2, "ok"),
        ("not deployed", {}, 0, 0, "not-deployed"),
    ],
)
def test_condition_tells_a_service_serving_its_previous_version_from_a_failed_one(status, entry, up, total, expected):
    cond, summary = condition(status, entry, up, total)
    assert cond == expected
    if expected == "serving-previous":
        assert summary == "serving the previous version; last deploy failed"


def test_url_links_use_the_page_host_for_ports_on_all_interfaces():
    assert url_link("http://localhost:8080/", "deploy.example.org") == {
        "text": "http://deploy.example.org:8080/",
        "href": "http://deploy.example.org:8080/",
        "note": "",
    }
    assert url_link("http://127.0.0.1:8080/", "deploy.example.org")["href"] is None
    assert url_link("http://127.0.0.1:8080/", "127.0.0.1")["href"] == "http://127.0.0.1:8080/"
    assert url_link("https://localhost:8443/", 'evil"><script>')["href"] == "https://localhost:8443/"
    assert url_link("udp/53", "h") == {"text": "udp/53", "href": None, "note": ""}


def test_details_from_a_broker_keep_only_what_fits():
    raw = {
        "last_run": {"run_id": "../x", "result": "ok"},
        "urls": {"web": ["http://localhost:8080/", "javascript:alert(1)", "http://evil.example/"], "../x": ["localhost:1"], "api": "x"},
        "subjects": {SHA: "fix\nsecond line", "x": "y", "f" * 40: 42},
        "commit_link_base": "javascript:alert(1)//commit/",
    }
    details = check_details(raw)
    assert details == {"last_run": None, "urls": {"web": ["http://localhost:8080/"]}, "subjects": {SHA: "fix second line"}, "commit_link_base": None}
    assert check_details("nonsense") == {"last_run": None, "urls": {}, "subjects": {}, "commit_link_base": None}
    good = check_details(
        {
            "commit_link_base": "https://github.com/me/env/commit/",
            "last_run": {"run_id": "r1", "result": "weird", "trigger": "<b>", "actions": {"deployed": 1, "x y": 2}},
        }
    )
    assert good["commit_link_base"] == "https://github.com/me/env/commit/"
    assert good["last_run"]["result"] == "failed" and good["last_run"]["trigger"] is None and good["last_run"]["actions"] == {"deployed": 1}


def test_last_run_summary_counts_actions_and_names_failures(tmp_path):
    assert read_last_run(str(tmp_path)) is None
    (tmp_path / "last-run.json").write_text("{broken")
    assert read_last_run(str(tmp_path)) is None
    report = {
        "run_id": "20261201T100000Z-abc123",
        "trigger": "timer",
        "commit": SHA,
        "started": "2026-12-01T10:00:00.000000Z",
        "finished": "2026-12-01T10:00:05.000000Z",
        "check_mode": False,
        "result": "failed",
        "services": {"app": {"action": "rolled_back"}, "web": {"action": "unchanged"}, "db": {"action": "unchanged"}},
    }
    (tmp_path / "last-run.json").write_text(json.dumps(report))
    summary = read_last_run(str(tmp_path))
    assert summary["actions"] == {"rolled_back": 1, "unchanged": 2} and summary["failed"] == ["app"]
    assert summary["trigger"] == "timer" and summary["result"] == "failed" and summary["finished"] == report["finished"]


def test_page_shows_serving_previous_last_run_urls_and_commit_links(setup):
    """The page, rendered from a state with one service serving its previous version, a last run from the
    timer, a published http port and a repo whose origin is on GitHub (with a token in the URL)."""
    config, store, worker = setup(podman_command=["true"])
    repo = setup.tmp / "repo"
    (repo / "services" / "web" / "compose.yaml").write_text(
        "x-podops: {url_scheme: http}\nservices:\n  main:\n    image: ghcr.io/team/web:latest\n    ports: ['8080:80']\n"
    )

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", "web: first <version>")
    git("remote", "add", "origin", "https://x-access-token:ghp_TOKENVALUE@github.com/me/env.git")
    head = git("rev-parse", "HEAD")
    state = setup.tmp / "state"
    state.mkdir(parents=True, exist_ok=True)
    services = {
        "web": {"status": "ok", "commit": head, "digest": "d1", "deployed_at": "2026-12-01T09:00:00.000000Z"},
        "api": {"status": "failed", "commit": head, "digest": "d2", "error": "health gate: <never> healthy", "failed_at": "2026-12-01T10:00:05.000000Z"},
    }
    (state / "state.json").write_text(json.dumps({"version": 1, "services": services}))
    (state / "last-run.json").write_text(
        json.dumps(
            {
                "run_id": "20261201T100000Z-abc123",
                "trigger": "timer",
                "commit": head,
                "finished": "2026-12-01T10:00:05.000000Z",
                "result": "failed",
                "services": {"api": {"action": "rolled_back"}, "web": {"action": "unchanged"}},
            }
        )
    )
    failing = {"container": "api_main_1", "lines": ["starting", "<script>alert(1)</script> crashed", 7], "healthcheck": "wget: server returned 404"}
    store.create_run("r-1", "webhook", None)
    outcome = {
        "api": {"action": "rolled_back", "reason": "changed", "error": "health gate", "failure_log": failing},
        "web": {"action": "unchanged", "reason": "unchanged", "error": None, "failure_log": "odd"},
    }
    store.finish_run("r-1", "failed", 2, outcome, "", None, head)
    host = local_host(config)
    ps = {name: [{"name": f"{name}_main_1", "state": "running", "status": "Up", "image": "i", "id": "1", "commit": head}] for name in ("api", "web")}

    async def containers():
        return ps, None

    host.containers = containers

    async def probe(client):
        return await (await client.get("/", headers=BEARER)).text(), await (await client.get("/api/status", headers=BEARER)).json()

    rows = {row["name"]: row for row in asyncio.run(services_view(host, store, asyncio.run(host.details())))}
    assert rows["api"]["condition"] == "serving-previous" and rows["api"]["state"] == "failed"
    assert rows["web"]["urls"] == ["http://localhost:8080/"] and rows["web"]["commit_subject"] == "web: first <version>"

    worker.host = host
    html, status = run_app(config, store, worker, probe)
    assert "ghp_TOKENVALUE" not in html and "ghp_TOKENVALUE" not in json.dumps(status)
    assert "serving the previous version; last deploy failed" in html
    assert 'data-condition="serving-previous"' in html
    assert f'href="https://github.com/me/env/commit/{head}"' in html
    assert "web: first &lt;version&gt;" in html and "&lt;never&gt;" in html and "<never>" not in html
    assert 'id="last-run"' in html and 'data-result="failed"' in html and "(timer)" in html and "failed: api" in html
    assert 'href="http://127.0.0.1:8080/"' in html  # the test client opens the page on 127.0.0.1
    assert '<time datetime="2026-12-01T10:00:05.000000Z">' in html
    # the failing container's last lines (run report field failure_log), escaped, in the card and the run
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt; crashed") == 2 and "<script>alert" not in html
    assert "healthcheck said: <code>wget: server returned 404</code>" in html and "last log lines of <code>api_main_1</code>" in html
    assert status["host_last_run"]["run_id"] == "20261201T100000Z-abc123" and status["conditions"] == {"ok": 1, "serving-previous": 1}
