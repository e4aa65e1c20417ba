# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the shim's unit tests: a config + store + worker factory (the ``setup`` fixture), the recording
deploy command, and ``run_app`` (the aiohttp app in-process on a test server)."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from aiohttp.test_utils import TestClient, TestServer
from podops_webhook.app import create_app
from podops_webhook.config import load
from podops_webhook.host import LocalHost
from podops_webhook.services import Services, import_compose
from podops_webhook.store import Store
from podops_webhook.worker import Worker

# A deploy command that logs its argv to a file, prints a secret-looking line and writes the podops run report.
COMMAND = """
import json, os, sys, time
args = sys.argv[1:]
record, state, seconds = args[0], args[1], float(args[2])
extra = dict(args[i + 1].split("=", 1) for i in range(3, len(args) - 1) if args[i] == "-e")
with open(record, "a") as handle:
    handle.write(json.dumps(args[3:]) + "\\n")
print("token in output: s3cr3t-token", flush=True)
time.sleep(seconds)
os.makedirs(os.path.join(state, "runs"), exist_ok=True)
name = extra.get("podops_service", "web")
result = "failed" if name == "broken" else "changed"
with open(os.path.join(state, "runs", extra["podops_run_id"] + ".json"), "w") as handle:
    json.dump({"run_id": extra["podops_run_id"], "commit": "c" * 40, "result": result,
               "services": {name: {"action": "failed" if result == "failed" else "deployed", "error": "boom" if result == "failed" else None}}}, handle)
sys.exit(2 if name == "broken" else 0)
"""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    repo = tmp_path / "repo"
    for name in ("web", "api"):
        (repo / "services" / name).mkdir(parents=True)
        (repo / "services" / name / "compose.yaml").write_text(f"services:\n  main:\n    image: ghcr.io/team/{name}:latest\n")
    (tmp_path / "secret").write_text("s3cr3t\n")
    (tmp_path / "secret").chmod(0o600)
    (tmp_path / "token").write_text("s3cr3t-token\n")
    (tmp_path / "token").chmod(0o600)

    def make(seconds: float = 0.0, slot: str | None = None, **extra) -> tuple:
        command = [sys.executable, "-c", COMMAND, str(tmp_path / "record.jsonl"), str(tmp_path / "state"), str(seconds)]
        config = {
            "state_dir": str(tmp_path / "state"),
            "repo_dir": str(repo),
            "secret_file": str(tmp_path / "secret"),
            "status_token_file": str(tmp_path / "token"),
            "reconcile_command": command,
            "redeploy_command": command,
            "debounce_seconds": 0.05,
            "podman_command": ["true"],
            "collections_path": "",
        }
        config.update(extra)
        (tmp_path / "cfg.yml").write_text(json.dumps(config))
        cfg = load(str(tmp_path / "cfg.yml"), slot=slot)
        store = Store(cfg.db_path)
        return cfg, store, Worker(cfg, store, local_host(cfg))

    make.tmp = tmp_path
    return make


def local_host(config) -> LocalHost:
    return LocalHost(config, Services(config.services_root, import_compose("")))


def records(tmp_path) -> list[list[str]]:
    path = tmp_path / "record.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_app(config, store, worker, coro_fn):
    async def main():
        client = TestClient(TestServer(create_app(config, store, worker, worker.host)))
        await client.start_server()
        try:
            return await coro_fn(client)
        finally:
            await client.close()

    return asyncio.run(main())
