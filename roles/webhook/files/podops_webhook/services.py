# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The services of the env repo checkout: which names exist, and which images they run.

Compose files are read with the collection's own compose model (``podops.gitops`` module_utils
``_compose.load_project``): the same interpolation (``.env``, defaults), ``include``, ``extends`` and override
files the reconcile uses, so "which services use image X" gets the same answer as the deploy itself.
The collection is importable from ``collections_path`` (the podops venv's collections folder).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import typing as t

from .events import image_matches

# The collection's names the shim reads (its _common and _report hold the originals). The shim keeps copies: in
# broker mode it imports nothing of the collection (it runs unprivileged and reads no repo). A unit test
# (tests/unit/webhook/test_contract.py) holds each equal to the collection's.
# One directory name: no separators, no dot-dirs, nothing a shell or a path could abuse.
SERVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")  # runs/<run_id>.json
LABEL_SERVICE = "io.podops.service"
LABEL_PREFIX = "io.podops.prefix"
SLOTS = ("a", "b")  # the shim's own pair of instances, named as the collection's blue-green slots
STATE_FILE = "state.json"  # <state_dir>/state.json: what every reconcile recorded per service
LAST_RUN_FILE = "last-run.json"  # <state_dir>/last-run.json: the host's newest run report


def marker_path(state_dir: str, name: str) -> str:
    """The A/B marker of ``name`` (the shim's own pair of instances): ``_state.ServiceFiles.marker``'s place."""
    return os.path.join(state_dir, "ab", f"{name}.json")


COMPOSE_MODULE = "ansible_collections.podops.gitops.plugins.module_utils._compose"
# The summary's published URLs (``urls``) and the service spec it takes, from the same collection.
RECONCILE_MODULE = "ansible_collections.podops.gitops.plugins.module_utils._reconcile"
PLAN_MODULE = "ansible_collections.podops.gitops.plugins.module_utils._plan"


class CollectionMissing(Exception):
    pass


def import_compose(collections_path: str) -> t.Any:
    """The collection's compose model; ``collections_path`` is put on sys.path first when given."""
    if collections_path and os.path.isdir(collections_path) and collections_path not in sys.path:
        sys.path.append(collections_path)
    try:
        return importlib.import_module(COMPOSE_MODULE)
    except ImportError as exc:
        raise CollectionMissing(
            f"cannot import the podops.gitops collection ({exc}); install it into {collections_path or 'the collections path'} "
            "or set collections_path in the config"
        ) from None


class Services:
    def __init__(self, services_root: str, compose: t.Any):
        self.root = services_root
        self.compose = compose

    def names(self) -> list[str]:
        """Service folders with a compose file, sorted; stray files and odd names are left out."""
        try:
            entries = sorted(os.listdir(self.root))
        except OSError:
            return []
        return [name for name in entries if self.exists(name)]

    def exists(self, name: str) -> bool:
        """True only for a direct sub-folder of the services folder with a compose file, whose real path
        stays inside it (no ``..``, no symlink out)."""
        if not SERVICE_NAME_RE.fullmatch(name) or name in (".", ".."):
            return False
        path = os.path.join(self.root, name)
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if os.path.dirname(real) != root or not os.path.isdir(real):
            return False
        return self.compose.find_compose_file(real) is not None

    def images(self, name: str) -> list[str]:
        try:
            return list(self.compose.load_project(os.path.join(self.root, name)).images())
        except Exception:  # noqa: BLE001 - a broken compose file names no image; the reconcile reports it
            return []

    def urls(self, name: str) -> list[str]:
        """Where the service listens, as the playbook's summary prints it (``_reconcile.urls``): http(s) URLs
        when the service sets ``x-podops.url_scheme``, ``host:port`` and ``udp/port`` otherwise."""
        try:
            reconcile = importlib.import_module(RECONCILE_MODULE)
            plan = importlib.import_module(PLAN_MODULE)
            path = os.path.join(self.root, name)
            spec = plan.ServiceSpec(name=name, rel_dir=name, service_dir=path, project_name=name, project=self.compose.load_project(path))
            return list(reconcile.urls(spec))
        except Exception:  # noqa: BLE001 - a broken compose file publishes nothing; the reconcile reports it
            return []

    def using(self, packages: t.Sequence[str]) -> dict[str, list[str]]:
        """``{service: [matching images]}`` for the services whose images name one of ``packages``."""
        found = {}
        for name in self.names():
            images = [image for image in self.images(name) if image_matches(image, packages)]
            if images:
                found[name] = images
        return found
