"""The accounting service as it runs: a real redis-server (AOF on) and `python -m
services.accounting`. A month of readings gives the stored intervals and tariff the pure
account gives; restarting Redis under the running service, killing the service (once
mid-backlog, coming back under another consumer name) and restarting Redis meanwhile, all
mid-month, changes nothing;
an unknown rule is one line and exit 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from services.accounting import store
from services.accounting.account import RESOLUTIONS, MeterAccount
from services.accounting.tariffs import rule
from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from tests.servers import RedisServer
from tests.stack.polling import until

from .examples import ELVIA, Example, readings
from .running import (
    GROUP,
    ROOT,
    STREAM,
    AccountingProcess,
    all_intervals,
    redis_ready,
    wait_counted,
    write,
)


def pure(example: Example) -> MeterAccount:
    account = MeterAccount.new("m1", ZoneInfo(example.zone), rule(example.rule))
    for reading in readings(example):
        account.add(reading)
    return account


def expected_intervals(account: MeterAccount) -> dict[tuple[str, int], tuple[object, ...]]:
    changed = {
        (period, start)
        for by_period in account.ledger.totals.values()
        for period, by_start in by_period.items()
        for start in by_start
    }
    return {
        (RESOLUTIONS[row.period], row.start_ms): (*(round(v, 9) for v in row.values), row.estimated)
        for row in account.rows(changed)
    }


async def started_on(redis: Redis, ts: int) -> bool:
    """The group has been handed the entry of `ts` or a later one."""
    for group in await redis.xinfo_groups(STREAM):
        if group["name"] in (GROUP, GROUP.encode()):
            delivered = group["last-delivered-id"]
            text = delivered.decode() if isinstance(delivered, bytes) else delivered
            return int(text.split("-")[0]) >= ts
    return False


async def test_restarts_mid_month_keep_the_month(redis_server: RedisServer, tmp_path: Path) -> None:
    month = readings(ELVIA)
    half = len(month) // 2
    service = AccountingProcess(redis_server.url, ELVIA.rule, ELVIA.zone, tmp_path / "acct.log")
    redis = Redis.from_url(redis_server.url)
    try:
        service.start()
        third = half // 2
        last = await write(redis, month[:third])
        await wait_counted(redis, last, "m1", service)

        # Redis restarted under the running service, which reconnects and goes on
        await redis.aclose()
        redis_server.restart()
        redis = Redis.from_url(redis_server.url)
        await redis_ready(redis, service.logs)
        last = await write(redis, month[third:half])
        await wait_counted(redis, last, "m1", service)

        # the service killed, Redis restarted (AOF), the rest of the month arriving meanwhile
        service.stop(signal.SIGKILL)
        await redis.aclose()
        redis_server.restart()
        redis = Redis.from_url(redis_server.url)
        await redis_ready(redis, service.logs)
        last = await write(redis, month[half:])
        service.start()
        # killed again while it works through the backlog, then left to finish
        await until(
            lambda: started_on(redis, month[half].ts), "backlog under way", service.logs, 60
        )
        service.stop(signal.SIGKILL)
        # back as a recreated container would be: another host name, so another consumer,
        # which takes over what the killed one left pending
        service.env["HANPORT_ACCOUNTING_CONSUMER"] = "recreated"
        service.start()
        await wait_counted(redis, last, "m1", service)

        account = pure(ELVIA)
        assert await all_intervals(redis, "m1") == expected_intervals(account)
        stored = await redis.get("hanport:{m1}:accounting:tariff")
        assert stored is not None
        answer = json.loads(stored)
        assert answer.pop("formed_ms") > 0
        assert answer == json.loads(json.dumps(account.tariff_state()))
        assert answer["value_kw"] == pytest.approx(ELVIA.value_kw, abs=1e-6)
        assert answer["headroom_w"] == pytest.approx(ELVIA.headroom_w, abs=1.0)

        # the gauges, per meter
        port = service.env["HANPORT_METRICS_PORT"]
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'hanport_accounting_month_value_kw{meter="m1"} 3.833333' in text
        assert 'hanport_accounting_step{meter="m1"} 2.0' in text
        # the replacement is counted once, whichever process saw it (a process's own counter
        # starts at 0; the stored state keeps the count)
        state = json.loads(await redis.get("hanport:{m1}:accounting:state") or "{}")
        assert state["events"] == {"reset": 1}
        assert (
            'hanport_accounting_energy_kwh{meter="m1",register="import",resolution="1h"} 0.5'
            in text
        )
    finally:
        service.stop()
        await redis.aclose()


async def test_every_meter_is_accounted_apart(redis_server: RedisServer, tmp_path: Path) -> None:
    """The classic stream's meter and a named meter's own stream (found in the directory)."""
    service = AccountingProcess(redis_server.url, ELVIA.rule, ELVIA.zone, tmp_path / "acct.log")
    redis = Redis.from_url(redis_server.url)
    keys = MeterKeys.named("m2")
    try:
        await MeterDirectory(redis).put(
            MeterRecord(name="m2", readings=keys.readings, raw=keys.raw, status=keys.status)
        )
        day = 12 * 24 + 1  # a day of 5-minute readings
        first = [r for r in readings(ELVIA)[:day]]
        second = [msgspec.structs.replace(r, meter="m2", ic=(r.ic or 0) * 2) for r in first]
        service.start()
        last1 = await write(redis, first)
        last2 = await write(redis, second, keys.readings)
        await wait_counted(redis, last1, "m1", service)
        await wait_counted(redis, last2, "m2", service, stream=keys.readings)
        one = await store.read_intervals(redis, "m1", "1d", None, None)
        two = await store.read_intervals(redis, "m2", "1d", None, None)
        assert [round(r.values[0], 6) for r in one] == [24.0]
        assert [round(r.values[0], 6) for r in two] == [48.0]
        assert await store.meters(redis) == ["m1", "m2"]
    finally:
        service.stop()
        await redis.aclose()


def test_unknown_rule_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.accounting"],
        cwd=ROOT,
        env={"HANPORT_TARIFF_RULE": "no-such-rule", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no-such-rule" in lines[0]
    assert "no-elvia, no-tensio, be-flanders, se-3-hours, se-3-hours-high-load" in lines[0]
