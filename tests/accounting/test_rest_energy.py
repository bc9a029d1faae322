"""REST's energy and tariff endpoints against what the real accounting service stored: a real
redis-server, `python -m services.accounting` fed the Elvia month, `python -m services.rest`."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis

from tests.rest.process import RestProcess, rest_process
from tests.servers import RedisServer

from .examples import ELVIA, readings
from .running import AccountingProcess, wait_counted, write


async def account_month(redis_url: str, service: AccountingProcess) -> None:
    redis = Redis.from_url(redis_url)
    try:
        last = await write(redis, readings(ELVIA))
        await wait_counted(redis, last, "m1", service)
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestProcess]:
    """One month accounted, served by one REST process, for every test of this module."""
    tmp_path = tmp_path_factory.mktemp("energy")
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    service = AccountingProcess(redis_server.url, ELVIA.rule, ELVIA.zone, tmp_path / "acct.log")
    try:
        service.start()
        asyncio.run(account_month(redis_server.url, service))
        with rest_process(redis_server, tmp_path / "rest.log") as rest:
            yield rest
    finally:
        service.stop()
        redis_server.stop()


async def test_energy_per_day_of_a_month(served: RestProcess) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        response = await client.get(
            "/meters/m1/energy",
            params={"resolution": "1d", "from": "2026-03-01", "to": "2026-04-01"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["meter"], body["resolution"], body["unit"]) == ("m1", "1d", "kWh")
    days = body["intervals"]
    assert len(days) == 31
    assert days[0]["start"] == "2026-03-01T00:00:00+01:00"
    assert days[28]["start"] == "2026-03-29T00:00:00+01:00"  # the spring day starts in winter
    assert days[29]["start"] == "2026-03-30T00:00:00+02:00"
    assert days[28]["import"] == pytest.approx(22 + 2.9, abs=1e-6)
    assert days[19]["import"] == pytest.approx(24 - 1 / 12, abs=1e-6)  # meter replaced
    assert days[2]["import"] == pytest.approx(22 + 4.2 + 5.0, abs=1e-6)
    assert all(d["export"] == 0 and d["estimated"] is False for d in days[:30])


async def test_quarter_hours_of_the_gap_are_estimated(served: RestProcess) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        response = await client.get(
            "/meters/m1/energy",
            params={"resolution": "15m", "from": "2026-03-15T10:00", "to": "2026-03-15T11:00"},
        )
    quarters = response.json()["intervals"]
    assert [(q["start"][11:16], q["import"], q["estimated"]) for q in quarters] == [
        ("10:00", 0.25, True),  # the gap 10:05-10:45 covers 10 of its minutes
        ("10:15", 0.25, True),
        ("10:30", 0.25, True),
        ("10:45", 0.25, False),
    ]


async def test_spring_day_has_23_hours_and_csv_matches_json(served: RestProcess) -> None:
    params = {"resolution": "1h", "from": "2026-03-29", "to": "2026-03-30"}
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        as_json = (await client.get("/meters/m1/energy", params=params)).json()["intervals"]
        as_csv = await client.get("/meters/m1/energy", params={**params, "format": "csv"})
    assert len(as_json) == 23
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["start"], float(r["import_kwh"]), r["estimated"]) for r in rows] == [
        (i["start"], i["import"], "false") for i in as_json
    ]


async def test_tariff_of_the_meter_and_of_the_default_meter(served: RestProcess) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        named = (await client.get("/meters/m1/tariff")).json()
        default = (await client.get("/meter/tariff")).json()
        energy = (await client.get("/meter/energy", params={"resolution": "1mo"})).json()
    assert named == default
    assert named["rule"] == "no-elvia" and named["window"] == 60 and named["period"] == "2026-03"
    assert [(p["start"], p["kw"]) for p in named["peaks"]] == [
        ("2026-03-03T19:00:00+01:00", 5.0),
        ("2026-03-10T08:00:00+01:00", 3.6),
        ("2026-03-29T12:00:00+02:00", 2.9),
    ]
    assert named["value_kw"] == pytest.approx(3.833333, abs=1e-6)
    assert named["step"] == {"index": 2, "from_kw": 2.0, "to_kw": 5.0}
    assert named["window_energy_kwh"] == pytest.approx(0.5, abs=1e-6)
    assert named["projected_kw"] == pytest.approx(1.0, abs=1e-6)
    assert named["headroom_w"] == pytest.approx(10800, abs=1)
    assert (
        energy["meter"] == "m1" and energy["intervals"][0]["start"] == "2026-03-01T00:00:00+01:00"
    )


async def test_unknown_meter_and_bad_parameters(served: RestProcess) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        missing = await client.get("/meters/nobody/tariff")
        missing_energy = await client.get("/meters/nobody/energy")
        resolution = await client.get("/meters/m1/energy", params={"resolution": "5m"})
        when = await client.get("/meters/m1/energy", params={"from": "yesterday"})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert missing_energy.status_code == 404
    assert resolution.status_code == 422
    assert when.status_code == 422 and "from" in when.json()["message"]
