"""Orphans and prune (point 7), bad input (point 9), the host lock and crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import IMAGE, free_port, http_get, sh


def test_removed_service_is_orphaned_then_pruned_volumes_kept(host, repo):
    keep_port, gone_port = free_port(), free_port()
    repo.add_web("keep", keep_port, "keep")
    repo.add_web("gone", gone_port, "gone")
    compose = (repo.path / "services/gone/compose.yaml").read_text()
    repo.write(
        "services/gone/compose.yaml",
        compose.replace('volumes: ["./site:/www:ro"]', 'volumes: ["./site:/www:ro", "gone-data:/data"]') + "volumes:\n  gone-data:\nnetworks:\n  default:\n",
    )
    repo.commit()
    assert host.reconcile(repo).rc == 0
    keep_ids = host.ids("keep")
    project = f"{host.prefix}gone"

    repo.remove("services/gone")
    repo.commit("remove gone")
    run = host.reconcile(repo)
    assert run.rc == 0
    assert run.report["services"]["gone"]["action"] == "orphaned"
    assert run.report["services"]["gone"]["reason"] == "removed"
    assert [c["State"] for c in host.containers("gone")] == ["running"], "without podops_prune an orphan keeps running"

    pruned = host.reconcile(repo, podops_prune=True)
    assert pruned.rc == 0 and pruned.changed
    assert pruned.report["services"]["gone"]["action"] == "pruned"
    assert host.containers("gone") == []
    networks = sh("podman", "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert not [n for n in networks if n.startswith(project)]
    volumes = sh("podman", "volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"{project}_gone-data" in volumes, "volumes are never pruned"
    assert host.ids("keep") == keep_ids
    after = host.reconcile(repo, podops_prune=True)
    assert after.rc == 0 and not after.changed
    assert "gone" not in after.report["services"]


CHAIN = """\
x-podops:
  health: {timeout: 30, samples: 2, interval: 0.3}
services:
  a:
    image: %(image)s
  b:
    image: %(image)s
    depends_on: [a]
  c:
    image: %(image)s
    depends_on: [b]
