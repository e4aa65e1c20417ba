# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker (coalescing, argv, reports, log cap, timeout) with real subprocesses, and the aiohttp app
in-process (health and the A/B marker, the status token, the service-name check)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time

from podops_webhook.store import Store
from podops_webhook.verify import signature_hex
from podops_webhook.worker import CappedLog, Worker
from shimtest import local_host, records, run_app


def test_triggers_during_a_run_cost_one_more_run(setup):
    config, store, worker = setup(seconds=0.5)

    async def scenario():
        task = asyncio.create_task(worker.run_forever())
        first = worker.submit(True, [], "a" * 40, None)
        await asyncio.sleep(0.2)  # the first run is going now
        assert worker.current is not None and worker.current.id == first
        second = {worker.submit(True, [], None, None) for _index in range(50)}
        second |= {worker.submit(False, ["api"], None, None) for _index in range(3)}  # a multi-arch push: 3 package events
        assert len(second) == 1 and first not in second
        while worker.current is not None or worker.pending is not None:
            await asyncio.sleep(0.05)
        task.cancel()
        return first, second.pop()

    first, second = asyncio.run(scenario())
    calls = records(setup.tmp)
    assert calls == [
        ["-e", "podops_trigger=webhook", "-e", f"podops_run_id={first}"],
        ["-e", "podops_trigger=webhook", "-e", f"podops_run_id={second}"],
        ["-e", "podops_trigger=webhook", "-e", f"podops_run_id={second}-2", "-e", "podops_service=api"],
    ]
    runs = {run["id"]: run for run in store.runs(with_log=True)}
    assert runs[first]["status"] == "changed" and runs[first]["deliveries"] == 1 and runs[first]["requested_commit"] == "a" * 40
    assert runs[second]["deliveries"] == 53 and runs[second]["services"] == ["api"] and runs[second]["reconcile"] is True
    assert runs[second]["outcome"]["api"]["run_id"] == f"{second}-2" and runs[second]["outcome"]["web"]["action"] == "deployed"
    assert "s3cr3t-token" not in runs[first]["log"] and "[redacted]" in runs[first]["log"]


def test_a_push_to_an_idle_worker_skips_the_debounce_a_package_event_waits_it_out(setup):
    """One push is not delayed by debounce_seconds (nothing to coalesce it with); a package event waits."""
    config, store, worker = setup(debounce_seconds=30.0, debounce_max_seconds=60.0)

    async def scenario():
        task = asyncio.create_task(worker.run_forever())
        push = worker.submit(True, [], None, None)
        started = time.monotonic()
        while worker.current is None and worker.pending is not None:
            await asyncio.sleep(0.01)
        # The debounce is 30 s: a start within 10 s is a start without it, on however slow a machine.
        started_at_once = worker.current is not None and worker.current.id == push and time.monotonic() - started < 10
        while worker.current is not None:
            await asyncio.sleep(0.01)
        package = worker.submit(False, ["api"], None, None)
        await asyncio.sleep(0.3)
        waited = worker.current is None and worker.pending is not None and worker.pending.id == package
        task.cancel()
        return started_at_once, waited

    started_at_once, waited = asyncio.run(scenario())
    assert started_at_once, "the push waited for the 30 s debounce"
    assert waited, "the package event did not wait for the debounce"
    assert len(records(setup.tmp)) == 1


def test_a_failed_step_fails_the_run_and_keeps_its_error(setup):
    config, store, worker = setup()

    async def scenario():
        task = asyncio.create_task(worker.run_forever())
        run_id = worker.submit(False, ["broken", "web"], None, None)
        while store.run(run_id)["status"] in ("queued", "running"):
            await asyncio.sleep(0.05)
        task.cancel()
        return run_id

    run = store.run(asyncio.run(scenario()))
    assert run["status"] == "failed" and run["rc"] == 0  # the last step (web) succeeded, the run still failed
    assert run["outcome"]["broken"]["error"] == "boom" and run["outcome"]["web"]["action"] == "deployed"
    assert "exited with 2" in run["error"]


def test_timeout_kills_the_command(setup):
    config, store, worker = setup(seconds=30, run_timeout_seconds=0.5)

    async def scenario():
        task = asyncio.create_task(worker.run_forever())
        run_id = worker.submit(True, [], None, None)
        start = time.monotonic()
        while store.run(run_id)["status"] in ("queued", "running"):
            await asyncio.sleep(0.05)
        task.cancel()
        return run_id, time.monotonic() - start

    run_id, took = asyncio.run(scenario())
    run = store.run(run_id)
    assert took < 10 and run["status"] == "failed" and "timed out" in run["error"] and "killed after 0.5s" in run["log"]


