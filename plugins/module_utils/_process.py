# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one external command with a time limit - the one place podops starts a program.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

Every command runs in a process group of its own (a new session). When it outlives its limit, the whole
group gets SIGTERM, then SIGKILL after a grace period: ``podman-compose up`` starts podman processes of its
own, and ending only the first process would leave them holding the output pipes (and the run waiting).
``AnsibleModule.run_command`` can do neither (no time limit, no process group), so both podops runners - the
module's (``_module.make_runner``) and podops-pull's (``_lane.process_runner``) - run commands through
``run_process`` with the environment ``run_command`` would give them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import typing as t

from ._common import CommandTimeout, command_name

GRACE = 5.0  # seconds between SIGTERM and SIGKILL


def end_process_group(pgid: int, grace: float = GRACE, gone: t.Callable[[], bool] | None = None) -> None:
    """SIGTERM to process group ``pgid``, SIGKILL after ``grace`` seconds unless ``gone()`` says it ended."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if gone is not None and gone():
            break
        time.sleep(0.05)
    # Whatever of the group is left (a leader that ended may leave children behind).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_process(
    args: t.Sequence[str],
    cwd: str | None = None,
    env: t.Mapping[str, str] | None = None,
    timeout: float | None = None,
    grace: float = GRACE,
) -> tuple[int, str, str]:
    """``(rc, stdout, stderr)`` of ``args`` (no shell); raises CommandTimeout after ``timeout`` seconds,
    once its process group has been ended. A program that cannot be started gives rc 127."""
    argv = [str(arg) for arg in args]
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        return 127, "", f"cannot run {argv[0]}: {exc.strerror}"
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_process_group(proc.pid, grace, gone=lambda: proc.poll() is not None)
        try:
            proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            # Something left the group and holds the pipes: stop reading; the command itself is gone.
            for stream in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    t.cast(t.IO[bytes], stream).close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        raise CommandTimeout(command_name(argv), t.cast(float, timeout)) from None
    return proc.returncode, out.decode("utf-8", "surrogateescape"), err.decode("utf-8", "surrogateescape")
