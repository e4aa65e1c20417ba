"""End to end: a git host's signed push reaches the real shim, which runs the real reconcile
(ansible-playbook podops.gitops.reconcile, real podman and podman-compose) on a real env repo; the changed
service serves its new content, and the run shows on /api/runs and the status page - also in Debian's
headless Chromium. Then a 200-delivery burst: all answered, none lost, at most 2 runs.

The tests of this module share one shim, env repo and host, in order (each builds on the previous state).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, EnvRepo, Host, free_port, http_get
from webhook_helpers import TOKEN, Shim, github_push, request, write_secret

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import webhook_burst  # noqa: E402 - the benchmark's burst is the test's burst

ARTIFACTS = REPO_ROOT / ".work" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def commands(host: Host, repo: EnvRepo) -> tuple[list[str], list[str]]:
    variables = ["-e", f"podops_repo_dir={repo.path}", "-e", f"podops_state_dir={host.state_dir}", "-e", f"podops_project_prefix={host.prefix}"]
    return ["ansible-playbook", "podops.gitops.reconcile", *variables], ["ansible-playbook", "podops.gitops.redeploy", *variables]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Env repo with services web and api, a host, and the shim (status token on) in front of them."""
    base = tmp_path_factory.mktemp("webhook-e2e")
    host = Host(base)
    repo = EnvRepo(base / "env-repo")
    ports = {"web": free_port(), "api": free_port()}
    repo.add_web("web", ports["web"], "web v1")
    repo.add_web("api", ports["api"], "api v1")
    repo.commit("first")
    reconcile, redeploy = commands(host, repo)
    token_file = write_secret(base / "status.token", TOKEN)
    shim = Shim(
        base / "shim",
        reconcile_command=reconcile,
        redeploy_command=redeploy,
        repo_dir=repo.path,
        state_dir=host.state_dir,
        project_prefix=host.prefix,
        status_token_file=str(token_file),
        debounce_seconds=0.3,
    )
    shim.start()
    try:
        yield shim, host, repo, ports
    finally:
        rc = shim.stop()
        host.cleanup()
        assert rc == 0, shim.log()[-3000:]


def push(shim: Shim, repo: EnvRepo, commit: str):
    response = shim.post("/hooks/github", github_push(after=commit))
    assert response.status == 202, response
    assert response.elapsed < 0.5, f"answered in {response.elapsed:.3f}s"
    return response.json["run_id"]


def test_push_deploys_the_changed_service_and_records_the_run(site):
    shim, host, repo, ports = site
    first = push(shim, repo, repo.commit("empty commit: deploy what is there"))
    run = shim.wait_run(first)
    assert run["status"] == "changed", run["log"][-3000:]
    assert {name: entry["action"] for name, entry in run["outcome"].items()} == {"web": "deployed", "api": "deployed"}
    assert http_get(ports["web"]).strip() == "web v1"

    repo.write("services/web/site/index.html", "web v2")
    commit = repo.commit("web v2")
    run_id = push(shim, repo, commit)
    run = shim.wait_run(run_id)
    assert run["status"] == "changed", run["log"][-3000:]
    assert run["commit"] == commit and run["requested_commit"] == commit
    assert run["outcome"]["web"]["action"] == "deployed" and run["outcome"]["web"]["reason"] == "changed", run["outcome"]
    assert run["outcome"]["api"]["action"] == "unchanged", run["outcome"]
    assert "PLAY RECAP" in run["log"] and str(TOKEN.decode()) not in run["log"]
    assert http_get(ports["web"]).strip() == "web v2"
    assert http_get(ports["api"]).strip() == "api v1"

    listed = {item["id"]: item for item in shim.runs()}
    assert listed[run_id]["outcome"]["web"]["action"] == "deployed"
    status = shim.get("/api/status").json
    web = next(svc for svc in status["services"] if svc["name"] == "web")
    assert web["state"] == "ok" and web["commit"] == commit and web["running"] == "1/1", web
    page = shim.get("/").body.decode()
    assert f'data-run="{run_id}"' in page and 'data-service="web"' in page and commit[:12] in page
    # the page and API are behind the token: without it, 401 and nothing about the services
    anonymous = request(shim.url + "/api/status")
    assert anonymous.status == 401 and b"web" not in anonymous.body


