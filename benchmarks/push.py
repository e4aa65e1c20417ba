"""The push scenario of benchmarks/bench.py: from a signed webhook delivered to the shim to the new content served.

A private webhook shim (``webhook_burst.spawned_shim``) runs the real deploy command - the same podops-pull
invocation, config and state folder bench.py's other scenarios use - and the harness plays the git host:

  recreate    commit the next release of the probe service, deliver a signed GitHub ``push`` of that commit;
  blue-green  the same with the probe on strategy blue-green behind nginx (``scenarios.blue_green_probe``);
  package     the probe runs an image of a real registry on loopback (Debian's docker-registry); publish the next
              release of that image under the same tag, deliver a signed ``registry_package`` ``published`` event:
              the shim redeploys the services using the image (``podops-pull -e podops_service=<probe>``).

The poller runs before the delivery; each change is timed from the delivery to the first answer with the new
release on the service's port (nginx's for blue-green), with the failed requests in between. Where the time goes,
per change, from the shim's run record (queued, started, finished) and the engine's run report (started, finished,
the probe's deploy duration); with ``--trace`` also the podman, podman-compose and git calls of the run.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import statistics
import subprocess
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

import webhook_burst
from envrepo import allocate_ports
from report import fmt_stat, summarize
from scenarios import blue_green_probe
from serving import Poller, outage, wait_served
from tools import IMAGE, Podops, ScenarioError, Target, command_key, cpu_counters, log, sh

if t.TYPE_CHECKING:
    from bench import Bench

STRATEGIES = ("recreate", "blue-green", "package")
# The targets (#19 item 3), medians at N=100; the package event has none of its own.
TARGETS = {"recreate": 2.5, "blue-green": 2.0}
SERVED_TIMEOUT = 120
# The timestamps of one change, in seconds after the delivery was sent (the "where the time goes" columns).
PHASES = ("run_started_s", "engine_started_s", "served_s", "engine_finished_s", "run_finished_s")
TRACED = ("fetch_done_s", "up_started_s", "up_done_s", "health_done_s")  # with --trace


def parse_utc(text: str | None) -> float | None:
    """An ISO UTC timestamp of the shim or the engine (``...T12:34:56.789012Z``) as a Unix time."""
    if not text:
        return None
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC).timestamp()


class Registry:
    """Debian's docker-registry (the real distribution registry) on a loopback port of its own, as
    tests/integration/conftest.py's fixture starts it; ``registries_conf`` marks it insecure (plain HTTP)."""

    def __init__(self, base: Path, env: dict[str, str]):
        self.port = allocate_ports(1)[0]
        self.host = f"127.0.0.1:{self.port}"
        (base / "data").mkdir(parents=True)
        config = base / "config.yml"
        config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {base / 'data'}\nhttp:\n  addr: {self.host}\n")
        self.registries_conf = base / "registries.conf"
        self.registries_conf.write_text(f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n')
        self.env = dict(env, CONTAINERS_REGISTRIES_CONF=str(self.registries_conf))
        try:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise ScenarioError(f"the package event cannot be measured: docker-registry does not start ({exc}); `make setup` installs it") from exc
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ScenarioError(f"docker-registry did not answer on {self.host}") from None
                time.sleep(0.1)

    def publish(self, image: str, ref: str) -> None:
        """Push the local ``image`` to ``ref`` of this registry without tagging it ``ref`` here: the host pulls it."""
        sh("podman", "push", "-q", "--tls-verify=false", image, f"docker://{ref}", env=self.env)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Change(t.NamedTuple):
    event: str  # the GitHub event header
    payload: dict[str, t.Any]
    expected: str  # the body the poller waits for


def measure_push(harness: Bench, tool: Podops, target: Target) -> None:
    """The push scenario at the scenario size: recreate, blue-green, package event (see the module's docstring)."""
    entry = harness.results["push"].setdefault(str(target.repo.size), {})
    settle(tool, target)
    argv, _cwd = tool.argv(target, "pull")
    shim_args = {
        "command": argv,
        "state_dir": str(target.state_dir),
        "repo_dir": str(Podops.checkout(target)),
        "workdir": str(harness.work),
        "debounce": harness.config.shim_debounce,  # None: the shim's default, what a host gets
    }
    with webhook_burst.spawned_shim(env=tool.env, **shim_args) as (url, secret):
        entry["recreate"] = series(harness, tool, target, url, secret, "recreate", target.repo.probe_port, commit_change(target))
        with blue_green_probe(harness, tool, target) as proxy_port:
            entry["blue-green"] = series(harness, tool, target, url, secret, "blue-green", proxy_port, commit_change(target))
    entry["package"] = measure_package(harness, tool, target, shim_args)


def settle(tool: Podops, target: Target) -> None:
    """Deploy what is committed when the probe does not serve its release on its own port (after the blue-green
    scenario, the repo holds the probe on recreate again, committed but not deployed)."""
    expected = f"release {target.repo.release}"
    try:
        wait_served(target.repo.probe_port, expected, 2)
    except ScenarioError:
        log(f"{tool.name}: deploying the committed repo before the push scenario")
        tool.run(target, "deploy")
        wait_served(target.repo.probe_port, expected, 60)


def commit_change(target: Target) -> t.Callable[[], Change]:
    repo = target.repo

    def change() -> Change:
        release = repo.bump_probe()
        commit = sh("git", "-C", str(repo.path), "rev-parse", "HEAD", env=repo.env).stdout.strip()
        return Change("push", webhook_burst.push_payload("main", commit), f"release {release}")

    return change


def measure_package(harness: Bench, tool: Podops, target: Target, shim_args: dict[str, t.Any]) -> dict[str, t.Any]:
    """The probe on an image of a loopback registry; each change publishes its next release under the same tag."""
    repo = target.repo
    registry = Registry(harness.work / f"registry-{repo.size}", harness.env)
    podops_env = dict(tool.env, CONTAINERS_REGISTRIES_CONF=str(registry.registries_conf))
    name = f"podops-bench-{harness.token}"
    ref = f"{registry.host}/{name}:latest"
    built: list[str] = []

    def build(release: int) -> str:
        source = f"localhost/{name}-build:{release}"
        folder = harness.work / f"image-{release}"
        folder.mkdir()
        (folder / "Containerfile").write_text(f"FROM {IMAGE}\nENV RELEASE={release}\n")
        sh("podman", "build", "-q", "-t", source, str(folder), env=registry.env)
        built.append(source)
        return source

    def change() -> Change:
        repo.release += 1
        registry.publish(build(repo.release), ref)
        package = {"name": name, "namespace": "bench", "package_type": "CONTAINER", "package_version": {"package_url": ref}}
        return Change("registry_package", {"action": "published", "registry_package": package}, f"release {repo.release}")

    saved_env = tool.env
    tool.env = podops_env  # podops pulls from the registry: it is insecure (plain HTTP) to podman
    try:
        repo.release += 1
        sh("podman", "tag", build(repo.release), ref, env=registry.env)
        built.append(ref)
        repo.set_probe_image(ref)
        log(f"{tool.name}: the probe {repo.probe} moves to {ref} (release {repo.release} in the image)")
        tool.run(target, "deploy")
        wait_served(repo.probe_port, f"release {repo.release}", 60)
        with webhook_burst.spawned_shim(**dict(shim_args, env=podops_env)) as (url, secret):
            return series(harness, tool, target, url, secret, "package", repo.probe_port, change)
    finally:
        tool.env = saved_env
        registry.stop()
        with contextlib.suppress(ScenarioError):
            repo.restore_probe()
        remove_images(built, target.prefix, registry.env)


def remove_images(names: list[str], prefix: str, env: dict[str, str]) -> None:
    """Remove the images this scenario built (and pulled: the same IDs), and podops' rollback tags of the prefix's
    projects (``localhost/podops-previous/<project>_<service>``, by name only: one may name the demo image, which
    every other service runs). ``-f`` on the built images also removes the probe's containers that run them: only
    this prefix's, which the run's cleanup removes next anyway."""
    keep = sh("podman", "image", "inspect", "--format", "{{.Id}}", IMAGE, env=env, check=False).stdout.strip()
    listed = [line.split() for line in sh("podman", "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", env=env, check=False).stdout.splitlines()]
    ids = {image for name, image in (row for row in listed if len(row) == 2) if name in names and not keep.startswith(image)}
    previous = [row[0] for row in listed if len(row) == 2 and row[0].startswith(f"localhost/podops-previous/{prefix}")]
    if ids:
        sh("podman", "rmi", "-f", *sorted(ids), env=env, check=False)
    for name in previous:
        sh("podman", "rmi", name, env=env, check=False)  # untags it; refuses (fine) if it is the last name of an image in use


def series(harness: Bench, tool: Podops, target: Target, url: str, secret: bytes, strategy: str, port: int, change: t.Callable[[], Change]) -> dict[str, t.Any]:
    """``--repeat`` changes, each delivered to the shim; the poller on ``port`` runs all along."""
    poller = Poller(port)
    poller.start()
    runs: list[dict[str, t.Any]] = []
    try:
        for index in range(harness.config.repeat):
            run = one_change(harness, tool, target, url, secret, poller, change)
            runs.append(run)
            log(
                f"{tool.name}: push ({strategy}) {index + 1}/{harness.config.repeat}: served {run['served_s']:.2f}s after the delivery "
                f"(shim run started at {run['run_started_s']:.2f}s, engine {run['engine_started_s']:.2f}-{run['engine_finished_s']:.2f}s, "
                f"{run['path']}), {run['failed_requests']} failed requests"
            )
    finally:
        poller.stop()
    keys = ("served_s", "failed_requests", "longest_gap_s", "failed_after_served", "service_deploy_s", "machine_busy", *PHASES, *TRACED)
    result = {key: summarize(r.get(key) for r in runs) for key in keys}
    return dict(result, runs=runs)


def one_change(harness: Bench, tool: Podops, target: Target, url: str, secret: bytes, poller: Poller, change: t.Callable[[], Change]) -> dict[str, t.Any]:
    repo = target.repo
    old = f"release {repo.release}"
    if poller.wait_for(old, time.monotonic() - 1, 30) is None:
        raise ScenarioError(f"{repo.probe} does not serve {old} before the change")
    wanted = change()
    busy, total = cpu_counters()
    sent_wall, sent = time.time(), time.monotonic()
    status, answer = webhook_burst.deliver(url, secret, wanted.event, wanted.payload)
    answered = time.monotonic()
    if status != 202 or not answer.get("run_id"):
        raise ScenarioError(f"the shim answered the {wanted.event} delivery with {status}: {answer}")
    served = poller.wait_for(wanted.expected, sent, SERVED_TIMEOUT)
    try:
        run = webhook_burst.wait_run(url, answer["run_id"], timeout=harness.config.timeout)
    except RuntimeError as exc:
        raise ScenarioError(str(exc)) from exc
    if served is None or run["status"] not in ("changed", "ok"):
        what = f"shim run {run['id']}: {run['status']}, {run.get('error')}"
        raise ScenarioError(f"{repo.probe} did not serve {wanted.expected!r} ({what}): {run.get('log', '')[-1500:]}")
    busy_after, total_after = cpu_counters()
    finished = parse_utc(run.get("finished")) or time.time()
    until = sent + (finished - sent_wall)
    time.sleep(0.2)  # a few more samples after the run's end: flaps count
    return {
        "sent_at": round(sent_wall, 4),
        "served_s": round(served - sent, 4),
        "answered_ms": round((answered - sent) * 1000, 1),
        "machine_busy": round((busy_after - busy) / (total_after - total), 3) if total_after > total else None,
        **outage(poller.snapshot(), sent, served, max(until, served) + 0.2),
        **(line := timeline(target, run, sent_wall)),
        **(traced_phases(harness.tracer.log, sent_wall, line) if harness.tracer else {}),
        **({"commands": harness.tracer.take()} if harness.tracer else {}),
    }


def traced_phases(trace: Path, sent_wall: float, line: dict[str, t.Any]) -> dict[str, t.Any]:
    """With --trace: when the run's fetch, its ``podman-compose up`` and the health gate's last sample ended, in seconds
    after the delivery (from the trace shims' start/end times of every podman, podman-compose and git call)."""
    end = line.get("run_finished_s")
    calls = []
    for text in trace.read_text(errors="replace").splitlines():
        parts = text.split(maxsplit=4)
        with contextlib.suppress(ValueError, IndexError):
            start, stop = float(parts[0]) - sent_wall, float(parts[1]) - sent_wall
            if start >= 0 and (end is None or stop <= end + 0.5):
                calls.append((start, stop, command_key(parts[3], parts[4].split() if len(parts) > 4 else [])))
    fetches = [stop for start, stop, key in calls if key == "git fetch"]
    ups = [(start, stop) for start, stop, key in calls if key == "podman-compose up"]
    samples = [stop for start, stop, key in calls if key == "podman healthcheck run"]
    return {
        "fetch_done_s": round(fetches[0], 4) if fetches else None,
        "up_started_s": round(ups[-1][0], 4) if ups else None,
        "up_done_s": round(ups[-1][1], 4) if ups else None,
        "health_done_s": round(samples[-1], 4) if samples else None,
    }


def timeline(target: Target, run: dict[str, t.Any], sent_wall: float) -> dict[str, t.Any]:
    """When the shim's run and the engine started and ended, in seconds after the delivery; the probe's deploy."""
    report_path = Path(target.state_dir) / "runs" / f"{run['id']}.json"
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        report = {}
    probe = (report.get("services") or {}).get(target.repo.probe) or {}

    def since(stamp: str | None) -> float | None:
        value = parse_utc(stamp)
        return None if value is None else round(value - sent_wall, 4)

    return {
        "run_started_s": since(run.get("started")),
        "engine_started_s": since(report.get("started")),
        "engine_finished_s": since(report.get("finished")),
        "run_finished_s": since(run.get("finished")),
        "service_deploy_s": probe.get("duration_s"),
        "probe_action": probe.get("action"),
        "probe_reason": probe.get("reason"),
        "path": "fast lane" if ": fast lane (" in (run.get("log") or "") else "playbook",
        "run_id": run["id"],
        "deliveries": run.get("deliveries"),
    }


# --------------------------------------------------------------------------------------------------------
# the result document


LABELS = {"recreate": "push to served, recreate", "blue-green": "push to served, blue-green", "package": "package event to served (recreate)"}


def markdown_rows(res: dict[str, t.Any]) -> list[str]:
    """Rows of bench.py's main table: ``| scenario | N | podops | baseline | ratio |``."""
    rows = []
    for size, entry in sorted((res.get("push") or {}).items(), key=lambda item: int(item[0])):
        for strategy in STRATEGIES:
            stats = entry.get(strategy)
            if not stats:
                continue
            rows.append(f"| {LABELS[strategy]}: delivery to served | {size} | {fmt_stat(stats['served_s'])} | - | - |")
            rows.append(f"| {LABELS[strategy]}: failed requests (20 ms polling) | {size} | {fmt_stat(stats['failed_requests'], '', 0)} | - | - |")
    return rows


def breakdown_rows(res: dict[str, t.Any]) -> list[str]:
    """ "Where the time goes" of each push series: medians, in seconds after the delivery."""
    rows = []
    for size, entry in sorted((res.get("push") or {}).items(), key=lambda item: int(item[0])):
        for strategy in STRATEGIES:
            runs = (entry.get(strategy) or {}).get("runs") or []
            if not runs:
                continue

            def med(key: str, runs: list[dict[str, t.Any]] = runs) -> str:
                values = [r[key] for r in runs if r.get(key) is not None]
                return f"{statistics.median(values):.2f}" if values else "-"

            paths = ", ".join(sorted({r.get("path", "-") for r in runs}))
            rows.append(
                f"| {strategy} | {size} | {med('run_started_s')} | {med('fetch_done_s')} | {med('engine_started_s')} | {med('up_started_s')} | "
                f"{med('up_done_s')} | {med('health_done_s')} | {med('served_s')} | {med('engine_finished_s')} | {med('run_finished_s')} | "
                f"{med('service_deploy_s')} | {paths} | {med('machine_busy')} |"
            )
    if rows:
        rows = [
            "",
            "## Push to served: where the time goes",
            "",
            "Seconds after the signed delivery was sent, medians: the shim's run starts (its debounce), podops-pull's `git fetch` "
            "ends (--trace), podops' engine starts (after podops-pull's start, host lock, fetch and fast-lane check; on the "
            "playbook path after ansible-playbook's start too), the probe's `podman-compose up` starts and ends (--trace: the "
            "plan, image checks and, for a package, the pull are before it; recreate's stop, network and container re-creation "
            "inside it), the health gate's last sample ends (--trace), the first answer with the new release, the engine's end, "
            "the shim's run's end; probe deploy = the probe's `duration_s` in the run report (up, health gate and, blue-green, the "
            "switch); busy = share of all cores busy from the delivery to the run's end, any process.",
            "",
            "| change | N | shim run starts | fetch done | engine starts | up starts | up ends | last health sample | served | engine ends "
            "| shim run ends | probe deploy | path | busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
            *rows,
        ]
    return rows


def targets(res: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    entry = (res.get("push") or {}).get("100") or {}
    found = []
    for strategy, limit in TARGETS.items():
        text = f"push to served among 100, {strategy}: <= {limit:g} s" + (" with 0 failed requests" if strategy == "blue-green" else "") + " (median of 5)"
        target: dict[str, t.Any] = {"name": f"push_100_{strategy.replace('-', '_')}", "target": text}
        stats = entry.get(strategy) or {}
        served = (stats.get("served_s") or {}).get("median")
        if served is None:
            target.update(measured=None, met=None, note="not measured in this run")
        else:
            failed = (stats.get("failed_requests") or {}).get("max", 0)
            after = (stats.get("failed_after_served") or {}).get("max", 0)
            measured = f"median {served:.2f}s (max {stats['served_s']['max']:.2f}s), at most {failed:g} failed requests"
            met = served <= limit and (strategy != "blue-green" or (failed == 0 and after == 0))
            target.update(measured=measured, met=met)
        found.append(target)
    return found
