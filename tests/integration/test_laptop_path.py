"""The laptop/CLI path: ``ansible-playbook podops.gitops.reconcile`` on localhost (issue 19, item 1).

A no-op costs one module run and nothing else on the host: no AnsiballZ payload built and sent for it, no module
for the settings file or the host lock.
"""

from __future__ import annotations

from conftest import free_port, http_get


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
