"""The HomeWizard P1 meter on the network: `GET /api`, `GET /api/v1/data` and
`GET /api/v1/telegram` (the newest raw P1 telegram of the served meter, from its raw stream).
The answers are services/emulate/homewizard.py's; this module only moves bytes.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.meters import MeterDirectory, meter_of
from shared.raw_stream import parse_raw
from shared.stream import ReadingStream

from .homewizard import Device, data, device_info, unavailable
from .latest import Choice
from .metrics import ERRORS, REQUESTS
from .web import Port

log = logging.getLogger(__name__)
PERSONALITY = "homewizard"

_encode = msgspec.json.Encoder().encode


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(body), status=status, content_type="application/json")


class Telegrams:
    """The newest raw telegram of a meter: its raw stream from the directory of meters, or the
    box's classic raw stream for the meter on the classic stream."""

    def __init__(self, redis: Redis, classic: str, classic_raw: str) -> None:
        self.redis = redis
        self.classic = classic
        self.classic_raw = classic_raw

    async def newest(self, meter: str) -> tuple[bytes, int | None] | None:
        record = await MeterDirectory(self.redis).get(meter)
        if record is not None:
            key = record.raw
        else:
            on_classic = await ReadingStream(self.redis, self.classic).latest()
            if on_classic is None or meter_of(on_classic[1]) != meter:
                return None
            key = self.classic_raw
        entries = await self.redis.xrevrange(key, count=1)
        if not entries:
            return None
        telegram = parse_raw(entries[0][1])
        return (telegram.raw, telegram.received) if telegram.decoded else None


def add_routes(port: Port, choice: Choice, device: Device, telegrams: Telegrams) -> None:
    def not_available(transport: str = "http") -> web.Response:
        REQUESTS.labels(PERSONALITY, transport, "unavailable").inc()
        return _json(unavailable("meter data unavailable (no fresh reading)"), 503)

    async def api(request: web.Request) -> web.Response:
        REQUESTS.labels(PERSONALITY, "http", "ok").inc()
        return _json(device_info(device))

    last: list[Any] = [None, b""]  # the reading, its /api/v1/data body (served until the next)
    ok = REQUESTS.labels(PERSONALITY, "http", "ok")

    async def api_data(request: web.Request) -> web.Response:
        _meter, reading = choice.reading_for(request.remote)
        if reading is None:
            return not_available()
        if last[0] is not reading:
            last[1] = _encode(data(reading))
            last[0] = reading
        ok.inc()
        return web.Response(body=last[1], content_type="application/json")

    async def telegram(request: web.Request) -> web.Response:
        meter, reading = choice.reading_for(request.remote)
        if meter is None or reading is None:
            return not_available()
        try:
            newest = await telegrams.newest(meter)
        except RedisError as error:
            ERRORS.labels("telegram").inc()
            log.warning("cannot read meter %s's raw telegram from Redis: %s", meter, error)
            return not_available()
        if newest is None or not newest[0].startswith(b"/"):
            REQUESTS.labels(PERSONALITY, "http", "error").inc()
            return _json({"error": {"id": 404, "description": "no P1 telegram"}}, 404)
        raw, received = newest
        latest = choice.latest
        if received is not None and latest.clock() - received / 1000 > latest.stale_after:
            return not_available()
        REQUESTS.labels(PERSONALITY, "http", "ok").inc()
        return web.Response(body=raw, content_type="text/plain", charset="ascii")

    port.add(PERSONALITY, "GET", "/api", api)
    port.add(PERSONALITY, "GET", "/api/v1/data", api_data)
    port.add(PERSONALITY, "GET", "/api/v1/telegram", telegram)
