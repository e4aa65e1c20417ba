# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the module_utils tests: a real subprocess runner, real git repos, real podman ps output."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import typing as t

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._podman import Container

HERE = os.path.dirname(os.path.abspath(__file__))
PODMAN_PS_4_3_1 = os.path.join(HERE, "podman_ps_4.3.1.json")

# git without the user's or the system's configuration, with a fixed identity.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "podops test",
    "GIT_AUTHOR_EMAIL": "podops@example.invalid",
    "GIT_COMMITTER_NAME": "podops test",
    "GIT_COMMITTER_EMAIL": "podops@example.invalid",
}


@pytest.fixture
def subprocess_env(tmp_path: t.Any) -> dict[str, str]:
    """The environment of every command the tests run: git never looks for a repo above ``tmp_path``."""
    env = dict(os.environ)
    env.update(GIT_ENV)
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    env.pop("PODOPS_LOCK_HELD", None)
    return env


@pytest.fixture
def runner(subprocess_env: dict[str, str]) -> t.Callable[..., tuple[int, str, str]]:
    """The core's Runner contract, ``runner(argv, cwd=None, env=None) -> (rc, stdout, stderr)``, over subprocess.

    ``runner.calls`` lists every argv it ran.
    """
    calls: list[list[str]] = []

    def run(argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None, timeout: float | None = None) -> tuple[int, str, str]:
        calls.append(list(argv))
        proc = subprocess.run(argv, cwd=cwd, env=dict(subprocess_env, **(env or {})), capture_output=True, text=True, check=False, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr

    run.calls = calls  # type: ignore[attr-defined]
    return run


@pytest.fixture
def write_tree() -> t.Callable[..., None]:
    """``write_tree(base, {"rel/path": "text" | b"bytes"})``: create the files (and their folders)."""

    def write(base: t.Any, files: t.Mapping[str, str | bytes]) -> None:
        for rel, content in files.items():
            path = os.path.join(str(base), rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(path, mode) as handle:
                handle.write(content)

    return write


@pytest.fixture
def git(subprocess_env: dict[str, str]) -> t.Callable[..., str]:
    """``git(repo, *args)``: run git in ``repo``, fail the test on a non-zero exit, return stdout."""

    def run(repo: t.Any, *args: str) -> str:
        proc = subprocess.run(["git", "-C", str(repo), *args], env=subprocess_env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
        return proc.stdout

    return run


@pytest.fixture
def git_repo(git: t.Callable[..., str], write_tree: t.Callable[..., None]) -> t.Callable[..., str]:
    """``git_repo(path, files)``: a real git repo at ``path`` with ``files`` committed; returns the path."""

    def make(path: t.Any, files: t.Mapping[str, str | bytes]) -> str:
        os.makedirs(str(path), exist_ok=True)
        git(path, "init", "-q", "-b", "main")
        write_tree(path, files)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "initial")
        return str(path)

    return make


@pytest.fixture
def podman_ps_entries() -> list[dict[str, t.Any]]:
    """``podman ps -a --format json`` of podman 4.3.1: one container (t1web_web_1) seen in five states."""
    with open(PODMAN_PS_4_3_1, encoding="utf-8") as handle:
        return json.load(handle)


def _variant_of(entry: t.Mapping[str, t.Any]) -> str:
    if entry["State"] == "exited":
        return "exited"
    for word in ("unhealthy", "healthy", "starting"):
        if f"({word})" in entry["Status"]:
            return word
    return "no-healthcheck"


@pytest.fixture
def ps_entry(podman_ps_entries: list[dict[str, t.Any]]) -> t.Callable[..., dict[str, t.Any]]:
    """``ps_entry("healthy", **changes)``: a fresh copy of one captured entry, with top-level changes.

    Variants: ``starting``, ``healthy``, ``unhealthy``, ``exited`` (code 1), ``no-healthcheck``.
    """
    by_variant = {_variant_of(entry): entry for entry in podman_ps_entries}
    assert sorted(by_variant) == ["exited", "healthy", "no-healthcheck", "starting", "unhealthy"]

    def get(variant: str, **changes: t.Any) -> dict[str, t.Any]:
        entry = copy.deepcopy(by_variant[variant])
        entry.update(changes)
        return entry

    return get


@pytest.fixture
def make_container() -> t.Callable[..., Container]:
    """A Container as podops' own deploy labels it (compose project, compose service, io.podops.*)."""

    def make(
        project: str,
        service: str,
        digest: str,
        podops_service: str | None = None,
        state: str = "running",
        exit_code: int = 0,
        prefix: str = "",
        started_at: int = 1795696858,
    ) -> Container:
        labels = {
            "io.podman.compose.project": project,
            "com.docker.compose.project": project,
            "com.docker.compose.service": service,
            "io.podman.compose.service": service,
            "io.podops.service": podops_service or project,
            "io.podops.digest": digest,
            "io.podops.commit": "0" * 40,
            "io.podops.prefix": prefix,
        }
        status = "Up 3 seconds ago" if state == "running" else f"Exited ({exit_code}) 2 seconds ago"
        return Container(
            id=f"{project}-{service}-id",
            name=f"{project}_{service}_1",
            state=state,
            status=status,
            exit_code=exit_code,
            started_at=started_at,
            image_id="f6448ca500ae",
            labels=labels,
        )

    return make


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a reparented zombie may wait for a slow init)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
