"""Benchmark harness for podops.gitops on real podman (issue 7).

Scenarios, each timed for podops (``ansible-playbook podops.gitops.reconcile``) and, with ``--baseline``,
for another command that deploys the same env repo (by default ``benchmarks/baseline.sh``, the seed's
hash-and-down/up shell loop):

  noop          a reconcile when nothing changed, for every size in ``--sizes``;
  first_deploy  the first reconcile of an empty host (every size is deployed once; ``--scenario-size`` is
                deployed ``--deploy-repeat`` times);
  change        one service changed among ``--scenario-size``: commit-to-served time and the outage a
                client polling that service every 20 ms sees (failed requests, longest gap);
  change/blue-green  the same change with the probe service on ``strategy: blue-green`` behind a real nginx
                (podops only: the baseline has no equivalent); the poller goes through nginx;
  push          a signed push (recreate, blue-green) and a published-package event delivered to a private webhook
                shim that runs the real podops-pull, timed to the new content served (benchmarks/push.py);
  webhook_burst 200 signed deliveries in 2 s against a private webhook shim whose deploy command sleeps 1 s
                (benchmarks/webhook_burst.py): latency p50/p99, runs started, lost deliveries, shim RSS.

Writes ``--out`` (JSON) and a markdown table next to it (same name, ``.md``). See benchmarks/README.md.
This is a benchmark, not a test: it fails only when a scenario cannot run, never on a missed target.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import push
from envrepo import EnvRepo
from report import ratio, targets, write_results
from scenarios import ansible_floor, first_deploys, measure_blue_green, measure_burst, measure_change, measure_noop
from serving import POLL_INTERVAL
from tools import REPO_ROOT, Baseline, Podops, ScenarioError, Tool, Tracer, bench_environment, cleanup, log, machine_info, preflight, read_text, tail

BENCH_DIR = REPO_ROOT / "benchmarks"
DEFAULT_OUT = BENCH_DIR / "results" / "latest.json"
SCHEMA = 1
SCENARIOS = ("floor", "first-deploy", "noop", "noop-playbook", "change", "blue-green", "push", "burst")


@dataclass
class Config:
    sizes: list[int]
    scenario_size: int
    repeat: int
    deploy_repeat: int
    publish_max: int
    baseline: str | None
    out: Path
    quick: bool
    podops_vars: dict[str, t.Any]
    timeout: float
    keep_work: bool
    trace: bool
    entry: str = "pull"
    scenarios: frozenset[str] = frozenset(SCENARIOS)
    setup: str = "deploy"
    shim_debounce: float | None = None  # the push scenario's shim: None keeps the shim's default


class Bench:
    """One benchmark run: its tools, work folder and results; which scenario runs for which size and tool (scenarios.py,
    push.py measure them)."""

    def __init__(self, config: Config, env: dict[str, str]):
        self.config = config
        self.env = env
        self.token = secrets.token_hex(2)
        self.work = Path(tempfile.mkdtemp(prefix="podops-bench-"))
        self.tracer = Tracer(self.work, env) if config.trace else None
        self.tools: list[Tool] = [Podops(env, config.podops_vars, config.timeout, self.tracer, config.entry)]
        if config.baseline:
            self.tools.append(Baseline(config.baseline, env, config.timeout, self.tracer))
        self.results: dict[str, t.Any] = {
            "schema": SCHEMA,
            "quick": config.quick,
            "complete": False,
            "config": {
                "sizes": config.sizes,
                "scenario_size": config.scenario_size,
                "repeat": config.repeat,
                "deploy_repeat": config.deploy_repeat,
                "publish_max": config.publish_max,
                "poll_interval_s": POLL_INTERVAL,
                "stop_grace_period": "1s",
                "health": {"samples": 2, "interval": 0.3},
                "commands": {tool.name: tool.describe() for tool in self.tools},
                "trace": config.trace,
                "podops_entry": config.entry,
                "scenarios": sorted(config.scenarios),
                "setup": config.setup,
                "shim_debounce_s": config.shim_debounce,
            },
            "machine": machine_info(env),
            "reference": {},
            "noop": {},
            "first_deploy": {},
            "change": {},
            "push": {},
            "webhook_burst": {"status": "not measured", "reason": "the run ended before the burst"},
            "targets": [],
            "errors": [],
        }

    # -- orchestration ----------------------------------------------------------------------------------

    def run(self) -> dict[str, t.Any]:
        started = time.monotonic()
        config = self.config
        try:
            try:
                if "floor" in config.scenarios:
                    self.results["reference"]["ansible_floor_s"] = ansible_floor(self)
            except ScenarioError as exc:
                self.results["errors"].append({"tool": "ansible", "size": 0, "error": str(exc)})
            for size in sorted(set(config.sizes) | {config.scenario_size}):
                repo = EnvRepo(self.work / f"repo-{size}", size, size <= config.publish_max, self.env)
                log(f"size {size}: env repo {repo.path} (probe {repo.probe} on port {repo.probe_port}, {len(repo.published)} published port(s))")
                for tool in self.tools:
                    self.run_tool(tool, repo)
            if "burst" in config.scenarios:
                measure_burst(self)
            self.results["complete"] = True
        finally:
            self.results["duration_s"] = round(time.monotonic() - started, 1)
            self.results["machine"]["loadavg_end"] = list(os.getloadavg())
            self.results["targets"] = targets(self.results)
            self.results["work_dir"] = str(self.work) if config.keep_work else None
            if not config.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
        return self.results

    def run_tool(self, tool: Tool, repo: EnvRepo) -> None:
        size = repo.size
        prefix = f"pb{self.token}-{tool.letter}{size}-"
        logfile = self.work / f"{tool.name}-{size}.log"
        try:
            scenarios = self.config.scenarios
            target = first_deploys(self, tool, repo, prefix, logfile)
            if size in self.config.sizes and scenarios & {"noop", "noop-playbook"}:
                measure_noop(self, tool, target)
            if size == self.config.scenario_size:
                if "change" in scenarios:
                    measure_change(self, tool, target)
                if tool.name == "podops" and "blue-green" in scenarios:
                    measure_blue_green(self, tool, target)
                if isinstance(tool, Podops) and "push" in scenarios:
                    push.measure_push(self, tool, target)
        except ScenarioError as exc:
            log(f"{tool.name} size {size}: ERROR {exc}")
            self.results["errors"].append({"tool": tool.name, "size": size, "error": str(exc), "log_tail": tail(read_text(logfile), 20)})
        finally:
            log(f"{tool.name} size {size}: cleaning up {prefix}*")
            cleanup(prefix, self.env)

    def record(self, scenario: str, size: int, tool: str, summary: dict[str, t.Any], infos: list[dict[str, t.Any]]) -> None:
        """One tool's figures of a scenario at a size (and the ratio once both tools have them)."""
        entry = self.results[scenario].setdefault(str(size), {})
        entry[tool] = dict(summary, runs=infos) if any(infos) else summary
        if "podops" in entry and "baseline" in entry:
            entry["ratio"] = ratio(entry["podops"], entry["baseline"])

    @staticmethod
    def add_ratios(entry: dict[str, t.Any], metrics: t.Iterable[str]) -> None:
        """podops' median / the baseline's of each of ``metrics``, once both tools have them."""
        if "podops" in entry and "baseline" in entry:
            entry["ratio"] = {m: ratio(entry["podops"].get(m), entry["baseline"].get(m)) for m in metrics}


