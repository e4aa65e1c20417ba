"""The laptop/CLI path: ``ansible-playbook podops.gitops.reconcile`` on localhost (issue 19, item 1).

A no-op costs one module run and nothing else on the host: no AnsiballZ payload built and sent for it, no module
for the settings file or the host lock.
"""

from __future__ import annotations

from conftest import REPO_ROOT, free_port, http_get


def test_a_local_no_op_runs_one_module_in_a_local_process_and_no_payload(host, repo):
    port = free_port()
    repo.add_web("site", port, "v1")
    repo.commit()
    assert host.reconcile(repo).rc == 0
    assert http_get(port) == "v1"
    ids = host.ids("site")

    noop = host.reconcile(repo, "-vvv")

    assert noop.rc == 0, noop
    assert not noop.changed
    assert noop.report["services"]["site"]["action"] == "unchanged"
    assert host.ids("site") == ids
    log = noop.stdout + noop.stderr
    assert log.count("podops: running podops.gitops.compose_deploy in a local process") == 1
    # no module of any kind was built or sent: not for the settings file, not for the lock probe
    assert "Using module file" not in log
    assert "AnsiballZ_" not in log


def test_the_local_process_can_be_turned_off(host, repo):
    port = free_port()
    repo.add_web("site", port, "v1")
    repo.commit()
    host.env["PODOPS_LOCAL_MODULE"] = "0"

    run = host.reconcile(repo, "-vvv")

    assert run.rc == 0, run
    assert http_get(port) == "v1"
    log = run.stdout + run.stderr
    assert "in a local process" not in log
    assert "AnsiballZ_compose_deploy.py" in log


def test_the_local_process_reuses_its_bytecode_kept_outside_the_collection(host, repo, tmp_path):
    port = free_port()
    repo.add_web("site", port, "v1")
    repo.commit()
    host.env.update(ANSIBLE_HOME=str(tmp_path / "ansible-home"), PYTHONDONTWRITEBYTECODE="1")
    cache = tmp_path / "ansible-home" / "podops" / "pycache"
    beside = {path: path.stat().st_mtime_ns for path in (REPO_ROOT / "plugins").rglob("*.pyc")}

    assert host.reconcile(repo).rc == 0
    assert http_get(port) == "v1"
    # compiled under the cache, even with PYTHONDONTWRITEBYTECODE, mirroring where the collection is installed
    (engine,) = cache.rglob("_reconcile.cpython-*.pyc")
    assert engine.parent.name == "module_utils" and engine.parent.parent.parent.name == "gitops"
    assert cache.stat().st_mode & 0o777 == 0o700
    compiled = {path: path.stat().st_mtime_ns for path in cache.rglob("*.pyc") if "ansible_collections" in path.parts}
    assert len(compiled) > 5

    noop = host.reconcile(repo)

    assert noop.rc == 0, noop
    assert noop.report["services"]["site"]["action"] == "unchanged"
    # the second run read what the first compiled: nothing of the collection was compiled again
    assert {path: path.stat().st_mtime_ns for path in compiled} == compiled
    # and nothing was written into the collection's own folders
    assert {path: path.stat().st_mtime_ns for path in (REPO_ROOT / "plugins").rglob("*.pyc")} == beside
