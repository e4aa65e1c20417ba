# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible-vault files end to end on the host side: digested by plaintext, found when there is none,
decrypted only into root-only runtime copies, and asked for again when a rollback needs a snapshot's."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._digest import MISSING, Secrets, file_entry, file_map
from ansible_collections.podops.gitops.plugins.module_utils._plan import Plan, ServiceSpec
from ansible_collections.podops.gitops.plugins.module_utils._reconcile import vault_needed
from ansible_collections.podops.gitops.plugins.module_utils._state import RuntimeStore, ServiceRecord, SnapshotStore, _slug, mirror

CIPHER_A = "$ANSIBLE_VAULT;1.1;AES256\n3961633666\n6161616161\n"
CIPHER_B = "$ANSIBLE_VAULT;1.1;AES256\n3262626262\n6363636363\n"  # the same plaintext, encrypted again
CIPHER_ID = "$ANSIBLE_VAULT;1.2;AES256;prod\n6464646464\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mode_of(path) -> int:
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


# --- Secrets, file_entry, file_map --------------------------------------------------------------------------------


def test_vault_file_with_plaintext_is_hashed_by_the_plaintext(tmp_path):
    (tmp_path / "a.env").write_text(CIPHER_A)
    (tmp_path / "b.env").write_text(CIPHER_B)
    (tmp_path / "b.env").chmod(0o755)
    secrets = Secrets({str(tmp_path / "a.env"): "TOKEN=1\n", str(tmp_path / "b.env"): "TOKEN=1\n"}, provided=True)

    assert file_entry(str(tmp_path / "a.env"), secrets) == ("f", sha(b"TOKEN=1\n"))
    assert file_entry(str(tmp_path / "b.env"), secrets) == ("x", sha(b"TOKEN=1\n"))
    assert secrets.found == {}
    assert secrets.is_vault(str(tmp_path / "a.env")) and secrets.is_vault(str(tmp_path / "b.env"))


def test_vault_file_without_plaintext_is_hashed_as_it_is_and_found(tmp_path):
    (tmp_path / "a.env").write_text(CIPHER_A)
    (tmp_path / "prod.env").write_text(CIPHER_ID)
    secrets = Secrets()

    assert file_entry(str(tmp_path / "a.env"), secrets) == ("f", sha(CIPHER_A.encode()))
    assert file_entry(str(tmp_path / "prod.env"), secrets) == ("f", sha(CIPHER_ID.encode()))
    assert secrets.found == {os.path.realpath(tmp_path / "a.env"): CIPHER_A, os.path.realpath(tmp_path / "prod.env"): CIPHER_ID}


def test_plain_files_are_not_vault_files(tmp_path):
    (tmp_path / "plain.env").write_text("A=1\n")
    (tmp_path / "late.env").write_text("\n" + CIPHER_A)  # the header must open the file
    secrets = Secrets()

    assert file_entry(str(tmp_path / "plain.env"), secrets) == ("f", sha(b"A=1\n"))
    assert file_entry(str(tmp_path / "late.env"), secrets) == ("f", sha(("\n" + CIPHER_A).encode()))
    assert secrets.found == {}
    assert secrets.seen == set()
    assert not secrets.is_vault(str(tmp_path / "plain.env"))


def test_without_secrets_a_vault_file_is_just_a_file(tmp_path):
    (tmp_path / "a.env").write_text(CIPHER_A)

    assert file_entry(str(tmp_path / "a.env")) == ("f", sha(CIPHER_A.encode()))


