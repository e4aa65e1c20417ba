# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""depends_on conditions that podops waits for itself: ``service_healthy`` and ``service_completed_successfully``.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

podman-compose 1.6 waits for these conditions inside ``up`` with ``podman wait --condition=...``, with no time
limit, and only on podman >= 4.6 (older podman: it ignores them and starts everything at once). Without systemd
a health status never changes by itself, so that wait never ends; with systemd, a dependency that never gets
healthy hangs ``up`` with the dependents left ``Created``. podops therefore owns the wait on every podman version:

1. podops' override turns each such condition into ``service_started`` (podman-compose merges ``depends_on``
   per key, so ``required``/``restart`` stay as the file wrote them);
2. ``podman-compose up -d --no-start`` creates (or recreates) the containers of the one compose project;
3. podops starts them in stages: a service starts only once the dependencies it waits for passed podops'
   health gate (``service_healthy``) or exited 0 (``service_completed_successfully``), within the service's
   health timeout - an error names the dependency, the services waiting for it and what its healthcheck said,
   and the deploy rolls back as for any failed health gate.
"""

from __future__ import annotations

import re
import time
import typing as t

from ._common import PodopsError
from ._health import HealthError, ProgressFn, wait_healthy
from ._podman import Container, Podman

HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"
STARTED = "service_started"
GATING = (HEALTHY, COMPLETED)


def depends_on(service: t.Mapping[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """A service's ``depends_on`` as ``{dependency: {condition: ..., ...}}``, whichever form the file used
    (a name, a list of names, a mapping); the condition defaults to ``service_started`` as in compose."""
    raw = service.get("depends_on")
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list):
        return {str(name): {"condition": STARTED} for name in raw}
    if not isinstance(raw, dict):
        return {}
    found = {}
    for name, spec in raw.items():
        entry = dict(spec) if isinstance(spec, dict) else {}
        entry.setdefault("condition", STARTED)
        found[str(name)] = entry
    return found


def merge_depends_on(base: t.Mapping[str, t.Any], extra: t.Mapping[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """``depends_on`` of a service after an override file, as podman-compose merges it: both normalized to
    mappings, then per dependency, the override's keys winning (a list entry counts as ``service_started``)."""
    merged = depends_on(base)
    for name, spec in depends_on(extra).items():
        merged[name] = {**merged.get(name, {}), **spec}
    return merged


def gates(services: t.Mapping[str, t.Mapping[str, t.Any]]) -> dict[str, dict[str, str]]:
    """``{service: {dependency: condition}}`` for the conditions podops waits for, between services of
    ``services`` (a dependency that is not there - another profile, ``required: false`` - has nothing to wait for)."""
    found: dict[str, dict[str, str]] = {}
    for name, svc in services.items():
        waits = {dep: str(spec["condition"]) for dep, spec in depends_on(svc).items() if spec.get("condition") in GATING and dep in services and dep != name}
        if waits:
            found[name] = waits
    return found


def start_stages(services: t.Iterable[str], services_deps: t.Mapping[str, t.Mapping[str, t.Any]]) -> list[list[str]]:
    """The services in the order podops starts them: stage 0 first; a service is one stage after the latest
    dependency it waits for (healthy, completed) and in the same stage as one it only needs started (podman
    starts that one with it: podman-compose creates dependents with ``--requires``)."""
    names = list(services)
    level: dict[str, int] = {}

    def stage_of(name: str, seen: tuple[str, ...]) -> int:
        if name in level:
            return level[name]
        if name in seen:
            raise PodopsError(f"depends_on forms a cycle: {' -> '.join((*seen[seen.index(name) :], name))}; remove one of these depends_on entries")
        found = 0
        for dep, spec in depends_on(services_deps.get(name, {})).items():
            if dep in services_deps and dep != name:
                found = max(found, stage_of(dep, (*seen, name)) + (1 if spec.get("condition") in GATING else 0))
        level[name] = found
        return found

    for name in names:
        stage_of(name, ())
    if not level:
        return []
    return [[name for name in names if level[name] == stage] for stage in range(max(level.values()) + 1) if any(level[n] == stage for n in names)]


