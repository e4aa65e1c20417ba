# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ImageCache.ensure (a Deployer's images): one ``podman image inspect`` per image reference per run (services share images),
a fresh pull when one is asked for, and a missing image pulled once by parallel deploys."""

from __future__ import annotations

import threading
import time

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._apply import Deployer
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._compose import load_project


class ImagePodman:
    """The image side of Podman: local images by reference, pulls that (re)tag them, every call counted."""

    def __init__(self, local=None, registry=None, pull_delay=0.0):
        self.local = dict(local or {})
        self.registry = dict(registry or {})
        self.pull_delay = pull_delay
        self.calls = []
        self.lock = threading.Lock()

    def image_id(self, image):
        with self.lock:
            self.calls.append(("inspect", image))
            return self.local.get(image) or (image if image in self.local.values() else None)

    def pull(self, image, timeout=None):
        with self.lock:
            self.calls.append(("pull", image))
        time.sleep(self.pull_delay)
        if image not in self.registry:
            raise PodopsError(f"image {image} could not be pulled: not found")
        with self.lock:
            self.local[image] = self.registry[image]


@pytest.fixture
def project(tmp_path, write_tree):
    def make(name, *images):
        services = "".join(f"  s{n}: {{image: '{image}'}}\n" for n, image in enumerate(images))
        write_tree(tmp_path / name, {"compose.yaml": f"services:\n{services}"})
        return load_project(str(tmp_path / name))

    return make


def deployer(podman, tmp_path):
    return Deployer(podman, None, str(tmp_path / "state"), "", None, str(tmp_path))


def test_an_image_is_inspected_once_per_run(tmp_path, project):
    podman = ImagePodman(local={"localhost/app:1": "sha-app", "example.org/db:2": "sha-db"})
    deploy = deployer(podman, tmp_path)

    first = deploy.images.ensure(project("a", "localhost/app:1", "example.org/db:2"))
    second = deploy.images.ensure(project("b", "localhost/app:1"))

    assert first == {"s0": "sha-app", "s1": "sha-db"}
    assert second == {"s0": "sha-app"}
    assert podman.calls == [("inspect", "example.org/db:2"), ("inspect", "localhost/app:1")]


def test_a_fresh_pull_is_not_answered_from_memory(tmp_path, project):
    podman = ImagePodman(local={"example.org/app:latest": "sha-old"}, registry={"example.org/app:latest": "sha-new"})
    deploy = deployer(podman, tmp_path)

    assert deploy.images.ensure(project("a", "example.org/app:latest")) == {"s0": "sha-old"}
    assert deploy.images.ensure(project("b", "example.org/app:latest"), pull_mutable=True) == {"s0": "sha-new"}
    assert deploy.images.ensure(project("c", "example.org/app:latest")) == {"s0": "sha-new"}  # what the pull left
    assert podman.calls == [("inspect", "example.org/app:latest"), ("pull", "example.org/app:latest"), ("inspect", "example.org/app:latest")]


def test_parallel_deploys_pull_a_missing_image_once(tmp_path, project):
    podman = ImagePodman(registry={"example.org/app:1": "sha-app"}, pull_delay=0.3)
    deploy = deployer(podman, tmp_path)
    projects = [project(f"p{n}", "example.org/app:1") for n in range(4)]
    results = []

    threads = [threading.Thread(target=lambda p=p: results.append(deploy.images.ensure(p))) for p in projects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [{"s0": "sha-app"}] * 4
    assert podman.calls.count(("pull", "example.org/app:1")) == 1


def test_a_failed_pull_is_an_error_and_not_remembered(tmp_path, project):
    podman = ImagePodman()
    deploy = deployer(podman, tmp_path)

    for _round in range(2):
        with pytest.raises(PodopsError):
            deploy.images.ensure(project("a", "example.org/missing:1"))

    assert podman.calls.count(("pull", "example.org/missing:1")) == 2


def test_forget_images_after_a_tag_moved(tmp_path, project):
    podman = ImagePodman(local={"localhost/app:1": "sha-1"})
    deploy = deployer(podman, tmp_path)
    deploy.images.ensure(project("a", "localhost/app:1"))
    podman.local["localhost/app:1"] = "sha-2"  # a build of another service re-tagged it

    deploy.images.forget()

    assert deploy.images.ensure(project("b", "localhost/app:1")) == {"s0": "sha-2"}
