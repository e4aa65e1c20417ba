# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_forkserver: a call through the podman-compose fork server gives what running the console script gives
(argv, cwd, environment, exit status, stdout, stderr), and the server never outlives its run. Real
processes: a stand-in ``podman_compose`` module beside a pip-style console script run by this Python."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from ansible_collections.podops.gitops.plugins.module_utils import _forkserver
from ansible_collections.podops.gitops.plugins.module_utils._common import CommandTimeout
from ansible_collections.podops.gitops.plugins.module_utils._forkserver import (
    ForkServer,
    Unavailable,
    command_environment,
    console_script_interpreter,
)
from ansible_collections.podops.gitops.plugins.module_utils._podman import PodmanCompose
from conftest import alive

# What pip writes for an entry point ``podman_compose:main``.
CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from podman_compose import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""

# A stand-in podman_compose: what it prints depends on argv, cwd and the environment.
FAKE_MODULE = """
import json, os, sys, time

__version__ = "9.9.9"
LOADED_BY = os.getpid()


def main():
    args = sys.argv[1:]
    if args[:1] == ["exit"]:
        sys.exit(int(args[1]))
    if args[:1] == ["raise"]:
        raise RuntimeError("boom")
    if args[:1] == ["kill"]:
        os.kill(os.getpid(), 9)
    if args[:1] == ["sleep"]:
        time.sleep(float(args[1]))
    if args[:1] == ["child"]:
        os.system("echo from-a-subprocess; echo to-stderr >&2")
    if "hang" in args:  # what a podman-compose up that never returns looks like: it and its podman wait
        import subprocess
        child = subprocess.Popen(["sleep", "120"])
        with open(args[args.index("hang") + 1], "w") as handle:
            handle.write("%d %d" % (os.getpid(), child.pid))
        time.sleep(120)
    print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "var": os.environ.get("PODOPS_TEST_VAR"), "lc_all": os.environ.get("LC_ALL"),
                      "forked": os.getpid() != LOADED_BY}))
    sys.stderr.write("some warning\\n")
"""


@pytest.fixture
def compose_script(tmp_path):
    """A pip-style podman-compose console script with the stand-in module beside it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "podman_compose.py").write_text(FAKE_MODULE)
    script = bindir / "podman-compose"
    script.write_text(CONSOLE_SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def server(compose_script):
    server = ForkServer(compose_script, sys.executable)
    server.start()
    yield server
    server.close()


def as_program(argv, cwd=None, env=None):
    """What podops' runner gives for the same call: the console script run as a program."""
    proc = subprocess.run(argv, cwd=cwd, env=command_environment(env), capture_output=True, check=False)
    return proc.returncode, proc.stdout.decode("utf-8", "surrogateescape"), proc.stderr.decode("utf-8", "surrogateescape")


def test_console_script_interpreter(tmp_path, compose_script):
    assert console_script_interpreter(compose_script) == sys.executable
    wrapper = tmp_path / "wrapper"
    wrapper.write_text('#!/bin/sh\nexec podman-compose "$@"\n')
    env_line = tmp_path / "env-line"
    env_line.write_text(CONSOLE_SCRIPT.format(python="/usr/bin/env python3"))
    other = tmp_path / "other-tool"
    other.write_text(CONSOLE_SCRIPT.format(python=sys.executable).replace("podman_compose", "other_tool"))
    missing_python = tmp_path / "missing-python"
    missing_python.write_text(CONSOLE_SCRIPT.format(python="/nonexistent/bin/python3"))
    for path in (wrapper, env_line, other, missing_python, tmp_path / "absent"):
        assert console_script_interpreter(str(path)) is None


