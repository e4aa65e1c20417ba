"""Fleet benchmark for podops.gitops (issue 18): one laptop run over real SSH to 1, 5, 10, 20 simulated hosts.

Every host is a real ``sshd`` on a loopback address of its own (tests/integration/fleet_helpers.py: own host key,
key-only authentication, pinned known_hosts), with its own state folder, project prefix and a few services; they
all share this machine's podman. For every host count the fleet is deployed once, then timed at each ``--forks``:

  noop    ``ansible-playbook -i inventory podops.gitops.reconcile`` when nothing changed;
  change  one service changed in the env repo, rolled to every host (each host redeploys that one service).

Measured: wall time, the controller's CPU time (user + system of ansible-playbook, its forks and its ssh clients: the
children of this process; the hosts' side runs under the sshd processes and is not counted there), and the CPU time
of the whole machine during the run (/proc/stat: the controller plus the simulated hosts' side, which on a real fleet
runs on each host).
Writes ``--out`` (JSON) and a markdown table next to it (``.md``). A benchmark, not a test: it fails only when a
run fails. ``make bench-fleet`` runs it with the defaults.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from fleet_helpers import Fleet  # noqa: E402

IMAGE = "localhost/podops-demo:1"
COMPOSE = """\
services:
  app:
    image: {image}
    network_mode: none
    volumes: ["./site:/www:ro"]
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def make_repo(path: Path, services: int) -> Path:
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "bench@podops.invalid")
    _git(path, "config", "user.name", "podops bench")
    for index in range(services):
        service = path / "services" / f"s{index}"
        (service / "site").mkdir(parents=True)
        (service / "compose.yaml").write_text(COMPOSE.format(image=IMAGE))
        (service / "site" / "index.html").write_text(f"s{index} v0\n")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "bench: first")
    return path


def change_one(repo: Path, step: int) -> None:
    (repo / "services" / "s0" / "site" / "index.html").write_text(f"s0 v{step}\n")
    _git(repo, "commit", "-q", "-am", f"bench: change {step}")