# --------------------------------------------------------------------------------------------------------
# command line


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small N (5 and 10 services), 2 repeats, one first deploy: checks the harness works (< 2 min)")
    parser.add_argument("--sizes", help="comma-separated service counts for the no-op scenario (default 10,100,500; quick 5,10)")
    parser.add_argument("--scenario-size", type=int, help="service count of the change and first-deploy scenarios (default 100; quick 10)")
    parser.add_argument("--repeat", type=int, help="timed runs of the no-op and change scenarios (default 5; quick 2)")
    parser.add_argument("--deploy-repeat", type=int, help="first deploys at the scenario size, each from a clean host (default 3; quick 1)")
    parser.add_argument("--publish-max", type=int, default=100, help="up to this N every service publishes a port; above it only the probe does (default 100)")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument(
        "--baseline",
        metavar="CMD",
        default=f"bash {shlex.quote(str(BENCH_DIR / 'baseline.sh'))}",
        help="shell command that deploys $PODOPS_BENCH_REPO using the scratch dir $PODOPS_BENCH_STATE and project prefix $PODOPS_BENCH_PREFIX "
        "(default: benchmarks/baseline.sh)",
    )
    baseline.add_argument("--no-baseline", action="store_true", help="time podops only")
    parser.add_argument(
        "--podops-entry",
        choices=("pull", "playbook"),
        default="pull",
        help="how podops runs: podops-pull, what a host's timer and webhook run (default; fetches the env repo, fast lane "
        "where it applies), or ansible-playbook podops.gitops.reconcile on the repo",
    )
    parser.add_argument("--podops-var", action="append", default=[], metavar="KEY=VALUE", help="extra podops variable, e.g. podops_parallel=8")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one deploy command may take (default 3600)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file, the markdown table beside it (default benchmarks/results/latest.json)")
    parser.add_argument("--keep-work", action="store_true", help="keep the generated env repos, state dirs and logs (containers are always removed)")
    parser.add_argument("--trace", action="store_true", help="log every podman/podman-compose call's wall time (a breakdown; adds a few ms per call)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default all: {','.join(SCENARIOS)}); every size is deployed once whatever is chosen",
    )
    parser.add_argument(
        "--setup",
        choices=("deploy", "adopt"),
        default="deploy",
        help="how each size is set up: a real first deploy (default), or 'adopt': podops only, no-op scenarios only - one container per "
        "service started with podman run and the labels podops deploys with, adopted by the untimed warm-up no-op (a cheap set-up for large N)",
    )
    parser.add_argument(
        "--shim-debounce",
        type=float,
        metavar="SECONDS",
        help="the push scenario's webhook shim waits this long for more triggers before a run (default: the shim's own default, debounce_seconds)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> Config:
    parser = make_parser()
    args = parser.parse_args(argv)
    scenarios = frozenset(filter(None, args.scenarios.split(",")))
    if scenarios - set(SCENARIOS):
        parser.error(f"--scenarios: unknown {', '.join(sorted(scenarios - set(SCENARIOS)))}; choose from {','.join(SCENARIOS)}")

    quick = args.quick
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([5, 10] if quick else [10, 100, 500])
    podops_vars: dict[str, t.Any] = {}
    for item in args.podops_var:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("podops_"):
            parser.error(f"--podops-var wants podops_NAME=VALUE, not {item!r}")
        with contextlib.suppress(ValueError):
            value = json.loads(value)
        podops_vars[key] = value
    config = Config(
        sizes=sizes,
        scenario_size=args.scenario_size or (10 if quick else 100),
        repeat=args.repeat or (2 if quick else 5),
        deploy_repeat=args.deploy_repeat or (1 if quick else 3),
        publish_max=args.publish_max,
        baseline=None if args.no_baseline else args.baseline,
        out=args.out,
        quick=quick,
        podops_vars=podops_vars,
        timeout=args.timeout,
        keep_work=args.keep_work,
        trace=args.trace,
        entry=args.podops_entry,
        scenarios=scenarios,
        setup=args.setup,
        shim_debounce=args.shim_debounce,
    )
    if config.setup == "adopt" and (config.baseline or scenarios - {"floor", "noop", "noop-playbook"}):
        parser.error("--setup adopt times podops' no-op only: give --no-baseline and --scenarios from floor,noop,noop-playbook")
    if min(config.sizes + [config.scenario_size]) < 1 or config.repeat < 1 or config.deploy_repeat < 1:
        parser.error("sizes and repeats must be at least 1")
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    env = bench_environment()
    preflight(env, config.baseline)

    def terminate(signum: int, _frame: t.Any) -> None:
        for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # once: let the cleanup finish
            signal.signal(other, lambda *_: log("still cleaning up; SIGKILL leaves containers behind"))
        raise KeyboardInterrupt(f"signal {signum}")

    # Also SIGINT: a shell that starts the harness in the background makes it ignore SIGINT otherwise.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, terminate)
    bench = Bench(config, env)
    log(f"work dir {bench.work}, prefix pb{bench.token}-, tools: {', '.join(tool.name for tool in bench.tools)}")
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
        for tool in bench.tools:
            for size in set(config.sizes) | {config.scenario_size}:
                cleanup(f"pb{bench.token}-{tool.letter}{size}-", env)
    md = write_results(bench.results, config.out)
    print(md.read_text())
    log(f"wrote {config.out} and {md} in {bench.results.get('duration_s')}s")
    if interrupted:
        return 130
    return 1 if bench.results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
