"""The sinks against real stores: values, tags and times as written; absent values left out; a
batch written twice stores nothing twice; refused points are named, the rest stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import httpx
import psycopg
import pytest

from services.export.sinks import SinkDown
from services.export.sinks.entries import Entries
from services.export.sinks.influx import InfluxSink
from services.export.sinks.postgres import PostgresSink

from .servers import InfluxServer, PostgresServer, VictoriaMetricsServer
from .support import BOX, T0, reading


def batch(count: int, meter: str = "main", first: int = 0) -> list:
    return [(f"{n + 1}-0", reading(n, meter=meter)) for n in range(first, first + count)]


async def test_victoria_metrics_values_and_tags(victoria: VictoriaMetricsServer) -> None:
    sink = InfluxSink(victoria.url, BOX)
    result = await sink.write(batch(20))
    result_again = await sink.write(batch(20))  # a replay
    await sink.close()
    assert (result.written, result.refused) == (20, [])
    assert result_again.written == 20
    series = {s["metric"]["__name__"]: s for s in victoria.samples()}
    p_l2 = series["hanport_p_l2"]
    # VictoriaMetrics keeps the database as the label `db`
    assert p_l2["metric"] == {
        "__name__": "hanport_p_l2",
        "box": BOX,
        "meter": "main",
        "db": "hanport",
    }
    assert p_l2["timestamps"] == [T0 + n * 1000 for n in range(20)]  # none twice
    assert p_l2["values"] == [300.0 + n for n in range(20)]
    assert series["hanport_ic"]["values"][5] == 1000.005
    assert "hanport_p_l3" not in series and "hanport_ec" not in series  # absent: left out
    gas = series["hanport_submeter_value"]
    assert gas["metric"]["channel"] == "1" and gas["metric"]["unit"] == "m3"
    assert gas["values"] == [10.0, 20.0]


async def test_influx_connection_kept_between_batches(victoria: VictoriaMetricsServer) -> None:
    """Batches 5 s apart (the default batch wait) go over one connection: none made per batch
    (to InfluxDB Cloud each would be a TLS handshake)."""

    def accepted() -> int:  # (this request's own connection counted too)
        text = httpx.get(f"{victoria.url}/metrics", timeout=10).text
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("vm_tcplistener_accepts_total")
        )

    sink = InfluxSink(victoria.url, BOX)
    before = accepted()
    await sink.write(batch(2))
    await asyncio.sleep(5.5)  # (the time a connection idles between batches is the point here)
    await sink.write(batch(2, first=2))
    after = accepted()
    await sink.close()
    assert after - before == 2  # the sink's one connection, and the second look's own


@pytest.mark.parametrize("prepared", [False, True], ids=["made-at-write", "prepared"])
async def test_influxdb_1_values_and_refused_points(influx: InfluxServer, prepared: bool) -> None:
    """Also with the body made ahead (`prepare`, as the worker does while the previous batch
    is written): the halves written after a refusal are made again, not taken from it."""
    sink = InfluxSink(influx.url, BOX, database="hanport")
    # `frequency` written as a string first: InfluxDB then refuses it as a float in this shard
    # (a field type conflict)
    await sink._http().post(
        f"{influx.url}/write",
        params={"db": "hanport", "precision": "ms"},
        content=f'hanport frequency="x" {T0}'.encode(),
    )
    readings = batch(10)
    for n in (3, 7):
        readings[n][1].frequency = 50.0
    if prepared:
        await sink.prepare(readings)
    result = await sink.write(readings)
    assert sink._bodies.take(Entries.of(readings)) is None  # taken by the write (or never made)
    await sink.close()
    assert result.written == 8
    assert sorted(entry_id for entry_id, _r, _why in result.refused) == ["4-0", "8-0"]
    assert all("conflict" in why for _id, _r, why in result.refused)
    rows = influx.query("SELECT p, p_l1, p_l3, u_l1 FROM hanport WHERE box = 'HPTEST0001'")
    values = rows[0]["values"]
    assert len(values) == 8
    assert values[0] == [T0, 500.0, 200.0, None, 230.5]


async def test_influx_down_is_transient(influx: InfluxServer) -> None:
    sink = InfluxSink(influx.url, BOX, database="missing", token="s3cret-token")
    with pytest.raises(SinkDown) as raised:
        await sink.write(batch(3))
    assert "404" in str(raised.value) and "s3cret" not in str(raised.value)
    influx.stop()
    with pytest.raises(SinkDown):
        await InfluxSink(influx.url, BOX).write(batch(3))
    await sink.close()


async def test_postgres_rows_partitions_replay_and_refusal(postgres: PostgresServer) -> None:
    sink = PostgresSink(postgres.dsn, BOX)
    # crossing a month: readings before T0 go to November's partition
    early = [(f"0-{n}", reading(n, start=T0 - 5000)) for n in range(3)]
    result = await sink.write(early + batch(20))
    assert (result.written, result.refused) == (23, [])
    assert (await sink.write(batch(20))).written == 20  # the replay inserts nothing
    async with await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True) as conn:
        rows = await (
            await conn.execute(
                "SELECT box, meter, time, p, p_l2, p_l3, u_l1, ec, ic FROM hanport_readings "
                "ORDER BY time"
            )
        ).fetchall()
        assert len(rows) == 23
        box, meter, time, p, p_l2, p_l3, u_l1, ec, ic = rows[3]
        assert (box, meter, int(time.timestamp() * 1000)) == (BOX, "main", T0)
        assert (p, p_l2, p_l3, u_l1, ec, ic) == (500.0, 300.0, None, 230.5, None, 1000.0)
        parts = await (
            await conn.execute(
                "SELECT relname FROM pg_class WHERE relname LIKE 'hanport_readings_2%' AND relkind = 'r' "
                "ORDER BY relname"
            )
        ).fetchall()
        assert [r[0] for r in parts] == ["hanport_readings_2025_11", "hanport_readings_2025_12"]
        subs = await (
            await conn.execute("SELECT channel, value, unit FROM hanport_submeters ORDER BY time")
        ).fetchall()
        assert subs == [(1, 10.0, "m3"), (1, 10.0, "m3"), (1, 20.0, "m3")]
        await conn.execute("ALTER TABLE hanport_readings ADD CONSTRAINT sane CHECK (p < 525)")
    result = await sink.write(batch(20, first=10))  # 10..19 are there, 25..29 break the rule
    await sink.close()
    assert result.written == 15
    assert sorted(e for e, _r, _w in result.refused) == [f"{n}-0" for n in range(26, 31)]
    assert all("sane" in why for _e, _r, why in result.refused)


async def test_postgres_batch_of_one_table_is_one_copy(postgres: PostgresServer) -> None:
    """A batch without sub-meters is one COPY, a transaction of its own: two round trips to the
    server, not four with BEGIN and COMMIT; with sub-meters (two tables) one transaction."""
    async with await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True) as conn:
        await conn.execute("ALTER ROLE CURRENT_USER SET log_statement = 'all'")  # new sessions
    log = postgres.workdir / "server.log"

    async def statements_of(write: Awaitable[object]) -> list[str]:
        start = log.stat().st_size
        await write
        text = log.read_bytes()[start:].decode(errors="replace")
        return [line.split("statement: ", 1)[1].split()[0] for line in text.splitlines()
                if "statement: " in line]  # fmt: skip

    sink = PostgresSink(postgres.dsn, BOX)
    await sink.write(batch(1))  # the tables, the partitions
    plain = await statements_of(sink.write(batch(9, first=1)))  # readings 1..9: no sub-meters
    with_gas = await statements_of(sink.write(batch(1, first=10)))  # reading 10 has gas
    again = await statements_of(sink.write(batch(9, first=1)))  # a replay
    await sink.close()
    assert plain == ["COPY"]
    assert with_gas == ["BEGIN", "COPY", "COPY", "COMMIT"]
    assert again[:2] == ["COPY", "BEGIN"] and again[-1] == "COMMIT"  # refused, then staged
    async with await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True) as conn:
        count = await (await conn.execute("SELECT count(*) FROM hanport_readings")).fetchone()
        assert count == (11,)


async def test_influx_v2_api_with_org_bucket_and_token(victoria: VictoriaMetricsServer) -> None:
    """VictoriaMetrics takes InfluxDB 2's /api/v2/write as well (it ignores the token)."""
    sink = InfluxSink(victoria.url, BOX, api="v2", org="home", bucket="hanport", token="t0k")
    assert sink._endpoint.endswith("/api/v2/write")
    assert sink._params == {"bucket": "hanport", "precision": "ms", "org": "home"}
    assert sink._headers["Authorization"] == "Token t0k" and "t0k" not in repr(sink)
    result = await sink.write(batch(5))
    await sink.close()
    assert (result.written, result.refused) == (5, [])
    series = {s["metric"]["__name__"]: s for s in victoria.samples()}
    assert series["hanport_p"]["values"] == [500.0, 501.0, 502.0, 503.0, 504.0]