def started_overrides(services: t.Mapping[str, t.Mapping[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """What podops' override file sets so that podman-compose never waits itself: ``{service: {"depends_on":
    {dependency: {"condition": "service_started"}}}}`` for each condition podops waits for instead."""
    found = {}
    for name, svc in services.items():
        rewritten = {dep: {"condition": STARTED} for dep, spec in depends_on(svc).items() if spec.get("condition") in GATING}
        if rewritten:
            found[name] = {"depends_on": rewritten}
    return found


def waiting_for(gated: t.Mapping[str, t.Mapping[str, str]], dependency: str, condition: str) -> list[str]:
    return sorted(name for name, waits in gated.items() if waits.get(dependency) == condition)


def judge_completed(containers: t.Sequence[Container], service: str) -> tuple[str, str]:
    """A job's verdict: ("good" | "wait" | "fatal", reason). Good once every container of ``service`` exited 0."""
    own = [c for c in containers if c.compose_service == service]
    if not own:
        return "wait", f"no container for compose service {service} yet"
    for container in own:
        if container.state in ("exited", "stopped", "dead"):
            if container.exit_code != 0:
                return "fatal", f"container {container.name} exited with code {container.exit_code} (see 'podman logs {container.name}')"
        else:
            return "wait", f"container {container.name} is {container.state}"
    return "good", "exited with code 0"


def wait_completed(
    podman: Podman,
    project: str,
    service: str,
    timeout: float,
    interval: float,
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
) -> None:
    """Block until every container of ``service`` exited 0; HealthError when one failed or on timeout."""
    deadline = clock() + timeout
    while True:
        containers = podman.project_containers(project, not_before=time.monotonic())
        verdict, reason = judge_completed(containers, service)
        if verdict == "good":
            return
        failing = next((c for c in containers if f"container {c.name} " in reason), None)
        if verdict == "fatal":
            raise HealthError(reason, failing)
        if clock() >= deadline:
            raise HealthError(f"not finished after {timeout:g}s: {reason}", failing)
        sleep(interval)


def start_in_stages(
    podman: Podman,
    project_name: str,
    services: t.Mapping[str, t.Mapping[str, t.Any]],
    settings: t.Any,
    progress: ProgressFn | None = None,
    clock: t.Callable[[], float] = time.monotonic,
) -> None:
    """Start the (created) containers of ``project_name`` stage by stage, each stage once the dependencies it
    waits for are healthy or completed. ``settings``: the project's x-podops settings (health gate, time limits):
    each dependency gets the health timeout, as the gate over the whole project does after it."""
    gated = gates(services)
    passed: set[tuple[str, str]] = set()
    for stage in start_stages(services, services):
        for name in stage:
            for dependency, condition in sorted(gated.get(name, {}).items()):
                if (dependency, condition) in passed:
                    continue
                wait_for(podman, project_name, dependency, condition, waiting_for(gated, dependency, condition), settings, progress, clock)
                passed.add((dependency, condition))
        containers = podman.project_containers(project_name, not_before=time.monotonic())
        podman.start([c.id for c in containers if c.compose_service in stage], timeout=settings.timeouts["up"])
        podman.touched(project_name)


def wait_for(
    podman: Podman,
    project_name: str,
    dependency: str,
    condition: str,
    dependents: t.Sequence[str],
    settings: t.Any,
    progress: ProgressFn | None,
    clock: t.Callable[[], float],
) -> None:
    """One dependency's condition, podops' way, within the health timeout; the error says which services waited
    for what."""
    limit = settings.health_timeout
    try:
        if condition == HEALTHY:
            wait_healthy(
                podman,
                project_name,
                [dependency],
                [],
                limit,
                settings.health_samples,
                settings.health_interval,
                clock=clock,
                check_timeout=settings.timeouts["healthcheck"],
                progress=progress,
                services=[dependency],
            )
        else:
            wait_completed(podman, project_name, dependency, limit, settings.health_interval, clock=clock)
    except HealthError as exc:
        what = "get healthy" if condition == HEALTHY else "complete successfully"
        # The limit is named once, with the setting that gives it.
        reason = re.sub(r"^not (healthy|finished) after [0-9.e+-]+s: ", "", str(exc))
        raise HealthError(
            f"compose service {dependency} did not {what} in {settings.health_timeout:g}s (x-podops.health.timeout), "
            f"so {', '.join(dependents)} (depends_on: {{{dependency}: {{condition: {condition}}}}}) "
            f"{'was' if len(dependents) == 1 else 'were'} not started: {reason}",
            exc.container,
            exc.healthcheck,
        ) from exc
