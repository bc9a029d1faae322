"""The export's license gate (`services/export/license.py`) with real signed licenses in a real
Redis and VictoriaMetrics as the sink: it writes during a trial, holds off when the trial runs
out (nothing read or acknowledged, the lag grows, one log line says what to do) and,
once a license arrives, delivers every reading of the meantime, once and in order. A license
naming its meters narrows the export to them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from services.accounting.account import IntervalRow
from services.accounting.store import METERS_KEY, encode_row, energy_key
from shared.retention import group_backlogs
from shared.stream import connect
from tests.licensing_helpers import env_for, grant, make_keys
from tests.servers import RedisServer
from tests.stack.polling import until

from .servers import VictoriaMetricsServer
from .support import (
    BOX,
    CLASSIC,
    T0,
    ExportProcess,
    add_meter,
    export_env,
    exporting,
    publish,
    reading,
)

GROUP = "export-influx"
HELD_OFF = "export is not licensed"
WHAT_TO_DO = "hanport license self-activate"
TRIAL_S = 10  # the first phase (start, 60 readings written) takes 1-2 s here


def power_series(victoria: VictoriaMetricsServer, meter: str = "main") -> dict[str, Any]:
    """A meter's `hanport_p` series in VictoriaMetrics (empty before the first write)."""
    for series in victoria.samples('{__name__="hanport_p"}'):
        if series["metric"]["box"] == BOX and series["metric"]["meter"] == meter:
            return series
    return {"timestamps": [], "values": []}


async def stored(victoria: VictoriaMetricsServer, count: int, meter: str = "main") -> bool:
    series = await asyncio.to_thread(power_series, victoria, meter)
    return len(series["timestamps"]) == count


async def metric(export: ExportProcess, name: str, **labels: str) -> float | None:
    return await asyncio.to_thread(export.metric, name, **labels)


async def all_acknowledged(redis: Redis) -> bool:
    backlog = (await group_backlogs(redis, CLASSIC, GROUP)).get(GROUP)
    return backlog is not None and backlog.entries == 0


async def held_off_with_lag(redis: Redis, export: ExportProcess, lag: int) -> None:
    """Held off: the lag gauge shows `lag` readings (it is kept current while held off), not one
    of them read (nothing pending) or acknowledged; the log said so once, with what to do."""
    await until(
        lambda: asyncio.sleep(
            0, export.metric("hanport_export_lag_entries", sink="influx", stream=CLASSIC) == lag
        ),
        f"a lag of {lag}",
        export.output,
        20,
    )
    backlog = (await group_backlogs(redis, CLASSIC, GROUP))[GROUP]
    assert backlog.entries == lag
    pending: Any = await redis.xpending(CLASSIC, GROUP)
    assert pending["pending"] == 0  # not even read
    assert await metric(export, "hanport_export_licensed") == 0
    held_off = [line for line in export.output().splitlines() if HELD_OFF in line]
    assert len(held_off) == 1 and WHAT_TO_DO in held_off[0], export.output()


async def test_writes_during_the_trial_holds_off_after_it_and_delivers_all_once_licensed(
    redis_server: RedisServer, victoria: VictoriaMetricsServer, tmp_path: Path
) -> None:
    redis = await connect(redis_server.url)
    # a trial that runs out while the test runs (a real one lasts 21 days)
    trial = await grant(
        redis_server.url, tmp_path, BOX, ["export"], use="commercial", kind="trial",
        expires_in_s=TRIAL_S,
    )  # fmt: skip
    env = export_env(
        redis_server.url, tmp_path, influx_url=victoria.url, batch_size="50", metrics=True
    )
    await publish(redis, CLASSIC, [reading(n) for n in range(60)])
    with exporting(env | trial, tmp_path / "export.log") as export:
        # the trial: written and acknowledged
        await until(lambda: stored(victoria, 60), "60 readings stored", export.output, 30)
        await until(lambda: all_acknowledged(redis), "acknowledged", export.output, 20)
        assert await metric(export, "hanport_export_licensed") == 1
        assert HELD_OFF not in export.output()

        # the trial runs out, with nothing else happening: held off
        await until(
            lambda: asyncio.sleep(0, export.metric("hanport_export_licensed") == 0),
            "held off at the end of the trial",
            export.output,
            TRIAL_S + 5,
        )
        assert "for 'export' expired at" in export.output()
        await publish(redis, CLASSIC, [reading(n) for n in range(60, 150)])
        await held_off_with_lag(redis, export, 90)
        assert await stored(victoria, 60)  # nothing written meanwhile
        assert "the export license is gone" in export.output()

        # a license arrives: everything of the meantime goes out, no restart
        await grant(redis_server.url, tmp_path, BOX, ["export"], use="commercial", kind="full")
        await until(lambda: stored(victoria, 150), "150 readings stored", export.output, 30)
        await until(lambda: all_acknowledged(redis), "all acknowledged", export.output, 20)
        assert await metric(export, "hanport_export_licensed") == 1
        assert await metric(export, "hanport_export_readings_written_total", sink="influx") == 150
    series = power_series(victoria)
    assert series["timestamps"] == [T0 + n * 1000 for n in range(150)]
    assert series["values"] == [500.0 + n for n in range(150)]
    await redis.aclose()


