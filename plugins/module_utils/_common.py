# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared names of the podops core.

PRIVATE to the podops.gitops collection: no API guarantee for other code.
"""

from __future__ import annotations

import datetime
import re
import typing as t

LABEL_SERVICE = "io.podops.service"
LABEL_DIGEST = "io.podops.digest"
LABEL_COMMIT = "io.podops.commit"
LABEL_PREFIX = "io.podops.prefix"
LABEL_IMAGE = "io.podops.image"
LABEL_SWITCH = "io.podops.switch"  # a standalone ab_switch's name (not a reconciled service)
LABEL_SLOT = "io.podops.slot"  # a/b: the blue-green slot a container belongs to
LABEL_COMPOSE_PROJECT = "io.podman.compose.project"
LABEL_COMPOSE_SERVICE = "com.docker.compose.service"

COMPOSE_FILE_NAMES = (
    "podman-compose.yml",
    "podman-compose.yaml",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
)

MIN_PODMAN_VERSION = (4, 0, 0)
MIN_PODMAN_COMPOSE_VERSION = (1, 1, 0)

# A service name is one directory name: no separators, no dot-dirs, nothing a shell or a path could abuse.
SERVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

# The runner every part of the core shells out through: ``runner(argv, cwd=None, env=None, timeout=None)``
# -> (rc, stdout, stderr); it raises CommandTimeout when the command outlives ``timeout`` seconds (after
# ending its process group). The modules and podops-pull pass _process.run_process with their environment;
# tests pass a subprocess wrapper.
Runner = t.Callable[..., tuple[int, str, str]]


class PodopsError(Exception):
    """An error a user can act on; the message says what is wrong and how to fix it."""


# Time limits (seconds) of the commands podops runs; a service's ``x-podops.timeouts`` overrides them.
# pull: ``podman pull`` of one image (large images take minutes); up: ``podman-compose up``; down: stopping
# and removing containers (``podman stop``/``rm``); healthcheck: one ``podman healthcheck run``; reload: a
# blue-green reload command; podman: every other podman (and podman-compose) call, git included.
TIMEOUT_DEFAULTS: dict[str, float] = {"pull": 900.0, "up": 300.0, "down": 300.0, "podman": 60.0, "healthcheck": 60.0, "reload": 60.0}
# A runner asked to run a command without a stated limit still gives it one.
FALLBACK_TIMEOUT = 300.0


class CommandTimeout(PodopsError):
    """A command ran longer than its time limit; its processes (its whole process group) were ended."""

    def __init__(self, command: str, timeout: float):
        self.command = command
        self.timeout = timeout
        super().__init__(f"'{command}' timed out after {timeout:g}s; its processes were ended")


# The words that name what a command does (``podman healthcheck run``, ``podman-compose up``, ``git ls-files``).
_VERBS = frozenset(
    {
        *("up", "down", "pull", "push", "build", "config", "ps", "rm", "stop", "start", "restart", "kill", "tag", "run", "exec"),
        *("logs", "inspect", "image", "pod", "network", "volume", "healthcheck", "version"),
        *("rev-parse", "ls-files", "fetch", "reset", "clone", "diff", "is-active", "daemon-reload", "reload", "status"),
    }
)


def command_name(argv: t.Sequence[str]) -> str:
    """A short name of a command for messages: the program and what it was asked to do, never its arguments
    (paths, images, secrets): ``podman-compose up``, ``podman healthcheck run``, ``nginx``."""
    if not argv:
        return "(empty command)"
    words = [str(argv[0]).rsplit("/", 1)[-1]]
    words += [str(arg) for arg in argv[1:] if str(arg) in _VERBS][:2]
    return " ".join(words)


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_version(text: str) -> tuple[int, ...]:
    """First dotted version number found in ``text`` (``podman version 4.3.1`` -> (4, 3, 1))."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        return ()
    return tuple(int(part) for part in match.groups(default="0"))


def version_str(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


# podman's complaints on hosts without systemd that say nothing about the failure at hand.
_NOISE = ("unable to get systemd connection", "Removing timer for container", "failed to connect to syslog")


def last_lines(text: str, count: int = 5) -> str:
    """The last ``count`` meaningful lines of a tool's output, for error messages."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip() and not any(noise in line for noise in _NOISE)]
    return "\n".join(lines[-count:])
