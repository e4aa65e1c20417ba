# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Reconciler's decisions with a fake host: which services it leaves alone, fails, orphans or prunes, what
it records and removes, and its verdict - without podman (the integration suite does the rest on real podman).

The fake host answers the podman commands a run without deploys makes (``--version``, ``ps`` with podman 4.3's
filter semantics, ``container inspect``, ``stop``, ``rm``, ``pod ps``, ``network ls``) from an in-memory list of
containers; git is real. Any other command fails the test: a run that needs no deploy must not start one.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._podman import PodmanCompose
from ansible_collections.podops.gitops.plugins.module_utils._reconcile import Options, Reconciler, RunResult
from ansible_collections.podops.gitops.plugins.module_utils._state import ServiceFiles

PREFIX = "u1-"
GOOD = "services:\n  app:\n    image: localhost/podops-demo:1\n"


class FakeHost:
    def __init__(self, podman: str, subprocess_env: dict[str, str]):
        self.podman = podman
        self.env = subprocess_env
        self.containers: list[dict] = []
        self.calls: list[list[str]] = []
        self.ps_threads: list[str] = []
        self.ps_error = ""  # what a failing 'podman ps' prints

    def add(self, service: str, digest: str, project: str | None = None) -> dict:
        project = project or PREFIX + service
        entry = {
            "Id": f"{len(self.containers):04d}" + "f" * 60,
            "Names": [f"{project}_app_1"],
            "State": "running",
            "Status": "Up 2 hours",
            "ExitCode": 0,
            "StartedAt": 1764590000,
            "ImageID": "a" * 64,
            "Labels": {
                "io.podops.service": service,
                "io.podops.digest": digest,
                "io.podops.prefix": PREFIX,
                "io.podman.compose.project": project,
                "com.docker.compose.service": "app",
            },
        }
        self.containers.append(entry)
        return entry

    def __call__(self, argv, cwd=None, env=None, timeout=None):
        if argv[0] == "git":
            proc = subprocess.run(argv, cwd=cwd, env=dict(self.env, **(env or {})), capture_output=True, text=True, check=False, timeout=timeout)
            return proc.returncode, proc.stdout, proc.stderr
        assert argv[0] == self.podman, f"a run without deploys ran {argv}"
        self.calls.append(list(argv[1:]))
        verb = argv[1:3]
        if verb == ["--version"]:
            return 0, "podman version 4.3.1\n", ""
        if verb == ["ps", "-a"]:
            self.ps_threads.append(threading.current_thread().name)
            if self.ps_error:
                return 125, "", self.ps_error
            return 0, json.dumps(self._ps(argv[5:])), ""
        if verb == ["container", "inspect"]:
            return 0, json.dumps([{"Id": c["Id"], "Dependencies": []} for c in self.containers if c["Id"] in argv[5:]]), ""
        if argv[1] in ("stop",):
            return 0, "", ""
        if argv[1] == "rm":
            doomed = set(argv[2:])
            self.containers = [c for c in self.containers if c["Id"] not in doomed]
            return 0, "", ""
        if verb in (["pod", "ps"], ["network", "ls"]):
            return 0, "", ""
        raise AssertionError(f"unexpected podman call {argv}")

    def _ps(self, args: list[str]) -> list[dict]:
        filters = [args[i + 1] for i in range(0, len(args), 2)]
        labels = [f[len("label=") :] for f in filters if f.startswith("label=")]
        ids = [f[len("id=") :] for f in filters if f.startswith("id=")]

        def matches(entry: dict) -> bool:
            for label in labels:
                key, sep, value = label.partition("=")
                if key not in entry["Labels"] or (sep and entry["Labels"][key] != value):
                    return False
            return not ids or entry["Id"] in ids

        return [entry for entry in self.containers if matches(entry)]

    def removed(self) -> list[str]:
        return sorted(arg for call in self.calls if call[0] == "rm" for arg in call[1:] if not arg.startswith("-") and not arg.isdigit())