"""


def test_prune_removes_a_service_whose_containers_depend_on_each_other(host, repo):
    """podman-compose creates b and c with --requires (a <- b <- c); podman refuses to remove a container that
    others still require, so a prune that removes them all in one call left half the service running."""
    keep_port = free_port()
    repo.add_web("keep", keep_port, "keep")
    repo.write("services/chain/compose.yaml", CHAIN % {"image": IMAGE})
    repo.commit()
    deployed = host.reconcile(repo)
    assert deployed.rc == 0, deployed
    chain = host.containers("chain")
    assert sorted(c["Labels"]["com.docker.compose.service"] for c in chain) == ["a", "b", "c"]
    assert {c["State"] for c in chain} == {"running"}
    keep_ids = host.ids("keep")

    repo.remove("services/chain")
    repo.commit("remove chain")
    pruned = host.reconcile(repo, podops_prune=True)
    assert pruned.rc == 0, pruned
    assert pruned.report["services"]["chain"]["action"] == "pruned", pruned.report["services"]["chain"]
    assert host.containers("chain") == []
    project = f"{host.prefix}chain"
    left = sh("podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=io.podman.compose.project={project}").stdout.split()
    assert left == [], f"containers of {project} survived the prune: {left}"
    assert host.ids("keep") == keep_ids, "the other service was not touched"
    assert http_get(keep_port) == "keep"
    again = host.reconcile(repo, podops_prune=True)
    assert again.rc == 0 and not again.changed
    assert "chain" not in again.report["services"]


def test_podops_services_restricts_the_host(host, repo):
    ports = {"web-a": free_port(), "web-b": free_port(), "db": free_port()}
    for name, port in ports.items():
        repo.add_web(name, port, name)
    repo.commit()
    run = host.reconcile(repo, podops_services=["web-*"])
    assert run.rc == 0
    assert set(run.report["services"]) == {"web-a", "web-b"}
    assert host.containers("db") == []

    deselected = host.reconcile(repo, podops_services=["web-a"], podops_prune=True)
    assert deselected.report["services"]["web-b"] == deselected.report["services"]["web-b"] | {"action": "pruned", "reason": "deselected"}

    typo = host.reconcile(repo, podops_services=["wbe-a"])
    assert typo.rc != 0
    assert "'wbe-a', which is not a service" in typo.first_failure() and "web-a" in typo.first_failure()


def test_empty_or_missing_services_folder_never_prunes(host, repo):
    port = free_port()
    repo.add_web("site", port, "site")
    repo.commit()
    assert host.reconcile(repo).rc == 0
    ids = host.ids("site")

    repo.remove("services/site")
    repo.write("services/README.md", "nothing here\n")
    repo.commit("empty services")
    empty = host.reconcile(repo, podops_prune=True)
    assert empty.rc != 0
    assert "holds no service" in empty.first_failure() and "Nothing was changed" in empty.first_failure()
    assert empty.report["result"] == "failed"
    assert host.ids("site") == ids

    repo.remove("services")
    repo.commit("no services folder")
    missing = host.reconcile(repo, podops_prune=True)
    assert missing.rc != 0
    assert "does not exist; nothing was changed" in missing.first_failure()
    assert host.ids("site") == ids
    assert [c["State"] for c in host.containers("site")] == ["running"]


def test_bad_inputs_get_clear_errors(host, repo, tmp_path):
    port = free_port()
    repo.add_web("site", port, "site")
    repo.commit()

    nowhere = host.reconcile(tmp_path / "no-such-repo")
    assert nowhere.rc != 0
    assert "podops_repo_dir" in nowhere.first_failure() and "does not exist" in nowhere.first_failure()

    no_compose = host.reconcile(repo, podops_compose_executable="/nonexistent/podman-compose")
    assert no_compose.rc != 0
    assert "podman-compose was not found" in no_compose.first_failure()
    assert host.containers() == []

    no_podman = host.reconcile(repo, podops_podman_executable="/nonexistent/podman")
    assert "podman was not found" in no_podman.first_failure() and "apt-get install podman" in no_podman.first_failure()

    host.state_dir.mkdir(parents=True, exist_ok=True)
    (host.state_dir / "state.json").write_text("{not json")
    corrupt = host.reconcile(repo)
    assert corrupt.rc != 0
    assert str(host.state_dir / "state.json") in corrupt.first_failure()
    assert host.containers() == []
    (host.state_dir / "state.json").unlink()


def test_too_old_podman_compose_is_refused(host, repo, tmp_path):
    """A real podman-compose 1.0.3 (what Debian 12 ships) in its own venv."""
    venv = tmp_path / "old-venv"
    sh(sys.executable, "-m", "venv", str(venv))
    sh(str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", "podman-compose==1.0.3", timeout=300)
    repo.add_web("site", free_port(), "site")
    repo.commit()
    run = host.reconcile(repo, podops_compose_executable=str(venv / "bin/podman-compose"))
    assert run.rc != 0
    assert "podman-compose 1.0.3 is too old" in run.first_failure()
    assert "pip install" in run.first_failure()
    assert host.containers() == []


def test_second_reconcile_waits_or_refuses_and_a_killed_run_leaves_no_lock(host, repo):
    port = free_port()
    repo.add_web("site", port, "site")
    repo.commit()
    lock = host.state_dir / "reconcile.lock"
    host.state_dir.mkdir(parents=True)
    hold = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(lock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = host.reconcile(repo, podops_lock_timeout=0)
        assert refused.rc != 0
        assert "another reconcile is running on this host" in refused.first_failure()
        assert host.containers() == []
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    after_crash = host.reconcile(repo, podops_lock_timeout=0)
    assert after_crash.rc == 0, "the kernel dropped the dead holder's lock"
    assert http_get(port) == "site"


def test_run_killed_mid_deploy_converges(host, repo):
    ports = {f"s{i}": free_port() for i in range(3)}
    for name, port in ports.items():
        repo.add_web(name, port, name)
    repo.commit()
    env = dict(host.env)
    argv = [
        "ansible-playbook",
        "podops.gitops.reconcile",
        "-e",
        json.dumps({"podops_repo_dir": str(repo.path), "podops_state_dir": str(host.state_dir), "podops_project_prefix": host.prefix, "podops_parallel": 1}),
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not host.containers() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the playbook, the module and podman-compose, mid-deploy
    proc.wait()
    state = host.state_dir / "state.json"
    if state.exists():
        json.loads(state.read_text())  # readable whatever the moment of the kill

    run = host.reconcile(repo)
    assert run.rc == 0, run.stdout + run.stderr
    for name, port in ports.items():
        assert http_get(port) == name
    again = host.reconcile(repo)
    assert again.rc == 0 and not again.changed
