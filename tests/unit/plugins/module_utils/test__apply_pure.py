# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_apply's pure parts: the label override podman-compose gets, which images may move, deploy waves."""

from __future__ import annotations

import pytest
import yaml
from ansible_collections.podops.gitops.plugins.module_utils._apply import override_document, waves
from ansible_collections.podops.gitops.plugins.module_utils._compose import ComposeProject, Settings, load_project
from ansible_collections.podops.gitops.plugins.module_utils._images import is_mutable, previous_image_ref
from ansible_collections.podops.gitops.plugins.module_utils._plan import ServiceSpec

LABELS = {"io.podops.service": "shop", "io.podops.digest": "d" * 64, "io.podops.commit": "c" * 40, "io.podops.prefix": "t1"}


@pytest.fixture
def shop(tmp_path, write_tree):
    write_tree(tmp_path, {"compose.yaml": "services:\n  web: {image: nginx}\n  db: {image: postgres}\n  debug: {image: busybox, profiles: [debug]}\n"})
    return load_project(str(tmp_path), environ={})


# --- override_document -------------------------------------------------------------------------------------------


def test_override_labels_every_service(shop):
    document = yaml.safe_load(override_document(shop, LABELS))

    assert document == {"services": {"web": {"labels": LABELS}, "db": {"labels": LABELS}, "debug": {"labels": LABELS}}}


def test_override_adds_image_ids_and_pins_only_for_the_services_named(shop):
    images = {"web": "sha256:" + "1" * 64, "gone": "sha256:" + "2" * 64}
    pins = {"db": "f6448ca500ae", "gone": "0123456789ab"}

    document = yaml.safe_load(override_document(shop, LABELS, images, pins))

    assert document == {
        "services": {
            "web": {"labels": {**LABELS, "io.podops.image": "sha256:" + "1" * 64}},
            "db": {"labels": LABELS, "image": "f6448ca500ae"},
            "debug": {"labels": LABELS},
        }
    }
    assert "io.podops.image" not in LABELS  # the caller's labels are not changed


def test_override_text_is_sorted_yaml():
    project = ComposeProject(
        service_dir="/srv", compose_file="/srv/compose.yaml", name=None, services={"b": {}, "a": {}}, settings=Settings(), dotenv={}, env_files=[]
    )

    text = override_document(project, {"z": "1", "io.podops.digest": "abc"}, {"a": "sha256:1"}, {"b": "img"})

    assert text == (
        "services:\n"
        "  a:\n"
        "    labels:\n"
        "      io.podops.digest: abc\n"
        "      io.podops.image: sha256:1\n"
        "      z: '1'\n"
        "  b:\n"
        "    image: img\n"
        "    labels:\n"
        "      io.podops.digest: abc\n"
        "      z: '1'\n"
    )


# --- image references --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "mutable"),
    [
        ("docker.io/library/nginx:1.27", True),
        ("nginx", True),
        ("ghcr.io/acme/app:latest", True),
        ("localhost:5000/app:1", True),  # a registry on this host still moves tags
        ("localhost/app:dev", False),
        ("localhost/podops-previous/shop_web:latest", False),
        ("docker.io/library/nginx@sha256:" + "0" * 64, False),
        ("docker.io/library/nginx:1.27@sha256:" + "0" * 64, False),
    ],
)
def test_is_mutable(image, mutable):
    assert is_mutable(image) is mutable


@pytest.mark.parametrize(
    ("project", "service", "ref"),
    [
        ("t1shop", "web", "localhost/podops-previous/t1shop_web:latest"),
        ("shop", "WebApp", "localhost/podops-previous/shop_webapp:latest"),
        ("Shop", "DB.Main", "localhost/podops-previous/shop_db.main:latest"),
    ],
)
def test_previous_image_ref(project, service, ref):
    assert previous_image_ref(project, service) == ref


# --- waves -------------------------------------------------------------------------------------------------------


def spec(name, order=None):
    project = None
    if order is not None:
        project = ComposeProject(
            service_dir=f"/srv/{name}",
            compose_file=f"/srv/{name}/compose.yaml",
            name=None,
            services={},
            settings=Settings(order=order),
            dotenv={},
            env_files=[],
        )
    return ServiceSpec(name=name, rel_dir=f"services/{name}", service_dir=f"/srv/{name}", project_name=name, project=project)


def test_waves_by_order_then_name():
    specs = [spec("web", 50), spec("db", 10), spec("cache", 10), spec("api", 50), spec("proxy", 90), spec("broken")]

    grouped = [[s.name for s in wave] for wave in waves(specs)]

    assert grouped == [["broken"], ["cache", "db"], ["api", "web"], ["proxy"]]


def test_waves_default_order_and_negative_order(tmp_path, write_tree):
    write_tree(tmp_path, {"first/compose.yaml": "services: {x: {image: x}}\nx-podops: {order: -5}\n", "plain/compose.yaml": "services: {x: {image: x}}\n"})
    first = ServiceSpec("first", "services/first", str(tmp_path / "first"), "first", load_project(str(tmp_path / "first"), environ={}))
    plain = ServiceSpec("plain", "services/plain", str(tmp_path / "plain"), "plain", load_project(str(tmp_path / "plain"), environ={}))

    assert [[s.name for s in wave] for wave in waves([plain, spec("late", 51), spec("early", 49), first])] == [["first"], ["early"], ["plain"], ["late"]]
    assert waves([]) == []