@pytest.mark.parametrize(
    "args",
    [
        ["up", "-d", "--project-name", "p"],
        ["exit", "3"],
        ["exit", "256"],
        ["raise"],
        ["child"],
    ],
)
def test_a_call_gives_what_the_program_gives(server, compose_script, tmp_path, args):
    argv = [compose_script, *args]
    env = {"PODOPS_TEST_VAR": "sl\u00f6t-a"}
    served = server.run(argv, cwd=str(tmp_path), env=env)
    ran = as_program(argv, cwd=str(tmp_path), env=env)

    assert served[0] == ran[0]
    if args[0] == "raise":  # the traceback's first frames differ (the server's stack), its end does not
        assert served[2].splitlines()[-1] == ran[2].splitlines()[-1] == "RuntimeError: boom"
        return
    assert served[1:] == (ran[1].replace('"forked": false', '"forked": true'), ran[2])
    if args[0] == "up":
        seen = json.loads(served[1])
        assert seen == {"argv": argv, "cwd": str(tmp_path), "var": "sl\u00f6t-a", "lc_all": "C", "forked": True}


def test_a_child_killed_by_a_signal_reports_it_like_a_program(server, compose_script):
    assert server.run([compose_script, "kill"])[0] == -signal.SIGKILL == as_program([compose_script, "kill"])[0]


def test_calls_from_threads_run_at_once_and_each_gets_its_own_answer(server, compose_script, tmp_path):
    results: dict[int, tuple[int, str, str]] = {}

    def call(number: int) -> None:
        folder = tmp_path / f"d{number}"
        folder.mkdir()
        results[number] = server.run([compose_script, "sleep", "0.5"], cwd=str(folder), env={"PODOPS_TEST_VAR": str(number)})

    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert time.monotonic() - started < 2.5  # 6 x 0.5 s one after the other would be 3 s
    for number, (rc, out, _err) in results.items():
        seen = json.loads(out)
        assert rc == 0 and seen["var"] == str(number) and seen["cwd"] == str(tmp_path / f"d{number}")
    assert os.listdir(server._tmp) == []  # outputs are read and removed


def test_a_call_that_outlives_its_limit_is_ended_with_its_processes(server, compose_script, tmp_path):
    pids = tmp_path / "pids"
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as err:
        server.run([compose_script, "--project-name", "p", "up", "-d", "hang", str(pids)], timeout=1)
    assert time.monotonic() - started < 8
    assert str(err.value) == "'podman-compose up' timed out after 1s; its processes were ended"
    deadline = time.monotonic() + 5
    while any(alive(int(pid)) for pid in pids.read_text().split()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(int(pid)) for pid in pids.read_text().split()), "the call and the process it started are gone"
    assert server.alive and server.run([compose_script, "exit", "0"])[0] == 0, "the server serves the next call"
    assert os.listdir(server._tmp) == []


def test_close_stops_the_server_and_removes_its_files(compose_script):
    server = ForkServer(compose_script, sys.executable)
    server.start()
    proc, tmp = server._proc, server._tmp

    server.close()

    assert proc.poll() is not None
    assert not os.path.exists(tmp)
    with pytest.raises(Unavailable):
        server.run([compose_script, "up"])


def test_the_server_ends_with_the_process_that_started_it(compose_script, tmp_path):
    """A run that ends without closing it (killed, os._exit) still takes the server with it."""
    code = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = {sys.path!r}
        from ansible_collections.podops.gitops.plugins.module_utils._forkserver import ForkServer
        server = ForkServer({compose_script!r}, {sys.executable!r})
        server.start()
        print(server._proc.pid, flush=True)
        os._exit(0)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    pid = int(out.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)

    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_an_interpreter_that_cannot_import_podman_compose_is_unavailable(tmp_path):
    script = tmp_path / "podman-compose"
    script.write_text(CONSOLE_SCRIPT.format(python=sys.executable))
    # Beside the script, so it is the one imported (as when the script runs): a dependency is missing.
    (tmp_path / "podman_compose.py").write_text("import yaml_that_is_not_installed\n")
    server = ForkServer(str(script), sys.executable)

    with pytest.raises(Unavailable) as err:
        server.start()

    assert "ModuleNotFoundError" in str(err.value) and "yaml_that_is_not_installed" in str(err.value)
    assert server._proc is None and not os.path.exists(str(server._tmp))


