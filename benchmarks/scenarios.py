"""The scenarios of benchmarks/bench.py, each a function of the harness (``Bench``) that measures and records.

The ansible floor, the first deploys (or ``--setup adopt``'s cheap set-up), the no-op, one change (recreate, and
blue-green behind a real nginx) and the webhook burst; the push scenario is benchmarks/push.py. Which of them runs
for which size and tool is ``Bench.run_tool``'s choice; each writes its figures into ``harness.results``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import secrets
import statistics
import time
import typing as t
from pathlib import Path

from envrepo import EnvRepo, allocate_ports
from report import summarize
from serving import Poller, outage, verify_deployed, wait_served
from tools import IMAGE, Podops, ScenarioError, Target, Tool, cleanup, log, run_logged, sh

if t.TYPE_CHECKING:
    from bench import Bench

# The probe service in blue-green mode: two slots on their own ports, nginx in front follows the active one.
BLUE_GREEN_XPODOPS = """\
x-podops:
  strategy: blue-green
  health: {{samples: 2, interval: 0.3}}
  slots: {slots}
"""
NOT_AVAILABLE = {
    "blue-green": "blue-green needs nginx (make setup installs it) and podops; the baseline has no blue-green",
}


def ansible_floor(harness: Bench) -> dict[str, t.Any]:
    """What any ansible-playbook run costs here: one play, no facts, one ``command: true`` task."""
    playbook = harness.work / "floor.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: 'true'\n")
    walls = []
    for _attempt in range(harness.config.repeat):
        ran = run_logged(["ansible-playbook", str(playbook)], harness.env, harness.work, harness.work / "floor.log", 300)
        if ran.rc != 0:
            raise ScenarioError(f"a trivial ansible-playbook failed (rc {ran.rc}); see {harness.work / 'floor.log'}")
        walls.append(ran.wall_s)
    log(f"ansible-playbook floor: {statistics.median(walls):.2f}s")
    return summarize(walls)


def first_deploys(harness: Bench, tool: Tool, repo: EnvRepo, prefix: str, logfile: Path) -> Target:
    """First deploys (``--deploy-repeat`` at the scenario size, once otherwise); the last one stays up."""
    size = repo.size
    count = harness.config.deploy_repeat if size == harness.config.scenario_size and "first-deploy" in harness.config.scenarios else 1
    walls: list[float] = []
    infos: list[dict[str, t.Any]] = []
    target = None
    if harness.config.setup == "adopt":
        target = Target(repo, harness.work / f"state-{tool.name}-{size}-0", prefix, logfile)
        adopt_setup(harness, target)
        return target
    for attempt in range(count):
        if attempt:
            cleanup(prefix, harness.env)
        target = Target(repo, harness.work / f"state-{tool.name}-{size}-{attempt}", prefix, logfile)
        log(f"{tool.name} size {size}: first deploy {attempt + 1}/{count}")
        result = tool.run(target, "deploy")
        verify_deployed(tool, target, harness.env)
        walls.append(result.wall_s)
        infos.append(result.info)
        log(f"{tool.name} size {size}: first deploy took {result.wall_s:.2f}s")
        harness.record("first_deploy", size, tool.name, summarize(walls), infos)
    assert target is not None
    return target


def adopt_setup(harness: Bench, target: Target) -> None:
    """The cheap set-up of ``--setup adopt``: one container per service started with ``podman run`` (no network,
    no podman-compose, no health gate) carrying the labels podops deploys with and the digest a check-mode run
    computes; the no-op's untimed warm-up run adopts them into its state. What a no-op reads - one ``podman ps``
    of N containers, ``git ls-files``, N digests - is the same as after a real first deploy."""
    repo, started = target.repo, time.monotonic()
    scratch = harness.work / f"adopt-{repo.size}"
    variables = {"podops_repo_dir": str(repo.path), "podops_state_dir": str(scratch), "podops_project_prefix": target.prefix}
    ran = run_logged(["ansible-playbook", "podops.gitops.reconcile", "--check", "-e", json.dumps(variables)], harness.env, repo.path, target.logfile, 600)
    report = scratch / "last-check.json"
    if ran.rc != 0 or not report.is_file():
        raise ScenarioError(f"the check-mode run that computes the digests failed (rc {ran.rc}); see {target.logfile}")
    planned = json.loads(report.read_text())["services"]
    commit = sh("git", "-C", str(repo.path), "rev-parse", "HEAD", env=harness.env).stdout.strip()

    def start(name: str) -> None:
        project = f"{target.prefix}{name}"
        labels = {
            "io.podman.compose.project": project,
            "com.docker.compose.project": project,
            "io.podman.compose.service": "web",
            "com.docker.compose.service": "web",
            "io.podops.service": name,
            "io.podops.digest": planned[name]["digest"],
            "io.podops.commit": commit,
            "io.podops.prefix": target.prefix,
        }
        argv = ["podman", "run", "-d", "--network", "none", "--name", f"{project}_web_1"]
        argv += [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
        sh(*argv, IMAGE, "sleep", "86400", env=harness.env)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(start, repo.names))
    log(f"size {repo.size}: {repo.size} containers started for adoption in {time.monotonic() - started:.1f}s")
    harness.results.setdefault("setup_s", {})[str(repo.size)] = round(time.monotonic() - started, 1)


def measure_noop(harness: Bench, tool: Tool, target: Target) -> None:
    """``--repeat`` no-op runs after an untimed warm-up; with podops-pull, the same no-op through ansible-playbook too."""
    size = target.repo.size
    tool.run(target, "noop")  # warm-up, not counted: the first no-op after a deploy may adopt/settle state
    walls, infos = [], []
    for index in range(harness.config.repeat if "noop" in harness.config.scenarios else 0):
        result = tool.run(target, "noop")
        walls.append(result.wall_s)
        infos.append(result.info)
        log(f"{tool.name} size {size}: no-op {index + 1}/{harness.config.repeat} {result.wall_s:.2f}s")
    if walls:
        harness.record("noop", size, tool.name, summarize(walls), infos)
    if isinstance(tool, Podops) and tool.entry == "pull" and size == harness.config.scenario_size and "noop-playbook" in harness.config.scenarios:
        # Reference: the same no-op through ansible-playbook (a laptop run, or podops-pull's full path).
        walls = []
        for _index in range(harness.config.repeat):
            walls.append(tool.run(target, "noop", entry="playbook").wall_s)
        harness.results["reference"].setdefault("noop_playbook", {})[str(size)] = summarize(walls)
        log(f"podops size {size}: no-op through ansible-playbook {statistics.median(walls):.2f}s (reference)")


def measure_change(harness: Bench, tool: Tool, target: Target, strategy: str = "recreate", port: int | None = None) -> None:
    """Commit-to-served and the outage of ``--repeat`` changes of the probe, polled on ``port`` (the
    probe's own port; for blue-green, the nginx in front of it)."""
    repo = target.repo
    poller = Poller(port or repo.probe_port)
    poller.start()
    runs: list[dict[str, t.Any]] = []
    try:
        for index in range(harness.config.repeat):
            old = repo.release
            if poller.wait_for(f"release {old}", time.monotonic() - 1, 30) is None:
                raise ScenarioError(f"{repo.probe} does not serve release {old} before the change")
            new = repo.bump_probe()
            committed = time.monotonic()
            result = tool.run(target, "deploy")
            finished = time.monotonic()
            served = poller.wait_for(f"release {new}", committed, 30)
            if served is None:
                raise ScenarioError(f"{repo.probe} never served release {new} (the deploy command returned after {finished - committed:.1f}s)")
            time.sleep(0.2)  # a few more samples after the end of the command: flaps count
            run = {
                "commit_to_served_s": round(served - committed, 4),
                "command_s": round(result.wall_s, 4),
                **outage(poller.snapshot(), committed, served, max(finished, served) + 0.2),
                **result.info,
            }
            runs.append(run)
            log(
                f"{tool.name}: change {index + 1}/{harness.config.repeat}: served after {run['commit_to_served_s']:.2f}s, "
                f"command {run['command_s']:.2f}s, {run['failed_requests']} failed requests, longest gap {run['longest_gap_s']:.2f}s"
            )
    finally:
        poller.stop()
    blue_green = {"status": "not available", "reason": NOT_AVAILABLE["blue-green"]}
    entry = harness.results["change"].setdefault(str(repo.size), {"recreate": {}, "blue-green": blue_green})
    if strategy == "blue-green" and "status" in entry["blue-green"]:
        entry["blue-green"] = {}
    entry[strategy][tool.name] = {
        "commit_to_served_s": summarize(r["commit_to_served_s"] for r in runs),
        "command_s": summarize(r["command_s"] for r in runs),
        "failed_requests": summarize(r["failed_requests"] for r in runs),
        "longest_gap_s": summarize(r["longest_gap_s"] for r in runs),
        "failed_after_served": summarize(r["failed_after_served"] for r in runs),
        "runs": runs,
    }
    harness.add_ratios(entry[strategy], ("commit_to_served_s", "command_s", "longest_gap_s"))


def measure_blue_green(harness: Bench, tool: Tool, target: Target) -> None:
    """The change scenario again with the probe on strategy blue-green behind nginx (podops only)."""
    with blue_green_probe(harness, tool, target) as proxy_port:
        measure_change(harness, tool, target, "blue-green", proxy_port)


@contextlib.contextmanager
def blue_green_probe(harness: Bench, tool: Tool, target: Target) -> t.Iterator[int]:
    """The probe on strategy blue-green behind a real nginx, deployed; yields nginx's port. Afterwards the probe
    is committed on recreate again (the next tool or scenario deploys the same repo)."""
    from nginx_proxy import NginxProxy  # noqa: PLC0415 - benchmarks/ is on sys.path when bench.py runs

    repo = target.repo
    slot_ports = dict(zip(("a", "b"), allocate_ports(2), strict=True))
    proxy_port = allocate_ports(1)[0]
    try:
        proxy = NginxProxy(harness.work / f"nginx-{repo.size}-{secrets.token_hex(2)}", proxy_port, slot_ports["a"], name="probe")
    except RuntimeError as exc:
        raise ScenarioError(f"blue-green cannot be measured: {exc}") from exc
    try:
        slots = {"ports": slot_ports, "upstream_file": str(proxy.upstream), "reload_command": proxy.reload_command, "drain": 1, "stop_timeout": 1}
        repo.make_probe_blue_green(BLUE_GREEN_XPODOPS.format(slots=json.dumps(slots)))
        log(f"{tool.name}: the probe {repo.probe} moves to blue-green behind nginx on port {proxy_port}")
        tool.run(target, "deploy")
        wait_served(proxy_port, f"release {repo.release}", 60)
        yield proxy_port
    finally:
        proxy.stop()
        with contextlib.suppress(ScenarioError):
            repo.restore_probe()  # the baseline deploys the same repo next: it knows no blue-green


def measure_burst(harness: Bench) -> None:
    """200 signed pushes in 2 s to a private shim (its deploy command sleeps 1 s: this measures the shim)."""
    import webhook_burst  # noqa: PLC0415 - benchmarks/ is on sys.path when bench.py runs

    try:
        with webhook_burst.spawned_shim(run_seconds=1.0, workdir=str(harness.work)) as (url, secret):
            result = webhook_burst.measure(url, secret, n=200, seconds=2.0, wait_timeout=120)
    except (RuntimeError, OSError) as exc:
        harness.results["errors"].append({"tool": "webhook", "size": 200, "error": str(exc)})
        return
    result.pop("results", None)
    result.pop("delivery_ids", None)
    result["shim"] = "spawned by benchmarks/webhook_burst.py; its deploy command sleeps 1 s"
    harness.results["webhook_burst"] = result
    latency = result["latency_ms"]
    log(f"webhook burst: p50 {latency['p50']} ms, p99 {latency['p99']} ms, {result['runs_started']} runs, {result['lost_deliveries']} lost")