async def test_consumer_use_without_activation_holds_off_from_the_start(
    redis_server: RedisServer, victoria: VictoriaMetricsServer, tmp_path: Path
) -> None:
    """Consumer use: the export needs an activation (as MQTT and Modbus). Held off from its
    first start, its group keeps the readings; when the activation arrives they go out."""
    redis = await connect(redis_server.url)
    _private, public = make_keys(tmp_path)  # the vendor's key is trusted; nothing is installed
    env = export_env(
        redis_server.url, tmp_path, influx_url=victoria.url, batch_size="50", metrics=True
    )
    await publish(redis, CLASSIC, [reading(n) for n in range(40)])
    consumer = env_for(redis_server.url, public, BOX, "consumer")
    with exporting(env | consumer, tmp_path / "export.log") as export:
        await until(
            lambda: asyncio.sleep(0, HELD_OFF in export.output()), "held off", export.output, 20
        )
        await held_off_with_lag(redis, export, 40)  # the group kept them from the start
        assert "no consumer license grants 'export'" in export.output()
        assert await stored(victoria, 0)

        activation = await grant(redis_server.url, tmp_path, BOX, ["export"])
        assert activation["HANPORT_USE"] == "consumer"
        await until(lambda: stored(victoria, 40), "40 readings stored", export.output, 30)
        await until(lambda: all_acknowledged(redis), "acknowledged", export.output, 20)
        assert await metric(export, "hanport_export_licensed") == 1
    assert power_series(victoria)["values"] == [500.0 + n for n in range(40)]
    await redis.aclose()


async def test_a_license_naming_meters_exports_only_theirs(
    redis_server: RedisServer, victoria: VictoriaMetricsServer, tmp_path: Path
) -> None:
    """The heat pump's readings are passed over (its group moves past them: the stream does
    not keep them), counted and logged once, its intervals not written; a license for every
    meter then exports what it sends from then on, and its intervals."""
    redis = await connect(redis_server.url)
    heatpump = await add_meter(redis, "heatpump")
    await publish(redis, CLASSIC, [reading(n) for n in range(30)])
    await publish(redis, heatpump, [reading(n, meter="heatpump") for n in range(20)])
    month = IntervalRow("month", T0, (512.5, 3.25, 10.0, 1.0), False)
    for meter in ("main", "heatpump"):
        await redis.zadd(energy_key(meter, "1mo"), {encode_row(month): T0})
        await redis.sadd(METERS_KEY, meter)
    main_only = await grant(
        redis_server.url, tmp_path, BOX, ["export"], use="commercial", kind="full",
        meters=["main"],
    )  # fmt: skip
    env = export_env(
        redis_server.url, tmp_path, influx_url=victoria.url, batch_size="50", metrics=True,
        intervals_every="0.2",
    )  # fmt: skip

    def energy_meters() -> set[str]:
        return {
            s["metric"]["meter"] for s in victoria.samples('{__name__="hanport_energy_import"}')
        }

    async def heatpump_passed_over() -> bool:
        backlog = (await group_backlogs(redis, heatpump, GROUP)).get(GROUP)
        return backlog is not None and backlog.entries == 0

    with exporting(env | main_only, tmp_path / "export.log") as export:
        await until(lambda: stored(victoria, 30), "main's 30 readings", export.output, 30)
        await until(heatpump_passed_over, "the heat pump passed over", export.output, 20)
        await until(
            lambda: asyncio.sleep(0, energy_meters() == {"main"}), "main's month", export.output, 20
        )
        refused = await metric(
            export, "hanport_entitlement_meter_refused_total", feature="export", meter="heatpump"
        )
        assert refused == 20
        assert await metric(export, "hanport_export_readings_written_total", sink="influx") == 30
        said = [line for line in export.output().splitlines() if "not meter heatpump" in line]
        assert len(said) == 1 and "serves only the meters main" in said[0], export.output()

        # a license for every meter: the heat pump's new readings and its intervals go out
        await grant(redis_server.url, tmp_path, BOX, ["export"], use="commercial", kind="full")
        await until(
            lambda: asyncio.sleep(0, energy_meters() == {"main", "heatpump"}),
            "the heat pump's month",
            export.output,
            20,
        )
        await publish(redis, heatpump, [reading(n, meter="heatpump") for n in range(20, 25)])
        await until(
            lambda: stored(victoria, 5, "heatpump"), "its 5 new readings", export.output, 30
        )
        assert "export: meter heatpump is served again" in export.output()
    assert power_series(victoria, "heatpump")["values"] == [500.0 + n for n in range(20, 25)]
    assert power_series(victoria)["values"] == [500.0 + n for n in range(30)]
    await redis.aclose()
