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

import contextlib
import dataclasses
import os
import threading
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ._common import LABEL_COMMIT, LABEL_DIGEST, LABEL_IMAGE, LABEL_PREFIX, LABEL_SERVICE, TIMEOUT_DEFAULTS, PodopsError
from ._compose import ComposeProject, load_project
from ._depends import gates, start_in_stages, started_overrides
from ._digest import Secrets
from ._health import HealthError, wait_healthy
from ._images import ImageCache, previous_image_ref
from ._plan import ServiceSpec
from ._podman import Container, Podman, PodmanCompose
from ._redact import redact, secret_values
from ._slots import ComposeSlots, remove_slots, slot_version
from ._state import RuntimeStore, ServiceFiles, ServiceRecord, SnapshotStore, atomic_write, ensure_dir, slot_of
from ._switch import Switch

try:
    import yaml
except ImportError:  # pragma: no cover - the modules report it
    yaml = None

DEPLOYED, FAILED, ROLLED_BACK = "deployed", "failed", "rolled_back"
FAILURE_LOG_LINES = 40


@dataclass
class Outcome:
    action: str
    error: str | None = None
    duration_s: float = 0.0
    images: dict[str, str] | None = None  # compose service -> image ID now running (when it changed)
    project: str | None = None  # blue-green: the compose project of the slot now active
    served: ComposeProject | None = None  # after a rollback: the last good version, serving again
    failure_log: dict[str, t.Any] | None = None  # the failing container's last log lines, captured before the rollback


def override_document(
    project: ComposeProject,
    labels: t.Mapping[str, str],
    images: t.Mapping[str, str] | None = None,
    pins: t.Mapping[str, str] | None = None,
) -> str:
    """A compose file that adds the podops labels to every service of ``project``.

    ``images`` adds ``io.podops.image`` (the image ID a container should run), so podman-compose recreates
    exactly the containers whose image changed; ``pins`` replaces a service's image (rollback to an ID).
    depends_on conditions podops waits for itself become ``service_started`` (see _depends).
    """
    services: dict[str, dict] = {}
    started = started_overrides({**project.services, **project.inactive})
    # Inactive services too: one started by hand with its profile carries the labels as well.
    for name in [*project.services, *project.inactive]:
        entry: dict[str, t.Any] = {"labels": dict(labels)}
        if images and name in images:
            entry["labels"][LABEL_IMAGE] = images[name]
        if pins and name in pins:
            entry["image"] = pins[name]
        entry.update(started.get(name, {}))
        services[name] = entry
    return yaml.safe_dump({"services": services}, sort_keys=True)


@dataclass
class VaultSource:
    """Where a service's files come from when some are ansible-vault encrypted (the repo or a snapshot)."""

    repo_dir: str
    rel_dir: str
    files: list[str]
    live_dir: str  # the live service folder, for untracked data folders
    vault: bool = True  # holds ansible-vault files (a blue-green slot copies plain services too)


