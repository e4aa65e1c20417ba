# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_state: atomic writes, the state file, the host lock, the last-good snapshots."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._state import (
    LOCK_ENV,
    HostLock,
    ServiceRecord,
    SnapshotStore,
    StateStore,
    atomic_write,
    write_json,
)


def mode_of(path) -> int:
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


# --- atomic_write --------------------------------------------------------------------------------------------


def test_atomic_write_creates_a_0600_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "state.json"

    atomic_write(str(path), "hello\n")

    assert path.read_text() == "hello\n"
    assert mode_of(path) == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_replaces_content_and_mode_of_an_existing_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old and much longer content\n")
    path.chmod(0o644)

    atomic_write(str(path), b"new")

    assert path.read_bytes() == b"new"
    assert mode_of(path) == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_with_another_mode(tmp_path):
    atomic_write(str(tmp_path / "override.yml"), "services: {}\n", mode=0o640)

    assert mode_of(tmp_path / "override.yml") == 0o640


def test_atomic_write_that_fails_leaves_no_temp_file(tmp_path):
    (tmp_path / "target").mkdir()  # os.replace of a file onto a folder fails

    with pytest.raises(OSError):
        atomic_write(str(tmp_path / "target"), "data")

    assert os.listdir(tmp_path) == ["target"]
    assert os.listdir(tmp_path / "target") == []


