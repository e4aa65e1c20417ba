"""The tools under test and how benchmarks/bench.py runs commands.

podops (``Podops``: podops-pull or ansible-playbook) and the baseline command (``Baseline``), each run in a
process group of its own with its wall time, CPU time and the machine's load (``run_logged``); the ``--trace``
shims (``Tracer``); the environment ``hack/env.sh`` gives, the preflight checks and the machine's description;
and the cleanup of what a deployment started on podman.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

if t.TYPE_CHECKING:
    from envrepo import EnvRepo

REPO_ROOT = Path(__file__).resolve().parents[1]
PODOPS_PULL = REPO_ROOT / "roles" / "podman_host" / "files" / "podops_pull.py"
IMAGE = "localhost/podops-demo:1"


class ScenarioError(Exception):
    """A scenario could not be measured (a deploy failed, a service never served, ...)."""


def log(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


def sh(*args: str, env: t.Mapping[str, str] | None = None, check: bool = True, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if check and proc.returncode != 0:
        raise ScenarioError(f"{shlex.join(args)} failed (rc {proc.returncode}): {tail(proc.stderr or proc.stdout)}")
    return proc


def tail(text: str, lines: int = 8) -> str:
    return "\n".join([line for line in (text or "").strip().splitlines() if line.strip()][-lines:])


def read_text(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")
    return ""


# --------------------------------------------------------------------------------------------------------
# environment


def bench_environment() -> dict[str, str]:
    """The environment `hack/env.sh` gives (venv on PATH, collection path, CONTAINERS_CONF where needed).

    Works when sourced from env.sh already and when not. podman's workaround is taken from
    .work/podman.env, or - when that is empty but podman cannot run a container as configured (the probe
    `make setup` does) - from .work/containers.conf.
    """
    env = dict(os.environ)
    venv_bin = REPO_ROOT / ".venv" / "bin"
    if venv_bin.is_dir() and str(venv_bin) not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO_ROOT / ".work" / "collections"))
    env.update(ANSIBLE_RETRY_FILES_ENABLED="false", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_NOCOLOR="1")
    if "CONTAINERS_CONF" not in env:
        podman_env = REPO_ROOT / ".work" / "podman.env"
        if podman_env.is_file():
            for line in podman_env.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip():
                    env[key.strip()] = value.strip()
    if "CONTAINERS_CONF" not in env and sh("podman", "run", "--rm", IMAGE, "true", env=env, check=False).returncode != 0:
        conf = REPO_ROOT / ".work" / "containers.conf"
        if conf.is_file():
            env["CONTAINERS_CONF"] = str(conf)
    return env


def preflight(env: dict[str, str], baseline: str | None) -> None:
    for tool in ("podman", "podman-compose", "ansible-playbook", "git"):
        if not shutil.which(tool, path=env["PATH"]):
            raise SystemExit(f"bench: {tool} is not on PATH - run `make setup` and `. hack/env.sh` (or `make bench`)")
    if sh("podman", "image", "exists", IMAGE, env=env, check=False).returncode != 0:
        raise SystemExit(f"bench: {IMAGE} is missing - run `make setup`")
    probe = sh("podman", "run", "--rm", IMAGE, "true", env=env, check=False)
    if probe.returncode != 0:
        raise SystemExit(f"bench: podman cannot run containers here - run `make setup`:\n{tail(probe.stderr)}")
    if not (Path(env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)[0]) / "ansible_collections" / "podops" / "gitops").exists():
        raise SystemExit("bench: podops.gitops is not on ANSIBLE_COLLECTIONS_PATH - run `make setup`")
    if baseline is not None and not baseline.strip():
        raise SystemExit("bench: --baseline is empty (use --no-baseline to skip it)")


def machine_info(env: dict[str, str]) -> dict[str, t.Any]:
    def first_line(*argv: str) -> str:
        proc = sh(*argv, env=env, check=False)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr).strip() else "?"

    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gib = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    compose = first_line("podman-compose", "--version")
    match = re.search(r"podman-compose\w*\s+version\s+(\S+)", sh("podman-compose", "--version", env=env, check=False).stdout, re.IGNORECASE)
    commit = sh("git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD", check=False).stdout.strip() or None
    dirty = bool(sh("git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "plugins", "roles", "playbooks", check=False).stdout.strip())
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "podman": first_line("podman", "--version").removeprefix("podman version "),
        "podman_compose": match.group(1) if match else compose,
        "ansible_core": first_line("ansible-playbook", "--version"),
        "podops_commit": f"{commit}{'+dirty' if dirty else ''}" if commit else None,
        "loadavg_start": list(os.getloadavg()),
    }


# --------------------------------------------------------------------------------------------------------
# the commands under test


@dataclass
class RunResult:
    wall_s: float
    info: dict[str, t.Any] = field(default_factory=dict)


@dataclass
class Ran:
    rc: int
    wall_s: float
    cpu_s: float  # user + system CPU of the command's process tree (what it waited for; not the containers)
    machine_busy: float  # share of all cores busy during the run, whoever used them

    def info(self) -> dict[str, float]:
        return {"wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3), "machine_busy": round(self.machine_busy, 3)}


def cpu_counters() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat; (0, 0) where there is none."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)
    return 0, 0


def run_logged(argv: list[str], env: dict[str, str], cwd: Path, logfile: Path, timeout: float) -> Ran:
    """Run ``argv`` with its output appended to ``logfile``.

    The command gets its own process group, killed on timeout, Ctrl-C or SIGTERM, so nothing it started
    keeps deploying while the harness cleans up.
    """
    with logfile.open("ab") as out:
        out.write(f"\n$ {shlex.join(argv)}\n".encode())
        out.flush()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, total = cpu_counters()
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            kill_group(proc)
            raise ScenarioError(f"{argv[0]} took longer than {timeout:g}s (--timeout); see {logfile}") from exc
        except BaseException:
            kill_group(proc)
            raise
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy_after, total_after = cpu_counters()
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    share = (busy_after - busy) / (total_after - total) if total_after > total else 0.0
    return Ran(rc, wall, cpu, share)


def kill_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return


@dataclass
class Target:
    """Where one tool deploys one env repo: its state folder and its compose project prefix."""

    repo: EnvRepo
    state_dir: Path
    prefix: str
    logfile: Path


def parse_utc(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


TRACE_SHIM = """\
#!/bin/sh
# benchmarks/bench.py --trace: run the real {name}, log start, end, rc and argv
start=$(date +%s.%N)
{real} "$@"
rc=$?
printf '%s %s %s {name} %s\\n' "$start" "$(date +%s.%N)" "$rc" "$*" >>"$PODOPS_BENCH_TRACE"
exit $rc
"""
SUBCOMMAND_PAIRS = ("network", "pod", "image", "healthcheck", "volume", "container", "system")
COMPOSE_SUBCOMMANDS = ("up", "down", "stop", "start", "ps", "config", "pull", "logs", "version", "--version")


def command_key(tool: str, args: list[str]) -> str:
    """``podman ps``, ``podman network exists``, ``podman-compose up``: what a traced call was."""
    if tool == "podman-compose":
        return f"{tool} " + next((arg for arg in args if arg in COMPOSE_SUBCOMMANDS), "?")
    if tool == "git":  # git -C <dir> fetch ...: the subcommand, not the folder
        words = [arg for index, arg in enumerate(args) if not arg.startswith("-") and (index == 0 or args[index - 1] != "-C")]
        return f"git {words[0]}" if words else "git"
    words = [arg for arg in args if not arg.startswith("-")]
    if not words:
        return f"{tool} {args[0] if args else ''}".strip()
    if words[0] in SUBCOMMAND_PAIRS and len(words) > 1:
        return f"{tool} {words[0]} {words[1]}"
    return f"{tool} {words[0]}"


class Tracer:
    """``--trace``: podman and podman-compose shims that log the wall time of every call.

    Each shim costs a few milliseconds per call, so traced runs are a breakdown, not headline numbers.
    podman-compose's own podman calls are traced too (nested: its time includes theirs).
    """

    def __init__(self, work: Path, env: dict[str, str]):
        self.dir = work / "shims"
        self.dir.mkdir()
        self.log = work / "trace.log"
        self.log.touch()
        self.offset = 0
        for name in ("podman", "podman-compose", "git"):
            real = shutil.which(name, path=env["PATH"])
            shim = self.dir / name
            shim.write_text(TRACE_SHIM.format(name=name, real=shlex.quote(str(real))))
            shim.chmod(0o755)

    @property
    def compose_shim(self) -> str:
        return str(self.dir / "podman-compose")

    def environ(self, env: dict[str, str]) -> dict[str, str]:
        return dict(env, PATH=f"{self.dir}{os.pathsep}{env['PATH']}", PODOPS_BENCH_TRACE=str(self.log))

    def take(self) -> dict[str, dict[str, float]]:
        """Calls logged since the last take, per command: count, total and longest wall time."""
        with self.log.open() as handle:
            handle.seek(self.offset)
            lines = handle.readlines()
            self.offset = handle.tell()
        commands: dict[str, dict[str, float]] = {}
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            with contextlib.suppress(ValueError):
                elapsed = float(parts[1]) - float(parts[0])
                entry = commands.setdefault(command_key(parts[3], parts[4:]), {"n": 0, "total_s": 0.0, "max_s": 0.0})
                entry["n"] += 1
                entry["total_s"] = round(entry["total_s"] + elapsed, 3)
                entry["max_s"] = round(max(entry["max_s"], elapsed), 3)
        return dict(sorted(commands.items(), key=lambda item: -item[1]["total_s"]))


class Podops:
    name = "podops"
    letter = "p"

    def __init__(self, env: dict[str, str], extra_vars: dict[str, t.Any], timeout: float, tracer: Tracer | None = None, entry: str = "pull"):
        self.env = dict(tracer.environ(env) if tracer else env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
        self.env.pop("PODOPS_LOCK_HELD", None)
        self.extra_vars = extra_vars
        self.timeout = timeout
        self.tracer = tracer
        self.entry = entry

    def describe(self) -> str:
        extra = " ".join(f"-e {k}={v}" for k, v in self.extra_vars.items())
        if self.entry == "pull":
            return f"podops-pull {extra} -e podops_trigger=timer (fetching the env repo; the fast lane where it applies)".replace("  ", " ")
        return f"ansible-playbook podops.gitops.reconcile {extra}".strip()

    @staticmethod
    def checkout(target: Target) -> Path:
        """podops-pull's checkout of the env repo (the repo the harness commits to plays the git server)."""
        return target.state_dir.with_name(target.state_dir.name + "-checkout")

    def argv(self, target: Target, entry: str) -> tuple[list[str], Path]:
        variables = {"podops_project_prefix": target.prefix, **self.extra_vars}
        if self.tracer:  # the modules find podman-compose beside their Python first, so name the shim
            variables["podops_compose_executable"] = self.tracer.compose_shim
        checkout = self.checkout(target)
        if entry == "playbook":
            repo_dir = checkout if checkout.is_dir() else target.repo.path
            variables.update(podops_repo_dir=str(repo_dir), podops_state_dir=str(target.state_dir))
            return ["ansible-playbook", "podops.gitops.reconcile", "-e", json.dumps(variables)], target.repo.path
        config = target.state_dir.with_name(target.state_dir.name + "-pull.json")
        playbook = shutil.which("ansible-playbook", path=self.env.get("PATH"))
        settings = {
            "repo_url": str(target.repo.path),
            "repo_version": "main",
            "repo_dir": str(checkout),
            "state_dir": str(target.state_dir),
            "ansible_playbook": playbook,
            "python": str(Path(playbook or sys.executable).with_name("python")),
            "collections_path": self.env.get("ANSIBLE_COLLECTIONS_PATH", ""),
            "lock_timeout": 60,
            "env": {},
        }
        config.write_text(json.dumps(settings))
        return [settings["python"], str(PODOPS_PULL), "--config", str(config), "-e", json.dumps(variables), "-e", "podops_trigger=timer"], REPO_ROOT

    def run(self, target: Target, expect: str, entry: str | None = None) -> RunResult:
        """One reconcile; ``expect`` is "noop" (nothing may deploy) or "deploy" (something must, nothing may fail)."""
        argv, cwd = self.argv(target, entry or self.entry)
        offset = target.logfile.stat().st_size if target.logfile.exists() else 0
        ran = run_logged(argv, self.env, cwd, target.logfile, self.timeout)
        wall = ran.wall_s
        report_path = target.state_dir / "last-run.json"
        if ran.rc != 0 or not report_path.is_file():
            raise ScenarioError(f"podops failed (rc {ran.rc}); see {target.logfile}")
        report = json.loads(report_path.read_text())
        actions: dict[str, int] = {}
        for entry in report["services"].values():
            actions[entry["action"]] = actions.get(entry["action"], 0) + 1
        if report["result"] == "failed":
            raise ScenarioError(f"podops reported a failed run: {actions}; see {report_path}")
        if expect == "noop" and actions.get("deployed"):
            raise ScenarioError(f"a no-op reconcile deployed {actions['deployed']} service(s); see {report_path}")
        if expect == "deploy" and not actions.get("deployed"):
            raise ScenarioError(f"the reconcile deployed nothing: {actions}; see {report_path}")
        module_s = (parse_utc(report["finished"]) - parse_utc(report["started"])).total_seconds()
        durations = [entry.get("duration_s") or 0.0 for entry in report["services"].values() if entry["action"] == "deployed"]
        info = {"module_s": round(module_s, 3), "ansible_overhead_s": round(wall - module_s, 3), **ran.info(), "actions": actions}
        with open(target.logfile, encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            output = handle.read()
        info["path"] = "fast lane" if ": fast lane (" in output else "playbook"
        if durations:
            info["service_deploy_s"] = {"sum": round(sum(durations), 3), "max": round(max(durations), 3)}
        if self.tracer:
            info["commands"] = self.tracer.take()
        return RunResult(wall, info)


class Baseline:
    name = "baseline"
    letter = "b"

    def __init__(self, command: str, env: dict[str, str], timeout: float, tracer: Tracer | None = None):
        self.command = command
        self.env = tracer.environ(env) if tracer else env
        self.timeout = timeout
        self.tracer = tracer

    def describe(self) -> str:
        return self.command

    def run(self, target: Target, expect: str) -> RunResult:
        env = dict(self.env, PODOPS_BENCH_REPO=str(target.repo.path), PODOPS_BENCH_STATE=str(target.state_dir), PODOPS_BENCH_PREFIX=target.prefix)
        target.state_dir.mkdir(parents=True, exist_ok=True)
        ran = run_logged(["/bin/sh", "-c", self.command], env, REPO_ROOT, target.logfile, self.timeout)
        if ran.rc != 0:
            raise ScenarioError(f"the baseline command failed (rc {ran.rc}); see {target.logfile}")
        info: dict[str, t.Any] = ran.info()
        if self.tracer:
            info["commands"] = self.tracer.take()
        return RunResult(ran.wall_s, info)


Tool = Podops | Baseline


# --------------------------------------------------------------------------------------------------------
# podman: what runs, and cleaning it up


def containers_of(prefix: str, env: dict[str, str]) -> list[dict[str, t.Any]]:
    """Containers podops started with this prefix (label) or of compose projects named <prefix>*."""
    entries = json.loads(sh("podman", "ps", "-a", "--format", "json", env=env).stdout or "[]")
    found = []
    for entry in entries:
        labels = entry.get("Labels") or {}
        if labels.get("io.podops.prefix") == prefix or labels.get("io.podman.compose.project", "").startswith(prefix):
            found.append(entry)
    return found


def cleanup(prefix: str, env: dict[str, str]) -> None:
    """Remove every container, pod and network of ``prefix`` (podops label or compose project name)."""
    with contextlib.suppress(ScenarioError, ValueError):
        ids = [entry["Id"] for entry in containers_of(prefix, env)]
        for start in range(0, len(ids), 100):
            sh("podman", "rm", "-f", "-t", "0", *ids[start : start + 100], env=env, check=False)
    pods = [name for name in sh("podman", "pod", "ls", "--format", "{{.Name}}", env=env, check=False).stdout.split() if name.startswith(f"pod_{prefix}")]
    if pods:
        sh("podman", "pod", "rm", "-f", *pods, env=env, check=False)
    networks = [name for name in sh("podman", "network", "ls", "--format", "{{.Name}}", env=env, check=False).stdout.split() if name.startswith(prefix)]
    for start in range(0, len(networks), 100):
        sh("podman", "network", "rm", "-f", *networks[start : start + 100], env=env, check=False)
