# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_podman: podman-compose's version (read once, cached by executable) and one shared ``podman ps`` per
sampling round, against fake runners that answer with captured outputs."""

from __future__ import annotations

import json
import os
import time

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._podman import Podman, PodmanCompose, compose_version

# ``podman-compose --version`` as printed on a test host (podman-compose 1.6.0, podman 4.3.1).
COMPOSE_1_6_0 = "podman-compose version 1.6.0\npodman version 4.3.1\n"
# Debian 12's podman-compose 1.0.3: podman's version first, the tool named "podman-composer".
COMPOSE_1_0_3 = "using podman version: 4.3.1\npodman-composer version  1.0.3\npodman --version \npodman version 4.3.1\nexit code: 0"


class FakeRunner:
    """The Runner contract with canned answers: ``answers`` maps an argv's first words after the executable to (rc, out, err)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv, cwd=None, timeout=None):
        self.calls.append(list(argv))
        return self.answers[argv[1]]


@pytest.fixture
def executable(tmp_path):
    """``executable(name)``: a stand-in program file (never run: the runner is fake)."""

    def make(name):
        path = tmp_path / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
        return str(path)

    return make


# --- compose_version -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (COMPOSE_1_6_0, (1, 6, 0)),
        (COMPOSE_1_0_3, (1, 0, 3)),
        ("podman-compose version 1.2\n", (1, 2, 0)),
        ("podman version 4.3.1\n", ()),
        ("", ()),
        (None, ()),
    ],
)
def test_compose_version(text, version):
    assert compose_version(text) == version


# --- PodmanCompose.check_version and its cache ---------------------------------------------------------------------


def test_compose_version_is_read_once_and_cached(tmp_path, executable):
    compose_exe = executable("podman-compose")
    cache = str(tmp_path / "state" / "tools.json")
    (tmp_path / "state").mkdir()
    runner = FakeRunner({"--version": (0, COMPOSE_1_6_0, "")})

    first = PodmanCompose(runner, compose_exe)
    assert first.check_version(cache) == (1, 6, 0)
    assert first.check_version(cache) == (1, 6, 0)
    second = PodmanCompose(runner, compose_exe)
    assert second.check_version(cache) == (1, 6, 0)

    assert runner.calls == [[compose_exe, "--version"]]
    info = os.stat(compose_exe)
    with open(cache, encoding="utf-8") as handle:
        assert json.load(handle) == {f"{os.path.realpath(compose_exe)}:{info.st_size}:{info.st_mtime_ns}": [1, 6, 0]}


def test_compose_version_cache_is_ignored_when_the_executable_changes(tmp_path, executable):
    compose_exe = executable("podman-compose")
    cache = str(tmp_path / "tools.json")
    PodmanCompose(FakeRunner({"--version": (0, COMPOSE_1_6_0, "")}), compose_exe).check_version(cache)
    info = os.stat(compose_exe)
    os.utime(compose_exe, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))  # pip installed another version
    runner = FakeRunner({"--version": (0, "podman-compose version 1.7.0\npodman version 4.3.1\n", "")})

    assert PodmanCompose(runner, compose_exe).check_version(cache) == (1, 7, 0)
    assert runner.calls == [[compose_exe, "--version"]]
    with open(cache, encoding="utf-8") as handle:
        assert list(json.load(handle).values()) == [[1, 7, 0]]


def test_compose_version_without_cache_file_runs_the_tool(executable):
    runner = FakeRunner({"--version": (0, COMPOSE_1_6_0, "")})
    compose = PodmanCompose(runner, executable("podman-compose"))

    assert compose.check_version() == (1, 6, 0)
    assert compose.check_version() == (1, 6, 0)
    assert len(runner.calls) == 1


@pytest.mark.parametrize("cached", [[1, 0, 3], "1.6.0", [], ["1", "6"]])
def test_compose_version_cache_with_an_unusable_entry_is_ignored(tmp_path, executable, cached):
    compose_exe = executable("podman-compose")
    info = os.stat(compose_exe)
    cache = tmp_path / "tools.json"
    cache.write_text(json.dumps({f"{os.path.realpath(compose_exe)}:{info.st_size}:{info.st_mtime_ns}": cached}))
    runner = FakeRunner({"--version": (0, COMPOSE_1_6_0, "")})

    assert PodmanCompose(runner, compose_exe).check_version(str(cache)) == (1, 6, 0)
    assert len(runner.calls) == 1


def test_compose_1_0_3_is_too_old_and_not_cached(tmp_path, executable):
    cache = tmp_path / "tools.json"
    compose = PodmanCompose(FakeRunner({"--version": (0, COMPOSE_1_0_3, "")}), executable("podman-compose"))

    with pytest.raises(PodopsError) as err:
        compose.check_version(str(cache))

    assert str(err.value) == (
        "podman-compose 1.0.3 is too old: podops needs >= 1.1.0 (long-form env_file, depends_on conditions). "
        "Install a newer one: pip install 'podman-compose==1.6.0'."
    )
    assert not cache.exists()