class Deployer:
    def __init__(
        self,
        podman: Podman,
        compose: PodmanCompose,
        state_dir: str,
        prefix: str,
        commit: str | None,
        repo_dir: str,
        secrets: Secrets | None = None,
    ):
        self.podman = podman
        self.compose = compose
        self.prefix = prefix or ""
        self.commit = commit or ""
        self.repo_dir = repo_dir
        self.secrets = secrets or Secrets()
        self.state_dir = state_dir
        self.snapshots = SnapshotStore(state_dir)
        self.runtime = RuntimeStore(state_dir)
        self.slot_copies = ServiceFiles(state_dir, "").slot_copies
        self.images = ImageCache(podman)
        self.progress: t.Callable[[str], None] | None = None  # told what a long health wait still waits for

    def failure_log(self, exc: PodopsError, project: ComposeProject) -> dict[str, t.Any] | None:
        """The failing container's last log lines and its healthcheck's output, secrets masked - read now,
        before a rollback puts the old container back under the same name."""
        container = exc.container if isinstance(exc, HealthError) else None
        if container is None:
            return None
        values = secret_values(project, self.secrets)
        lines = [redact(line, values) for line in self.podman.logs(container.name, FAILURE_LOG_LINES)]
        said = redact(exc.healthcheck, values) if exc.healthcheck else None
        return {"container": container.name, "lines": lines, "healthcheck": said}

    def labels(self, service: str, digest: str, commit: str) -> dict[str, str]:
        return {LABEL_SERVICE: service, LABEL_DIGEST: digest, LABEL_COMMIT: commit, LABEL_PREFIX: self.prefix}

    def up(
        self,
        name: str,
        project_name: str,
        project: ComposeProject,
        labels: t.Mapping[str, str],
        images: t.Mapping[str, str] | None = None,
        pins: t.Mapping[str, str] | None = None,
        slot: str | None = None,
        rollback: bool = False,
        vault: VaultSource | None = None,
        env: t.Mapping[str, str] | None = None,
    ) -> None:
        """``up`` of service ``name`` (of its blue-green ``slot``) as compose project ``project_name``, then its health gate."""
        files = ServiceFiles(self.state_dir, name)
        decrypted: set[str] = set()
        if vault is not None:
            project, decrypted = self._materialize(files.unit(slot), project, vault)
        if env:
            project = dataclasses.replace(project, slot_env=dict(env))
        override = files.override(slot, rollback)
        ensure_dir(os.path.dirname(override))
        atomic_write(override, override_document(project, labels, images, pins))
        self._remove_stale(project_name, project)
        pod = None if project.pod_setting else False
        settings = project.settings
        # depends_on conditions podops waits for: podman-compose only creates, podops starts in stages.
        staged = bool(gates(project.services))
        try:
            self.compose.up(
                project_name,
                project.compose_file,
                override,
                pod,
                build=project.builds,
                user_override=project.override_file,
                env=env,
                timeout=project.settings.timeouts["up"],
                profiles=project.profiles,
                start=not staged,
            )
        finally:
            self.podman.touched(project_name)
            if project.builds:
                self.images.forget()  # a build may have moved a tag another service runs
        if staged:
            start_in_stages(self.podman, project_name, project.services, settings, self.progress)
        self._gate(project_name, project)
        # podman read the env files when it created the containers: their plaintext is not needed any more.
        for ref in project.env_files:
            if os.path.normpath(ref.path) in decrypted:
                with contextlib.suppress(OSError):
                    os.unlink(ref.path)

    def _gate(self, project_name: str, project: ComposeProject) -> None:
        """The health gate over the whole project (every deploy, rollback, image update and slot start)."""
        settings = project.settings
        wait_healthy(
            self.podman,
            project_name,
            project.started_services(),
            project.jobs(),
            settings.health_timeout,
            settings.health_samples,
            settings.health_interval,
            check_timeout=settings.timeouts["healthcheck"],
            progress=self.progress,
        )

    def _remove_stale(self, project_name: str, project: ComposeProject) -> None:
        """Containers of compose services that left the file (what --remove-orphans would do, see PodmanCompose.up).
        A project podops has not changed in this run is as the plan's ps saw it: no second host-wide ps."""
        current = self.podman.known_containers(project_name)
        stale = [c.name for c in current if c.compose_service not in project.services]
        self.podman.remove_containers(stale, timeout=project.settings.timeouts["down"])

    def _materialize(self, name: str, project: ComposeProject, vault: VaultSource) -> tuple[ComposeProject, set[str]]:
        """A root-only copy of the service with its ansible-vault files decrypted, to run podman-compose in."""
        plaintexts = self.secrets.plaintexts
        copy_dir = self.runtime.prepare(name, vault.repo_dir, vault.rel_dir, vault.files, plaintexts, vault.live_dir)
        source_dir = os.path.join(vault.repo_dir, vault.rel_dir)
        decrypted = {os.path.normpath(os.path.join(copy_dir, rel)) for rel in vault.files if os.path.realpath(os.path.join(source_dir, rel)) in plaintexts}
        runtime_project = load_project(copy_dir, os.path.join(copy_dir, os.path.basename(project.compose_file)))
        return runtime_project, decrypted

    def vault_source(self, spec: ServiceSpec) -> VaultSource | None:
        if not spec.vault_files:
            return None
        return VaultSource(self.repo_dir, spec.rel_dir, sorted(spec.files), spec.service_dir)

    def deploy(self, spec: ServiceSpec, recorded: ServiceRecord | None, pull: bool = False) -> Outcome:
        started = time.monotonic()
        recorded = recorded or ServiceRecord()
        project = spec.project
        if project is None or spec.digest is None:  # the plan never sends these; guard anyway
            return Outcome(FAILED, spec.error or "service could not be read")
        try:
            images = self.images.ensure(project, pull_mutable=pull)
        except PodopsError as exc:
            # Nothing was stopped: the running version (if any) is untouched.
            return Outcome(FAILED, str(exc), time.monotonic() - started)
        if project.settings.blue_green:
            return self.switch(spec, recorded, images, started)
        try:
            # Containers made by hand under this project's names would block podman-compose (drift).
            self.podman.remove_containers(spec.squatters, timeout=project.settings.timeouts["down"])
            old_project = recorded.project
            if recorded.strategy == "blue-green":
                # Back from blue-green: both slots go (the active one comes back from the snapshot on failure).
                remove_slots(self.podman, self.state_dir, spec.name, str(recorded.base_project or spec.project_name), keep_marker=True)
            elif old_project and old_project != spec.project_name:
                # The compose 'name:' changed: the old project would keep running beside the new one
                # (and hold its ports). It comes back from the snapshot if the new one fails.
                self.podman.remove_project(old_project)
            labels = self.labels(spec.name, spec.digest, self.commit)
            self.up(spec.name, spec.project_name, project, labels, images, vault=self.vault_source(spec))
        except PodopsError as exc:
            failure = self.failure_log(exc, project)
            outcome = self.rollback(spec, recorded, redact(str(exc), secret_values(project, self.secrets)))
            outcome.duration_s = time.monotonic() - started
            outcome.failure_log = failure
            return outcome
        if recorded.strategy == "blue-green":
            remove_slots(self.podman, self.state_dir, spec.name, spec.project_name)
        self.snapshots.save(spec.name, self.repo_dir, spec.rel_dir, spec.files)
        return Outcome(DEPLOYED, None, time.monotonic() - started, images)

    def switch(self, spec: ServiceSpec, recorded: ServiceRecord | None, images: t.Mapping[str, str], started: float) -> Outcome:
        """Blue-green: the new version starts in the standby slot; the active one serves until it is healthy."""
        project = t.cast(ComposeProject, spec.project)
        labels = self.labels(spec.name, t.cast(str, spec.digest), self.commit)
        source = VaultSource(self.repo_dir, spec.rel_dir, sorted(spec.files), spec.service_dir, vault=bool(spec.vault_files))
        backend = ComposeSlots(self, spec.name, spec.project_name, project, labels, images, source)
        switch = Switch(project.settings.switch_config(spec.name), backend, self.state_dir, runner=self.podman.run)
        had_active = switch.status()["active"] is not None
        try:
            result = switch.run(slot_version(t.cast(str, spec.digest), images))
        except PodopsError as exc:
            # The old slot was never stopped: it still serves the last good version.
            error = redact(str(exc), secret_values(project, self.secrets))
            served = self.slot_serving(spec, switch.status()["active"]) if had_active else None
            return Outcome(ROLLED_BACK if had_active else FAILED, error, time.monotonic() - started, failure_log=backend.failure, served=served)
        active_project = backend.project_name(t.cast(str, result.active))
        old_project = recorded.project if recorded else None
        if old_project and old_project not in backend.projects():
            # It ran with another strategy (or under another name) before: the active slot has taken over.
            try:
                self.podman.remove_project(old_project)
            except PodopsError as exc:
                return Outcome(FAILED, f"slot {result.active} is active, but the old project {old_project} could not be removed: {exc}")
        self.snapshots.save(spec.name, self.repo_dir, spec.rel_dir, spec.files)
        served = dataclasses.replace(project, slot_env=project.settings.slot_env(t.cast(str, result.active)))
        return Outcome(DEPLOYED, None, time.monotonic() - started, dict(images), project=active_project, served=served)

    def slot_serving(self, spec: ServiceSpec, slot: str | None) -> ComposeProject | None:
        """The compose project the active slot runs (its own copy of the service folder), for the summary's URLs."""
        copy = os.path.join(self.slot_copies.path(ServiceFiles(self.state_dir, spec.name).unit(slot)), "root", spec.rel_dir) if slot else ""
        if not copy or not os.path.isdir(copy):
            return None
        try:
            old = load_project(copy)
        except PodopsError:
            return None
        return dataclasses.replace(old, slot_env=old.settings.slot_env(slot))

    def rollback(self, spec: ServiceSpec, recorded: ServiceRecord | None, error: str) -> Outcome:
        snap_dir = self.snapshots.service_dir(spec.name, spec.rel_dir) if recorded and recorded.digest else None
        if snap_dir is None:
            # Stop this project's containers only (by label, never by name: a name may be another's).
            self.podman.stop_project(spec.project_name, timeout=spec.project.settings.timeouts["down"] if spec.project else TIMEOUT_DEFAULTS["down"])
            return Outcome(FAILED, f"{error} (no earlier version to go back to; its containers were stopped)")
        recorded = t.cast(ServiceRecord, recorded)
        try:
            compose_name = recorded.compose_file
            old = load_project(snap_dir, os.path.join(snap_dir, compose_name) if compose_name else None)
            labels = self.labels(spec.name, t.cast(str, recorded.digest), recorded.commit or "")
            images = dict(recorded.images or {})
            # The last good images by ID: a tag that moved since must not bring the new image back.
            pins = {svc: image_id for svc, image_id in images.items() if svc in old.services and self.images.image_id(image_id)}
            vault = None
            if recorded.vault_keys:
                snap_root = snap_dir[: -len(spec.rel_dir)].rstrip("/")
                vault = VaultSource(snap_root, spec.rel_dir, sorted(recorded.files or {}), spec.service_dir)
            project_name = recorded.project or spec.project_name
            # A blue-green service comes back as the slot it was (its port from the old file's slots).
            slot = slot_of(project_name) if old.settings.blue_green else None
            env = old.settings.slot_env(slot) if slot else None
            self.up(spec.name, project_name, old, labels, images, pins, rollback=True, vault=vault, env=env)
        except PodopsError as exc:
            return Outcome(FAILED, f"{error}; putting the last good version back failed too: {exc}")
        return Outcome(ROLLED_BACK, error, served=old)

    def update_images(self, spec: ServiceSpec, recorded: ServiceRecord, running: t.Sequence[Container], pull: bool = True) -> Outcome | None:
        """Fresh images for an unchanged service: pull its mutable images and recreate only the containers
        whose image changed, health-gated; on failure the previous image runs again. None: nothing to do."""
        started = time.monotonic()
        project = spec.project
        if project is None:
            return None
        try:
            images = self.images.ensure(project, pull_mutable=pull)
        except PodopsError as exc:
            return Outcome(FAILED, str(exc), time.monotonic() - started)
        before = {c.compose_service: c.image_id for c in running if c.image_id}
        changed = sorted(svc for svc, image_id in images.items() if svc in before and before[svc] != image_id)
        if not changed:
            return None
        if project.settings.blue_green:
            return self.switch(spec, recorded, images, started)
        digest = recorded.digest or spec.digest or ""
        labels = self.labels(spec.name, digest, recorded.commit or self.commit)
        try:
            for svc in changed:
                self.podman.tag(before[svc], previous_image_ref(spec.project_name, svc))
                self.images.forget(previous_image_ref(spec.project_name, svc))
            self.up(spec.name, spec.project_name, project, labels, images, vault=self.vault_source(spec))
        except PodopsError as exc:
            failure = self.failure_log(exc, project)
            error = f"new image for {', '.join(changed)} failed: {redact(str(exc), secret_values(project, self.secrets))}"
            try:
                self.up(spec.name, spec.project_name, project, labels, before, pins=before, rollback=True, vault=self.vault_source(spec))
            except PodopsError as again:
                return Outcome(FAILED, f"{error}; going back to the previous image failed too: {again}", time.monotonic() - started, failure_log=failure)
            return Outcome(ROLLED_BACK, f"{error}; the previous image runs again", time.monotonic() - started, before, failure_log=failure)
        return Outcome(DEPLOYED, None, time.monotonic() - started, images)


