"""The accounting keys in a real Redis: rows round-trip, a range reads [from, to), retention
drops only what is older than its resolution's days, and a meter without state loads empty."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from services.accounting import store
from services.accounting.account import IntervalRow, MeterAccount
from services.accounting.intervals import Period
from services.accounting.tariffs import rule
from shared.reading import Reading
from tests.servers import RedisServer

DAY_MS = 86_400_000
RESOLUTION_PERIODS: tuple[tuple[str, Period], ...] = (
    ("15m", "quarter"),
    ("1h", "hour"),
    ("1d", "day"),
)
OSLO = ZoneInfo("Europe/Oslo")
T0 = 1_772_319_600_000  # 2026-03-01 00:00 Oslo


async def test_rows_ranges_and_retention(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    try:
        pipe = redis.pipeline()
        for day in range(10):
            for resolution, period in RESOLUTION_PERIODS:
                start = T0 + day * DAY_MS
                row = IntervalRow(
                    period, start, (0.1 + day, 0.2, 0.30000000000000004, 0.0), day == 3
                )
                pipe.zadd(store.energy_key("m1", resolution), {store.encode_row(row): start})
        await pipe.execute()
        rows = await store.read_intervals(redis, "m1", "1h", T0 + 2 * DAY_MS, T0 + 4 * DAY_MS)
        assert [(r.start_ms, r.values, r.estimated) for r in rows] == [
            (T0 + 2 * DAY_MS, (2.1, 0.2, 0.30000000000000004, 0.0), False),
            (T0 + 3 * DAY_MS, (3.1, 0.2, 0.30000000000000004, 0.0), True),
        ]
        # keep 5 days of quarter-hours, 7 of hours, days forever, seen from day 9
        await store.trim(redis, "m1", T0 + 9 * DAY_MS, {"15m": 5, "1h": 7, "1d": 0})
        counts = [
            len(await store.read_intervals(redis, "m1", r, None, None)) for r in ("15m", "1h", "1d")
        ]
        assert counts == [6, 8, 10]  # days 4-9, 2-9, all
        assert (await store.load(redis, "nobody", OSLO, rule("no-elvia"))).last_ts is None
    finally:
        await redis.aclose()


async def test_load_puts_back_what_can_still_change(redis_server: RedisServer) -> None:
    account = MeterAccount.new("m1", OSLO, rule("no-elvia"))
    for k in range(40):  # 10 hours of 15-minute samples at 1 kW
        ts = T0 + k * 900_000
        account.add(Reading(ts=ts, received=ts, meter="m1", ic=50 + k * 0.25, pi=[1000.0]))
    redis = Redis.from_url(redis_server.url)
    try:
        await store.save(redis, [account], {"m1": account.tariff_state()})
        assert not account.ledger.changed
        again = await store.load(redis, "m1", OSLO, rule("no-elvia"))
        assert again.ledger.baselines == account.ledger.baselines
        assert again.ledger.totals == account.ledger.totals
        assert again.tariff_state() == account.tariff_state()
        assert await store.meters(redis) == ["m1"]
    finally:
        await redis.aclose()