def test_compose_version_that_fails(executable):
    compose_exe = executable("podman-compose")
    compose = PodmanCompose(
        FakeRunner({"--version": (1, "", "Traceback (most recent call last):\nModuleNotFoundError: No module named 'yaml'\n")}), compose_exe
    )

    with pytest.raises(PodopsError) as err:
        compose.check_version()

    assert str(err.value) == f"'{compose_exe} --version' failed: Traceback (most recent call last):\nModuleNotFoundError: No module named 'yaml'"


# --- Podman.project_containers ---------------------------------------------------------------------------------


def test_project_containers_share_one_ps_per_round(podman_ps_entries, executable):
    entries = podman_ps_entries[:1] + [dict(podman_ps_entries[1], Names=["other_web_1"], Labels={"io.podman.compose.project": "other"})]
    runner = FakeRunner({"ps": (0, json.dumps(entries), "")})
    podman = Podman(runner, executable("podman"))
    round_started = time.monotonic()

    t1web = podman.project_containers("t1web", not_before=round_started)
    other = podman.project_containers("other", not_before=round_started)  # a parallel deploy in the same round
    none = podman.project_containers("nothing", not_before=round_started - 10)

    assert [c.name for c in t1web] == ["t1web_web_1"]
    assert [c.name for c in other] == ["other_web_1"]
    assert none == []
    assert runner.calls == [[podman.executable, "ps", "-a", "--format", "json"]]

    later = podman.project_containers("t1web", not_before=time.monotonic() + 1)

    assert [c.name for c in later] == ["t1web_web_1"]
    assert runner.calls == [[podman.executable, "ps", "-a", "--format", "json"]] * 2


def test_project_containers_ps_failure_is_a_podops_error(executable):
    podman = Podman(FakeRunner({"ps": (125, "", "Error: cannot connect to the podman socket\n")}), executable("podman"))

    with pytest.raises(PodopsError) as err:
        podman.project_containers("t1web", not_before=time.monotonic())

    assert str(err.value) == "'podman ps' failed: Error: cannot connect to the podman socket. Is podman working for this user? Try 'podman info'."


# --- Podman.known_containers: the plan's ps serves a project podops has not changed since ------------------------


def test_known_containers_reuse_the_plans_ps_until_podops_changes_the_project(podman_ps_entries, executable):
    entries = podman_ps_entries[:1] + [dict(podman_ps_entries[1], Names=["other_web_1"], Labels={"io.podman.compose.project": "other"})]
    runner = FakeRunner({"ps": (0, json.dumps(entries), ""), "rm": (0, "", "")})
    podman = Podman(runner, executable("podman"))
    ps = [podman.executable, "ps", "-a", "--format", "json"]

    podman.containers(label=None)  # the plan's host-wide ps
    assert [c.name for c in podman.known_containers("t1web")] == ["t1web_web_1"]
    assert podman.known_containers("fresh") == []
    assert runner.calls == [ps]

    podman.touched("t1web")  # podops ran podman-compose up for t1web
    assert [c.name for c in podman.known_containers("t1web")] == ["t1web_web_1"]
    assert podman.known_containers("fresh") == []  # the new ps serves the others too
    assert runner.calls == [ps, ps]

    podman.remove_containers(["other_web_1"])  # by name: any project may have changed
    assert [c.name for c in podman.known_containers("other")] == ["other_web_1"]
    assert runner.calls[2:] == [[podman.executable, "rm", "-f", "-t", "10", "other_web_1"], ps]


def test_known_containers_without_any_ps_yet_lists_them(podman_ps_entries, executable):
    runner = FakeRunner({"ps": (0, json.dumps(podman_ps_entries[:1]), "")})
    podman = Podman(runner, executable("podman"))

    assert [c.name for c in podman.known_containers("t1web")] == ["t1web_web_1"]
    assert [c.name for c in podman.known_containers("t1web")] == ["t1web_web_1"]
    assert len(runner.calls) == 1


def test_filtered_ps_is_not_a_snapshot(podman_ps_entries, executable):
    runner = FakeRunner({"ps": (0, json.dumps(podman_ps_entries[:1]), "")})
    podman = Podman(runner, executable("podman"))

    podman.containers()  # only podops' labelled containers: not every project's
    podman.known_containers("t1web")

    assert len(runner.calls) == 2


def test_up_passes_the_active_profiles_and_the_time_limit(executable, monkeypatch):
    monkeypatch.setenv("PODOPS_COMPOSE_FORK_SERVER", "0")
    calls = []

    def runner(argv, cwd=None, env=None, timeout=None):
        calls.append((argv, timeout))
        return 0, "", ""

    compose = PodmanCompose(runner, executable("podman-compose"))
    compose.up("p", "/srv/app/compose.yaml", "/state/o.yml", profiles=["debug", "monitoring"], timeout=42)

    ((argv, timeout),) = calls
    assert argv[1:7] == ["--in-pod", "false", "--profile", "debug", "--profile", "monitoring"]
    assert argv[-2:] == ["up", "-d"] and timeout == 42


def test_a_pull_that_times_out_is_a_podops_error_naming_the_command(executable):
    from ansible_collections.podops.gitops.plugins.module_utils._common import CommandTimeout

    def runner(argv, cwd=None, env=None, timeout=None):
        raise CommandTimeout("podman pull", timeout)

    podman = Podman(runner, executable("podman"))
    with pytest.raises(PodopsError, match=r"'podman pull' timed out after 900s"):
        podman.pull("registry.example/big:1")