def waves(specs: t.Iterable[ServiceSpec]) -> list[list[ServiceSpec]]:
    """Group by ``x-podops.order`` (lower first); a wave deploys in parallel."""
    groups: dict[int, list[ServiceSpec]] = {}
    for spec in specs:
        order = spec.project.settings.order if spec.project else 0
        groups.setdefault(order, []).append(spec)
    return [sorted(groups[order], key=lambda s: s.name) for order in sorted(groups)]


def apply_all(
    specs: t.Sequence[ServiceSpec],
    work: t.Callable[[ServiceSpec], Outcome | None],
    parallel: int,
    on_done: t.Callable[[ServiceSpec, Outcome | None], None],
) -> dict[str, Outcome | None]:
    """Run ``work`` (a deploy, an image update) for ``specs`` wave by wave, at most ``parallel`` at once;
    ``on_done`` records each result as it comes."""
    outcomes: dict[str, Outcome | None] = {}
    lock = threading.Lock()

    def run(spec: ServiceSpec) -> None:
        try:
            outcome = work(spec)
        except Exception as exc:  # noqa: BLE001 - one service's surprise must not stop the others
            outcome = Outcome(FAILED, f"unexpected error: {type(exc).__name__}: {exc}")
        with lock:
            outcomes[spec.name] = outcome
            on_done(spec, outcome)

    for wave in waves(specs):
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            list(pool.map(run, wave))
    return outcomes
