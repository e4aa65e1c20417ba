"""The result document of benchmarks/bench.py: the samples' statistics, the targets, the JSON and its markdown.

``summarize`` and ``ratio`` make the figures of ``--out``; ``targets`` checks them against issue 7's targets (and
the push scenario's); ``markdown`` renders the table printed at the end and written beside the JSON
(``write_results``). See "Results file" in benchmarks/README.md.
"""

from __future__ import annotations

import json
import statistics
import typing as t
from pathlib import Path


def summarize(values: t.Iterable[float | None]) -> dict[str, t.Any]:
    samples = [v for v in values if v is not None]
    if not samples:
        return {"n": 0}
    return {
        "median": round(statistics.median(samples), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
        "n": len(samples),
        "samples": [round(v, 4) for v in samples],
    }


def ratio(a: dict[str, t.Any] | None, b: dict[str, t.Any] | None) -> float | None:
    if not a or not b or not a.get("n") or not b.get("n") or not b["median"]:
        return None
    return round(a["median"] / b["median"], 3)


# --------------------------------------------------------------------------------------------------------
# targets


def targets(res: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Every target (issue 7's, then the push scenario's from push.targets): what was measured and whether it was met."""
    import push  # noqa: PLC0415 - push.py imports this module

    return [
        _compare(res, "noop_100", "no-op, 100 services: <= 1.5x the bash hash loop", "noop", 100, 1.5, strict=False),
        _compare(res, "noop_500", "no-op, 500 services: faster than the bash hash loop", "noop", 500, 1.0, strict=True),
        _change_target(res),
        _blue_green_target(res),
        _burst_target(res),
        _compare(res, "first_deploy_100", "first deploy of 100: <= 0.5x one-by-one down/up", "first_deploy", 100, 0.5, strict=False),
        *push.targets(res),
    ]


def _compare(res: dict[str, t.Any], name: str, text: str, scenario: str, size: int, factor: float, strict: bool) -> dict[str, t.Any]:
    def median(tool: str) -> float | None:
        return ((res[scenario].get(str(size)) or {}).get(tool) or {}).get("median")

    ours, theirs = median("podops"), median("baseline")
    if ours is None or theirs is None:
        return {"name": name, "target": text, "measured": None, "met": None, "note": "not measured in this run"}
    value = ours / theirs if theirs else None
    met = value is not None and (value < factor if strict else value <= factor)
    return {"name": name, "target": text, "measured": f"{ours:.2f}s vs {theirs:.2f}s = {value:.2f}x", "ratio": round(value or 0, 3), "met": met}


def _change_target(res: dict[str, t.Any]) -> dict[str, t.Any]:
    change = ((res["change"].get("100") or {}).get("recreate") or {}).get("podops") or {}
    served = (change.get("commit_to_served_s") or {}).get("median")
    change_target = {"name": "change_100_commit_to_served", "target": "one change among 100: commit-to-served < 4 s (stop timeout 1 s)"}
    if served is None:
        change_target.update(measured=None, met=None, note="not measured in this run")
    else:
        worst = change["commit_to_served_s"]["max"]
        change_target.update(measured=f"median {served:.2f}s (max {worst:.2f}s)", met=served < 4.0)
    return change_target


def _blue_green_target(res: dict[str, t.Any]) -> dict[str, t.Any]:
    blue_green = ((res["change"].get("100") or {}).get("blue-green") or {}).get("podops") or {}
    failed = blue_green.get("failed_requests") or {}
    blue_green_target = {"name": "change_100_blue_green_zero_failed", "target": "one change among 100, blue-green: zero failed requests"}
    if not failed.get("n"):
        blue_green_target.update(measured=None, met=None, note="not measured in this run")
    else:
        after = (blue_green.get("failed_after_served") or {}).get("max", 0)
        measured = f"at most {failed['max']:g} failed, {after:g} after served, in {failed['n']} switches"
        blue_green_target.update(measured=measured, met=failed["max"] == 0 and after == 0)
    return blue_green_target


def _burst_target(res: dict[str, t.Any]) -> dict[str, t.Any]:
    burst = res.get("webhook_burst") or {}
    burst_target: dict[str, t.Any] = {"name": "webhook_burst", "target": "burst of 200: p99 < 50 ms, at most 2 runs, shim RSS < 80 MB"}
    if "latency_ms" not in burst:
        burst_target.update(measured=None, met=None, note="not measured in this run")
    else:
        rss = burst.get("shim_peak_rss_bytes") or burst.get("shim_rss_bytes") or 0
        p99 = burst["latency_ms"]["p99"] or 0
        burst_target.update(
            measured=f"p99 {p99} ms, {burst['runs_started']} runs, RSS {rss / 1e6:.0f} MB, {burst['lost_deliveries']} lost",
            met=p99 < 50 and burst["runs_started"] <= 2 and 0 < rss < 80e6 and burst["lost_deliveries"] == 0,
        )
    return burst_target


# --------------------------------------------------------------------------------------------------------
# markdown


def fmt_stat(stat: dict[str, t.Any] | None, unit: str = "s", digits: int = 2) -> str:
    if not stat or not stat.get("n"):
        return "-"
    if stat["min"] == stat["max"]:
        return f"{stat['median']:.{digits}f}{unit} (n={stat['n']})"
    return f"{stat['median']:.{digits}f}{unit} ({stat['min']:.{digits}f}-{stat['max']:.{digits}f}, n={stat['n']})"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(res: dict[str, t.Any]) -> str:
    """The markdown of ``res``: the machine and the set-up, the table of every scenario, the targets, where the time goes."""
    import push  # noqa: PLC0415 - push.py imports this module

    lines = _heading(res) + _scenario_rows(res) + push.markdown_rows(res) + _reference_rows(res)
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for target in res["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[target["met"]]
        lines.append(f"| {target['target']} | {target.get('measured') or target.get('note', '-')} | {met} |")
    breakdown = breakdown_rows(res)
    if breakdown:
        lines += [
            "",
            "## Where the time goes",
            "",
            "module = podops' reconcile engine (its report's started..finished); entry = the rest of podops' wall time "
            "(podops-pull's fetch and, on a full run, ansible-playbook start-up, module transfer and the role's other tasks); "
            "path = how podops-pull ran (fast lane or playbook); cores = CPU seconds of the command's "
            "process tree / wall time (2 would be both cores of this machine all the time); busy = share of all cores busy "
            "during podops' run, any process (other work on the machine shows here). Medians.",
            "",
            "| scenario | N | podops module | podops entry | path | podops cores | baseline cores | busy (podops run) |",
            "|---|---:|---:|---:|---|---:|---:|---:|",
            *breakdown,
        ]
    lines += push.breakdown_rows(res)
    if res["config"].get("trace"):
        lines += trace_tables(res)
    if res["errors"]:
        lines += ["", "## Errors", ""]
        lines += [f"- {e['tool']} N={e['size']}: {e['error']}" for e in res["errors"]]
    return "\n".join(lines) + "\n"


def _heading(res: dict[str, t.Any]) -> list[str]:
    """The title, the machine and the set-up, and the head of the main table."""
    machine, config = res["machine"], res["config"]
    has_baseline = "baseline" in config["commands"]
    return [
        "# podops.gitops benchmark" + (" (quick mode: small N, not comparable with full runs)" if res.get("quick") else ""),
        "",
        f"- date: {machine['date']}, duration {res.get('duration_s', '?')} s{'' if res.get('complete') else ', INCOMPLETE (interrupted)'}",
        f"- machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, kernel {machine['kernel']}, "
        f"load average {machine['loadavg_start'][0]:.2f} at start, {machine.get('loadavg_end', [0])[0]:.2f} at end",
        f"- podman {machine['podman']}, podman-compose {machine['podman_compose']}, {machine['ansible_core']}, Python {machine['python']}, "
        f"podops {machine['podops_commit']}",
        f"- podops: `{config['commands']['podops']}`",
        f"- baseline: `{config['commands']['baseline']}`" if has_baseline else "- baseline: none (--no-baseline)",
        f"- sizes: no-op and first deploy at N={', '.join(str(n) for n in config['sizes'])}; change and repeated first deploy at "
        f"N={config['scenario_size']}; every service publishes a port up to N={config['publish_max']}, above that only the probe",
        f"- each value: median (min-max, n runs); repeat {config['repeat']}, first deploy at N={config['scenario_size']} repeated "
        f"{config['deploy_repeat']}x; ratio = podops median / baseline median (below 1: podops is faster)",
        "",
        "| scenario | N | podops | baseline | ratio |",
        "|---|---:|---|---|---:|",
    ]


def _scenario_rows(res: dict[str, t.Any]) -> list[str]:
    """The main table's rows of the no-op, first deploy and change scenarios."""
    lines = []
    for scenario, label in (("noop", "no-op reconcile"), ("first_deploy", "first deploy")):
        for size in sorted(res[scenario], key=int):
            entry = res[scenario][size]
            lines.append(f"| {label} | {size} | {fmt_stat(entry.get('podops'))} | {fmt_stat(entry.get('baseline'))} | {fmt_ratio(entry.get('ratio'))} |")
    for size in sorted(res["change"], key=int):
        recreate = res["change"][size]["recreate"]
        ours, theirs = recreate.get("podops") or {}, recreate.get("baseline") or {}
        ratios = recreate.get("ratio") or {}
        rows = (
            ("commit to served", "commit_to_served_s", "s", 2),
            ("deploy command", "command_s", "s", 2),
            ("failed requests (20 ms polling)", "failed_requests", "", 0),
            ("longest gap between good answers", "longest_gap_s", "s", 2),
            ("failed requests after served", "failed_after_served", "", 0),
        )
        for text, key, unit, digits in rows:
            lines.append(
                f"| one change, recreate: {text} | {size} | {fmt_stat(ours.get(key), unit, digits)} | "
                f"{fmt_stat(theirs.get(key), unit, digits)} | {fmt_ratio(ratios.get(key))} |"
            )
        blue_green = res["change"][size].get("blue-green") or {}
        if "podops" in blue_green:
            for text, key, unit, digits in rows:
                lines.append(f"| one change, blue-green: {text} | {size} | {fmt_stat(blue_green['podops'].get(key), unit, digits)} | - | - |")
        else:
            lines.append(f"| one change, blue-green | {size} | not available | - | - |")
    return lines


def _reference_rows(res: dict[str, t.Any]) -> list[str]:
    """The main table's rows of the webhook burst and the references (the no-op through ansible-playbook, the ansible floor)."""
    lines = []
    burst = res.get("webhook_burst") or {}
    if "latency_ms" in burst:
        rss = burst.get("shim_peak_rss_bytes") or burst.get("shim_rss_bytes")
        lines.append(
            f"| webhook burst: {burst['deliveries']} deliveries in {burst['window_s']:g} s | - | p50 {burst['latency_ms']['p50']} ms, "
            f"p99 {burst['latency_ms']['p99']} ms, {burst['answered_2xx']} answered 2xx, {burst['runs_started']} runs, "
            f"{burst['lost_deliveries']} lost, RSS {rss / 2**20:.0f} MiB | - | - |"
            if rss
            else f"| webhook burst | - | p50 {burst['latency_ms']['p50']} ms, p99 {burst['latency_ms']['p99']} ms, {burst['runs_started']} runs | - | - |"
        )
    else:
        lines.append("| webhook burst | - | not available | - | - |")
    floor = res.get("reference", {}).get("ansible_floor_s")
    for size, stat in sorted((res.get("reference", {}).get("noop_playbook") or {}).items(), key=lambda i: int(i[0])):
        lines.append(f"| reference: podops no-op through `ansible-playbook podops.gitops.reconcile` | {size} | {fmt_stat(stat)} | - | - |")
    if floor:
        lines.append(f"| reference: ansible-playbook with one `command: true` task | - | {fmt_stat(floor)} | - | - |")
    return lines


def breakdown_rows(res: dict[str, t.Any]) -> list[str]:
    def med(runs: list[dict[str, t.Any]], key: str, per_wall: bool = False) -> str:
        values = [r[key] / r["wall_s"] if per_wall else r[key] for r in runs if key in r and (not per_wall or r.get("wall_s"))]
        return f"{statistics.median(values):.2f}" if values else "-"

    rows = []
    sections = [(name, size, entry) for name in ("noop", "first_deploy") for size, entry in sorted(res[name].items(), key=lambda i: int(i[0]))]
    sections += [("change", size, entry["recreate"]) for size, entry in sorted(res["change"].items(), key=lambda i: int(i[0]))]
    for scenario, size, entry in sections:
        ours = (entry.get("podops") or {}).get("runs") or []
        theirs = (entry.get("baseline") or {}).get("runs") or []
        if ours:
            rows.append(
                f"| {scenario.replace('_', ' ')} | {size} | {med(ours, 'module_s')}s | {med(ours, 'ansible_overhead_s')}s | "
                f"{', '.join(sorted({r.get('path', '-') for r in ours}))} | "
                f"{med(ours, 'cpu_s', True)} | {med(theirs, 'cpu_s', True)} | {med(ours, 'machine_busy')} |"
            )
    return rows


def trace_tables(res: dict[str, t.Any], top: int = 8) -> list[str]:
    """--trace: the commands that took the most wall time, per scenario and tool (last run of each)."""
    lines = ["", "## Per-command wall time (--trace, last run of each scenario)", ""]
    lines += ["podman-compose calls include the podman calls they make; parallel calls overlap, so totals can exceed the run.", ""]
    lines += ["| scenario | N | tool | command | calls | total | longest |", "|---|---:|---|---|---:|---:|---:|"]
    sections = [(name, size, entry) for name in ("noop", "first_deploy") for size, entry in sorted(res[name].items(), key=lambda i: int(i[0]))]
    sections += [("change", size, entry["recreate"]) for size, entry in sorted(res["change"].items(), key=lambda i: int(i[0]))]
    pushed = sorted((res.get("push") or {}).items(), key=lambda i: int(i[0]))
    sections += [(f"push {strategy}", size, {"podops": stats}) for size, entry in pushed for strategy, stats in entry.items()]
    for scenario, size, entry in sections:
        for tool in ("podops", "baseline"):
            runs = (entry.get(tool) or {}).get("runs") or []
            commands = runs[-1].get("commands") if runs else None
            for key, stat in list((commands or {}).items())[:top]:
                lines.append(f"| {scenario} | {size} | {tool} | `{key}` | {stat['n']} | {stat['total_s']:.2f}s | {stat['max_s']:.2f}s |")
    return lines


def write_results(res: dict[str, t.Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    md = out.with_suffix(".md")
    for path, text in ((out, json.dumps(res, indent=2, sort_keys=False) + "\n"), (md, markdown(res))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return md
