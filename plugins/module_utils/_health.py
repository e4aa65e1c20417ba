# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The health gate: a project counts as up only after several consecutive good samples.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

podops runs each container's healthcheck itself (``podman healthcheck run``) instead of waiting for
podman's systemd timers, which do not exist on hosts (or containers) without systemd, and it does not
trust ``podman-compose up --wait``, which does not fail on unhealthy containers.

A sample is good when every compose service that ``up`` starts has a running container, every
container with a healthcheck passes it, and no container restarted since the previous sample.
"""

from __future__ import annotations

import time
import typing as t

from ._common import TIMEOUT_DEFAULTS, PodopsError
from ._podman import Container, Podman


class HealthError(PodopsError):
    """The health gate failed; ``container`` is the one that failed it (when one did), for its logs."""

    def __init__(self, message: str, container: Container | None = None, healthcheck: str | None = None):
        super().__init__(message)
        self.container = container
        self.healthcheck = healthcheck


def culprit(containers: t.Sequence[Container], reason: str) -> Container | None:
    """The container a verdict's reason is about ("container web_1 exited with code 3 ...")."""
    return next((c for c in containers if f"container {c.name} " in reason), None)


ProgressFn = t.Callable[[str], None]


def judge_sample(
    containers: t.Sequence[Container],
    expected: t.Iterable[str],
    oneshot: t.Iterable[str],
    healthy: t.Mapping[str, bool],
    previous_starts: t.Mapping[str, int],
) -> tuple[str, str]:
    """One sample's verdict: ("good" | "wait" | "fatal", reason). Pure: the tests feed it real ps output."""
    by_service: dict[str, list[Container]] = {}
    for container in containers:
        by_service.setdefault(container.compose_service, []).append(container)
    oneshot = set(oneshot)
    for service in expected:
        if service not in by_service:
            return "wait", f"no container for compose service {service} yet"
    for container in containers:
        service = container.compose_service
        if container.state in ("exited", "stopped", "dead"):
            if service in oneshot and container.exit_code == 0:
                continue
            if container.exit_code == 0:
                return "fatal", (
                    f"container {container.name} exited with code 0 (see 'podman logs {container.name}'); if compose service {service} is a "
                    "one-shot job, list it in x-podops.oneshot (or let a service wait for it with depends_on condition service_completed_successfully)"
                )
            return "fatal", f"container {container.name} exited with code {container.exit_code} (see 'podman logs {container.name}')"
        if container.state != "running":
            return "wait", f"container {container.name} is {container.state}"
        if container.id in previous_starts and previous_starts[container.id] != container.started_at:
            return "wait", f"container {container.name} restarted"
        if container.id in healthy and not healthy[container.id]:
            return "wait", f"container {container.name} is not healthy yet"
    return "good", "running and healthy"


def wait_healthy(
    podman: Podman,
    project: str,
    expected: t.Sequence[str],
    oneshot: t.Sequence[str],
    timeout: float,
    samples: int,
    interval: float,
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
    check_timeout: float = TIMEOUT_DEFAULTS["healthcheck"],
    progress: ProgressFn | None = None,
    progress_every: float = 10.0,
    services: t.Sequence[str] | None = None,
) -> int:
    """Block until ``samples`` consecutive good samples, ``interval`` seconds apart (start to start: a sample's
    own podman calls count towards the wait); raise PodopsError with the last reason on timeout.

    Returns the number of samples taken. ``progress`` is told every ``progress_every`` seconds what the gate
    still waits for (for the people watching a long wait). ``services``: judge the containers of these compose
    services only (a dependency podops waits for before it starts the rest, see _depends). Raises HealthError, naming the failing container and,
    for a health gate that never passed, what its healthcheck printed.
    """
    begun = clock()
    deadline = begun + timeout
    next_progress = begun + progress_every
    good = taken = 0
    starts: dict[str, int] = {}
    reason = "no sample taken"
    with podman.watching(project):
        while True:
            sampled = clock()
            containers = podman.project_containers(project, not_before=time.monotonic())
            if services is not None:
                containers = [c for c in containers if c.compose_service in services]
            healthy = {c.id: podman.healthcheck(c.id, timeout=check_timeout) for c in containers if c.state == "running" and c.health is not None}
            verdict, reason = judge_sample(containers, expected, oneshot, healthy, starts)
            starts = {c.id: c.started_at for c in containers}
            taken += 1
            if verdict == "fatal":
                raise HealthError(reason, culprit(containers, reason))
            good = good + 1 if verdict == "good" else 0
            if good >= samples:
                return taken
            if not set(expected) <= {c.compose_service for c in containers}:
                podman.relist(project)  # a container still to come is not among the IDs sampled so far
            now = clock()
            if now >= deadline:
                failing = culprit(containers, reason)
                said = podman.health_output(failing.id) if failing is not None and failing.id in healthy else None
                message = f"not healthy after {timeout:g}s: {reason}" + (f" (its healthcheck said: {said})" if said else "")
                raise HealthError(message, failing, said)
            if progress is not None and now >= next_progress:
                progress(f"{project}: waiting for health for {now - begun:.0f}s of {timeout:g}s ({reason})")
                next_progress = now + progress_every
            sleep(max(0.0, interval - (now - sampled)))  # ``interval`` is from one sample's start to the next's
