# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One background worker that runs the deploy commands, one run at a time, bursts coalesced.

A trigger joins the *queued* run (there is at most one). The queued run starts once nothing is running
and no trigger came for ``debounce_seconds`` (a burst is waited out; at most ``debounce_max_seconds`` after
its first trigger). Triggers that arrive while a run is going therefore cost at most one more run, however
many there are. A push that finds the worker idle (nothing running, nothing queued) starts at once: there is
nothing to coalesce it with yet, and the triggers that follow it join the next run, so a burst costs at most
two runs and a single push is not delayed by the debounce. Package events always wait it out (one multi-arch
image push sends several in a row). A run executes, with no shell and a fixed argv:

- ``reconcile_command -e podops_trigger=webhook -e podops_run_id=<run id>`` when any trigger asked for
  a reconcile (a push), then
- ``redeploy_command -e podops_trigger=webhook -e podops_run_id=<run id>-<n> -e podops_service=<name>``
  for each service a package/release event named (fresh images for them).

Each step reads ``<state_dir>/runs/<that id>.json`` (the podops run report) for the per-service outcome.
The steps run through the shim's ``Host`` (``host.py``): here, or - for an unprivileged shim - in the
root-side run broker. The output of the commands is the run's log: secrets scrubbed, size capped.
"""

from __future__ import annotations

import asyncio
import logging
import time
import typing as t
from dataclasses import dataclass, field

from .config import Config
from .host import Host
from .store import Store, new_run_id

LOG = logging.getLogger("podops_webhook")
ORDER = {"ok": 0, "changed": 1, "failed": 2}


@dataclass
class Run:
    id: str
    reconcile: bool = False
    services: set[str] = field(default_factory=set)
    requested_commit: str | None = None
    deliveries: int = 0
    first_at: float = field(default_factory=time.monotonic)
    at_once: bool = False  # a push that found the worker idle: it starts without the debounce


class CappedLog:
    """Keeps the first and the last ``limit/2`` bytes of a stream, with a marker for what was cut."""

    def __init__(self, limit: int, redactions: t.Sequence[bytes]):
        self.half = max(1024, limit // 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.cut = 0
        self.redactions = [r for r in redactions if r]

    def add(self, data: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            excess = len(self.tail) - self.half
            if excess > 0:
                del self.tail[:excess]
                self.cut += excess

    def text(self) -> str:
        data = bytes(self.head)
        if self.cut:
            data += f"\n[... {self.cut} bytes of output left out ...]\n".encode()
        data += bytes(self.tail)
        for secret in self.redactions:
            data = data.replace(secret, b"[redacted]")
        return data.decode("utf-8", "replace")


class Worker:
    def __init__(self, config: Config, store: Store, host: Host):
        self.config = config
        self.store = store
        self.host = host
        self.pending: Run | None = None
        self.current: Run | None = None
        self.current_log: CappedLog | None = None
        self.draining = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_submit = 0.0

    # called by the HTTP handlers (same event loop): quick, no awaits
    def submit(self, reconcile: bool, services: t.Iterable[str], commit: str | None, delivery: str | None) -> str:
        """Add a trigger to the queued run (creating it when there is none); return that run's id."""
        run = self.pending
        if run is None:
            run = self.pending = Run(new_run_id(), at_once=reconcile and self.current is None)
            self.store.create_run(run.id, "webhook", self.config.slot)
        run.at_once = run.at_once and not services
        run.reconcile = run.reconcile or reconcile
        run.services.update(services)
        run.requested_commit = commit or run.requested_commit
        run.deliveries += 1
        self._last_submit = time.monotonic()
        self.store.update_queued(run.id, run.reconcile, run.services, run.requested_commit, run.deliveries)
        if delivery:
            self.store.link_delivery(delivery, run.id)
        self._wake.set()
        return run.id

    def adopt_released(self) -> int:
        """Take over the queued runs a stopping instance handed over (the other A/B slot draining, or this
        slot's previous process): no trigger it accepted is lost. Returns how many were adopted."""
        claimed = self.store.claim_released(self.config.slot)
        for entry in claimed:
            run = self.pending
            if run is None:
                self.pending = Run(entry["id"], entry["reconcile"], set(entry["services"]), entry["requested_commit"], entry["deliveries"])
                LOG.info("run %s adopted from a stopping instance (%d trigger(s))", entry["id"], entry["deliveries"])
                continue
            run.reconcile = run.reconcile or entry["reconcile"]
            run.services.update(entry["services"])
            run.requested_commit = run.requested_commit or entry["requested_commit"]
            run.deliveries += entry["deliveries"]
            self.store.update_queued(run.id, run.reconcile, run.services, run.requested_commit, run.deliveries)
            self.store.merge_run(entry["id"], run.id)
            LOG.info("run %s from a stopping instance merged into run %s", entry["id"], run.id)
        if claimed:
            self._last_submit = time.monotonic()
            self._wake.set()
        return len(claimed)

    async def _adopt_forever(self, interval: float = 1.0) -> None:
        while not self.draining:
            try:
                self.adopt_released()
            except Exception:  # noqa: BLE001 - a locked database now is tried again at the next tick
                LOG.exception("could not look for runs handed over by another instance")
            await asyncio.sleep(interval)

    async def run_forever(self) -> None:
        adopter = asyncio.create_task(self._adopt_forever())
        try:
            await self._run_forever()
        finally:
            adopter.cancel()

    async def _run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.draining:
                return
            if self.pending is None:
                continue
            await self._debounce(self.pending)
            if self.draining:
                return
            run, self.pending = self.pending, None
            self.current = run
            self._idle.clear()
            try:
                await self._execute(run)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything one run does
                LOG.exception("run %s crashed the worker step", run.id)
                self.store.finish_run(run.id, "failed", None, {}, "", f"internal error: {exc}", None)
            finally:
                self.current = None
                self.current_log = None
                self._idle.set()
                self.store.prune_runs(self.config.keep_runs)
            if self.pending is not None:
                self._wake.set()

    async def _debounce(self, run: Run) -> None:
        """Wait until triggers stop coming for debounce_seconds, at most debounce_max_seconds after the
        run's first trigger (one multi-arch image push sends ~3 package events in a row). A push that found
        the worker idle does not wait."""
        while not self.draining and not run.at_once:
            now = time.monotonic()
            wait = min(self._last_submit + self.config.debounce_seconds, run.first_at + self.config.debounce_max_seconds) - now
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def drain(self) -> None:
        """Stop taking work: the running run finishes and is recorded; a queued one is handed over (status
        released) to the instance that goes on - the other A/B slot, or this slot once it starts again."""
        self.draining = True
        self._wake.set()
        await self._idle.wait()
        if self.pending is not None:
            self.store.release_run(self.pending.id)
            LOG.info("run %s handed over to the other instance (%d trigger(s))", self.pending.id, self.pending.deliveries)
            self.pending = None

    @staticmethod
    def steps(run: Run) -> list[tuple[str, str | None]]:
        """``[(report id, service or None for the reconcile)]`` for a run."""
        steps: list[tuple[str, str | None]] = [(run.id, None)] if run.reconcile else []
        for service in sorted(run.services):
            steps.append((run.id if not steps else f"{run.id}-{len(steps) + 1}", service))
        return steps

    async def _execute(self, run: Run) -> None:
        self.store.start_run(run.id)
        LOG.info("run %s started (reconcile=%s, services=%s, %d trigger(s))", run.id, run.reconcile, sorted(run.services), run.deliveries)
        log = self.current_log = CappedLog(self.config.max_log_bytes, self.config.redactions())
        outcome: dict[str, dict] = {}
        status = "ok"
        errors: list[str] = []
        commit = None
        last_rc: int | None = None
        for step_id, service in self.steps(run):
            step = await self.host.run(step_id, service, log.add)
            rc, error, report = step.rc, step.error, step.report
            last_rc = rc
            if report is not None:
                for name, entry in (report.get("services") or {}).items():
                    if isinstance(entry, dict):
                        outcome[name] = {**entry, "run_id": step_id}
                commit = report.get("commit") or commit
                result = report.get("result") if report.get("result") in ORDER else "failed"
                if report.get("error"):
                    errors.append(str(report["error"]))
            else:
                result = "failed" if rc != 0 else "ok"
            if rc != 0:
                result = "failed"
                what = f"the redeploy of {service}" if service else "the reconcile"
                errors.append(error or f"{what} exited with {rc}" + ("" if report else " and wrote no run report"))
            status = max(status, result, key=ORDER.__getitem__)
        self.store.finish_run(run.id, status, last_rc, outcome, log.text(), "; ".join(errors) or None, commit)
        LOG.info("run %s finished: %s", run.id, status)
