"""The ingest service: reads the meter (`HANPORT_SOURCE`), decodes each telegram, publishes each
reading to the readings stream (and raw telegrams to the raw stream) through Redis outages.

    hanport ingest          (= python -m services.ingest)

Consumes the meter's bytes from a serial port, TCP, a capture file or the built-in simulator
(`sources/`): P1 telegrams, or DLMS/COSEM frames in HDLC, M-Bus or bare (encrypted with the
meter's keys or not), decoded by `codec/` (`HANPORT_METER_PROTOCOL`, found by itself when `auto`).
Produces one `Reading` per telegram on the readings stream and every telegram's raw bytes with
its result on the raw stream (docs/streams.md), its word on the source (open or why not, what
arrives, the fix) in the hash `hanport:ingest:status` (`status.py`), and Prometheus metrics on
`HANPORT_METRICS_PORT` (default 9101). The layers: `codec/` (pure protocol code), `sources/`
(where bytes come from), `publisher` (Redis), `cli/` (`hanport decode`, `hanport simulate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable

from shared import meter_metrics
from shared.metrics import serve_metrics
from shared.service import run, start

from .codec.decoded import Decoded, DecodeError, Decoder
from .codec.factory import finish, make_decoder
from .metrics import BYTES_READ, DECODE_SECONDS, PROTOCOL_DETECTED, SKIPPED_BYTES, TELEGRAMS
from .naming import MeterNaming, source_name
from .publisher import Publisher
from .registration import Registration, check_unclaimed
from .settings import IngestSettings
from .sources import open_source
from .sources.spec import Source
from .status import StatusWriter

log = logging.getLogger("services.ingest")
DRAIN_SECONDS = 30.0


class LogLimit:
    """At most `per_minute` log lines about rejected telegrams (a noisy line must not flood the
    log); how many were left out is logged once the minute is over. Metrics count them all."""

    def __init__(self, per_minute: int = 10) -> None:
        self.per_minute = per_minute
        self.window = -60.0
        self.logged = 0
        self.suppressed = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self.window >= 60:
            if self.suppressed:
                log.warning("%d more rejected telegrams in the last minute", self.suppressed)
            self.window, self.logged, self.suppressed = now, 0, 0
        if self.logged < self.per_minute:
            self.logged += 1
            return True
        self.suppressed += 1
        return False


REJECTIONS = LogLimit()


def handle(
    items: list[Decoded | DecodeError],
    publisher: Publisher,
    received: int,
    source: str,
    naming: MeterNaming | None = None,
) -> None:
    """Count, log, name (`naming`) and queue what the decoder completed."""
    newest = None
    for item in items:
        if isinstance(item, DecodeError):
            TELEGRAMS.labels(item.reason).inc()
            if REJECTIONS.allow():
                log.warning(
                    "rejected a telegram from %s at byte %s: %s: %s",
                    source,
                    item.offset,
                    item.reason,
                    item,
                )
            publisher.put(None, item.raw, item.reason, received)
        else:
            TELEGRAMS.labels("ok").inc()
            if naming is not None:
                naming.stamp(item.reading)
            publisher.put(item.reading, item.raw, "ok", received)
            newest = item.reading
    if newest is not None:
        meter_metrics.observe(newest)  # the meter's values as gauges (the Grafana dashboard)


async def ingest(
    source: Source,
    new_decoder: Callable[[], Decoder],
    publisher: Publisher,
    status: StatusWriter | None = None,
    naming: MeterNaming | None = None,
) -> None:
    """Read `source` until it ends (a file) or for ever; every telegram goes to `publisher`,
    its reading named by `naming`, and is counted in `status` (what the source's status in
    Redis rests on; told at once when the meter's name changes)."""
    name = source.spec.describe()
    decoder = new_decoder()
    skipped = 0
    received = int(time.time() * 1000)
    protocol = decoder.protocol
    async for chunk in source.chunks():
        received = int(time.time() * 1000)
        BYTES_READ.inc(len(chunk))
        started = time.perf_counter()
        try:
            items = decoder.feed(chunk, received)
        except Exception:  # a decoder bug must not stop the meter being read
            log.exception(
                "the decoder failed on %d bytes from %s; starting afresh", len(chunk), name
            )
            TELEGRAMS.labels("decoder_error").inc()
            decoder, skipped = new_decoder(), 0
            protocol = decoder.protocol
            continue
        if items:
            per_item = (time.perf_counter() - started) / len(items)
            for _ in items:
                DECODE_SECONDS.observe(per_item)
        if decoder.protocol != protocol:  # `auto` found what the meter speaks
            protocol = decoder.protocol
            PROTOCOL_DETECTED.labels(protocol).set(1)
        named = naming.name if naming is not None else None
        handle(items, publisher, received, name, naming)
        if status is not None:
            status.counted(len(chunk), items, protocol)
            if naming is not None and naming.name != named:
                status.wake.set()  # the directory learns the meter's name now
        if source.spec.pace == "fast":  # a capture can wait for Redis; a live meter cannot
            await publisher.wait_for_room()
        now_skipped = getattr(decoder, "skipped", 0)
        if now_skipped > skipped:
            SKIPPED_BYTES.inc(now_skipped - skipped)
        skipped = now_skipped
    handle(finish(decoder, received), publisher, received, name, naming)


async def serve(settings: IngestSettings) -> None:
    serve_metrics(settings.metrics_port, settings.metrics_host)
    keys = settings.meter_keys_in_redis()
    spec = settings.source_spec()
    naming = MeterNaming(settings.meter_name, spec.describe(), fallback=source_name(spec))
    registration = Registration(keys, naming)
    taken = await check_unclaimed(settings.redis_url, registration)
    if taken:
        print(f"hanport: {taken}", file=sys.stderr)
        raise SystemExit(2)
    publisher = Publisher(
        settings.redis_url,
        keys.readings,
        keys.raw,
        maxlen=settings.stream_maxlen,
        raw_maxlen=settings.raw_maxlen,
        max_items=settings.buffer_max_readings,
        max_bytes=settings.buffer_max_bytes,
    )
    source = open_source(
        spec,
        simulator_interval=settings.simulator_interval,
        tz=settings.meter_timezone,
        idle_timeout=settings.source_idle_timeout,
    )
    options = settings.decoder_options()
    log.info(
        "ingest: %s -> stream %s (meter %s)",
        source.spec.describe(),
        keys.readings,
        settings.meter_name or "named by its equipment id",
    )
    status = StatusWriter(settings.redis_url, source, key=keys.status, registration=registration)
    publishing = asyncio.create_task(publisher.run())
    writing_status = asyncio.create_task(status.run())
    try:
        await ingest(source, lambda: make_decoder(options), publisher, status, naming)
        log.info("source ended; publishing what is left")
        if not await publisher.drain(DRAIN_SECONDS):
            log.error("gave up with %d readings unpublished", len(publisher.queue))
    finally:
        for task in (publishing, writing_status):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "ingest", IngestSettings, argv, "Read the meter and publish its readings to Redis."
    )
    return run(lambda: serve(settings))


if __name__ == "__main__":
    raise SystemExit(main())
