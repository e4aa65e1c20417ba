"""What a client of the probe service sees: HTTP probes of 127.0.0.1 and the outage poller.

``wait_served`` waits for a release to be served, ``verify_deployed`` checks a first deploy, and ``Poller`` asks
``/release.txt`` every 20 ms on a new connection, keeping every answer, from which ``outage`` counts the failed
requests and the longest gap between good answers around a change.
"""

from __future__ import annotations

import http.client
import threading
import time
import typing as t
from dataclasses import dataclass

from tools import ScenarioError, Target, Tool, containers_of

POLL_INTERVAL = 0.02
PROBE_PATH = "/release.txt"


def http_get(port: int, path: str, timeout: float) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    finally:
        conn.close()


def wait_served(port: int, expected: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "nothing"
    while time.monotonic() < deadline:
        try:
            status, body = http_get(port, PROBE_PATH, 1.0)
            if status == 200 and body == expected:
                return
            last = f"HTTP {status} {body[:60]!r}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise ScenarioError(f"127.0.0.1:{port}{PROBE_PATH} did not serve {expected!r} within {timeout:g}s (last: {last})")


def verify_deployed(tool: Tool, target: Target, env: dict[str, str]) -> None:
    """After a first deploy: one running container per service, and the probe serves its release."""
    running = [c for c in containers_of(target.prefix, env) if str(c.get("State", "")).lower() == "running"]
    if len(running) != target.repo.size:
        raise ScenarioError(f"{tool.name}: {len(running)} of {target.repo.size} containers running after the first deploy")
    wait_served(target.repo.probe_port, f"release {target.repo.release}", 30)


# --------------------------------------------------------------------------------------------------------
# the outage probe


@dataclass
class Sample:
    start: float
    end: float
    ok: bool
    body: str


class Poller(threading.Thread):
    """GET 127.0.0.1:<port>/release.txt every 20 ms (a new connection each time) and keep every answer."""

    def __init__(self, port: int, interval: float = POLL_INTERVAL):
        super().__init__(name=f"poller-{port}", daemon=True)
        self.port = port
        self.interval = interval
        self.samples: list[Sample] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        next_tick = time.monotonic()
        while not self._halt.is_set():
            start = time.monotonic()
            try:
                status, body = http_get(self.port, PROBE_PATH, 1.0)
                ok = status == 200
            except (OSError, http.client.HTTPException):
                ok, body = False, ""
            with self._lock:
                self.samples.append(Sample(start, time.monotonic(), ok, body))
            next_tick += self.interval
            delay = next_tick - time.monotonic()
            if delay > 0:
                self._halt.wait(delay)
            else:
                next_tick = time.monotonic()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def wait_for(self, body: str, since: float, timeout: float) -> float | None:
        """End time of the first successful answer ``body`` started at or after ``since``; None on timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            samples = self.snapshot()
            for sample in samples[seen:]:
                if sample.start >= since and sample.ok and sample.body == body:
                    return sample.end
            seen = len(samples)
            if time.monotonic() > deadline or not self.is_alive():
                return None
            time.sleep(self.interval / 2)


def outage(samples: list[Sample], since: float, served: float, until: float) -> dict[str, t.Any]:
    """Failed requests and the longest gap between successful answers from ``since`` (the commit) to
    ``served`` (first new answer); failures between ``served`` and ``until`` (the command's end) as flaps."""
    window = [s for s in samples if s.start >= since and s.end <= served]
    previous_ok = [s.end for s in samples if s.ok and s.end < since]
    ok_ends = ([previous_ok[-1]] if previous_ok else [since]) + [s.end for s in window if s.ok]
    gaps = [b - a for a, b in zip(ok_ends, ok_ends[1:], strict=False)]
    after = [s for s in samples if s.start > served and s.end <= until]
    return {
        "requests": len(window),
        "failed_requests": sum(1 for s in window if not s.ok),
        "longest_gap_s": round(max(gaps), 4) if gaps else 0.0,
        "failed_after_served": sum(1 for s in after if not s.ok),
    }