def test_write_json_is_sorted_indented_and_newline_terminated(tmp_path):
    write_json(str(tmp_path / "x.json"), {"b": 1, "a": [1, 2]})

    assert (tmp_path / "x.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'


# --- StateStore ----------------------------------------------------------------------------------------------


def test_state_of_a_new_host_is_empty(tmp_path):
    assert StateStore(str(tmp_path / "does" / "not" / "exist")).load() == {}


def test_state_save_load_roundtrip(tmp_path):
    state_dir = tmp_path / "state"
    services = {
        "web": {"digest": "ab" * 32, "files": {"compose.yaml": "f:00"}, "commit": "c" * 40, "status": "ok", "failed_digest": None},
        "db": {"digest": None, "files": {}, "status": "failed", "failed_digest": "cd" * 32, "error": "image x could not be pulled"},
    }

    StateStore(str(state_dir)).save({name: ServiceRecord.from_dict(entry) for name, entry in services.items()})

    assert {name: record.to_dict() for name, record in StateStore(str(state_dir)).load().items()} == services
    assert json.loads((state_dir / "state.json").read_text()) == {"version": 1, "services": services}
    assert mode_of(state_dir) == 0o700
    assert mode_of(state_dir / "state.json") == 0o600
    assert os.listdir(state_dir) == ["state.json"]


def test_corrupt_state_file_names_the_file_the_line_and_the_fix(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{\n  "version": 1,\n  "services": {,\n}\n')

    with pytest.raises(PodopsError) as err:
        StateStore(str(tmp_path)).load()

    message = str(err.value)
    assert f"the podops state file {path} is not valid JSON (line 3)" in message
    assert "Move it away and run again" in message


@pytest.mark.parametrize("content", ["[]", '{"version": 1}', '{"services": []}', "null"])
def test_state_file_without_services_mapping(tmp_path, content):
    (tmp_path / "state.json").write_text(content)

    with pytest.raises(PodopsError) as err:
        StateStore(str(tmp_path)).load()

    assert str(err.value) == f"the podops state file {tmp_path / 'state.json'} has no 'services' mapping; move it away and run again"


def test_state_file_that_is_not_utf8(tmp_path):
    (tmp_path / "state.json").write_bytes(b'{"services": {"\xff": {}}}')

    with pytest.raises(PodopsError, match="cannot read the podops state file"):
        StateStore(str(tmp_path)).load()


def test_state_dir_that_cannot_be_created_is_a_podops_error(tmp_path):
    (tmp_path / "file").write_text("x")

    with pytest.raises(PodopsError) as err:
        StateStore(str(tmp_path / "file" / "state")).save({})

    assert str(err.value).startswith(f"cannot create state folder {tmp_path / 'file' / 'state'}: ")
    assert "set podops_state_dir to a writable folder" in str(err.value)


# --- HostLock --------------------------------------------------------------------------------------------------


@pytest.fixture
def no_lock_env(monkeypatch):
    monkeypatch.delenv(LOCK_ENV, raising=False)


@pytest.mark.usefixtures("no_lock_env")
def test_lock_records_its_holder(tmp_path):
    with HostLock(str(tmp_path / "state"), 0, "pid 1, trigger timer, run r1"):
        assert (tmp_path / "state" / "reconcile.lock").read_text() == "pid 1, trigger timer, run r1\n"
        assert mode_of(tmp_path / "state" / "reconcile.lock") == 0o600


@pytest.mark.usefixtures("no_lock_env")
def test_second_lock_fails_with_the_holder_and_is_free_after_exit(tmp_path):
    state_dir = str(tmp_path)

    with HostLock(state_dir, 0, "pid 4242, trigger webhook, run 20261126T120000Z-aaaaaa"):
        with pytest.raises(PodopsError) as err, HostLock(state_dir, 0, "second"):
            pytest.fail("two reconciles held the lock at once")
        message = str(err.value)
        assert "another reconcile is running on this host" in message
        assert "pid 4242, trigger webhook, run 20261126T120000Z-aaaaaa" in message
        assert str(tmp_path / "reconcile.lock") in message
        assert "waited 0s" in message

    with HostLock(state_dir, 0, "third"):
        assert (tmp_path / "reconcile.lock").read_text() == "third\n"


@pytest.mark.usefixtures("no_lock_env")
def test_lock_waits_up_to_its_timeout(tmp_path):
    with HostLock(str(tmp_path), 0, "first"):
        started = time.monotonic()
        with pytest.raises(PodopsError, match=r"waited 0\.3s"), HostLock(str(tmp_path), 0.3, "second"):
            pass
        assert time.monotonic() - started >= 0.3


@pytest.mark.usefixtures("no_lock_env")
def test_lock_is_acquired_when_the_holder_finishes_within_the_timeout(tmp_path):
    first = HostLock(str(tmp_path), 0, "first")
    first.__enter__()
    timer = threading.Timer(0.3, first.__exit__, (None, None, None))
    timer.start()
    try:
        with HostLock(str(tmp_path), 10, "second"):
            assert (tmp_path / "reconcile.lock").read_text() == "second\n"
    finally:
        timer.join()


CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.podops.gitops.plugins.module_utils._state import HostLock
with HostLock(sys.argv[2], 0, "pid of a killed run"):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.mark.usefixtures("no_lock_env")
def test_lock_of_a_killed_run_is_free(tmp_path, subprocess_env):
    collections = sys.modules[HostLock.__module__].__file__.split(os.sep + "ansible_collections" + os.sep)[0]
    child = subprocess.Popen([sys.executable, "-c", CHILD, collections, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=subprocess_env)
    try:
        assert child.stdout.readline() == "locked\n"
        with pytest.raises(PodopsError, match="pid of a killed run"), HostLock(str(tmp_path), 0, "parent"):
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()

    assert child.returncode == -signal.SIGKILL
    with HostLock(str(tmp_path), 0, "next run"):
        assert (tmp_path / "reconcile.lock").read_text() == "next run\n"


def test_lock_held_by_a_wrapper_is_not_taken_again(tmp_path, monkeypatch):
    monkeypatch.delenv(LOCK_ENV, raising=False)
    with HostLock(str(tmp_path / "held"), 0, "flock wrapper"):
        monkeypatch.setenv(LOCK_ENV, "1")
        with HostLock(str(tmp_path / "held"), 0, "ansible-pull under the wrapper"):
            assert (tmp_path / "held" / "reconcile.lock").read_text() == "flock wrapper\n"
        with HostLock(str(tmp_path / "other"), 0, "not even a file"):
            assert not (tmp_path / "other").exists()


@pytest.mark.usefixtures("no_lock_env")
def test_lock_env_other_than_1_still_locks(tmp_path, monkeypatch):
    with HostLock(str(tmp_path), 0, "first"):
        monkeypatch.setenv(LOCK_ENV, "yes")
        with pytest.raises(PodopsError, match="another reconcile"), HostLock(str(tmp_path), 0, "second"):
            pass


@pytest.mark.usefixtures("no_lock_env")
def test_lock_in_a_state_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")

    with pytest.raises(PodopsError, match="cannot create state folder"), HostLock(str(tmp_path / "file" / "state"), 0, "x"):
        pass


# --- SnapshotStore ---------------------------------------------------------------------------------------------


@pytest.fixture
def env_repo(tmp_path, write_tree):
    """An env repo checkout with a service that reads a secret outside its folder and keeps data in it."""
    repo = tmp_path / "repo"
    write_tree(
        repo,
        {
            "services/web/compose.yaml": "services: {web: {image: nginx, env_file: ../../secrets/web.env}}\n",
            "services/web/conf/app.conf": "listen 80;\n",
            "services/web/conf/local.conf": "untracked, in a tracked folder\n",
            "services/web/run.sh": "#!/bin/sh\n",
            "services/web/data/db.sqlite": "live data",
            "services/web/junk.log": "untracked",
            "secrets/web.env": "TOKEN=1\n",
        },
    )
    (repo / "services/web/run.sh").chmod(0o755)
    (repo / "services/web/current.conf").symlink_to("conf/app.conf")
    return repo


SNAPSHOT_FILES = ["compose.yaml", "conf/app.conf", "run.sh", "current.conf", "../../secrets/web.env", ".env"]


def test_snapshot_copies_the_inputs_and_links_the_rest(tmp_path, env_repo):
    store = SnapshotStore(str(tmp_path / "state"))

    store.save("web", str(env_repo), "services/web", SNAPSHOT_FILES)

    snap = store.service_dir("web", "services/web")
    assert snap == str(tmp_path / "state" / "snapshots" / "web" / "root" / "services" / "web")
    live = env_repo / "services" / "web"
    for rel in ("compose.yaml", "conf/app.conf", "run.sh"):
        assert not os.path.islink(os.path.join(snap, rel)), rel
        with open(os.path.join(snap, rel)) as handle:
            assert handle.read() == (live / rel).read_text(), rel
    assert mode_of(os.path.join(snap, "run.sh")) & 0o111
    assert os.readlink(os.path.join(snap, "current.conf")) == "conf/app.conf"
    # ../../secrets/web.env resolves inside the snapshot, as in the repo
    with open(os.path.join(snap, "../../secrets/web.env")) as handle:
        assert handle.read() == "TOKEN=1\n"
    # untracked entries are the live ones: data survives a rollback
    assert os.readlink(os.path.join(snap, "data")) == str(live / "data")
    assert os.readlink(os.path.join(snap, "junk.log")) == str(live / "junk.log")
    assert os.readlink(os.path.join(snap, "conf", "local.conf")) == str(live / "conf" / "local.conf")
    assert not os.path.lexists(os.path.join(snap, ".env"))
    assert sorted(os.listdir(snap)) == ["compose.yaml", "conf", "current.conf", "data", "junk.log", "run.sh"]
    with open(tmp_path / "state" / "snapshots" / "web" / "snapshot.json") as handle:
        assert json.load(handle) == {"service": "web", "service_dir": "services/web"}
    assert os.listdir(tmp_path / "state" / "snapshots") == ["web"]


def test_snapshot_is_a_copy_not_the_live_files(tmp_path, env_repo):
    store = SnapshotStore(str(tmp_path / "state"))
    store.save("web", str(env_repo), "services/web", SNAPSHOT_FILES)

    (env_repo / "services/web/conf/app.conf").write_text("listen 8080;\n")
    (env_repo / "secrets/web.env").write_text("TOKEN=2\n")

    snap = store.service_dir("web", "services/web")
    with open(os.path.join(snap, "conf", "app.conf")) as handle:
        assert handle.read() == "listen 80;\n"
    with open(os.path.join(snap, "../../secrets/web.env")) as handle:
        assert handle.read() == "TOKEN=1\n"


def test_snapshot_leaves_files_outside_the_repo_alone(tmp_path, env_repo):
    outside = tmp_path / "etc" / "podops" / "host.env"
    outside.parent.mkdir(parents=True)
    outside.write_text("HOST=1\n")
    store = SnapshotStore(str(tmp_path / "state"))

    store.save("web", str(env_repo), "services/web", ["compose.yaml", str(outside), "../../../etc/podops/host.env"])

    root = tmp_path / "state" / "snapshots" / "web" / "root"
    assert sorted(os.listdir(root)) == ["services"]
    assert not (tmp_path / "state" / "snapshots" / "etc").exists()


def test_a_new_snapshot_replaces_the_old_one(tmp_path, env_repo):
    store = SnapshotStore(str(tmp_path / "state"))
    store.save("web", str(env_repo), "services/web", SNAPSHOT_FILES)
    (env_repo / "services/web/compose.yaml").write_text("services: {web: {image: 'nginx:2'}}\n")

    store.save("web", str(env_repo), "services/web", ["compose.yaml"])

    snap = store.service_dir("web", "services/web")
    with open(os.path.join(snap, "compose.yaml")) as handle:
        assert handle.read() == "services: {web: {image: 'nginx:2'}}\n"
    assert not (tmp_path / "state" / "snapshots" / "web" / "root" / "secrets").exists()
    assert os.listdir(tmp_path / "state" / "snapshots") == ["web"]


def test_snapshot_of_a_swap_cut_short_is_still_found(tmp_path, env_repo):
    store = SnapshotStore(str(tmp_path / "state"))
    store.save("web", str(env_repo), "services/web", SNAPSHOT_FILES)
    # killed between "current -> .old" and ".tmp -> current"
    os.rename(store.path("web"), store.path("web") + ".old")

    assert store.service_dir("web", "services/web") == str(tmp_path / "state" / "snapshots" / "web.old" / "root" / "services" / "web")


def test_no_snapshot(tmp_path):
    store = SnapshotStore(str(tmp_path / "state"))
    (tmp_path / "state" / "snapshots" / "half").mkdir(parents=True)  # no snapshot.json: never finished

    assert store.service_dir("web", "services/web") is None
    assert store.service_dir("half", "services/half") is None


def test_remove_snapshot(tmp_path, env_repo):
    store = SnapshotStore(str(tmp_path / "state"))
    store.save("web", str(env_repo), "services/web", SNAPSHOT_FILES)
    store.save("db", str(env_repo), "services/web", ["compose.yaml"])
    os.makedirs(store.path("web") + ".old")

    store.remove("web")

    assert store.service_dir("web", "services/web") is None
    assert os.listdir(tmp_path / "state" / "snapshots") == ["db"]
    assert os.path.isfile(tmp_path / "repo" / "services" / "web" / "data" / "db.sqlite")  # never the live data


def test_a_state_file_whose_entries_are_not_mappings_names_its_path(tmp_path):
    (tmp_path / "state.json").write_text('{"version": 1, "services": {"web": "deployed", "api": {}}}')
    with pytest.raises(PodopsError) as err:
        StateStore(str(tmp_path)).load()
    assert str(err.value).startswith(f"the podops state file {tmp_path / 'state.json'} has entries that are not mappings (web)")
