# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Images of a run: which local image a reference is, pulling what is missing once, the tag that keeps a
service's previous image.

PRIVATE to the podops.gitops collection: no API guarantee for other code.
"""

from __future__ import annotations

import threading

from ._compose import ComposeProject
from ._podman import Podman


def is_mutable(image: str) -> bool:
    """A reference a registry can move: not pinned by digest, not a local-only ``localhost/`` image."""
    return "@" not in image and not image.startswith("localhost/")


def previous_image_ref(project_name: str, compose_service: str) -> str:
    """Tag that keeps the image a service ran before an image update, so an image prune cannot take it."""
    return f"localhost/podops-previous/{project_name}_{compose_service}:latest".lower()


class ImageCache:
    """Image reference -> local image ID, once per reference per run (services share images); a lock per
    reference so that parallel deploys of services missing one image pull it once."""

    def __init__(self, podman: Podman):
        self.podman = podman
        self._image_ids: dict[str, str] = {}
        self._image_locks: dict[str, threading.Lock] = {}
        self._image_lock = threading.Lock()

    def image_id(self, image: str, fresh: bool = False) -> str | None:
        """Local image ID of ``image`` (a reference or an ID), inspected once per run unless ``fresh``."""
        if not fresh:
            with self._image_lock:
                known = self._image_ids.get(image)
            if known:
                return known
        image_id = self.podman.image_id(image)
        with self._image_lock:
            if image_id:
                self._image_ids[image] = image_id
            else:
                self._image_ids.pop(image, None)
        return image_id

    def forget(self, *images: str) -> None:
        """Drop remembered image IDs (all without arguments): a tag may point elsewhere now."""
        with self._image_lock:
            if images:
                for image in images:
                    self._image_ids.pop(image, None)
            else:
                self._image_ids.clear()

    def _lock_for(self, image: str) -> threading.Lock:
        with self._image_lock:
            return self._image_locks.setdefault(image, threading.Lock())

    def ensure(self, project: ComposeProject, pull_mutable: bool = False) -> dict[str, str]:
        """Pull what is missing (and, with ``pull_mutable``, every image not pinned by digest); return
        ``{compose service: image ID}``. Runs before anything is stopped."""
        refs = project.service_images()
        ids: dict[str, str] = {}
        for image in sorted(set(refs.values())):
            fresh_pull = pull_mutable and is_mutable(image)
            image_id = None if fresh_pull else self.image_id(image)
            if image_id is None:
                with self._lock_for(image):
                    # Another deploy may have pulled it meanwhile (a fresh pull is asked for: pull anyway).
                    image_id = None if fresh_pull else self.image_id(image)
                    if image_id is None:
                        try:
                            self.podman.pull(image, timeout=project.settings.timeouts["pull"])
                        finally:
                            self.forget(image)
                        image_id = self.image_id(image, fresh=True)
            if image_id:
                ids[image] = image_id
        return {svc: ids[ref] for svc, ref in refs.items() if ref in ids}
