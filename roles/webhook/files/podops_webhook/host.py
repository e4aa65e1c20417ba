# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the shim needs from the host, and the two ways it gets it.

The shim needs five things that belong to the user who owns podman (root by default): the service names
and images of the env repo checkout, the state file, the podops containers, the A/B marker that says which
slot is active, and deploy runs with their reports. Two implementations give them:

- ``LocalHost``: the shim reads them itself and runs the deploy commands itself. For a shim that runs as
  the user who owns podman (tests, a rootless host, ``podops_webhook_user: ""``).
- ``BrokerHost``: the shim is unprivileged and reads none of them. It asks the *run broker*
  (``broker.py``, root, socket-activated per connection by ``podops-run.socket``) over a Unix socket;
  the broker validates every request and answers from the very same ``LocalHost`` code.

``execute_step`` is the one place a deploy command is built and run, whoever runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import struct
import time
import typing as t
from dataclasses import dataclass

from . import gitinfo
from .config import Config
from .services import RUN_ID_RE, SERVICE_NAME_RE, Services
from .status import Containers, check_details, read_last_run, read_state

LOG = logging.getLogger("podops_webhook")
# Same rule as podops-pull's podops_run_id.
PACKAGE_RE = re.compile(r"^[^\x00-\x20\x7f]{1,255}$")
MAX_PACKAGES = 32
VIEW_CACHE_SECONDS = 2.0
# Frames on the broker socket: one type byte, a 4-byte big-endian length, the payload.
FRAME_OUTPUT = b"o"
FRAME_RESULT = b"r"
FRAME_HEADER = struct.Struct(">cI")
MAX_REQUEST_BYTES = 64 * 1024
MAX_RESULT_BYTES = 64 * 1024 * 1024

Sink = t.Callable[[bytes], None]


class RequestError(Exception):
    """A request the broker refuses; the message says what is wrong with it."""


@dataclass
class StepResult:
    rc: int
    error: str | None
    report: dict | None


def command_argv(config: Config, step_id: str, service: str | None) -> list[str]:
    """The argv of one step of a run: the reconcile, or the redeploy of one service. Fixed by the config;
    only the run id and a checked service name come from outside."""
    base = [*(config.redeploy_command if service else config.reconcile_command), "-e", "podops_trigger=webhook", "-e", f"podops_run_id={step_id}"]
    return [*base, "-e", f"podops_service={service}"] if service else base


def command_env(config: Config) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CREDENTIALS_DIRECTORY", None)  # the commands have no business with the webhook secret
    env.update(config.environment)
    return env