def machine_busy() -> float:
    """CPU seconds all cores of this machine have been busy (any process), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed_run(fleet: Fleet, inventory: Path, cwd: Path, forks: int, repo: Path) -> dict:
    argv = ["ansible-playbook", "-i", str(inventory), "podops.gitops.reconcile", "-f", str(forks), "-e", json.dumps({"podops_repo_url": str(repo)})]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = machine_busy()
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=fleet.env(), capture_output=True, text=True, timeout=1800, check=False)
    wall = time.monotonic() - start
    busy = machine_busy() - busy
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"fleet benchmark: the run failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # machine: every process of this machine while the run lasted; minus the controller's, it is mostly the hosts'
    # side (their sshd sessions, module processes, git and podman), which on a real fleet runs on each host.
    return {"wall_s": round(wall, 2), "controller_cpu_s": round(cpu, 2), "machine_cpu_s": round(busy, 2)}


def bench_count(count: int, forks_list: list[int], services: int, base: Path, kinds: list[str], setup_forks: int) -> dict:
    fleet = Fleet(base / f"fleet-{count}", count)
    try:
        repo = make_repo(base / f"repo-{count}", services)
        cwd = base / f"laptop-{count}"
        cwd.mkdir()
        inventory = fleet.inventory(cwd / "inventory.json", group_vars={"podops_trigger": "laptop"})
        result = {"hosts": count, "services_per_host": services, "first_deploy": timed_run(fleet, inventory, cwd, setup_forks, repo)}
        for step, forks in enumerate(forks_list, start=1):
            if "noop" in kinds:
                result[f"noop_f{forks}"] = timed_run(fleet, inventory, cwd, forks, repo)
            if "change" in kinds:
                change_one(repo, step)
                result[f"change_f{forks}"] = timed_run(fleet, inventory, cwd, forks, repo)
        return result
    finally:
        fleet.stop()
        fleet.cleanup_containers()


def _cell(run: dict) -> str:
    return f"{run['wall_s']} / {run['controller_cpu_s']} / {run.get('machine_cpu_s', '-')}"


def markdown(results: dict) -> str:
    forks_list = results["forks"]
    header = ["hosts", f"first deploy (f{results.get('setup_forks', max(forks_list))})"] + [
        f"{label} f{forks}" for forks in forks_list for label in ("no-op", "change")
    ]
    lines = [
        f"# Fleet benchmark ({results['date']})",
        "",
        f"{results['services_per_host']} services per host; one laptop run over SSH (pipelining, ControlPersist) to every host;"
        f" {results['machine']}. Cells: wall s / controller CPU s / machine CPU s (every process on this machine during the"
        " run: the controller and the simulated hosts' side; `-` where not measured).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in results["runs"]:
        cells = [str(row["hosts"]), _cell(row["first_deploy"])]
        for forks in forks_list:
            for kind in ("noop", "change"):
                cell = row.get(f"{kind}_f{forks}")
                cells.append(_cell(cell) if cell else "not run")
        lines.append("| " + " | ".join(cells) + " |")
    runs = {row["hosts"]: row for row in results["runs"]}
    if len(runs) > 1:
        lines += ["", "Cost of each additional host (no-op, from the smallest to the largest fleet):", ""]
        small, large = min(runs), max(runs)
        for forks in forks_list:
            key = f"noop_f{forks}"
            if key not in runs[small] or key not in runs[large]:
                continue
            wall = (runs[large][key]["wall_s"] - runs[small][key]["wall_s"]) / (large - small)
            cpu = (runs[large][key]["controller_cpu_s"] - runs[small][key]["controller_cpu_s"]) / (large - small)
            ratio = runs[large][key]["wall_s"] / runs[small][key]["wall_s"]
            hosts_side = ""
            if "machine_cpu_s" in runs[large][key] and "machine_cpu_s" in runs[small][key]:
                machine = (runs[large][key]["machine_cpu_s"] - runs[small][key]["machine_cpu_s"]) / (large - small)
                hosts_side = f" (and +{machine - cpu:.2f} s of CPU on the hosts' side, here on the same cores)"
            lines.append(
                f"- forks {forks}: +{wall:.2f} s wall and +{cpu:.2f} s controller CPU per host{hosts_side}; {large} hosts take {ratio:.1f}x the time of {small}"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1,5,10,20", help="host counts (default 1,5,10,20)")
    parser.add_argument("--forks", default="5,20", help="forks to time each count at (default 5,20)")
    parser.add_argument("--services", type=int, default=3, help="services per host (default 3)")
    parser.add_argument("--kinds", default="noop,change", help="what to time after the first deploy (default noop,change)")
    # Deploying every host at once puts count x services podman-compose runs on this one machine's podman (20 hosts at
    # forks 20: `podman ps` timed out at load 15); the deploy is the set-up of the timed runs, so it runs at few forks.
    parser.add_argument("--setup-forks", type=int, default=5, help="forks of the first deploy, the set-up (default 5)")
    parser.add_argument("--merge", action="store_true", help="add to the rows already in --out (replacing the same host counts)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fleet.json"))
    args = parser.parse_args()
    # Stopped early (Ctrl-C, kill, or started in the background where SIGINT is ignored): still stop every sshd and
    # remove every container of the fleet being timed (bench_count's finally).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts = [int(item) for item in args.hosts.split(",")]
    forks_list = [int(item) for item in args.forks.split(",")]
    results = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, load average at start {os.getloadavg()[0]:.1f}",
        "services_per_host": args.services,
        "forks": forks_list,
        "setup_forks": args.setup_forks,
        "runs": [],
    }
    out = Path(args.out)
    if args.merge and out.is_file():
        earlier = json.loads(out.read_text())
        results["runs"] = [row for row in earlier["runs"] if row["hosts"] not in counts]
        results["forks"] = sorted(set(earlier["forks"]) | set(forks_list))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="podops-fleet-bench-") as base:
        for count in counts:
            row = bench_count(count, forks_list, args.services, Path(base), args.kinds.split(","), args.setup_forks)
            results["runs"].append(row)
            results["runs"].sort(key=lambda item: item["hosts"])
            print(json.dumps(row), flush=True)
            # after every count: an interrupted benchmark keeps what it measured
            out.write_text(json.dumps(results, indent=2) + "\n")
            out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