def test_missing_command_is_a_failed_run(setup):
    config, store, worker = setup(reconcile_command=["/nonexistent/podops-pull"])

    async def scenario():
        task = asyncio.create_task(worker.run_forever())
        run_id = worker.submit(True, [], None, None)
        while store.run(run_id)["status"] in ("queued", "running"):
            await asyncio.sleep(0.05)
        task.cancel()
        return run_id

    run = store.run(asyncio.run(scenario()))
    assert run["status"] == "failed" and "cannot start /nonexistent/podops-pull" in run["error"]


def test_capped_log_keeps_head_and_tail():
    log = CappedLog(4096, [b"SECRET"])
    log.add(b"start SECRET\n" + b"x" * 10000)
    log.add(b"\nthe end")
    text = log.text()
    assert text.startswith("start [redacted]") and text.endswith("the end") and "bytes of output left out" in text
    assert len(text) < 4200


def test_health_follows_the_ab_marker(setup):
    config, store, worker = setup(slot="b", listen={"a": "127.0.0.1:1", "b": "127.0.0.1:2"})
    marker = setup.tmp / "state" / "ab" / "webhook.json"

    async def probe(client):
        found = []
        for content in (None, '{"active": "b"}', '{"active": "a"}', "[]", "{oops"):
            if content is not None:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(content)
            response = await client.get("/health")
            found.append((response.status, (await response.json())["status"]))
        worker.draining = True
        marker.write_text('{"active": "b"}')
        response = await client.get("/health")
        found.append((response.status, (await response.json())["status"]))
        return found

    assert run_app(config, store, worker, probe) == [(200, "ok"), (200, "ok"), (503, "standby"), (503, "unknown"), (503, "unknown"), (503, "draining")]


def test_ready_answers_on_a_standby_but_not_while_draining(setup):
    """The A/B switch waits for /ready of the new instance: it is the standby until the switch flips."""
    config, store, worker = setup(slot="b", listen={"a": "127.0.0.1:1", "b": "127.0.0.1:2"})
    marker = setup.tmp / "state" / "ab" / "webhook.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('{"active": "a"}')

    async def probe(client):
        found = []
        for path in ("/health", "/ready"):
            response = await client.get(path)
            found.append((path, response.status, (await response.json())["status"]))
        worker.draining = True
        response = await client.get("/ready")
        found.append(("/ready", response.status, (await response.json())["status"]))
        return found

    assert run_app(config, store, worker, probe) == [("/health", 503, "standby"), ("/ready", 200, "ready"), ("/ready", 503, "draining")]


def test_status_token_guards_page_api_and_metrics_not_health_or_hooks(setup):
    config, store, worker = setup()

    async def probe(client):
        codes = {}
        for path in ("/", "/api/status", "/api/runs", "/api/runs/x", "/metrics"):
            codes[path] = (await client.get(path)).status
        codes["health"] = (await client.get("/health")).status
        codes["bearer"] = (await client.get("/api/runs", headers={"Authorization": "Bearer s3cr3t-token"})).status
        codes["wrong"] = (await client.get("/api/runs", headers={"Authorization": "Bearer nope"})).status
        codes["bad-query"] = (await client.get("/?token=nope", allow_redirects=False)).status
        login = await client.get("/?token=s3cr3t-token", allow_redirects=False)
        codes["login"] = login.status
        cookie = login.cookies["podops_status_token"]
        codes["cookie"] = bool(cookie["httponly"]) and bool(cookie["secure"]) and cookie["samesite"] == "Strict"
        # the cookie is Secure: a client sends it over https (or, browsers, to http://localhost); here, by hand
        jar = {"Cookie": f"podops_status_token={cookie.value}"}
        codes["page"] = (await client.get("/", headers=jar)).status
        codes["missing-run"] = (await client.get("/api/runs/nope", headers=jar)).status
        return codes

    codes = run_app(config, store, worker, probe)
    assert codes == {
        "/": 401,
        "/api/status": 401,
        "/api/runs": 401,
        "/api/runs/x": 401,
        "/metrics": 401,
        "health": 200,
        "bearer": 200,
        "wrong": 401,
        "bad-query": 401,
        "login": 303,
        "cookie": True,
        "page": 200,
        "missing-run": 404,
    }


