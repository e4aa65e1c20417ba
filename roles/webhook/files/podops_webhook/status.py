# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What runs where: one row per service, from the podops state file, the run history and ``podman ps``
(read here, or by the run broker for an unprivileged shim: ``host.py``).

- state: ``<state_dir>/state.json`` (written by every reconcile): status, commit, deployed when, last error
- last outcome: the newest run in the shim's history that names the service
- containers: ``podman ps -a --format json --filter label=io.podops.service`` (argv only), cached briefly
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import typing as t

from .config import Config
from .store import Store

LABEL_SERVICE = "io.podops.service"
LABEL_PREFIX = "io.podops.prefix"
PS_CACHE_SECONDS = 2.0


def read_state(state_dir: str) -> dict[str, dict]:
    try:
        with open(os.path.join(state_dir, "state.json"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    services = data.get("services") if isinstance(data, dict) else None
    return services if isinstance(services, dict) else {}


class Containers:
    """``podman ps`` of the podops containers, at most once per PS_CACHE_SECONDS."""

    def __init__(self, config: Config):
        self.config = config
        self._at = 0.0
        self._value: dict[str, list[dict]] = {}
        self.error: str | None = None
        self._lock = asyncio.Lock()

    def argv(self) -> list[str]:
        argv = [*self.config.podman_command, "ps", "-a", "--format", "json", "--filter", f"label={LABEL_SERVICE}"]
        if self.config.project_prefix:
            argv += ["--filter", f"label={LABEL_PREFIX}={self.config.project_prefix}"]
        return argv

    async def by_service(self) -> dict[str, list[dict]]:
        async with self._lock:
            if time.monotonic() - self._at < PS_CACHE_SECONDS:
                return self._value
            env = dict(os.environ)
            env.pop("CREDENTIALS_DIRECTORY", None)
            env.update(self.config.environment)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
                )
                out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
            except (OSError, TimeoutError) as exc:
                self.error = f"podman ps failed: {exc}"
                self._at = time.monotonic()
                return self._value
            if proc.returncode != 0:
                self.error = f"podman ps failed: {err.decode(errors='replace').strip()[-300:]}"
                self._at = time.monotonic()
                return self._value
            try:
                listed = json.loads(out or b"[]") or []
            except ValueError:
                listed = []
            found: dict[str, list[dict]] = {}
            for item in listed:
                labels = item.get("Labels") or {}
                names = item.get("Names") or ["?"]
                found.setdefault(labels.get(LABEL_SERVICE, "?"), []).append(
                    {
                        "name": names[0],
                        "state": item.get("State", ""),
                        "status": item.get("Status", ""),
                        "image": item.get("Image", ""),
                        "id": (item.get("Id") or "")[:12],
                        "commit": labels.get("io.podops.commit", ""),
                    }
                )
            self._value, self.error, self._at = found, None, time.monotonic()
            return found


def last_outcomes(store: Store, limit: int = 50) -> dict[str, dict]:
    """The newest run outcome per service, from the shim's history."""
    found: dict[str, dict] = {}
    for run in store.runs(limit=limit):
        for name, entry in run["outcome"].items():
            found.setdefault(name, {**entry, "run_id": run["id"], "finished": run["finished"]})
    return found


async def services_view(host: t.Any, store: Store) -> list[dict[str, t.Any]]:
    """One row per service; ``host`` is the shim's ``host.Host`` (what runs here, from the host or the broker)."""
    state = await host.state()
    outcomes = last_outcomes(store)
    running, _error = await host.containers()
    in_repo = set(await host.names())
    names = sorted(in_repo | set(state) | set(running))
    rows = []
    for name in names:
        entry = state.get(name) or {}
        ctrs = running.get(name, [])
        up = sum(1 for c in ctrs if c["state"] == "running")
        if not entry:
            status = "not deployed" if name in in_repo else "unknown"
        elif name not in in_repo:
            status = "orphaned"
        else:
            status = entry.get("status") or "unknown"
        outcome = outcomes.get(name, {})
        rows.append(
            {
                "name": name,
                "state": status,
                "healthy": status == "ok" and (not ctrs or up == len(ctrs)),
                "commit": entry.get("commit"),
                "deployed_at": entry.get("deployed_at"),
                "error": entry.get("error") or outcome.get("error"),
                "last_action": outcome.get("action"),
                "last_run": outcome.get("run_id"),
                "containers": ctrs,
                "running": f"{up}/{len(ctrs)}",
            }
        )
    return rows