@pytest.fixture
def setup(tmp_path, git_repo, subprocess_env, monkeypatch):
    monkeypatch.delenv("PODOPS_LOCK_HELD", raising=False)
    repo = git_repo(tmp_path / "repo", {"services/web/compose.yaml": GOOD, "services/api/compose.yaml": "services: {}\n"})
    stand_in = tmp_path / "bin" / "podman"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\nexit 99\n")  # never run: the fake host answers
    stand_in.chmod(0o755)
    host = FakeHost(str(stand_in), subprocess_env)
    state = tmp_path / "state"

    def run(check_mode: bool = False, warm_compose: bool = False, **options) -> RunResult:
        opts = Options(repo_dir=repo, state_dir=str(state), project_prefix=PREFIX, podman_executable=str(stand_in), compose_executable=str(stand_in), **options)
        return Reconciler(opts, host, check_mode, warm_compose=warm_compose).run()

    return host, state, run


def test_a_run_leaves_running_services_alone_fails_a_broken_one_and_keeps_an_orphan(setup):
    host, state, run = setup
    digest = run(check_mode=True).report["services"]["web"]["digest"]
    web = host.add("web", digest)
    old = host.add("old", "0" * 64)

    result = run()

    services = result.report["services"]
    assert {name: (entry["action"], entry["reason"]) for name, entry in services.items()} == {
        "web": ("unchanged", "adopted"),
        "api": ("failed", "invalid"),
        "old": ("orphaned", "removed"),
    }
    assert host.removed() == [] and host.containers == [web, old], "nothing was stopped or removed"
    assert result.changed is False
    assert result.failed_services == ["api"] and result.exit_code == 2
    assert result.message.startswith("service(s) failed: api.\napi: compose.yaml has no services")
    recorded = json.loads((state / "state.json").read_text())["services"]
    assert recorded["web"]["status"] == "ok" and recorded["web"]["digest"] == digest, "an adopted service is recorded as deployed"
    assert recorded["api"]["status"] == "failed"
    assert os.path.isdir(ServiceFiles(str(state), "web").snapshots.path("web")), "and snapshotted, so it can be rolled back to"


def test_prune_removes_the_orphans_containers_and_files_only(setup):
    host, state, run = setup
    digest = run(check_mode=True).report["services"]["web"]["digest"]
    web = host.add("web", digest)
    old = host.add("old", "0" * 64)
    files = ServiceFiles(str(state), "old")
    for path in (files.override(), files.override("a"), files.override(rollback=True)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("services: {}\n")

    result = run(prune=True)

    assert result.report["services"]["old"]["action"] == "pruned"
    assert host.removed() == [old["Id"]], "only the orphan's container"
    assert host.containers == [web]
    assert not os.listdir(state / "overrides"), "every override of the orphan is gone"
    assert result.changed is True
    assert result.failed_services == ["api"]


def test_check_mode_decides_the_same_and_changes_nothing(setup):
    host, state, run = setup
    digest = run(check_mode=True).report["services"]["web"]["digest"]
    host.add("web", digest)
    old = host.add("old", "0" * 64)

    result = run(check_mode=True, prune=True)

    assert {name: entry["action"] for name, entry in result.report["services"].items()} == {"web": "unchanged", "api": "failed", "old": "pruned"}
    assert host.removed() == [] and old in host.containers
    assert not (state / "state.json").exists()


def test_the_hosts_listing_runs_beside_the_digests(setup):
    host, _state, run = setup

    run(check_mode=True)

    assert host.ps_threads[0].startswith("podops-ps"), "the plan's podman ps -a runs while the repo is read and digested"


def test_a_failing_podman_is_told_before_a_broken_repo(setup):
    """Both fail: podman's failure is the one told, as when the listing came before the repo was read."""
    host, _state, run = setup
    host.ps_error = "Error: database is locked"

    with pytest.raises(PodopsError, match="'podman ps' failed: Error: database is locked"):
        run(check_mode=True, services_dir="no-such-folder")


@pytest.mark.parametrize("warm", [True, False])
def test_podman_compose_is_warmed_only_when_a_deploy_is_likely(setup, monkeypatch, warm):
    """The fast lane saw the commit move: podman-compose's fork server starts beside the plan (in a thread of its
    own); a plain no-op tick starts nothing."""
    host, _state, run = setup
    digest = run(check_mode=True).report["services"]["web"]["digest"]
    host.add("web", digest)
    started = []
    done = threading.Event()

    def fork_server(self):
        started.append(threading.current_thread().name)
        done.set()

    monkeypatch.setattr(PodmanCompose, "fork_server", fork_server)

    run(warm_compose=warm)

    if warm:
        assert done.wait(10)
    assert started == (["podops-compose-warm"] if warm else [])