def test_secrets_are_keyed_by_real_path(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.env").write_text(CIPHER_A)
    (tmp_path / "link").symlink_to("real")
    secrets = Secrets({str(tmp_path / "link" / "a.env"): "TOKEN=1\n"}, {str(tmp_path / "link" / "a.env"): "bad"})

    assert secrets.plaintext(str(tmp_path / "real" / "a.env")) == b"TOKEN=1\n"
    assert secrets.error(str(tmp_path / "real" / "a.env")) == "bad"
    assert secrets.error(str(tmp_path / "real" / "other.env")) is None
    assert file_entry(str(tmp_path / "real" / "a.env"), secrets) == ("f", sha(b"TOKEN=1\n"))
    assert secrets.is_vault(str(tmp_path / "link" / "a.env"))
    assert secrets.provided is False


def test_file_map_rotated_ciphertext_of_the_same_plaintext_keeps_the_digest(tmp_path):
    (tmp_path / "app.env").write_text(CIPHER_A)
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    outside = tmp_path / "secrets" / "db.env"
    outside.parent.mkdir()
    outside.write_text(CIPHER_ID)
    always = [("../secrets/db.env", str(outside), True), (".env", str(tmp_path / ".env"), False)]

    def files(secrets):
        return file_map(str(tmp_path), ["app.env", "compose.yaml"], always, secrets=secrets)

    plaintexts = {str(tmp_path / "app.env"): "TOKEN=1\n", str(outside): "PASSWORD=x\n"}
    before = files(Secrets(plaintexts, provided=True))
    (tmp_path / "app.env").write_text(CIPHER_B)
    after = files(Secrets(plaintexts, provided=True))
    unknown = Secrets()

    assert (
        before
        == after
        == {
            "app.env": "f:" + sha(b"TOKEN=1\n"),
            "compose.yaml": "f:" + sha(b"services: {}\n"),
            "../secrets/db.env": "f:" + sha(b"PASSWORD=x\n"),
            ".env": MISSING,
        }
    )
    assert files(unknown)["app.env"] == "f:" + sha(CIPHER_B.encode())
    assert unknown.found == {str((tmp_path / "app.env").resolve()): CIPHER_B, str(outside.resolve()): CIPHER_ID}


def test_large_vault_file_without_plaintext_is_hashed_whole(tmp_path):
    content = CIPHER_A.encode() + b"61" * (1 << 20) + b"\nend\n"
    (tmp_path / "big.env").write_bytes(content)
    secrets = Secrets()

    assert file_entry(str(tmp_path / "big.env"), secrets) == ("f", sha(content))


# --- mirror and the runtime copies --------------------------------------------------------------------------------


@pytest.fixture
def vault_repo(tmp_path, write_tree):
    """An env repo whose web service reads a vault env file inside its folder and one in ../../secrets."""
    repo = tmp_path / "repo"
    write_tree(
        repo,
        {
            "services/web/compose.yaml": "services: {web: {image: nginx, env_file: [app.env, ../../secrets/db.env]}}\n",
            "services/web/app.env": CIPHER_A,
            "services/web/conf/app.conf": "listen 80;\n",
            "services/web/data/db.sqlite": "live data",
            "secrets/db.env": CIPHER_ID,
        },
    )
    write_tree(tmp_path, {"host/host.env": "HOST=1\n"})
    return repo


VAULT_FILES = ["compose.yaml", "app.env", "conf/app.conf", "../../secrets/db.env", "../../../host/host.env", "/etc/hostname"]


def plaintexts_of(repo):
    return {
        os.path.realpath(repo / "services/web/app.env"): b"TOKEN=1\n",
        os.path.realpath(repo / "secrets/db.env"): b"PASSWORD=x\n",
    }


def test_mirror_writes_plaintexts_0600_and_links_the_live_data(tmp_path, vault_repo):
    root = tmp_path / "copy"

    copy_dir = mirror(str(root), str(vault_repo), "services/web", VAULT_FILES, plaintexts_of(vault_repo))

    assert copy_dir == str(root / "services" / "web")
    assert (root / "services/web/app.env").read_bytes() == b"TOKEN=1\n"
    assert (root / "secrets/db.env").read_bytes() == b"PASSWORD=x\n"
    assert mode_of(root / "services/web/app.env") == mode_of(root / "secrets/db.env") == 0o600
    assert (root / "services/web/compose.yaml").read_text() == (vault_repo / "services/web/compose.yaml").read_text()
    assert not os.path.islink(root / "services/web/conf/app.conf")
    assert os.readlink(root / "services/web/data") == str(vault_repo / "services/web/data")
    assert sorted(os.listdir(root)) == ["secrets", "services"]  # the host file and /etc/hostname are used live
    assert sorted(os.listdir(root / "services/web")) == ["app.env", "compose.yaml", "conf", "data"]
    # the repo keeps its ciphertexts
    assert (vault_repo / "services/web/app.env").read_text() == CIPHER_A


def test_mirror_without_plaintexts_copies_ciphertexts(tmp_path, vault_repo):
    root = tmp_path / "copy"

    mirror(str(root), str(vault_repo), "services/web", VAULT_FILES)

    assert (root / "services/web/app.env").read_text() == CIPHER_A
    assert (root / "secrets/db.env").read_text() == CIPHER_ID


def test_mirror_of_a_snapshot_links_the_live_service_folder(tmp_path, vault_repo):
    store = SnapshotStore(str(tmp_path / "state"))
    store.save("web", str(vault_repo), "services/web", VAULT_FILES)
    snap_root = os.path.join(store.path("web"), "root")
    (vault_repo / "services/web/uploads").mkdir()

    copy_dir = mirror(str(tmp_path / "copy"), snap_root, "services/web", VAULT_FILES, plaintexts_of(vault_repo), str(vault_repo / "services/web"))

    # the snapshot's ciphertexts have other real paths: no plaintext for them, they stay encrypted
    with open(os.path.join(copy_dir, "app.env")) as handle:
        assert handle.read() == CIPHER_A
    assert os.readlink(os.path.join(copy_dir, "uploads")) == str(vault_repo / "services/web/uploads")
    assert os.readlink(os.path.join(copy_dir, "data")) == str(vault_repo / "services/web/data")


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A RuntimeStore of a non-root user with ``XDG_RUNTIME_DIR`` in ``tmp_path``: nothing touches /run."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    (tmp_path / "xdg").mkdir()
    return RuntimeStore(str(tmp_path / "state"))


def test_runtime_store_of_a_user_is_under_xdg_runtime_dir(runtime, tmp_path, monkeypatch):
    assert runtime.base == str(tmp_path / "xdg" / "podops" / _slug(str(tmp_path / "state")))
    assert runtime.path("web") == os.path.join(runtime.base, "web")
    assert _slug(str(tmp_path / "state")) != _slug(str(tmp_path / "other-state"))

    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert RuntimeStore(str(tmp_path / "state")).base == str(tmp_path / "state" / "runtime")


def test_runtime_prepare_returns_the_copied_service_dir(runtime, vault_repo):
    copy_dir = runtime.prepare("web", str(vault_repo), "services/web", VAULT_FILES, plaintexts_of(vault_repo))

    assert copy_dir == os.path.join(runtime.base, "web", "root", "services", "web")
    with open(os.path.join(copy_dir, "app.env"), "rb") as handle:
        assert handle.read() == b"TOKEN=1\n"
    assert mode_of(runtime.base) == 0o700
    assert os.listdir(runtime.base) == ["web"]


def test_runtime_prepare_replaces_the_earlier_copy(runtime, vault_repo):
    runtime.prepare("web", str(vault_repo), "services/web", VAULT_FILES, plaintexts_of(vault_repo))
    (vault_repo / "services/web/compose.yaml").write_text("services: {web: {image: 'nginx:2'}}\n")

    copy_dir = runtime.prepare("web", str(vault_repo), "services/web", ["compose.yaml"], {})

    assert copy_dir == os.path.join(runtime.base, "web", "root", "services", "web")
    with open(os.path.join(copy_dir, "compose.yaml")) as handle:
        assert handle.read() == "services: {web: {image: 'nginx:2'}}\n"
    assert os.readlink(os.path.join(copy_dir, "app.env")) == str(vault_repo / "services/web/app.env")  # not the old plaintext
    assert not os.path.exists(os.path.join(runtime.base, "web", "root", "secrets"))
    assert os.listdir(runtime.base) == ["web"]

    runtime.remove("web")
    assert os.listdir(runtime.base) == []


# --- vault_needed ------------------------------------------------------------------------------------------------------


def plan_with_web(repo):
    spec = ServiceSpec(name="web", rel_dir="services/web", service_dir=str(repo / "services/web"), project_name="web")
    return Plan(commit=None, items={}, specs={"web": spec}, live={})


def test_vault_needed_asks_for_the_snapshot_ciphertexts(tmp_path, vault_repo):
    state_dir = str(tmp_path / "state")
    SnapshotStore(state_dir).save("web", str(vault_repo), "services/web", VAULT_FILES)
    (vault_repo / "services/web/app.env").write_text(CIPHER_B)  # the repo moved on since the last good deploy
    secrets = Secrets()
    file_entry(str(vault_repo / "services/web/app.env"), secrets)
    state = {"web": ServiceRecord.from_dict({"digest": "a" * 64, "vault_keys": ["../../secrets/db.env", "app.env", "gone.env"]})}
    snap = os.path.realpath(os.path.join(state_dir, "snapshots", "web", "root"))

    needed = vault_needed(plan_with_web(vault_repo), state, secrets, state_dir)

    assert needed == {
        os.path.realpath(vault_repo / "services/web/app.env"): CIPHER_B,
        os.path.join(snap, "secrets", "db.env"): CIPHER_ID,
        os.path.join(snap, "services", "web", "app.env"): CIPHER_A,
    }


def test_vault_needed_without_vault_keys_or_snapshot_is_only_what_was_found(tmp_path, vault_repo):
    state_dir = str(tmp_path / "state")
    SnapshotStore(state_dir).save("web", str(vault_repo), "services/web", VAULT_FILES)

    assert vault_needed(plan_with_web(vault_repo), {"web": ServiceRecord.from_dict({"digest": "a" * 64, "vault_keys": []})}, Secrets(), state_dir) == {}
    with_keys = {"web": ServiceRecord.from_dict({"digest": "a" * 64, "vault_keys": ["app.env"]})}
    assert vault_needed(plan_with_web(vault_repo), with_keys, Secrets(), str(tmp_path / "empty")) == {}


def test_vault_needed_is_empty_once_the_controller_answered(tmp_path, vault_repo):
    state_dir = str(tmp_path / "state")
    SnapshotStore(state_dir).save("web", str(vault_repo), "services/web", VAULT_FILES)
    secrets = Secrets(provided=True)
    file_entry(str(vault_repo / "services/web/app.env"), secrets)

    assert secrets.found != {}
    assert vault_needed(plan_with_web(vault_repo), {"web": ServiceRecord.from_dict({"digest": "a" * 64, "vault_keys": ["app.env"]})}, secrets, state_dir) == {}
