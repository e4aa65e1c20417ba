"""Webhook burst: N signed deliveries in S seconds against a running podops webhook shim.

Measures what a git host would see and what the host pays for it:
  - response latency of every delivery (p50, p99, max) and how many were answered 2xx,
  - runs started by the burst (the shim coalesces: a burst should cost at most 2 runs),
  - deliveries lost (sent ids that no run of the shim lists),
  - the shim's resident memory (peak VmHWM when the shim runs on this machine, else its /metrics RSS).

Importable (``measure(url, secret, token=...)``, ``spawned_shim(...)``) and a CLI that prints JSON:

  python benchmarks/webhook_burst.py --url http://127.0.0.1:9300 --secret-file S [--token-file T]
  python benchmarks/webhook_burst.py --spawn      # a private shim whose deploy command only sleeps

Every delivery is a GitHub ``push`` to the shim's branch (default main), each with its own delivery id.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIM_DIR = REPO_ROOT / "roles" / "webhook" / "files"


def _request(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _get_json(url: str, token: bytes | None) -> dict:
    status, body = _request(url, headers={"Authorization": "Bearer " + token.decode()} if token else {})
    if status != 200:
        raise RuntimeError(f"GET {url} answered {status}: {body[:200]!r}")
    return json.loads(body)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def signed_headers(secret: bytes, body: bytes, event: str, delivery: str) -> dict[str, str]:
    """The headers of a GitHub delivery of ``body``: its HMAC-SHA256 signature with the webhook secret, the event
    and the delivery id (what the shim verifies, see roles/webhook/files/podops_webhook/verify.py)."""
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": signature, "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}


def push_payload(branch: str = "main", after: str = "0" * 39 + "1") -> dict:
    """A GitHub ``push`` of ``after`` to ``branch``."""
    return {"ref": f"refs/heads/{branch}", "after": after, "repository": {"full_name": "bench/env"}}


def deliver(url: str, secret: bytes, event: str, payload: dict, delivery: str | None = None) -> tuple[int, dict]:
    """One signed GitHub delivery to ``<url>/hooks/github``: ``(HTTP status, the JSON answer)``."""
    body = json.dumps(payload).encode()
    status, answer = _request(url.rstrip("/") + "/hooks/github", data=body, headers=signed_headers(secret, body, event, delivery or f"bench-{uuid.uuid4()}"))
    try:
        parsed = json.loads(answer)
    except ValueError:
        parsed = {"raw": answer[:200].decode(errors="replace")}
    return status, parsed if isinstance(parsed, dict) else {"raw": parsed}


def wait_run(url: str, run_id: str, timeout: float = 300, token: bytes | None = None) -> dict:
    """The shim's record of run ``run_id`` once it is final (not queued or running)."""
    deadline = time.monotonic() + timeout
    while True:
        run = _get_json(url.rstrip("/") + f"/api/runs/{run_id}", token)
        if run.get("status") not in ("queued", "running", None):
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} of the shim at {url} did not finish within {timeout:g}s (status {run.get('status')})")
        time.sleep(0.1)


def send_burst(url: str, secret: bytes, n: int = 200, seconds: float = 2.0, branch: str = "main", workers: int = 32) -> list[dict]:
    """Send ``n`` signed pushes spread evenly over ``seconds``; one dict per delivery."""
    body = json.dumps(push_payload(branch)).encode()
    start = time.monotonic()

    def one(index: int) -> dict:
        delay = start + index * seconds / n - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        delivery = f"burst-{uuid.uuid4()}"
        headers = signed_headers(secret, body, "push", delivery)
        sent = time.monotonic()
        try:
            status, answer = _request(url.rstrip("/") + "/hooks/github", data=body, headers=headers)
        except OSError as exc:
            return {"delivery": delivery, "status": 0, "latency_ms": (time.monotonic() - sent) * 1000, "error": str(exc)}
        latency = (time.monotonic() - sent) * 1000
        try:
            run_id = json.loads(answer).get("run_id")
        except ValueError:
            run_id = None
        return {"delivery": delivery, "status": status, "latency_ms": latency, "run_id": run_id, "sent_at_s": sent - start}

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(n)))


