"""The accounting state in Redis, one meter's keys under its hash tag `hanport:{<meter>}:`:

- `hanport:{m}:accounting:15m`, `:1h`, `:1d`, `:1mo`: sorted sets, one member per interval,
  scored by its start (ms since the epoch); the member is
  `<start>|<import>|<export>|<reactive import>|<reactive export>|<estimated 0/1>`.
- `hanport:{m}:accounting:state`: JSON of `MeterAccount.snapshot()` (register baselines, the
  last entry counted per stream, monthly values).
- `hanport:{m}:accounting:tariff`: JSON of the live tariff answer (REST serves it as it is).
- `hanport:accounting:meters`: the set of meters with accounting state.

`save` writes a batch's intervals, state and tariff and acknowledges the batch's entries in one
MULTI/EXEC, so an entry is acknowledged exactly when its effect is stored. Readers (REST, MQTT,
Modbus) use `read_intervals` and `read_tariff`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from .account import PERIOD_OF, RESOLUTIONS, IntervalRow, MeterAccount
from .intervals import PERIODS, Period
from .tariffs import CapacityRule

METERS_KEY = "hanport:accounting:meters"
DAY_MS = 86_400_000


def prefix(meter: str) -> str:
    return "hanport:{" + meter + "}:accounting"


def energy_key(meter: str, resolution: str) -> str:
    return f"{prefix(meter)}:{resolution}"


def state_key(meter: str) -> str:
    return f"{prefix(meter)}:state"


def tariff_key(meter: str) -> str:
    return f"{prefix(meter)}:tariff"


def encode_row(row: IntervalRow) -> str:
    values = "|".join(repr(v) for v in row.values)
    return f"{row.start_ms}|{values}|{1 if row.estimated else 0}"


def decode_row(period: Period, member: bytes | str) -> IntervalRow:
    text = member.decode() if isinstance(member, bytes) else member
    parts = text.split("|")
    values = tuple(float(v) for v in parts[1:5])
    return IntervalRow(period, int(parts[0]), cast(Any, values), parts[5] == "1")


@dataclass(frozen=True)
class Ack:
    """Entries to acknowledge with a batch's state: stream key, group, ids."""

    stream: str
    group: str
    ids: Sequence[str]


async def save(
    redis: Redis,
    accounts: Sequence[MeterAccount],
    tariffs: dict[str, dict[str, Any]],
    ack: Ack | None = None,
) -> None:
    """Store each account's changed intervals and state (and tariff answer, when given), and
    acknowledge `ack`'s entries, in one transaction; takes what it wrote out of the accounts'
    changed sets."""
    pipe = redis.pipeline(transaction=True)
    written = [set(account.ledger.changed) for account in accounts]
    for account, changed in zip(accounts, written, strict=True):
        meter = account.meter
        for row in account.rows(changed):
            key = energy_key(meter, RESOLUTIONS[row.period])
            pipe.zremrangebyscore(key, row.start_ms, row.start_ms)
            pipe.zadd(key, {encode_row(row): row.start_ms})
        pipe.set(state_key(meter), json.dumps(account.snapshot()))
        if meter in tariffs:
            pipe.set(tariff_key(meter), json.dumps(tariffs[meter]))
        pipe.sadd(METERS_KEY, meter)
    if ack is not None and ack.ids:
        pipe.xack(ack.stream, ack.group, *ack.ids)
    await pipe.execute()
    for account, changed in zip(accounts, written, strict=True):
        account.ledger.changed -= changed  # what changed meanwhile is written next time


async def load(redis: Redis, meter: str, zone: ZoneInfo, tariff: CapacityRule) -> MeterAccount:
    """A meter's account as stored (a new one when nothing is), with the intervals that can
    still change (from the month of its oldest register baseline on) back in memory."""
    raw = await redis.get(state_key(meter))
    if raw is None:
        return MeterAccount.new(meter, zone, tariff)
    account = MeterAccount.restore(meter, zone, tariff, json.loads(raw))
    horizon = account.horizon_ms()
    if horizon is not None:
        for period in PERIODS:
            rows = await read_intervals(redis, meter, RESOLUTIONS[period], horizon, None)
            account.load_rows(rows)
    return account


async def read_intervals(
    redis: Redis,
    meter: str,
    resolution: str,
    from_ms: int | None,
    to_ms: int | None,
    limit: int | None = None,
) -> list[IntervalRow]:
    """Stored intervals of `resolution` starting in [from_ms, to_ms), oldest first (at most
    `limit`)."""
    period = PERIOD_OF[resolution]
    low = "-inf" if from_ms is None else from_ms
    high = "+inf" if to_ms is None else f"({to_ms}"
    members: Any = await redis.zrangebyscore(
        energy_key(meter, resolution),
        low,
        high,
        start=0 if limit else None,
        num=limit,
    )
    return [decode_row(period, m) for m in members]


async def read_tariff(redis: Redis, meter: str) -> dict[str, Any] | None:
    raw = await redis.get(tariff_key(meter))
    return None if raw is None else cast(dict[str, Any], json.loads(raw))


async def meters(redis: Redis) -> list[str]:
    names = await redis.smembers(METERS_KEY)
    return sorted(n.decode() if isinstance(n, bytes) else str(n) for n in names)


async def trim(redis: Redis, meter: str, now_ms: int, keep_days: dict[str, int]) -> None:
    """Drop intervals older than their resolution's retention (`{"15m": 731, ...}`, 0 keeps)."""
    pipe = redis.pipeline(transaction=False)
    for resolution, days in keep_days.items():
        if days > 0:
            pipe.zremrangebyscore(
                energy_key(meter, resolution), "-inf", f"({now_ms - days * DAY_MS}"
            )
    await pipe.execute()
