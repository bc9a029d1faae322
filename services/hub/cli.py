"""`hanport hub ...`: the fleet hub's tools.

    hanport hub init                      create (or update) the R3 stream over `hanport.>`
    hanport hub sink                      run a sink worker (start several to scale out)
    hanport hub keys FILE                 new fleet keys (operator, accounts, signing key) in FILE
    hanport hub server-config FILE        the operator-mode lines of every hub node's config
    hanport hub box-creds FILE BOX        a box's .creds (publish only under hanport.<BOX>.>)
    hanport hub service-creds FILE NAME   .creds for the hub's own workers (init, sink)

`init` and `sink` are configured by `HANPORT_HUB_*` environment variables (docs/fleet.md). FILE
holds the fleet's private keys: keep it off the hub nodes, readable only by who provisions boxes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from services.uplink.connection import Endpoint, connect_nats
from services.uplink.messages import check_box
from shared.log import setup_logging
from shared.metrics import serve_metrics
from shared.service import run
from shared.settings import load_settings

from .credentials import Fleet
from .pgwriter import FleetPostgresWriter
from .settings import HubSettings
from .sink import SinkWorker
from .stream import ensure_hub_stream, hub_stream_config
from .writer import Fanout, FleetLineWriter, Writer

log = logging.getLogger("services.hub")


def endpoint(settings: HubSettings, name: str) -> Endpoint:
    return Endpoint(
        urls=settings.urls(), creds_file=settings.hub_creds_file, ca_file=settings.hub_ca_file,
        name=name, stage="hub",
    )  # fmt: skip


async def init(settings: HubSettings) -> str:
    nc = await connect_nats(endpoint(settings, "hanport-hub-init"))
    try:
        config = hub_stream_config(
            settings.hub_replicas, settings.hub_max_age_days, settings.hub_duplicate_window
        )
        return await ensure_hub_stream(nc.jetstream(), config)
    finally:
        await nc.close()


async def sink(settings: HubSettings) -> None:
    nc = await connect_nats(endpoint(settings, f"hanport-sink-{settings.hub_sink_name}"))
    writers: list[Writer] = []
    if settings.hub_victoriametrics_url:
        writers.append(FleetLineWriter(settings.hub_victoriametrics_url, settings.hub_database))
    dsn = settings.postgres_dsn()
    if dsn:
        writers.append(FleetPostgresWriter(dsn))
    if not writers:
        log.info("no store set (HANPORT_HUB_VICTORIAMETRICS_URL, HANPORT_HUB_POSTGRES_DSN): "
                 "keeping the fleet view only")  # fmt: skip
    writer = Fanout(writers) if writers else None
    worker = SinkWorker(nc, writer, settings.hub_sink_durable, settings.hub_sink_batch)
    await worker.run()


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hanport hub", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create or update the hub stream (HANPORT_HUB_*)")
    sub.add_parser("sink", help="run a sink worker (HANPORT_HUB_*)")
    keys = sub.add_parser("keys", help="make new fleet keys")
    keys.add_argument("file", type=Path)
    config = sub.add_parser("server-config", help="print the hub nodes' operator-mode lines")
    config.add_argument("file", type=Path)
    box = sub.add_parser("box-creds", help="print a box's .creds")
    box.add_argument("file", type=Path)
    box.add_argument("box")
    service = sub.add_parser("service-creds", help="print .creds for the hub's workers")
    service.add_argument("file", type=Path)
    service.add_argument("name")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command in ("init", "sink"):
        settings = load_settings(HubSettings)
        setup_logging(f"hub {args.command}", settings.log_level, settings.log_format)
        if args.command == "init":
            print(f"stream HANPORT {asyncio.run(init(settings))}")
            return 0
        serve_metrics(settings.metrics_port, settings.metrics_host)
        return run(lambda: sink(settings))
    if args.command == "keys":
        try:
            write_private(args.file, Fleet.new().to_json())
        except FileExistsError:
            print(f"hanport hub keys: {args.file} exists; not overwritten", file=sys.stderr)
            return 1
        print(f"new fleet keys in {args.file} (mode 600): keep it secret")
        return 0
    fleet = Fleet.from_json(args.file.read_text())
    if args.command == "server-config":
        print(fleet.server_config(), end="")
    elif args.command == "box-creds":
        try:
            print(fleet.box_creds(check_box(args.box)), end="")
        except ValueError as error:
            print(f"hanport hub box-creds: {error}", file=sys.stderr)
            return 2
    else:
        print(fleet.service_creds(args.name), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
