"""The status page after a deploy went wrong, in Debian's headless Chromium, on real podman.

The shim runs the real reconcile for two pushes: the first deploys ``web`` and ``app``; the second breaks
``app``'s health check (podops rolls it back: its first version keeps serving) and adds ``new``, whose image
does not exist (it never ran). The page must say exactly that - ``app`` serves its previous version, ``new``
failed, the header tells the last run - link the published URL and the commits on the git host (the env
repo's origin is a GitHub URL), and show times in the viewer's local time. Screenshots at desktop (1280)
and phone (390) width go to .work/artifacts/ (``make screenshots`` copies them to docs/images/).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import REPO_ROOT, EnvRepo, Host, free_port, http_get, sh, web_service
from test_webhook_e2e import CHROMEDRIVER, CHROMIUM, commands
from webhook_helpers import TOKEN, Shim, github_push, write_secret

ARTIFACTS = REPO_ROOT / ".work" / "artifacts"
FAST_GATE = "x-podops:\n  url_scheme: http\n  health: {timeout: 4, samples: 2, interval: 0.3}\n"
VIEWER_ZONE = "Europe/Berlin"  # the browser's time zone (this machine's is UTC): local times must differ
BROKEN_HEALTH = '["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/no-such-page"]'


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    base = tmp_path_factory.mktemp("status-page")
    host = Host(base)
    repo = EnvRepo(base / "env-repo")
    repo_remote = "git@github.com:example/env-repo.git"
    ports = {"web": free_port(), "app": free_port(), "new": free_port()}
    repo.add_web("web", ports["web"], "web v1", xpodops=FAST_GATE)
    repo.add_web("app", ports["app"], "app v1", xpodops=FAST_GATE)
    first = repo.commit("web and app: first version")
    sh("git", "-C", str(repo.path), "remote", "add", "origin", repo_remote)
    reconcile, redeploy = commands(host, repo)
    shim = Shim(
        base / "shim",
        reconcile_command=reconcile,
        redeploy_command=redeploy,
        repo_dir=repo.path,
        state_dir=host.state_dir,
        project_prefix=host.prefix,
        status_token_file=str(write_secret(base / "status.token", TOKEN)),
        debounce_seconds=0.2,
    )
    shim.start()
    try:
        run = shim.wait_run(shim.post("/hooks/github", github_push(after=first)).json["run_id"])
        assert run["status"] == "changed", run["log"][-3000:]
        repo.write("services/app/compose.yaml", web_service(ports["app"], health=BROKEN_HEALTH, xpodops=FAST_GATE))
        repo.write("services/app/site/index.html", "app v2")
        repo.add_web("new", ports["new"], "new v1", image="localhost/podops-does-not-exist:1", xpodops=FAST_GATE)
        second = repo.commit("app: v2 (its health check fails); add new")
        broken = shim.wait_run(shim.post("/hooks/github", github_push(after=second)).json["run_id"])
        assert broken["status"] == "failed", broken["log"][-3000:]
        assert {name: entry["action"] for name, entry in broken["outcome"].items()} == {"web": "unchanged", "app": "rolled_back", "new": "failed"}
        yield shim, ports, first, broken
    finally:
        rc = shim.stop()
        host.cleanup()
        assert rc == 0, shim.log()[-3000:]


def chromium(width: int, height: int, phone: bool):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(arg)
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}})
    else:
        options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=dict(os.environ, TZ=VIEWER_ZONE)), options=options)
    driver.set_page_load_timeout(30)
    return driver


def test_the_page_says_what_serves_what_failed_and_what_the_last_run_did(broken_site):
    shim, ports, first, broken = broken_site
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "chromium / chromium-driver missing: run `make setup` as root"
    from selenium.webdriver.common.by import By

    assert http_get(ports["app"]).strip() == "app v1", "the rollback put app's first version back"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height, phone) in {"desktop": (1280, 900, False), "phone": (390, 844, True)}.items():
        driver = chromium(width, height, phone)
        try:
            driver.get(f"{shim.url}/?token={TOKEN.decode()}")
            cards = {el.get_attribute("data-service"): el for el in driver.find_elements(By.CSS_SELECTOR, ".service")}
            assert set(cards) == {"web", "app", "new"}, driver.page_source[:500]

            app = cards["app"]
            assert app.get_attribute("data-condition") == "serving-previous", app.text
            assert "serving the previous version; last deploy failed" in app.text
            link = app.find_element(By.CSS_SELECTOR, "a.commit")
            assert link.get_attribute("href") == f"https://github.com/example/env-repo/commit/{first}"
            assert "web and app: first version" in app.text, "the commit it serves, by its subject"
            assert "last error:" in app.text and "rolled back" in app.text

            new = cards["new"]
            assert new.get_attribute("data-condition") == "failed" and "failed" in new.text and "serving" not in new.text, new.text
            assert "podops-does-not-exist" in new.text

            web = cards["web"]
            assert web.get_attribute("data-condition") == "ok"
            url = web.find_element(By.CSS_SELECTOR, "ul.urls a").get_attribute("href")
            assert url == f"http://127.0.0.1:{ports['web']}/" and http_get(ports["web"]).strip() == "web v1"

            header = driver.find_element(By.ID, "last-run")
            assert header.get_attribute("data-run") == broken["id"] and header.get_attribute("data-result") == "failed"
            assert "failed: app, new" in header.text and "(webhook)" in header.text, header.text
            assert "1 rolled back" in header.text and "1 unchanged" in header.text
            assert "app: v2 (its health check fails); add new" in header.text

            # times: UTC from the server, the viewer's local time from the shim's own script (CSP: script-src 'self')
            times = driver.find_elements(By.CSS_SELECTOR, "time[datetime]")
            assert times and all(el.find_elements(By.CSS_SELECTOR, ".local") for el in times), "localtime.js did not run"
            local = times[0].find_element(By.CSS_SELECTOR, ".local").text
            assert VIEWER_ZONE in local and "UTC" in times[0].text, times[0].text
            logged = [entry["message"] for entry in driver.get_log("browser") if "favicon.ico" not in entry["message"]]
            blocked = [message for message in logged if "Content Security Policy" in message or "Uncaught" in message]
            assert not blocked, blocked

            viewport, scroll = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
            assert viewport == width and scroll <= viewport, f"page {scroll}px wide on a {viewport}px screen: it scrolls sideways"
            driver.execute_script("document.querySelectorAll('details.run').forEach((d, i) => { d.open = i === 0; })")
            shot = ARTIFACTS / f"status-page-{label}.png"
            if not phone:
                total = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(width, min(max(total + 100, height), 2400))
            assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 5000
        finally:
            driver.quit()
