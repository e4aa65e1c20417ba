# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Package collections on the controller for a podops host (run by role podops.gitops.podman_host).

Galaxy is not needed: podops.gitops is built from its source tree with ``ansible-galaxy collection build``
(or packed as installed), other collections (containers.podman) are packed from where the controller's
Ansible finds them. The host unpacks each tarball into its collections folder (what ansible-galaxy
collection install does, without Galaxy).

Usage: python podops_pack.py OUTPUT_DIR PODOPS_DIR [NAMESPACE.NAME ...]
Prints JSON: {"<ns.name>": {"version": ..., "tarball": ..., "files_sha256": <sha256 of its FILES.json>}}.
The files_sha256 value changes only when a file of the collection changes: the role compares it with the
FILES.json installed on the host and copies nothing when they match.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile


def galaxy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ansible.cli.galaxy", *args], capture_output=True, text=True, check=False)


def fail(message: str) -> None:
    print(json.dumps({"failed": True, "msg": message}))
    sys.exit(1)


def pack_installed(directory: str, out_dir: str) -> dict[str, str]:
    """An installed collection: tar the files it has (bundles such as the ansible package drop tests/, which
    FILES.json still lists, so the tarball is unpacked on the host rather than installed with ansible-galaxy)."""
    with open(os.path.join(directory, "MANIFEST.json"), encoding="utf-8") as handle:
        info = json.load(handle)["collection_info"]
    with open(os.path.join(directory, "FILES.json"), "rb") as handle:
        files_raw = handle.read()
    tarball = os.path.join(out_dir, f"{info['namespace']}-{info['name']}-{info['version']}.tar.gz")
    with tarfile.open(tarball, "w:gz") as archive:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if not name.endswith(".pyc"):
                    path = os.path.join(root, name)
                    archive.add(path, arcname=os.path.relpath(path, directory), recursive=False)
    return {"version": info["version"], "tarball": tarball, "files_sha256": hashlib.sha256(files_raw).hexdigest()}


def build_source(directory: str, out_dir: str) -> dict[str, str]:
    result = galaxy("collection", "build", directory, "--output-path", out_dir, "--force")
    if result.returncode != 0:
        fail(f"ansible-galaxy collection build {directory} failed: {(result.stderr or result.stdout).strip()}")
    tarball = next(os.path.join(out_dir, name) for name in os.listdir(out_dir) if name.endswith(".tar.gz") and name.startswith("podops-gitops-"))
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("FILES.json")
        files_raw = member.read() if member else b""
        manifest_member = archive.extractfile("MANIFEST.json")
        manifest = json.loads(manifest_member.read()) if manifest_member else {}
    return {"version": manifest["collection_info"]["version"], "tarball": tarball, "files_sha256": hashlib.sha256(files_raw).hexdigest()}


def find_installed(name: str) -> str:
    result = galaxy("collection", "list", name, "--format", "json")
    try:
        found = json.loads(result.stdout or "{}")
    except ValueError:
        found = {}
    namespace, collection = name.split(".", 1)
    for path, collections in found.items():
        if name in collections:
            return os.path.join(path, namespace, collection)
    fail(f"collection {name} is not installed on the controller; install the ansible package (it bundles {name}) or ansible-galaxy collection install {name}")
    return ""


def main() -> None:
    if len(sys.argv) < 3:
        fail("usage: podops_pack.py OUTPUT_DIR PODOPS_DIR [NAMESPACE.NAME ...]")
    out_dir, podops_dir, others = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out_dir, exist_ok=True)
    packed: dict[str, dict[str, str]] = {}
    if os.path.isfile(os.path.join(podops_dir, "galaxy.yml")):
        packed["podops.gitops"] = build_source(podops_dir, out_dir)
    elif os.path.isfile(os.path.join(podops_dir, "MANIFEST.json")):
        packed["podops.gitops"] = pack_installed(podops_dir, out_dir)
    else:
        fail(f"{podops_dir} is neither a podops.gitops source tree (galaxy.yml) nor an installed collection (MANIFEST.json)")
    for name in others:
        packed[name] = pack_installed(find_installed(name), out_dir)
    print(json.dumps(packed))


if __name__ == "__main__":
    main()
