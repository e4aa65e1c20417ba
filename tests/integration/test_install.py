"""Install the collection the ways the README says, and reconcile from the install, outside this checkout.

- ``make build`` makes the tarball (``ansible-galaxy collection build``); ``build_ignore`` keeps the venv, the
  work folder and test output out of it;
- ``ansible-galaxy collection install <tarball>`` and ``install git+file://<this repo>,HEAD`` (what
  ``git+https://...`` does, without the network) into a clean collections path, ``--offline`` and with the
  Galaxy server pointed at a closed loopback port: nothing is fetched; containers.podman is taken from the
  ``ansible`` package;
- ``ansible-playbook podops.gitops.reconcile`` from a folder outside the checkout, with only the clean path on
  ``ANSIBLE_COLLECTIONS_PATH``: the service is deployed and serves.
"""

from __future__ import annotations

import json
import tarfile

import pytest
from conftest import REPO_ROOT, free_port, http_get, sh

FORBIDDEN = (".work/", ".venv/", "tests/output/", "__pycache__", ".pytest_cache", ".ruff_cache", ".tar.gz")


def galaxy_version() -> str:
    return next(line.split(":", 1)[1].strip() for line in (REPO_ROOT / "galaxy.yml").read_text().splitlines() if line.startswith("version:"))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")  # its own folder: two test workers never write one tarball
    proc = sh("make", "-s", "build", f"DIST={dist}", cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = dist / f"podops-gitops-{galaxy_version()}.tar.gz"
    assert path.is_file(), proc.stdout
    return path


def offline_env(host, collections: str) -> dict[str, str]:
    env = dict(host.env, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_GALAXY_SERVER=f"http://127.0.0.1:{free_port()}/")
    env.pop("ANSIBLE_CONFIG", None)
    return env


def test_the_tarball_holds_the_collection_and_no_work_files(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    required = ("MANIFEST.json", "FILES.json", "playbooks/reconcile.yml", "plugins/modules/compose_deploy.py", "roles/webhook/files/podops_webhook/app.py")
    for name in required:
        assert name in names, name
    leaked = [name for name in names if any(part in name for part in FORBIDDEN)]
    assert not leaked, f"build_ignore let these into the tarball: {leaked[:20]}"


@pytest.mark.parametrize("source", ["tarball", "git"])
def test_install_offline_and_reconcile_from_outside_the_checkout(tarball, source, host, repo, tmp_path):
    collections = str(tmp_path / "collections")
    env = offline_env(host, collections)
    what = str(tarball) if source == "tarball" else f"git+file://{REPO_ROOT},HEAD"
    installed = sh("ansible-galaxy", "collection", "install", what, "-p", collections, "--offline", env=env, cwd=str(tmp_path), check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "podops.gitops:" in installed.stdout and "was installed successfully" in installed.stdout
    target = tmp_path / "collections" / "ansible_collections" / "podops" / "gitops"
    manifest = json.loads((target / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == galaxy_version()

    listed = json.loads(sh("ansible-galaxy", "collection", "list", "podops.gitops", "--format", "json", env=env, cwd=str(tmp_path)).stdout)
    assert list(listed) == [str(tmp_path / "collections" / "ansible_collections")], f"podops.gitops is found elsewhere too: {listed}"

    port = free_port()
    repo.add_web("hello", port, "hello from the installed collection")
    repo.commit("hello")
    host.env = env
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert run.report["services"]["hello"]["action"] == "deployed"
    assert http_get(port).strip() == "hello from the installed collection"
