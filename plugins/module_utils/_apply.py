# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply: deploy one service, health-gated, and put the last good version back when it fails.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

For each service to deploy:
1. make sure every image is present (pull what is missing) - before anything is stopped;
2. write the label override and run ``podman-compose up -d``: podman-compose recreates the containers
   whose configuration (labels included, so any file change) differs and leaves the others alone;
3. wait for running + healthy with podops' own loop;
4. on success snapshot the inputs; on failure bring the snapshot of the last good version back up.
Independent services deploy in parallel (bounded), in waves of ``x-podops.order``.
"""

from __future__ import annotations

import os
import threading
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ._common import LABEL_COMMIT, LABEL_DIGEST, LABEL_PREFIX, LABEL_SERVICE, PodopsError
from ._compose import ComposeProject, load_project
from ._health import wait_healthy
from ._plan import ServiceSpec
from ._podman import Podman, PodmanCompose
from ._state import SnapshotStore, atomic_write, ensure_dir

try:
    import yaml
except ImportError:  # pragma: no cover - the modules report it
    yaml = None

DEPLOYED, FAILED, ROLLED_BACK = "deployed", "failed", "rolled_back"


@dataclass
class Outcome:
    action: str
    error: str | None = None
    duration_s: float = 0.0


def override_document(project: ComposeProject, labels: t.Mapping[str, str]) -> str:
    """A compose file that only adds the podops labels to every service of ``project``."""
    return yaml.safe_dump({"services": {name: {"labels": dict(labels)} for name in project.services}}, sort_keys=True)


class Deployer:
    def __init__(self, podman: Podman, compose: PodmanCompose, state_dir: str, prefix: str, commit: str | None):
        self.podman = podman
        self.compose = compose
        self.state_dir = state_dir
        self.prefix = prefix or ""
        self.commit = commit or ""
        self.snapshots = SnapshotStore(state_dir)
        self.overrides = os.path.join(state_dir, "overrides")

    def labels(self, service: str, digest: str, commit: str) -> dict[str, str]:
        return {LABEL_SERVICE: service, LABEL_DIGEST: digest, LABEL_COMMIT: commit, LABEL_PREFIX: self.prefix}

    def _up(self, name: str, project_name: str, project: ComposeProject, labels: t.Mapping[str, str], suffix: str = "") -> None:
        ensure_dir(self.overrides)
        override = os.path.join(self.overrides, f"{name}{suffix}.yml")
        atomic_write(override, override_document(project, labels))
        self.compose.up(project_name, project.compose_file, override)
        settings = project.settings
        wait_healthy(
            self.podman,
            project_name,
            project.started_services(),
            settings.oneshot,
            settings.health_timeout,
            settings.health_samples,
            settings.health_interval,
        )

    def ensure_images(self, project: ComposeProject) -> None:
        for image in project.images():
            if not self.podman.image_exists(image):
                self.podman.pull(image)

    def deploy(self, spec: ServiceSpec, recorded: t.Mapping[str, t.Any] | None, repo_dir: str) -> Outcome:
        started = time.monotonic()
        project = spec.project
        if project is None or spec.digest is None:  # the plan never sends these; guard anyway
            return Outcome(FAILED, spec.error or "service could not be read")
        try:
            self.ensure_images(project)
        except PodopsError as exc:
            # Nothing was stopped: the running version (if any) is untouched.
            return Outcome(FAILED, str(exc), time.monotonic() - started)
        try:
            old_project = (recorded or {}).get("project")
            if old_project and old_project != spec.project_name:
                # The compose 'name:' changed: the old project would keep running beside the new one
                # (and hold its ports). It comes back from the snapshot if the new one fails.
                self.podman.remove_project(old_project)
            self._up(spec.name, spec.project_name, project, self.labels(spec.name, spec.digest, self.commit))
        except PodopsError as exc:
            outcome = self.rollback(spec, recorded, str(exc))
            outcome.duration_s = time.monotonic() - started
            return outcome
        self.snapshots.save(spec.name, repo_dir, spec.rel_dir, spec.files)
        return Outcome(DEPLOYED, None, time.monotonic() - started)

    def rollback(self, spec: ServiceSpec, recorded: t.Mapping[str, t.Any] | None, error: str) -> Outcome:
        recorded = recorded or {}
        snap_dir = self.snapshots.service_dir(spec.name, spec.rel_dir) if recorded.get("digest") else None
        if snap_dir is None:
            if spec.project is not None:
                override = os.path.join(self.overrides, f"{spec.name}.yml")
                self.compose.stop(spec.project_name, spec.project.compose_file, override)
            return Outcome(FAILED, f"{error} (no earlier version to go back to; its containers were stopped)")
        try:
            compose_name = recorded.get("compose_file")
            old = load_project(snap_dir, os.path.join(snap_dir, compose_name) if compose_name else None)
            labels = self.labels(spec.name, recorded["digest"], recorded.get("commit") or "")
            self._up(spec.name, recorded.get("project") or spec.project_name, old, labels, suffix=".rollback")
        except PodopsError as exc:
            return Outcome(FAILED, f"{error}; putting the last good version back failed too: {exc}")
        return Outcome(ROLLED_BACK, error)


def waves(specs: t.Iterable[ServiceSpec]) -> list[list[ServiceSpec]]:
    """Group by ``x-podops.order`` (lower first); a wave deploys in parallel."""
    groups: dict[int, list[ServiceSpec]] = {}
    for spec in specs:
        order = spec.project.settings.order if spec.project else 0
        groups.setdefault(order, []).append(spec)
    return [sorted(groups[order], key=lambda s: s.name) for order in sorted(groups)]


def apply_all(
    deployer: Deployer,
    specs: t.Sequence[ServiceSpec],
    state: dict[str, dict],
    repo_dir: str,
    parallel: int,
    on_done: t.Callable[[ServiceSpec, Outcome], None],
) -> dict[str, Outcome]:
    """Deploy ``specs`` wave by wave with at most ``parallel`` at once; ``on_done`` records each result."""
    outcomes: dict[str, Outcome] = {}
    lock = threading.Lock()

    def run(spec: ServiceSpec) -> None:
        try:
            outcome = deployer.deploy(spec, state.get(spec.name), repo_dir)
        except Exception as exc:  # noqa: BLE001 - one service's surprise must not stop the others
            outcome = Outcome(FAILED, f"unexpected error: {type(exc).__name__}: {exc}")
        with lock:
            outcomes[spec.name] = outcome
            on_done(spec, outcome)

    for wave in waves(specs):
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            list(pool.map(run, wave))
    return outcomes