def read_report(state_dir: str, run_id: str) -> dict | None:
    try:
        with open(os.path.join(state_dir, "runs", f"{run_id}.json"), encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


async def run_command(argv: list[str], env: dict[str, str], timeout: float, sink: Sink) -> tuple[int, str | None]:
    """Run ``argv`` (no shell), its output to ``sink``; kill its whole process group after ``timeout``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a timeout kills the whole process group
        )
    except OSError as exc:
        sink(f"cannot start {argv[0]}: {exc.strerror}\n".encode())
        return 127, f"cannot start {argv[0]}: {exc.strerror}"

    async def pump() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            sink(chunk)

    try:
        await asyncio.wait_for(asyncio.gather(pump(), proc.wait()), timeout=timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        sink(f"\n[killed after {timeout:g}s (run_timeout_seconds)]\n".encode())
        return proc.returncode if proc.returncode is not None else -9, f"timed out after {timeout:g}s"
    return proc.returncode or 0, None


async def execute_step(config: Config, step_id: str, service: str | None, sink: Sink) -> StepResult:
    """Run one step of a run and read the run report it wrote."""
    argv = command_argv(config, step_id, service)
    sink(f"$ {' '.join(argv)}\n".encode())
    rc, error = await run_command(argv, command_env(config), config.run_timeout_seconds, sink)
    return StepResult(rc, error, read_report(config.state_dir, step_id))


def check_step(step_id: t.Any, service: t.Any) -> None:
    if not isinstance(step_id, str) or not RUN_ID_RE.fullmatch(step_id):
        raise RequestError("run_id must be letters, digits, . _ - (at most 64, not starting with '.')")
    if service is not None and (not isinstance(service, str) or not SERVICE_NAME_RE.fullmatch(service)):
        raise RequestError("service must be a service folder name (letters, digits, . _ -)")


def check_packages(packages: t.Any) -> list[str]:
    if not isinstance(packages, list) or not 0 < len(packages) <= MAX_PACKAGES or not all(isinstance(p, str) and PACKAGE_RE.fullmatch(p) for p in packages):
        raise RequestError(f"packages must be a list of 1 to {MAX_PACKAGES} image names without spaces or control characters")
    return packages


class Host:
    """The interface the HTTP handlers, the status page and the worker use."""

    async def names(self) -> list[str]:
        raise NotImplementedError

    async def exists(self, name: str) -> bool:
        raise NotImplementedError

    async def using(self, packages: list[str]) -> dict[str, list[str]]:
        raise NotImplementedError

    async def state(self) -> dict[str, dict]:
        raise NotImplementedError

    async def containers(self) -> tuple[dict[str, list[dict]], str | None]:
        """``({service: [container]}, error or None)``."""
        raise NotImplementedError

    async def marker(self) -> tuple[dict | None, str | None]:
        """The shim's A/B marker: ``(content or None when absent, error or None)``."""
        raise NotImplementedError

    async def details(self) -> dict[str, t.Any]:
        """What only the status page needs, checked (``status.check_details``): the host's last run, each
        service's published URLs, commit subjects, the git host's commit link."""
        raise NotImplementedError

    async def run(self, step_id: str, service: str | None, sink: Sink) -> StepResult:
        raise NotImplementedError


class LocalHost(Host):
    def __init__(self, config: Config, services: Services):
        self.config = config
        self.services = services
        self._containers = Containers(config)

    async def names(self) -> list[str]:
        return await asyncio.to_thread(self.services.names)

    async def exists(self, name: str) -> bool:
        return self.services.exists(name)

    async def using(self, packages: list[str]) -> dict[str, list[str]]:
        return await asyncio.to_thread(self.services.using, packages)  # reads every compose file: off the event loop

    async def state(self) -> dict[str, dict]:
        return read_state(self.config.state_dir)

    async def containers(self) -> tuple[dict[str, list[dict]], str | None]:
        found = await self._containers.by_service()
        return found, self._containers.error

    async def marker(self) -> tuple[dict | None, str | None]:
        try:
            with open(self.config.marker_path, encoding="utf-8") as handle:
                marker = json.load(handle)
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as exc:  # the detail is logged; /health shows none of it (see app.health)
            return None, f"A/B marker {self.config.marker_path} is unreadable: {exc}"
        return (marker, None) if isinstance(marker, dict) else (None, "the A/B marker is not a JSON object")

    async def details(self) -> dict[str, t.Any]:
        names = await self.names()
        state = await self.state()
        last_run = read_last_run(self.config.state_dir)
        shas = [entry.get("commit") for entry in state.values() if isinstance(entry, dict)]
        shas.append(last_run["commit"] if last_run else None)
        env = command_env(self.config)
        remote = await gitinfo.remote_url(self.config.repo_dir, env)
        return check_details(
            {
                "last_run": last_run,
                "urls": {name: urls for name in names if (urls := await asyncio.to_thread(self.services.urls, name))},
                "subjects": await gitinfo.subjects(self.config.repo_dir, [sha for sha in shas if isinstance(sha, str)], env),
                "commit_link_base": gitinfo.commit_link_base(remote),  # never the URL itself: it may hold a token
            }
        )

    async def view(self, details: bool = False) -> dict[str, t.Any]:
        """Everything but runs, in one answer (what the broker sends an unprivileged shim); the page's
        details only when asked (``/health`` does not need them)."""
        containers, containers_error = await self.containers()
        marker, marker_error = await self.marker()
        view = {
            "names": await self.names(),
            "state": await self.state(),
            "containers": containers,
            "containers_error": containers_error,
            "marker": marker,
            "marker_error": marker_error,
        }
        if details:
            view["details"] = await self.details()
        return view

    async def run(self, step_id: str, service: str | None, sink: Sink) -> StepResult:
        return await execute_step(self.config, step_id, service, sink)


async def write_frame(writer: asyncio.StreamWriter, kind: bytes, payload: bytes) -> None:
    writer.write(FRAME_HEADER.pack(kind, len(payload)) + payload)
    await writer.drain()


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind, size = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
    if size > MAX_RESULT_BYTES:
        raise ValueError(f"frame of {size} bytes is larger than {MAX_RESULT_BYTES}")
    return kind, await reader.readexactly(size)


class HostUnavailable(Exception):
    """What a webhook needs to know cannot be found out right now (HTTP 503: the git host retries)."""


class BrokerError(HostUnavailable):
    """The run broker could not be reached or gave no answer."""


class BrokerHost(Host):
    """Asks the root-side run broker over ``config.broker_socket``; the view is cached briefly, so a flood
    of /health requests costs the host at most one broker answer every VIEW_CACHE_SECONDS."""

    def __init__(self, config: Config):
        self.config = config
        self._view: dict[str, t.Any] | None = None
        self._view_error: str | None = None
        self._at = -VIEW_CACHE_SECONDS
        self._details = check_details({})
        self._details_at = -VIEW_CACHE_SECONDS
        self._lock = asyncio.Lock()

    async def _ask(self, request: dict, sink: Sink | None = None, timeout: float = 30.0) -> dict:
        """Send one request; relay output frames to ``sink``; return the result frame's JSON."""

        async def talk() -> dict:
            reader, writer = await asyncio.open_unix_connection(self.config.broker_socket, limit=MAX_REQUEST_BYTES)
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                while True:
                    kind, payload = await read_frame(reader)
                    if kind == FRAME_OUTPUT and sink is not None:
                        sink(payload)
                    elif kind == FRAME_RESULT:
                        answer = json.loads(payload)
                        if not isinstance(answer, dict):
                            raise ValueError("the answer is not a JSON object")
                        return answer
            finally:
                writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await writer.wait_closed()

        try:
            answer = await asyncio.wait_for(talk(), timeout=timeout)
        except TimeoutError:
            raise BrokerError(f"the run broker gave no answer within {timeout:g}s") from None
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            raise BrokerError(f"cannot talk to the run broker at {self.config.broker_socket}: {exc}") from None
        if answer.get("error"):
            raise BrokerError(f"the run broker refused the request: {answer['error']}")
        return answer

    async def view(self, details: bool = False) -> dict[str, t.Any]:
        async with self._lock:
            if details and time.monotonic() - self._details_at >= VIEW_CACHE_SECONDS:
                self._at = -VIEW_CACHE_SECONDS  # one answer with the details refreshes the plain view too
            if time.monotonic() - self._at >= VIEW_CACHE_SECONDS:
                try:
                    self._view = await self._ask({"op": "view", "details": True} if details else {"op": "view"})
                    if details:
                        self._details, self._details_at = check_details(self._view.pop("details", None)), time.monotonic()
                    if self._view_error:
                        LOG.info("the run broker answers again")
                    self._view_error = None
                except BrokerError as exc:
                    if str(exc) != self._view_error:  # once per new error, not once per /health request
                        LOG.warning("%s", exc)
                    self._view_error = str(exc)
                self._at = time.monotonic()
        if self._view is None:
            return {"names": [], "state": {}, "containers": {}, "containers_error": self._view_error, "marker": None, "marker_error": self._view_error}
        return self._view

    async def names(self) -> list[str]:
        return list((await self.view()).get("names") or [])

    async def details(self) -> dict[str, t.Any]:
        await self.view(details=True)
        return self._details

    async def exists(self, name: str) -> bool:
        view = await self.view()
        if self._view_error and self._view is None:
            raise HostUnavailable("the run broker does not answer; the service name cannot be checked now")
        return SERVICE_NAME_RE.fullmatch(name) is not None and name in (view.get("names") or [])

    async def using(self, packages: list[str]) -> dict[str, list[str]]:
        return (await self._ask({"op": "using", "packages": packages})).get("using") or {}

    async def state(self) -> dict[str, dict]:
        return (await self.view()).get("state") or {}

    async def containers(self) -> tuple[dict[str, list[dict]], str | None]:
        view = await self.view()
        return view.get("containers") or {}, view.get("containers_error")

    async def marker(self) -> tuple[dict | None, str | None]:
        view = await self.view()
        if view.get("marker_error"):
            return None, "the run broker could not say which slot is active (see the shim's log)"
        return view.get("marker"), None

    async def run(self, step_id: str, service: str | None, sink: Sink) -> StepResult:
        # The broker enforces run_timeout_seconds itself and answers with the exit status; the margin covers
        # its start-up and the report it sends.
        try:
            answer = await self._ask({"op": "run", "run_id": step_id, "service": service}, sink, timeout=self.config.run_timeout_seconds + 60)
        except BrokerError as exc:
            sink(f"{exc}\n".encode())
            return StepResult(126, str(exc), None)
        rc = answer.get("rc")
        report = answer.get("report")
        return StepResult(rc if isinstance(rc, int) else 126, answer.get("step_error"), report if isinstance(report, dict) else None)


def make_host(config: Config, services: Services | None) -> Host:
    if config.broker_socket:
        return BrokerHost(config)
    if services is None:
        raise ValueError("a shim without broker_socket reads the services itself")
    return LocalHost(config, services)