def _peak_rss(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _metrics_rss(url: str, token: bytes | None) -> int | None:
    req = urllib.request.Request(url.rstrip("/") + "/metrics", headers={"Authorization": "Bearer " + token.decode()} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("process_resident_memory_bytes "):
                    return int(float(line.split()[1]))
    except (OSError, ValueError):
        return None
    return None


def measure(url: str, secret: bytes, token: bytes | None = None, n: int = 200, seconds: float = 2.0, wait_timeout: float = 900) -> dict[str, t.Any]:
    """Run the burst against a running shim, wait until its runs are done, and report."""
    status = _get_json(url.rstrip("/") + "/api/status", token)
    before = {run["id"] for run in _get_json(url.rstrip("/") + "/api/runs?limit=500", token)["runs"]}
    started = time.monotonic()
    results = send_burst(url, secret, n=n, seconds=seconds, branch=status.get("branch") or "main")
    burst_s = time.monotonic() - started
    deadline = time.monotonic() + wait_timeout
    while True:
        now = _get_json(url.rstrip("/") + "/api/status", token)
        if not now["running"] and not now["queued"]:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the shim was still busy after {wait_timeout}s")
        time.sleep(0.25)
    drained_s = time.monotonic() - started
    runs = [run for run in _get_json(url.rstrip("/") + "/api/runs?limit=500", token)["runs"] if run["id"] not in before]
    recorded: set[str] = set()
    for run in runs:
        recorded.update(_get_json(url.rstrip("/") + f"/api/runs/{run['id']}", token).get("delivery_ids", []))
    sent = {item["delivery"] for item in results}
    latencies = [item["latency_ms"] for item in results if item["status"]]
    statuses: dict[str, int] = {}
    for item in results:
        statuses[str(item["status"])] = statuses.get(str(item["status"]), 0) + 1
    return {
        "deliveries": n,
        "window_s": seconds,
        "burst_s": round(burst_s, 3),
        "answered_2xx": sum(1 for item in results if 200 <= item["status"] < 300),
        "statuses": statuses,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 2) if latencies else None,
            "p99": round(_percentile(latencies, 99), 2) if latencies else None,
            "max": round(max(latencies), 2) if latencies else None,
        },
        "runs_started": sum(1 for run in runs if run["started"]),
        "runs": [{"id": run["id"], "status": run["status"], "deliveries": run["deliveries"]} for run in runs],
        "lost_deliveries": len(sent - recorded),
        "all_done_s": round(drained_s, 3),
        "shim_peak_rss_bytes": _peak_rss(status.get("pid")),
        "shim_rss_bytes": _metrics_rss(url, token),
        "delivery_ids": sorted(sent),
        "results": results,
    }


@contextlib.contextmanager
def spawned_shim(
    run_seconds: float = 1.0,
    debounce: float | None = 0.3,
    workdir: str | None = None,
    command: list[str] | None = None,
    redeploy_command: list[str] | None = None,
    state_dir: str | None = None,
    repo_dir: str | None = None,
    env: t.Mapping[str, str] | None = None,
    environment: t.Mapping[str, str] | None = None,
) -> t.Iterator[tuple[str, bytes]]:
    """A private shim on a free loopback port. By default its deploy command only sleeps ``run_seconds`` (this
    measures the shim, not the reconcile); ``command`` (and ``redeploy_command``, default the same) makes it run a
    real one, e.g. podops-pull, with ``state_dir`` (where the runs' reports are) and ``repo_dir`` (the env repo
    checkout it reads service names and images from). ``debounce`` None keeps the shim's default; ``env`` is the
    shim's environment (its commands inherit it), ``environment`` the config's. Yields ``(url, secret)``;
    loopback needs no token."""
    with tempfile.TemporaryDirectory(prefix="podops-burst-", dir=workdir) as tmp:
        base = Path(tmp)
        secret = os.urandom(24).hex().encode()
        (base / "secret").write_bytes(secret)
        (base / "secret").chmod(0o600)
        if repo_dir is None:
            (base / "repo" / "services").mkdir(parents=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        sleep = [sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[1]))", str(run_seconds)]
        config: dict[str, t.Any] = {
            "listen": f"127.0.0.1:{port}",
            "state_dir": state_dir or str(base / "state"),
            "db_path": str(base / "webhook.db"),
            "repo_dir": repo_dir or str(base / "repo"),
            "secret_file": str(base / "secret"),
            "collections_path": str(REPO_ROOT / ".work" / "collections"),
            "reconcile_command": command or sleep,
            "redeploy_command": redeploy_command or command or sleep,
            "podman_command": ["true"] if command is None else ["podman"],
            "environment": dict(environment or {}),
        }
        if debounce is not None:
            config["debounce_seconds"] = debounce
        (base / "config.yml").write_text(json.dumps(config))
        with open(base / "shim.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "podops_webhook", "--config", str(base / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env or os.environ, PYTHONPATH=str(SHIM_DIR)),
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    _request(url + "/health")
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the shim did not start: " + (base / "shim.log").read_text()) from None
                    time.sleep(0.05)
            yield url, secret
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--url", help="base URL of a running shim, e.g. http://127.0.0.1:9300")
    parser.add_argument("--secret-file", help="file holding the webhook secret (the shim's secret_file)")
    parser.add_argument("--token-file", help="file holding the status token, when the shim has one")
    parser.add_argument("--spawn", action="store_true", help="start a private shim whose deploy command only sleeps")
    parser.add_argument("--run-seconds", type=float, default=1.0, help="with --spawn: how long one run takes")
    parser.add_argument("-n", "--deliveries", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--full", action="store_true", help="also print every delivery's result")
    args = parser.parse_args(argv)
    if args.spawn:
        with spawned_shim(run_seconds=args.run_seconds) as (url, secret):
            result = measure(url, secret, n=args.deliveries, seconds=args.seconds)
        result["shim"] = f"spawned, deploy command sleeps {args.run_seconds:g}s"
    else:
        if not args.url or not args.secret_file:
            parser.error("give --url and --secret-file, or --spawn")
        secret = Path(args.secret_file).read_bytes().strip()
        token = Path(args.token_file).read_bytes().strip() if args.token_file else None
        result = measure(args.url, secret, token=token, n=args.deliveries, seconds=args.seconds)
    if not args.full:
        result.pop("results")
        result.pop("delivery_ids")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