def test_redeploy_route_checks_the_name_after_the_signature(setup):
    config, store, worker = setup(seed_routes=True)
    body = b'{"action": "published"}'
    good = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + signature_hex(b"s3cr3t", body)}

    async def probe(client):
        return [
            (await client.post("/redeploy-and-update/nope", data=body, headers={**good, "X-Hub-Signature-256": "sha256=" + "0" * 64})).status,
            (await client.post("/redeploy-and-update/nope", data=body, headers=good)).status,
            (await client.post("/redeploy-and-update/web", data=body, headers=good)).status,
        ]

    assert run_app(config, store, worker, probe) == [401, 404, 202]
    assert [run["services"] for run in store.runs()] == [["web"]]


def test_services_view_joins_state_runs_and_containers(setup):
    """state.json (status, commit, when, error) + newest run outcome + podman ps (a stand-in printing its JSON)."""
    from podops_webhook.status import Containers, services_view

    ps = [
        {"Names": ["p-web_main_1"], "State": "running", "Status": "Up 1 minute", "Image": "i", "Id": "a" * 64, "Labels": {"io.podops.service": "web"}},
        {"Names": ["p-gone_main_1"], "State": "exited", "Status": "Exited (0)", "Image": "i", "Id": "b" * 64, "Labels": {"io.podops.service": "gone"}},
    ]
    podman = [sys.executable, "-c", f"import sys; print({json.dumps(json.dumps(ps))}); sys.stderr.write(' '.join(sys.argv[1:]))"]
    config, store, worker = setup(podman_command=podman, project_prefix="p-")
    state = setup.tmp / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "state.json").write_text(
        json.dumps(
            {
                "version": 1,
                "services": {
                    "web": {"status": "ok", "commit": "c" * 40, "deployed_at": "2026-11-26T10:00:00.000000Z", "error": None},
                    "api": {"status": "failed", "commit": "d" * 40, "error": "health gate: web never became healthy"},
                    "gone": {"status": "ok", "commit": "e" * 40},
                },
            }
        )
    )
    store.create_run("r-1", "webhook", None)
    store.finish_run("r-1", "failed", 2, {"api": {"action": "rolled_back", "error": "health gate"}}, "", None, None)
    assert Containers(config).argv()[-4:] == ["--filter", "label=io.podops.service", "--filter", "label=io.podops.prefix=p-"]
    host = local_host(config)

    async def view():
        return await services_view(host, store), await host.containers()

    listed, (_found, error) = asyncio.run(view())
    rows = {row["name"]: row for row in listed}
    assert rows["web"]["state"] == "ok" and rows["web"]["running"] == "1/1" and rows["web"]["healthy"] and rows["web"]["commit"] == "c" * 40
    assert rows["api"]["state"] == "failed" and rows["api"]["error"].startswith("health gate") and rows["api"]["last_action"] == "rolled_back"
    assert rows["api"]["last_run"] == "r-1" and rows["api"]["containers"] == []
    assert rows["gone"]["state"] == "orphaned" and rows["gone"]["running"] == "0/1"
    assert error is None


def test_a_draining_instance_hands_its_queued_run_to_the_other(setup):
    """Slot a drains with a run queued; slot b (same database) adopts it and merges it into its own."""
    config_a, store_a, worker_a = setup(slot="a")
    store_b = Store(config_a.db_path)  # the other slot's process: its own connection to the shared database
    config_b = dataclasses.replace(config_a, slot="b")
    worker_b = Worker(config_b, store_b, local_host(config_b))

    async def scenario():
        handed = worker_a.submit(True, [], "a" * 40, None)
        store_a.claim_delivery("d-1", "github", "push", "/hooks/github", "run", "push", "a")
        store_a.link_delivery("d-1", handed)
        await worker_a.drain()
        assert store_b.run(handed)["status"] == "released"
        own = worker_b.submit(False, ["api"], None, None)
        assert worker_b.adopt_released() == 1
        assert worker_b.adopt_released() == 0, "claimed once"
        task = asyncio.create_task(worker_b.run_forever())
        while store_b.run(own)["status"] in ("queued", "running"):
            await asyncio.sleep(0.05)
        task.cancel()
        return handed, own

    handed, own = asyncio.run(scenario())
    merged, ran = store_b.run(handed), store_b.run(own)
    assert merged["status"] == "merged" and own in merged["error"]
    assert ran["status"] == "changed" and ran["reconcile"] is True and ran["services"] == ["api"] and ran["deliveries"] == 2
    assert ran["delivery_ids"] == ["d-1"], "the delivery moved with the run"
    assert [call[:4] for call in records(setup.tmp)] == [["-e", "podops_trigger=webhook", "-e", f"podops_run_id={own}"]] + [
        ["-e", "podops_trigger=webhook", "-e", f"podops_run_id={own}-2"]
    ]
