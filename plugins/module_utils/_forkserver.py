# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fork server for podman-compose: Python start-up and ``import podman_compose`` once per run, not per call.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

Starting podman-compose costs about 0.3 CPU-seconds before it does anything (the interpreter, then
``import podman_compose`` with asyncio, yaml and dotenv); a first deploy runs it once per service. The
server is started once per run with the interpreter of the podman-compose console script, imports
``podman_compose`` once and, per call, forks a child that does what the console script does
(``sys.exit(main())``) with the call's argv, working directory and environment, its stdout and stderr
in files. The server is single-threaded (forking is safe), forks from a state in which podman-compose
never ran (its module-level ``PodmanCompose`` instance is pristine in every child; ``random`` reseeds
after a fork), and exits when its request pipe closes: when the run ends, however it ends.

Only a pip console script (``from podman_compose import main`` / ``sys.exit(main())`` under a plain
``#!/path/to/python`` line) is served this way; anything else (a shell wrapper, a zipapp) is run as a
program, as is everything when the server cannot start. ``PODOPS_COMPOSE_FORK_SERVER=0`` turns it off.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
import typing as t

from ._common import TIMEOUT_DEFAULTS, CommandTimeout, command_name
from ._process import GRACE, end_process_group

# What the Ansible runner (plugins/module_utils/_module.py make_runner) adds to every command's environment.
C_LOCALE = {"LC_ALL": "C", "LANG": "C"}
DISABLE_VARIABLE = "PODOPS_COMPOSE_FORK_SERVER"

# The console script pip writes for podman-compose (its entry point ``podman_compose:main``).
_CONSOLE_SCRIPT = re.compile(r"^from podman_compose import main\s*$.*^\s*sys\.exit\(main\(\)\)\s*$", re.MULTILINE | re.DOTALL)

# Runs in podman-compose's own interpreter: ``python -c SERVER <podman-compose script>``; stdin = requests
# (one JSON object a line), stdout = answers (``ready``/``fail`` first, then ``<id> pid <pid>`` when a
# call started, ``<id> <rc>`` or ``<id> spawn-failed`` a line). Each call's child leads a session (a
# process group) of its own, so that a call that outlives its time limit is ended with all it started.
# Plain Python 3.6+ without annotations: that interpreter may be older.
SERVER = r'''# podops podman-compose fork server
import json, os, re, select, signal, sys, traceback


def run_child(entry, request):
    """In the forked child: what the console script does, with this call's argv, cwd and environment."""
    for name in ("out", "err"):
        fd = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1 if name == "out" else 2)
        os.close(fd)
    cwd = request.get("cwd")
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(request["env"])
    argv = list(request["argv"])
    argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", argv[0])
    sys.argv = argv
    try:
        code = entry()
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write("%s\n" % (code,))
        code = 1
    flush()
    return code & 0xFF


def flush():
    if "logging" in sys.modules:
        try:
            sys.modules["logging"].shutdown()
        except Exception:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def exit_code(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def main():
    script = sys.argv[1]
    requests, answers = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    # What the interpreter does for a script: argv[0] and sys.path[0] are the script's.
    sys.argv = [script]
    if sys.path and sys.path[0] == "":
        sys.path[0] = os.path.dirname(os.path.realpath(script))
    try:
        import podman_compose
        entry = podman_compose.main
        version = getattr(podman_compose, "__version__", "?")
    except BaseException as exc:
        os.write(answers, ("fail %s: %s\n" % (type(exc).__name__, exc)).replace("\n", " ").encode() + b"\n")
        return 1
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    os.write(answers, ("ready %s\n" % version).encode())
    jobs = {}
    pending = b""
    while True:
        ready = select.select([requests, wake_r], [], [])[0]
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        while jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in jobs:
                os.write(answers, ("%s %d\n" % (jobs.pop(pid), exit_code(status))).encode())
        if requests not in ready:
            continue
        data = os.read(requests, 65536)
        if not data:
            return 0  # the run is over (or gone): calls still running finish on their own
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line.decode("utf-8", "surrogateescape"))
            try:
                pid = os.fork()
            except OSError:
                os.write(answers, ("%s spawn-failed\n" % request["id"]).encode())
                continue
            if pid == 0:
                code = 1
                try:
                    os.setsid()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for fd in (requests, answers, wake_r, wake_w):
                        os.close(fd)
                    code = run_child(entry, request)
                except BaseException:
                    try:
                        traceback.print_exc()
                        flush()
                    except BaseException:
                        pass
                os._exit(code)
            jobs[pid] = request["id"]
            os.write(answers, ("%s pid %d\n" % (request["id"], pid)).encode())


sys.exit(main())
'''


class Unavailable(Exception):
    """The server cannot take this call; nothing of it ran (run it as a program instead)."""


def console_script_interpreter(executable: str) -> str | None:
    """The interpreter of ``executable`` when it is podman-compose's pip console script and that interpreter
    exists; else None (a wrapper, a zipapp, a ``/usr/bin/env`` line: run it as a program)."""
    try:
        with open(executable, "rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    first, _sep, rest = head.partition("\n")
    match = re.match(r"#!\s*(/\S+)\s*$", first)
    if not match or not _CONSOLE_SCRIPT.search(rest):
        return None
    interpreter = match.group(1)
    if not re.match(r"python[0-9.]*$", os.path.basename(interpreter)) or not os.access(interpreter, os.X_OK):
        return None
    return interpreter


def command_environment(env: t.Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``AnsibleModule.run_command`` gives a command through podops' runner: this process's,
    the C locale, ``env``, and PYTHONPATH without AnsiballZ's own entries."""
    environ = dict(os.environ)
    environ.update(C_LOCALE)
    environ.update(env or {})
    if "PYTHONPATH" in environ:
        paths = [p for p in environ["PYTHONPATH"].split(":") if p and not p.endswith("/ansible_modlib.zip") and not p.endswith("/debug_dir")]
        if paths:
            environ["PYTHONPATH"] = ":".join(paths)
    return environ


def runner_environment(runner: t.Any) -> t.Callable[[t.Mapping[str, str] | None], dict[str, str]] | None:
    """How ``runner`` builds a command's environment, when it declares it as its ``command_environment``
    attribute (env -> full environment), as podops' Ansible runner (``make_runner``) and the fast lane's
    (``_lane.process_runner``) do. None for any other runner: its commands may get an environment the server
    would not reproduce, so none is served."""
    declared = getattr(runner, "command_environment", None)
    return declared if callable(declared) else None


def enabled() -> bool:
    return os.environ.get(DISABLE_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")


class ForkServer:
    """One podman-compose fork server; ``run`` is a Runner (argv, cwd, env) -> (rc, stdout, stderr) that
    threads may call at once. Started by ``start``; stops with ``close`` or when this process ends."""

    def __init__(
        self,
        executable: str,
        interpreter: str,
        environment: t.Callable[[t.Mapping[str, str] | None], dict[str, str]] = command_environment,
        start_timeout: float = 60.0,
    ):
        self.executable = executable
        self.interpreter = interpreter
        self.environment = environment  # a call's env -> the whole environment its command gets
        self.start_timeout = start_timeout
        self.version = ""
        self._proc: subprocess.Popen | None = None
        self._tmp: str | None = None
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._done = threading.Condition()
        self._results: dict[str, str] = {}
        self._pids: dict[str, int] = {}  # calls running: request id -> pid (= process group) of its child
        self._dead = False
        self._reader: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and not self._dead

    def start(self) -> None:
        """Start the server and wait until podman-compose is imported; Unavailable when it cannot be."""
        self._tmp = tempfile.mkdtemp(prefix="podops-compose-")
        try:
            self._proc = subprocess.Popen(
                [self.interpreter, "-c", SERVER, self.executable],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=self.environment(None),
                close_fds=True,
            )
        except OSError as exc:
            self.close()
            raise Unavailable(f"could not start {self.interpreter}: {exc}") from exc
        atexit.register(self.close)
        stdout = t.cast(t.IO[bytes], self._proc.stdout)
        deadline = time.monotonic() + self.start_timeout
        line = b""
        poller = select.poll()  # not select(): this process may hold more than FD_SETSIZE files
        poller.register(stdout.fileno(), select.POLLIN)
        while not line.endswith(b"\n"):
            if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                self.close()
                raise Unavailable(f"podman-compose did not load within {self.start_timeout:g}s")
            chunk = os.read(stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
        word, _sep, rest = line.decode("utf-8", "replace").strip().partition(" ")
        if word != "ready":
            self.close()
            raise Unavailable(f"podman-compose could not be loaded by {self.interpreter}: {rest or 'no answer'}")
        self.version = rest
        self._reader = threading.Thread(target=self._read_answers, args=(stdout,), name="podops-compose-answers", daemon=True)
        self._reader.start()

    def _read_answers(self, stdout: t.IO[bytes]) -> None:
        for raw in iter(stdout.readline, b""):
            request_id, _sep, result = raw.decode("utf-8", "replace").strip().partition(" ")
            with self._done:
                if result.startswith("pid "):
                    self._pids[request_id] = int(result[4:])
                else:
                    self._pids.pop(request_id, None)
                    self._results[request_id] = result
                self._done.notify_all()
        with self._done:
            self._dead = True
            self._done.notify_all()

    def run(
        self, args: t.Sequence[str], cwd: str | None = None, env: t.Mapping[str, str] | None = None, timeout: float = TIMEOUT_DEFAULTS["podman"]
    ) -> tuple[int, str, str]:
        """Run one call; CommandTimeout after ``timeout`` seconds, once the call's process group was ended."""
        if not self.alive or self._tmp is None or self._proc is None or self._proc.stdin is None:
            raise Unavailable("the podman-compose fork server is not running")
        request_id = str(next(self._ids))
        out, err = (os.path.join(self._tmp, f"{request_id}.{name}") for name in ("out", "err"))
        request = {
            "id": request_id,
            "argv": [str(arg) for arg in args],
            "cwd": os.path.abspath(cwd) if cwd else None,
            "env": self.environment(env),
            "out": out,
            "err": err,
        }
        line = json.dumps(request).encode("utf-8", "surrogateescape") + b"\n"
        try:
            with self._write_lock:
                self._proc.stdin.write(line)
                self._proc.stdin.flush()
        except (OSError, ValueError) as exc:
            with self._done:
                self._dead = True
            raise Unavailable(f"the podman-compose fork server is gone: {exc}") from exc
        deadline = time.monotonic() + timeout
        with self._done:
            while request_id not in self._results and not self._dead and time.monotonic() < deadline:
                self._done.wait(max(0.0, deadline - time.monotonic()))
            timed_out = request_id not in self._results and not self._dead
        if timed_out:
            self._end(request_id)
            _take(out), _take(err)
            raise CommandTimeout(command_name(args), timeout)
        with self._done:
            result = self._results.pop(request_id, None)
        if result == "spawn-failed":
            raise Unavailable("the podman-compose fork server could not fork")
        stdout, stderr = _take(out), _take(err)
        if result is None:
            # It may have run, or part of it: report a failure rather than run it a second time.
            return 1, stdout, stderr + "\npodops: the podman-compose fork server exited during this call"
        return int(result), stdout, stderr

    def _end(self, request_id: str) -> None:
        """End a call that outlived its limit: its child's process group, then wait for the server's answer."""
        with self._done:
            pid = self._pids.get(request_id)
            if pid is None:  # forked but not announced yet: the answer is on its way
                self._done.wait_for(lambda: request_id in self._pids or request_id in self._results or self._dead, timeout=GRACE)
                pid = self._pids.get(request_id)
        if pid is not None:
            end_process_group(pid, gone=lambda: request_id in self._results or self._dead)
        with self._done:
            self._done.wait_for(lambda: request_id in self._results or self._dead, timeout=GRACE)
            self._results.pop(request_id, None)
            self._pids.pop(request_id, None)

    def close(self) -> None:
        """Stop the server (its request pipe closes: it exits) and remove its files."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError, ValueError):
                t.cast(t.IO[bytes], proc.stdin).close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if self._reader is not None:
                self._reader.join(timeout=5)
            if self._reader is None or not self._reader.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    t.cast(t.IO[bytes], proc.stdout).close()
        with self._done:
            self._dead = True
            self._done.notify_all()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


def _take(path: str) -> str:
    """A call's captured output as run_command returns it (text, undecodable bytes kept), then removed."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return ""
    with contextlib.suppress(OSError):
        os.unlink(path)
    return data.decode("utf-8", "surrogateescape")
