# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m podops_webhook --config FILE [--slot a|b] [--check-config]``

Exit codes: 0 after a clean stop (SIGTERM/SIGINT drain), 2 for a configuration error (the message says
what to fix), 1 when the listen address cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web

from . import __version__, logs
from .app import create_app
from .config import Config, ConfigError, load
from .host import Host, make_host
from .services import SLOTS, CollectionMissing, Services, import_compose
from .store import Store
from .worker import Worker

LOG = logging.getLogger("podops_webhook")
LINGER_SECONDS = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podops_webhook", description="podops webhook shim: git-host webhooks -> podops reconcile")
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--slot", choices=SLOTS, help="A/B slot of this instance (podops-webhook@a|b)")
    parser.add_argument("--check-config", action="store_true", help="validate the config and its secret files, then exit")
    parser.add_argument("--version", action="version", version=__version__)
    return parser


async def serve(config: Config, host: Host) -> int:
    store = Store(config.db_path, keep_days=config.delivery_keep_days, max_deliveries=config.max_deliveries)
    stale = store.close_stale_runs(config.slot)
    if stale:
        LOG.warning("marked %d run(s) of an earlier process of this slot as interrupted", stale)
    worker = Worker(config, store, host)
    app = create_app(config, store, worker, host)
    # keepalive_timeout is also aiohttp's clock from a connection's start (or its last answer) to complete
    # request headers: a client that trickles them is cut off then (the header read timeout). After an answer
    # that left a body unread (408, 413, 401 before the end), aiohttp reads and drops the rest for at most
    # lingering_time before it closes.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=config.header_timeout_seconds, lingering_time=LINGER_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, shutdown_timeout=5)
    try:
        await site.start()
    except OSError as exc:
        print(f"podops-webhook: cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr)
        await runner.cleanup()
        return 1
    for warning in config.warnings:
        LOG.warning("config: %s", warning)
    if config.seed_routes:
        LOG.info("seed routes on: POST /deploy-all-changed and /redeploy-and-update/{service} (GitHub-style signature)")
    if not config.loopback and config.status_token is None:
        LOG.warning("listening on %s without status_token_file: the status page and API answer loopback clients only", config.host)
    LOG.info("podops webhook %s listening on http://%s:%d (slot %s, state %s)", __version__, config.host, config.port, config.slot or "-", config.state_dir)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker_task = asyncio.create_task(worker.run_forever())
    await stop.wait()
    LOG.info("stopping: draining (health 503, new webhooks refused, the run in progress finishes)")
    await worker.drain()
    worker_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker_task
    await runner.cleanup()
    store.close()
    LOG.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(logging.INFO)
    try:
        config = load(args.config, args.slot)
        # An unprivileged shim reads no compose file: the run broker does, as the user who owns podman.
        services = None if config.broker_socket else Services(config.services_root, import_compose(config.collections_path))
    except (ConfigError, CollectionMissing) as exc:
        print(f"podops-webhook: config error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        where = f"runs through the broker at {config.broker_socket}" if services is None else f"{len(services.names())} services in {config.services_root}"
        print(f"podops-webhook: {args.config} is valid (listen {config.host}:{config.port}, {where})")
        return 0
    return asyncio.run(serve(config, make_host(config, services)))


if __name__ == "__main__":
    sys.exit(main())
