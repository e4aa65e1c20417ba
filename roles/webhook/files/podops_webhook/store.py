# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SQLite store of deliveries (the replay guard) and runs (history, outcomes, logs).

Both A/B slots open the same file (WAL mode, busy timeout), so a delivery one slot accepted is a replay
for the other, and the status page of either shows every run. Delivery ids are a primary key: claiming one
is a single INSERT that either wins or finds the earlier claim, even with two processes racing.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import sqlite3
import typing as t

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    event TEXT,
    route TEXT NOT NULL,
    received TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    run_id TEXT,
    slot TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_run ON deliveries(run_id);
CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries(decision, received);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    trigger TEXT NOT NULL,
    reconcile INTEGER NOT NULL DEFAULT 0,
    services TEXT NOT NULL DEFAULT '[]',
    requested_commit TEXT,
    commit_sha TEXT,
    status TEXT NOT NULL,
    queued TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    rc INTEGER,
    outcome TEXT NOT NULL DEFAULT '{}',
    log TEXT NOT NULL DEFAULT '',
    error TEXT,
    slot TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_queued ON runs(queued);
"""

# Delivery ids are kept this long by default: git hosts redeliver within days (GitHub: 3, GHES: 7).
KEEP_DELIVERIES_DAYS = 30
MAX_DELIVERIES = 50000
# Deliveries that started (or joined) a run; the others (ping, ignored) are answered the same way again if
# they come back, so they get a smaller share of the table and cannot push these out.
RUN_DECISIONS = ("queued",)
FINAL = ("ok", "changed", "failed", "cancelled", "interrupted", "merged")
RUN_COLUMNS = (
    "id",
    "trigger",
    "reconcile",
    "services",
    "requested_commit",
    "commit_sha",
    "status",
    "queued",
    "started",
    "finished",
    "rc",
    "error",
    "slot",
    "deliveries",
)
FINAL_SQL = ", ".join(f"'{status}'" for status in FINAL)


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def storable(value: str | None) -> str | None:
    """Text SQLite can store as UTF-8: lone surrogates (from JSON ``\\ud800`` escapes or non-UTF-8 header
    bytes) become backslash escapes instead of failing the INSERT."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def new_run_id() -> str:
    """Sortable and unique, and valid as podops_run_id: ``20261126T123456Z-3f9a1c``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class Store:
    PRUNE_EVERY = 64  # claims between two prunes of the delivery table (it may be this much over its cap)

    def __init__(self, path: str, keep_days: float = KEEP_DELIVERIES_DAYS, max_deliveries: int = MAX_DELIVERIES):
        self.keep_days = keep_days
        self.max_deliveries = max_deliveries
        self.max_ignorable = max(100, max_deliveries // 10)
        self._claims = 0
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        os.chmod(path, 0o600)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)
        self.prune_deliveries()

    def close(self) -> None:
        self.db.close()

    # deliveries
    def claim_delivery(self, delivery: str, provider: str, event: str | None, route: str, decision: str, reason: str, slot: str | None) -> str | None:
        """Record an accepted delivery. Returns None when it is new, else the decision of the earlier one
        (the caller answers "duplicate")."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO deliveries (id, provider, event, route, received, decision, reason, slot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (storable(delivery), provider, storable(event), route, utcnow(), decision, storable(reason), slot),
        )
        if cursor.rowcount == 1:
            self._claims += 1
            if self._claims % self.PRUNE_EVERY == 0:
                self.prune_deliveries()
            return None
        row = self.db.execute("SELECT decision, run_id FROM deliveries WHERE id = ?", (delivery,)).fetchone()
        return row["run_id"] or row["decision"] if row else "seen"

    def prune_deliveries(self) -> None:
        """The replay guard's bounds, independent of runs: ids older than ``keep_days`` go, and of the rest
        the newest ``max_deliveries`` that started runs and the newest ``max_ignorable`` others are kept."""
        cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=self.keep_days)
        self.db.execute("DELETE FROM deliveries WHERE received < ?", (cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),))
        runs = ", ".join("?" for _decision in RUN_DECISIONS)
        for negate, keep in (("", self.max_deliveries), ("NOT ", self.max_ignorable)):
            query = (
                f"DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE decision {negate}IN ({runs}) "  # noqa: S608 - constants only
                "ORDER BY received DESC LIMIT -1 OFFSET ?)"
            )
            self.db.execute(query, (*RUN_DECISIONS, keep))

    def link_delivery(self, delivery: str, run_id: str) -> None:
        self.db.execute("UPDATE deliveries SET run_id = ? WHERE id = ?", (run_id, delivery))

    def delivery(self, delivery: str) -> dict | None:
        row = self.db.execute("SELECT * FROM deliveries WHERE id = ?", (delivery,)).fetchone()
        return dict(row) if row else None

    def deliveries_of(self, run_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM deliveries WHERE run_id = ? ORDER BY received", (run_id,)).fetchall()
        return [dict(row) for row in rows]

    def delivery_counts(self) -> list[tuple[str, str, int]]:
        rows = self.db.execute("SELECT provider, decision, COUNT(*) FROM deliveries GROUP BY provider, decision").fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    # runs
    def create_run(self, run_id: str, trigger: str, slot: str | None) -> None:
        self.db.execute("INSERT INTO runs (id, trigger, status, queued, slot) VALUES (?, ?, 'queued', ?, ?)", (run_id, trigger, utcnow(), slot))

    def update_queued(self, run_id: str, reconcile: bool, services: t.Iterable[str], requested_commit: str | None, deliveries: int) -> None:
        self.db.execute(
            "UPDATE runs SET reconcile = ?, services = ?, requested_commit = ?, deliveries = ? WHERE id = ?",
            (int(reconcile), json.dumps(sorted(services)), requested_commit, deliveries, run_id),
        )

    def start_run(self, run_id: str) -> None:
        self.db.execute("UPDATE runs SET status = 'running', started = ? WHERE id = ?", (utcnow(), run_id))

    def finish_run(self, run_id: str, status: str, rc: int | None, outcome: dict, log: str, error: str | None, commit: str | None) -> None:
        self.db.execute(
            "UPDATE runs SET status = ?, finished = ?, rc = ?, outcome = ?, log = ?, error = ?, commit_sha = COALESCE(?, commit_sha) WHERE id = ?",
            (status, utcnow(), rc, json.dumps(outcome, sort_keys=True), log, error, commit, run_id),
        )

    def release_run(self, run_id: str) -> None:
        """A draining instance hands its queued run over: the other slot (or this one's next start) claims it."""
        self.db.execute("UPDATE runs SET status = 'released', slot = NULL WHERE id = ? AND status = 'queued'", (run_id,))

    def claim_released(self, slot: str | None) -> list[dict]:
        """Take every released run for ``slot``, atomically (two instances never claim the same one)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            rows = self.db.execute("SELECT * FROM runs WHERE status = 'released' ORDER BY queued").fetchall()
            for row in rows:
                self.db.execute("UPDATE runs SET status = 'queued', slot = ? WHERE id = ?", (slot, row["id"]))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return [self._run(row, with_log=False) for row in rows]

    def merge_run(self, run_id: str, into: str) -> None:
        """Fold a claimed run into the queued run ``into``: its deliveries move there, it ends as merged."""
        self.db.execute("UPDATE deliveries SET run_id = ? WHERE run_id = ?", (into, run_id))
        self.db.execute(
            "UPDATE runs SET status = 'merged', finished = ?, error = ? WHERE id = ?",
            (utcnow(), f"handed over by a stopping instance and merged into run {into}", run_id),
        )

    def close_stale_runs(self, slot: str | None) -> int:
        """Runs this slot left queued or running when its process died: mark them interrupted."""
        cursor = self.db.execute(
            "UPDATE runs SET status = 'interrupted', finished = ?, error = 'the shim stopped before this run finished' "
            "WHERE status IN ('queued', 'running') AND slot IS ?",
            (utcnow(), slot),
        )
        return cursor.rowcount

    def prune_runs(self, keep: int) -> None:
        """Keep the newest ``keep`` finished runs (and their logs); the delivery ids have bounds of their own."""
        query = f"DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE status IN ({FINAL_SQL}) ORDER BY queued DESC LIMIT -1 OFFSET ?)"  # noqa: S608
        self.db.execute(query, (keep,))
        self.prune_deliveries()

    def _run(self, row: sqlite3.Row, with_log: bool) -> dict:
        run = {key: row[key] for key in RUN_COLUMNS}
        run["reconcile"] = bool(run["reconcile"])
        run["services"] = json.loads(row["services"] or "[]")
        run["outcome"] = json.loads(row["outcome"] or "{}")
        run["commit"] = run.pop("commit_sha") or run["requested_commit"]
        if with_log:
            run["log"] = row["log"]
        return run

    def runs(self, limit: int = 50, with_log: bool = False) -> list[dict]:
        rows = self.db.execute("SELECT * FROM runs ORDER BY queued DESC LIMIT ?", (limit,)).fetchall()
        return [self._run(row, with_log) for row in rows]

    def run(self, run_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        run = self._run(row, with_log=True)
        run["delivery_ids"] = [d["id"] for d in self.deliveries_of(run_id)]
        return run

    def run_counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in self.db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()}

    def last_finished(self) -> dict | None:
        row = self.db.execute("SELECT * FROM runs WHERE finished IS NOT NULL AND started IS NOT NULL ORDER BY finished DESC LIMIT 1").fetchone()
        return self._run(row, with_log=False) if row else None

    def active(self) -> list[dict]:
        rows = self.db.execute("SELECT * FROM runs WHERE status IN ('queued', 'running') ORDER BY queued").fetchall()
        return [self._run(row, with_log=False) for row in rows]