class RecordingRunner:
    """A runner that records its calls; ``declared``: it says how it builds a command's environment."""

    def __init__(self, declared=True):
        self.calls = []
        if declared:
            self.command_environment = command_environment

    def __call__(self, argv, cwd=None, env=None, timeout=None):
        self.calls.append((list(argv), cwd, env))
        return 0, "", ""


def test_podman_compose_uses_the_server_for_a_console_script(compose_script, tmp_path):
    runner = RecordingRunner()
    compose = PodmanCompose(runner, compose_script)
    try:
        rc, out, _err = compose.call([compose_script, "up", "-d"], cwd=str(tmp_path), env={"PODOPS_TEST_VAR": "x"})
    finally:
        compose.close()

    assert rc == 0 and json.loads(out)["forked"] is True
    assert runner.calls == []


def test_podman_compose_runs_anything_else_as_a_program(tmp_path, compose_script, monkeypatch):
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {compose_script} "$@"\n')
    wrapper.chmod(0o755)
    runner = RecordingRunner()

    PodmanCompose(runner, str(wrapper)).call([str(wrapper), "up"], cwd=str(tmp_path), env={"A": "1"})
    monkeypatch.setenv(_forkserver.DISABLE_VARIABLE, "0")
    PodmanCompose(runner, compose_script).call([compose_script, "up"], cwd=str(tmp_path))

    assert runner.calls == [([str(wrapper), "up"], str(tmp_path), {"A": "1"}), ([compose_script, "up"], str(tmp_path), None)]


def test_podman_compose_falls_back_when_the_server_went_away(compose_script, tmp_path):
    runner = RecordingRunner()
    compose = PodmanCompose(runner, compose_script)
    server = compose.fork_server()
    assert server is not None
    server.close()

    assert compose.call([compose_script, "up"], cwd=str(tmp_path)) == (0, "", "")
    assert runner.calls == [([compose_script, "up"], str(tmp_path), None)]
    assert compose.fork_server() is None


def test_command_environment_is_run_commands(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/tmp/ansible_x/ansible_modlib.zip:/opt/lib")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")

    environ = command_environment({"PODOPS_SLOT": "a"})

    assert environ["PYTHONPATH"] == "/opt/lib"
    assert (environ["LANG"], environ["LC_ALL"], environ["PODOPS_SLOT"]) == ("C", "C", "a")


def test_a_runner_that_does_not_declare_its_environment_gets_no_server(compose_script, tmp_path):
    """podops-pull's runner drops INVOCATION_ID, for one: the server would not reproduce what it does."""
    runner = RecordingRunner(declared=False)
    compose = PodmanCompose(runner, compose_script)

    assert compose.call([compose_script, "up"], cwd=str(tmp_path)) == (0, "", "")
    assert runner.calls == [([compose_script, "up"], str(tmp_path), None)]
    assert compose.fork_server() is None


def test_the_server_uses_the_runners_environment(compose_script, tmp_path):
    runner = RecordingRunner()
    runner.command_environment = lambda env=None: {"PATH": os.environ["PATH"], "PODOPS_TEST_VAR": "from-the-runner", **(env or {})}
    compose = PodmanCompose(runner, compose_script)
    try:
        seen = json.loads(compose.call([compose_script, "up"], cwd=str(tmp_path))[1])
    finally:
        compose.close()

    assert (seen["var"], seen["lc_all"], seen["forked"]) == ("from-the-runner", None, True)


def test_podops_ansible_runner_is_known():
    from ansible_collections.podops.gitops.plugins.module_utils._forkserver import runner_environment
    from ansible_collections.podops.gitops.plugins.module_utils._module import make_runner

    assert runner_environment(make_runner(object())) is command_environment
    assert runner_environment(lambda args, cwd=None, env=None: (0, "", "")) is None
