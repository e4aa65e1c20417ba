# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run broker: the root side of an unprivileged shim.

``python -m podops_webhook.broker --config FILE``, started by systemd once per connection
(``podops-run.socket`` with ``Accept=yes``: the connection is standard input and output). Only the shim's
user may connect (``SocketGroup=``, ``SocketMode=0660``). It reads one request line and answers it:

- ``{"op": "view"}``: service names, the state file, the podops containers, the shim's A/B marker;
  with ``"details": true`` also what only the status page shows (a summary of the host's last run,
  published URLs, commit subjects, the commit link of the git host - never the remote URL itself);
- ``{"op": "using", "packages": [...]}``: which services run an image of those packages;
- ``{"op": "run", "run_id": ID, "service": NAME|null}``: one step of a run (the reconcile, or the
  redeploy of one service), its output streamed back, then the exit status and the run report.

The shim is treated as untrusted: the request is size- and time-limited and checked field by field; the
command is the one the root-owned config file names (never one from the request); a service must exist
in the env repo; the run's own time limit is enforced here, whatever the shim does. A refused request is
answered ``{"error": ...}`` and changes nothing. Answers are frames (``host.FRAME_HEADER``), so nothing a
deploy prints can pass for the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
import typing as t

from . import logs
from .config import ConfigError, load
from .host import (
    FRAME_HEADER,
    FRAME_OUTPUT,
    FRAME_RESULT,
    MAX_REQUEST_BYTES,
    LocalHost,
    RequestError,
    check_packages,
    check_step,
    execute_step,
    write_frame,
)
from .services import CollectionMissing, Services, import_compose

LOG = logging.getLogger("podops_webhook.broker")
REQUEST_TIMEOUT_SECONDS = 10.0


def parse_request(line: bytes) -> dict[str, t.Any]:
    """The request, checked; RequestError says what is wrong with it."""
    if not line.endswith(b"\n"):
        raise RequestError(f"the request must be one JSON line of at most {MAX_REQUEST_BYTES} bytes")
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        raise RequestError("the request is not JSON") from None
    if not isinstance(request, dict):
        raise RequestError("the request must be a JSON object")
    op = request.get("op")
    allowed = {"view": {"op", "details"}, "using": {"op", "packages"}, "run": {"op", "run_id", "service"}}
    if op not in allowed:
        raise RequestError(f"op must be one of {', '.join(sorted(allowed))}")
    extra = sorted(set(request) - allowed[op])
    if extra:
        raise RequestError(f"unknown field {extra[0]!r} for op {op}")
    if op == "view" and not isinstance(request.get("details", False), bool):
        raise RequestError("details must be true or false")
    if op == "using":
        check_packages(request.get("packages"))
    if op == "run":
        check_step(request.get("run_id"), request.get("service"))
    return request


async def answer(host: LocalHost, request: dict[str, t.Any], writer: asyncio.StreamWriter) -> None:
    op = request["op"]
    if op == "view":
        result: dict[str, t.Any] = await host.view(details=request.get("details") is True)
    elif op == "using":
        result = {"using": await host.using(request["packages"])}
    else:
        service = request.get("service")
        if service is not None and not await host.exists(service):
            raise RequestError(f"no service {service!r} in the env repo")

        def relay(chunk: bytes) -> None:
            # When the shim has gone away the run still finishes, under its own time limit.
            if not writer.transport.is_closing():
                writer.write(FRAME_HEADER.pack(FRAME_OUTPUT, len(chunk)) + chunk)

        LOG.info("run %s%s requested", request["run_id"], f" (redeploy {service})" if service else "")
        step = await execute_step(host.config, request["run_id"], service, relay)
        LOG.info("run %s exited with %s", request["run_id"], step.rc)
        result = {"rc": step.rc, "step_error": step.error, "report": step.report}
    await write_frame(writer, FRAME_RESULT, json.dumps(result).encode())


async def serve_connection(host: LocalHost, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    try:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=REQUEST_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RequestError(f"no request within {REQUEST_TIMEOUT_SECONDS:g}s") from None
        except ValueError:  # longer than the reader's limit
            raise RequestError(f"the request must be one JSON line of at most {MAX_REQUEST_BYTES} bytes") from None
        request = parse_request(line)
        await answer(host, request, writer)
        return 0
    except RequestError as exc:
        LOG.warning("request refused: %s", logs.clean(exc, limit=500))  # the request came from the less trusted side
        await write_frame(writer, FRAME_RESULT, json.dumps({"error": str(exc)}).encode())
        return 2
    finally:
        try:
            await writer.drain()
            writer.close()
        except (OSError, ConnectionError):
            pass


async def _main(config_path: str) -> int:
    config = load(config_path, None, broker=True)
    host = LocalHost(config, Services(config.services_root, import_compose(config.collections_path)))
    sock = socket.socket(fileno=sys.stdin.fileno())
    reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_REQUEST_BYTES)
    return await serve_connection(host, reader, writer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="podops_webhook.broker", description="podops run broker: one request of the unprivileged shim")
    parser.add_argument("--config", required=True, help="the shim's YAML config file (root-owned)")
    args = parser.parse_args(argv)
    logs.setup(logging.INFO)
    try:
        return asyncio.run(_main(args.config))
    except (ConfigError, CollectionMissing) as exc:
        print(f"podops-run: config error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"podops-run: standard input is not the connection socket ({exc.strerror}); start it from podops-run.socket", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
