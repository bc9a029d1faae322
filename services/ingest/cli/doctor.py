"""`hanport doctor [--seconds S] [--listen]`: why data does or does not arrive, on one screen.

Reads the same `HANPORT_*` settings as the services. Checks, each answered `ok` or `FAIL` with
the fix to apply: the meter source (opened or why not, bytes seen, line settings found, frames
and protocol, CRCs, encryption without a key), Redis, and the licenses the licensing service
recorded in Redis (`note`: reported, not deciding the exit status).

The meter side: while the ingest service runs it holds the port, so its status in Redis
(`services/ingest/status.py`, fresh within `FRESH_SECONDS`) is reported; otherwise, or with
`--listen`, the doctor opens the source itself and listens up to `--seconds` (less once a few
frames came). Exit status: 0 when readings decode and Redis answers, 1 otherwise, 2 on bad
settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.entitlements import FEATURES, decode_record, record_key
from shared.ingest_status import FRESH_SECONDS, STATUS_KEY, is_fresh, read_status
from shared.log import redact_url
from shared.settings import load_settings
from shared.stream import REDIS_DOWN, redis_client

from ..codec.factory import make_decoder
from ..diagnosis import Finding, Tally, finding, source_findings
from ..settings import IngestSettings
from ..sources import open_source
from ..sources.line_settings import DETECT_SECONDS, LINE_SETTINGS
from ..sources.spec import Source
from ..sources.status import SourceStatus

NOTES = ("ingest", "license")  # checks reported that do not decide the exit status
ENOUGH_FRAMES = 3  # frames (good or bad) after which listening stops early
LISTEN_SECONDS = 30.0
DETECT_ALL_SECONDS = len(LINE_SETTINGS) * DETECT_SECONDS + LISTEN_SECONDS
LICENSE_FIX = "install a license: docs/licensing.md (`curl -s localhost:8090/license` says more)"


@dataclass
class Report:
    meter: list[Finding] = field(default_factory=list)
    others: list[Finding] = field(default_factory=list)
    data_flows: bool = False


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hanport doctor",
        description="Check why meter data does or does not arrive, and say what to fix.",
    )
    p.add_argument(
        "--seconds",
        type=float,
        help=f"listen this long at most (default {LISTEN_SECONDS:g}; a bare device path: "
        f"{DETECT_ALL_SECONDS:g}, time to try every line setting)",
    )
    p.add_argument(
        "--listen",
        action="store_true",
        help="open the source even when a running ingest service reports on it",
    )
    return p


async def listen(source: Source, settings: IngestSettings, seconds: float) -> Tally:
    """Read `source` until a few frames came, it failed to open, or `seconds` passed."""
    decoder = make_decoder(settings.decoder_options())
    tally = Tally()
    status: SourceStatus | None = getattr(source, "status", None)

    async def read() -> None:
        chunks = cast(AsyncGenerator[bytes, None], source.chunks())
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                tally.bytes += len(chunk)
                tally.count(decoder.feed(chunk, int(time.time() * 1000)))
                if decoder.protocol != "auto":
                    tally.protocol = decoder.protocol
                if sum(tally.results.values()) >= ENOUGH_FRAMES:
                    return

    reading = asyncio.create_task(read())
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while status is not None and not reading.done():
                if status.error and not status.ever_opened:
                    break  # it could not open: retrying will not tell more
                status.changed.clear()
                changed = asyncio.create_task(status.changed.wait())
                try:
                    await asyncio.wait({reading, changed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
            else:
                await asyncio.wait({reading})
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    return tally


async def redis_check(url: str) -> tuple[Finding, Redis | None]:
    redis = redis_client(url)
    try:
        await asyncio.wait_for(redis.ping(), 5)
    except (RedisError, TimeoutError, *REDIS_DOWN) as error:
        await redis.aclose()
        says = f"Redis at {redact_url(url)}: {error or type(error).__name__}"
        return finding("redis", says, "redis"), None
    return finding("redis", f"Redis at {redact_url(url)} answers"), redis


async def ingest_status(redis: Redis, key: str = STATUS_KEY) -> dict[str, str] | None:
    """The running ingest service's status (the meter's, `key`), when it is fresh."""
    fields = read_status(await redis.hgetall(key))
    return fields if is_fresh(fields, int(time.time() * 1000)) else None


def from_ingest(fields: dict[str, str]) -> list[Finding]:
    """The meter findings the running ingest service reported."""
    age = time.time() - int(fields["updated"]) / 1000
    head = f"ingest service ({age:.0f} s ago): {fields.get('source', '?')}"
    details = ", ".join(
        f"{name} {fields[name]}"
        for name in ("protocol", "line", "bytes", "frames")
        if fields.get(name)
    )
    found = [Finding("ingest", True, f"{head}; {details or 'nothing read yet'}")]
    if fields.get("state") == "ok":
        return [*found, Finding("meter", True, fields.get("reason", ""))]
    check = fields.get("state") or "meter"
    return [*found, Finding(check, False, fields.get("reason", ""), check, fields.get("fix", ""))]


async def license_findings(redis: Redis) -> list[Finding]:
    """What the licensing service recorded per feature (as it wrote it; the interfaces verify
    the signed license in it themselves)."""
    records = {feature: await redis.get(record_key(feature)) for feature in FEATURES}
    if all(data is None for data in records.values()):
        says = "no license records: the licensing service has not run"
        return [Finding("license", False, says, "license", "start it: `hanport licensing`")]
    found = []
    for feature, data in records.items():
        if data is None:
            found.append(Finding("license", False, f"{feature}: no record", "license", ""))
            continue
        record = decode_record(data)
        says = f"{feature}: {'granted' if record.granted else 'not granted'} ({record.reason})"
        found.append(Finding("license", record.granted, says, "license", LICENSE_FIX))
    return found


async def examine(settings: IngestSettings, seconds: float | None, force_listen: bool) -> Report:
    report = Report()
    redis_found, redis = await redis_check(settings.redis_url)
    try:
        key = settings.meter_keys_in_redis().status  # this meter's (HANPORT_METER_NAME)
        running = (
            await ingest_status(redis, key) if redis is not None and not force_listen else None
        )
        if running is not None:
            report.meter = from_ingest(running)
            report.data_flows = running.get("state") == "ok"
        else:
            if redis is not None and not force_listen:
                says = f"no ingest service reported in the last {FRESH_SECONDS:g} s"
                fix = "start it (`hanport ingest`, `make run` or `docker compose up -d`)"
                report.others.append(Finding("ingest", False, says, "ingest", fix))
            source = open_source(
                settings.source_spec(),
                simulator_interval=settings.simulator_interval,
                tz=settings.meter_timezone,
                idle_timeout=settings.source_idle_timeout,
            )
            detects = source.spec.kind == "serial" and source.spec.baud == 0
            seconds = seconds or (DETECT_ALL_SECONDS if detects else LISTEN_SECONDS)
            print(f"listening to {source.spec.describe()} for up to {seconds:g} s ...", flush=True)
            started = time.monotonic()
            tally = await listen(source, settings, seconds)
            took = round(time.monotonic() - started, 1)
            status = getattr(source, "status", None)
            report.meter = source_findings(source.spec, status, tally, took)
            report.data_flows = tally.results["ok"] > 0
        report.others.append(redis_found)
        if redis is not None:
            report.others += await license_findings(redis)
    finally:
        if redis is not None:
            await redis.aclose()
    report.data_flows = report.data_flows and redis is not None
    return report


def render(report: Report) -> str:
    lines = []
    for item in [*report.meter, *report.others]:
        mark = "ok" if item.ok else "note" if item.check in NOTES else "FAIL"
        lines.append(f"{mark:<5} {item.check:<11} {item.says}")
        if not item.ok and item.fix:
            lines.append(f"{'':<5} {'':<11} fix: {item.fix}")
    flows = "yes" if report.data_flows else "no"
    lines.append(f"\ndata flows (readings decode, Redis answers): {flows}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    settings = load_settings(IngestSettings)  # a bad setting: one line, exit 2
    logging.disable(logging.WARNING)  # what the sources would log, the report says
    report = asyncio.run(examine(settings, args.seconds, args.listen))
    print(render(report))
    sys.stdout.flush()
    return 0 if report.data_flows else 1


if __name__ == "__main__":
    raise SystemExit(main())
