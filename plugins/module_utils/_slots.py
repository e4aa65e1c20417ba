# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Blue-green on compose: the two slot projects of a service, the backend the A/B switch (``_switch``) drives,
and removing both slots.

PRIVATE to the podops.gitops collection: no API guarantee for other code.
"""

from __future__ import annotations

import hashlib
import os
import typing as t

from ._common import LABEL_SLOT
from ._compose import ComposeProject, load_project
from ._health import HealthError
from ._podman import Podman
from ._state import SLOTS, ServiceFiles, slot_project

if t.TYPE_CHECKING:  # pragma: no cover
    from ._apply import Deployer, VaultSource


def slot_version(digest: str, images: t.Mapping[str, str]) -> str:
    """What a blue-green slot runs: the service's digest and the image IDs (an image update is a new version)."""
    ids = hashlib.sha256("\n".join(f"{svc}={image_id}" for svc, image_id in sorted(images.items())).encode()).hexdigest()[:12]
    return f"{digest}+{ids}"


def slot_projects(project_name: str) -> list[str]:
    return [slot_project(project_name, slot) for slot in SLOTS]


class ComposeSlots:
    """The compose backend of the A/B switch: slot X of service S is compose project ``<project>-X``, started
    from the same compose file with ``PODOPS_SLOT`` and ``PODOPS_SLOT_PORT`` to interpolate, and gated by
    the same health loop as any deploy."""

    def __init__(
        self,
        deployer: Deployer,
        name: str,
        project_name: str,
        project: ComposeProject,
        labels: t.Mapping[str, str],
        images: t.Mapping[str, str],
        source: VaultSource | None = None,
    ):
        self.deployer = deployer
        self.name = name
        self.base = project_name
        self.project = project
        self.labels = dict(labels)
        self.images = dict(images)
        self.source = source
        self.stop_timeout = int(project.settings.slots.get("stop_timeout", 10))
        self.failure: dict[str, t.Any] | None = None  # the failure log of a slot that did not get healthy

    def project_name(self, slot: str) -> str:
        return slot_project(self.base, slot)

    def projects(self) -> list[str]:
        return slot_projects(self.base)

    def describe(self, slot: str) -> str:
        port = (self.project.settings.slots.get("ports") or {}).get(slot)
        return f"compose project {self.project_name(slot)}" + (f", port {port}" if port else "")

    def start(self, slot: str, version: str) -> None:
        """Start slot from its own copy of the service folder: the running slot keeps the files it started
        with (a bind-mounted config changes under it otherwise) while the repo moves on."""
        labels = dict(self.labels, **{LABEL_SLOT: slot})
        env = self.project.settings.slot_env(slot)
        name = ServiceFiles(self.deployer.state_dir, self.name).unit(slot)
        # The standby serves nothing: whatever an interrupted switch left of it goes, so it starts clean
        # (its containers would keep mounts of the copy replaced below).
        self.stop(slot, known=True)
        project, vault = self.project, None
        if self.source is not None and self.source.vault:
            vault = self.source  # decrypted into the runtime folder (tmpfs), one copy per slot
        elif self.source is not None:
            source = self.source
            copy_dir = self.deployer.slot_copies.prepare(name, source.repo_dir, source.rel_dir, source.files, {}, source.live_dir)
            project = load_project(copy_dir, os.path.join(copy_dir, os.path.basename(self.project.compose_file)))
            project.settings = self.project.settings
        try:
            self.deployer.up(self.name, self.project_name(slot), project, labels, self.images, slot=slot, vault=vault, env=env)
        except HealthError as exc:
            # The switch stops the slot next: its container's log goes with it, so read it now.
            self.failure = self.deployer.failure_log(exc, project)
            raise

    def stop(self, slot: str, known: bool = False) -> None:
        """Remove the slot's project (``known``: its containers as the plan saw them, when this run has not
        touched it since; else listed now)."""
        self.deployer.podman.remove_project(self.project_name(slot), stop_timeout=self.stop_timeout, known=known)

    def is_running(self, slot: str) -> bool:
        """Whether the slot runs, as podops last saw it (the plan's listing, unless this run changed it since)."""
        return any(c.state == "running" for c in self.deployer.podman.known_containers(self.project_name(slot)))


def remove_slots(podman: Podman, state_dir: str, name: str, project_name: str, keep_marker: bool = False) -> list[str]:
    """Both slot projects of a blue-green service, their copies and (unless ``keep_marker``) its marker."""
    removed = []
    for project in slot_projects(project_name):
        removed += podman.remove_project(project)
    if not keep_marker:
        ServiceFiles(state_dir, name).forget_slots()
    return removed
