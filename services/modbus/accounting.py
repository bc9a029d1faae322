"""Native Modbus registers of energy accounting, for a charger that keeps under the capacity
tariff: holding registers from 1200, float32 (big-endian, high word first) unless noted, from
the default meter's live tariff answer that the accounting service stores in Redis.

| Register | Value | Unit |
| --- | --- | --- |
| 1200 | headroom: power that can be added for the rest of the window without raising the month's value or step (3.4e38 when the window does not count) | W |
| 1202 | current window's average power so far | kW |
| 1204 | current window's average power if the present power holds to its end | kW |
| 1206 | month's capacity value so far | kW |
| 1208 | billed value (the month's, or the 12-month mean) | kW |
| 1210 | current window's import energy so far | kWh |
| 1212 | price step (uint16, 1-based; 0 without steps) | |
| 1213 | window length (uint16) | min |
| 1214 | seconds since the answer was formed (uint32; 0xFFFFFFFF: none yet) | s |

Without an answer every float is NaN. Consumes the Redis keys (`refresh`, every `INTERVAL_S`);
produces registers (`read`), which `RegisterStore.read` answers before its own blocks.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from services.accounting import store
from shared.backoff import Backoff
from shared.meters import default_meter
from shared.stream import REDIS_DOWN

ACCOUNTING_BASE = 1200
SIZE = 16
INTERVAL_S = 2.0
UNBOUNDED_W = 3.4e38
NO_AGE = 0xFFFFFFFF


def _float(value: float | None) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", math.nan if value is None else value))
    return [high, low]


def window_average_kw(answer: dict[str, Any]) -> float | None:
    """The current window's average power so far (kW)."""
    try:
        start = datetime.fromisoformat(answer["window_start"]).timestamp() * 1000
        elapsed_h = (int(answer["now_ms"]) - start) / 3_600_000
    except (KeyError, TypeError, ValueError):
        return None
    return float(answer["window_energy_kwh"]) / elapsed_h if elapsed_h > 0 else 0.0


def registers(answer: dict[str, Any] | None, now_ms: int) -> list[int]:
    """The 16 registers from 1200 for a tariff answer (None: none yet)."""
    if answer is None:
        return [*(_float(None) * 6), 0, 0, 0xFFFF, 0xFFFF, 0, 0, 0, 0]
    headroom = answer.get("headroom_w")
    words = [
        *_float(UNBOUNDED_W if headroom is None else float(headroom)),
        *_float(window_average_kw(answer)),
        *_float(answer.get("projected_kw")),
        *_float(answer.get("value_kw")),
        *_float(answer.get("billed_kw")),
        *_float(answer.get("window_energy_kwh")),
        int(answer.get("step", {}).get("index", 0)) & 0xFFFF,
        int(answer.get("window", 0)) & 0xFFFF,
    ]
    formed = answer.get("formed_ms")
    age = NO_AGE if formed is None else min(max(0, (now_ms - int(formed)) // 1000), NO_AGE - 1)
    words += [age >> 16, age & 0xFFFF, 0, 0]
    return words


class AccountingRegisters:
    """The accounting registers of the default meter, refreshed from Redis."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.answer: dict[str, Any] | None = None
        self.clock = clock

    def read(self, space: str, address: int, count: int) -> list[int] | None:
        """The registers asked for, or None when the range is not (wholly) ours."""
        if space != "holding" or not (
            address >= ACCOUNTING_BASE and address + count <= ACCOUNTING_BASE + SIZE
        ):
            return None
        words = registers(self.answer, int(self.clock() * 1000))
        return words[address - ACCOUNTING_BASE : address - ACCOUNTING_BASE + count]

    async def refresh(self, redis: Redis, configured: str | None = None) -> None:
        """Read the default meter's answer every INTERVAL_S, forever; Redis away only pauses."""
        await refresh_accounting(redis, lambda: [(None, self)], configured)


Targets = Callable[[], list[tuple[str | None, AccountingRegisters]]]


async def refresh_accounting(redis: Redis, targets: Targets, configured: str | None = None) -> None:
    """Every INTERVAL_S, forever, each (meter, registers) of `targets()` gets its meter's stored
    answer; a meter of None is the default one (`HANPORT_DEFAULT_METER`, else the first with
    accounting state). Redis away only pauses it."""
    backoff = Backoff()
    while True:
        try:
            names = await store.meters(redis)
            for meter, registers_of in targets():
                name = meter or default_meter(names, configured, None)
                raw = None if name is None else await redis.get(store.tariff_key(name))
                registers_of.answer = None if raw is None else json.loads(raw)
            backoff.reset()
        except REDIS_DOWN:
            await asyncio.sleep(backoff.next_delay())
            continue
        await asyncio.sleep(INTERVAL_S)