def test_burst_of_200_signed_deliveries_costs_at_most_2_runs(site):
    shim, host, repo, ports = site
    result = webhook_burst.measure(shim.url, shim.secret_file.read_bytes().strip(), token=TOKEN, n=200, seconds=2.0, wait_timeout=300)
    assert result["answered_2xx"] == 200, result["statuses"]
    assert result["lost_deliveries"] == 0
    assert set(result["delivery_ids"]) == {item["delivery"] for item in result["results"]}
    assert 1 <= result["runs_started"] <= 2, result["runs"]
    assert all(run["status"] == "ok" for run in result["runs"]), result["runs"]
    assert sum(run["deliveries"] for run in result["runs"]) == 200
    assert result["latency_ms"]["p99"] < 1000, result["latency_ms"]
    (ARTIFACTS).mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "webhook-burst.json").write_text(json.dumps({k: v for k, v in result.items() if k not in ("results", "delivery_ids")}, indent=2))
    assert http_get(ports["web"]).strip() == "web v2"
    metrics = shim.get("/metrics").body.decode()
    queued = next(line for line in metrics.splitlines() if line.startswith('podops_webhook_deliveries_total{provider="github",decision="queued"}'))
    assert int(queued.split()[-1]) >= 202  # the two pushes of the first test and the burst
    assert 'podops_webhook_requests_total{route="/hooks/{provider}",code="202"}' in metrics
    assert "podops_webhook_last_run_success 1" in metrics and "process_resident_memory_bytes" in metrics


def test_status_page_in_headless_chromium(site):
    shim, host, repo, ports = site
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "chromium / chromium-driver missing: run `make setup` as root"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2}})  # a phone
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(f"{shim.url}/?token={TOKEN.decode()}")  # sets the cookie (HttpOnly, Secure: kept on http://127.0.0.1), redirects to /
        assert driver.current_url.rstrip("/") == shim.url, driver.current_url
        assert driver.find_elements(By.CSS_SELECTOR, ".service"), "the cookie did not log the browser in: " + driver.page_source[:300]
        # the page's style block runs under its CSP nonce (a blocked style would leave body at full width)
        assert driver.execute_script("return getComputedStyle(document.body).maxWidth") == "960px"
        blocked = [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]
        assert not blocked, blocked
        cards = {el.get_attribute("data-service"): el for el in driver.find_elements(By.CSS_SELECTOR, ".service")}
        assert set(cards) == {"web", "api"}, list(cards)
        assert cards["web"].get_attribute("data-state") == "ok"
        assert "deployed" in cards["web"].text and " ago" in cards["web"].text, cards["web"].text
        assert cards["web"].find_elements(By.CSS_SELECTOR, "ul.ctr li.up"), cards["web"].text
        runs = driver.find_elements(By.CSS_SELECTOR, "details.run")
        ids = [el.get_attribute("data-run") for el in runs]
        assert ids and ids == [run["id"] for run in shim.runs()[: len(ids)]]
        newest = runs[0]
        assert newest.get_attribute("open") is not None and "PLAY RECAP" in newest.find_element(By.TAG_NAME, "pre").text
        web_outcomes = driver.find_elements(By.CSS_SELECTOR, 'details.run tr.outcome[data-service="web"]')
        assert web_outcomes, "no per-service outcome rendered"
        viewport, width = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
        assert viewport == 390 and width <= viewport, f"page {width}px wide on a {viewport}px phone screen: it scrolls sideways"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "webhook-status-page.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 5000
    finally:
        driver.quit()


def test_status_page_refreshes_itself_while_a_run_is_going(site):
    shim, host, repo, ports = site
    run_id = push(shim, repo, repo.commit("empty: nothing changes"))
    deadline = time.monotonic() + 10
    page = ""
    while time.monotonic() < deadline:
        page = shim.get("/").body.decode()
        if 'http-equiv="refresh"' in page:
            break
        time.sleep(0.05)
    assert 'http-equiv="refresh"' in page
    assert shim.wait_run(run_id)["status"] == "ok"
    assert 'http-equiv="refresh"' not in shim.get("/").body.decode()
