# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_process: a command that outlives its time limit is ended with every process it started, and says so."""

from __future__ import annotations

import os
import sys
import time

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import CommandTimeout, PodopsError, command_name
from ansible_collections.podops.gitops.plugins.module_utils._lane import process_runner
from ansible_collections.podops.gitops.plugins.module_utils._process import run_process
from conftest import alive


def test_a_command_within_its_limit_gives_rc_and_output():
    assert run_process([sys.executable, "-c", "import sys; print('out'); sys.stderr.write('err'); sys.exit(3)"], timeout=30) == (3, "out\n", "err")


def test_a_missing_program_is_rc_127():
    rc, _out, err = run_process(["/nonexistent/podman", "ps"], timeout=5)
    assert rc == 127 and "/nonexistent/podman" in err


def test_a_hanging_command_and_its_children_are_ended(tmp_path):
    pids = tmp_path / "pids"
    # A parent that ignores SIGTERM (as busybox httpd does) with a child holding the output pipe.
    script = f"trap '' TERM; sleep 120 & echo $$ $! > {pids}; wait"
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as err:
        run_process(["sh", "-c", script, "podman-compose", "up"], timeout=1, grace=1)
    assert time.monotonic() - started < 6
    assert isinstance(err.value, PodopsError), "a timeout fails a service like any other error"
    assert err.value.timeout == 1 and err.value.command == "sh up"
    deadline = time.monotonic() + 5
    while any(alive(int(pid)) for pid in pids.read_text().split()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(int(pid)) for pid in pids.read_text().split())


def test_podops_pull_runner_passes_the_limit_on(tmp_path):
    run = process_runner(dict(os.environ))
    with pytest.raises(CommandTimeout):
        run(["sleep", "30"], timeout=0.5)
    assert run(["sh", "-c", "echo $LC_ALL"], timeout=10) == (0, "C\n", "")


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["/venv/bin/podman-compose", "--in-pod", "false", "--project-name", "p", "-f", "/x/compose.yaml", "up", "-d"], "podman-compose up"),
        (["/usr/bin/podman", "pull", "--quiet", "registry.example/app:1"], "podman pull"),
        (["podman", "healthcheck", "run", "abc"], "podman healthcheck run"),
        (["git", "-C", "/repo", "ls-files", "-z"], "git ls-files"),
        (["nginx", "-s", "reload"], "nginx reload"),
        (["/opt/bin/custom-reload"], "custom-reload"),
    ],
)
def test_command_name_names_the_program_and_its_verb_never_its_arguments(argv, name):
    assert command_name(argv) == name
