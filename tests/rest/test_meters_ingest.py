"""Three meters from real ingests through REST, on a real redis-server: the simulator on the
classic stream, a second simulator named `heatpump`, and a real Kaifa DSMR 4.2 capture with a gas
sub-meter named `gas` (replayed at its recorded pace, one telegram a second). REST lists them
from the directory the ingests write, serves each, and when the heat pump's ingest stops only
its data goes stale."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

from services.ingest.codec.p1.parser import crc16
from tests.ingest.test_service import running, settings_for, until
from tests.rest.conftest import RestFactory
from tests.rest.meters import CAPTURE

SECONDS = 90  # telegrams in the replayed capture, one a second


def gas_capture(folder: Path, n: int = SECONDS) -> Path:
    """The Kaifa capture `n` times, its clock one second further each time, CRC recomputed."""
    one = CAPTURE.read_bytes()
    body = one[: one.index(b"!") + 1]
    telegrams = []
    for k in range(n):
        minute, second = divmod(k, 60)
        clock = f"(16111321{minute:02d}{second:02d}W)".encode()
        frame = re.sub(rb"(0-0:1\.0\.0)\(\d{12}[SW]\)", rb"\1" + clock, body)
        telegrams.append(frame + f"{crc16(frame):04X}\r\n".encode())
    path = folder / "kaifa_gas.txt"
    path.write_bytes(b"".join(telegrams))
    return path


async def test_three_ingests_through_rest_and_one_unplugged(
    rest_factory: RestFactory, tmp_path: Path
) -> None:
    rest = await rest_factory(rest_stale_after=3.0)
    url = rest.settings.redis_url
    capture = gas_capture(tmp_path)
    classic = settings_for(url, source="simulator", simulator_interval=0.2)
    heatpump = settings_for(url, meter_name="heatpump", simulator_interval=0.2)
    gas = settings_for(
        url,
        meter_name="gas",
        source=f"file://{capture}?pace=recorded",
        meter_timezone="Europe/Amsterdam",
    )
    listing: dict[str, Any] = {}

    async def all_three_fresh() -> bool:
        nonlocal listing
        listing = (await rest.client.get("/meters")).json()
        meters = listing["meters"]
        return len(meters) == 3 and all(m["in_directory"] and not m["stale"] for m in meters)

    async with contextlib.AsyncExitStack() as ingests:
        await ingests.enter_async_context(running(classic))
        await ingests.enter_async_context(running(gas))
        unplug = contextlib.AsyncExitStack()
        await unplug.enter_async_context(running(heatpump))
        async with unplug:
            await until(all_three_fresh, "three fresh meters in /meters")
            by_id = {m["id"]: m for m in listing["meters"]}
            default = listing["default"]
            assert set(by_id) == {"gas", "heatpump", default}
            assert by_id[default]["stream"] == "hanport:readings"  # the classic stream's meter
            assert by_id["gas"]["model"] == "KFM5KAIFA-METER"
            assert by_id["gas"]["submeters"] == [{"channel": 1, "medium": "gas"}]
            assert by_id["heatpump"]["source"] == "simulator"

            gas_now = (await rest.client.get("/meters/gas")).json()
            assert gas_now["meter"] == "gas"
            sub = gas_now["submeters"]["1"]
            assert (sub["medium"], sub["value"], sub["unit"]) == ("gas", 981.443, "m3")
            telegram = (await rest.client.get("/meters/gas/telegram")).json()
            assert telegram["telegram"].startswith("/KFM5KAIFA-METER")
            meter = (await rest.client.get("/meter")).json()
            assert "meter" not in meter and meter["type"] == "HAN_METER_MESSAGE"
        # the heat pump's ingest stopped: only its data goes stale

        async def heatpump_stale() -> bool:
            return (await rest.client.get("/meters/heatpump")).status_code == 503

        await until(heatpump_stale, "the heat pump's data stale")
        assert (await rest.client.get(f"/meters/{default}")).status_code == 200
        assert (await rest.client.get("/meters/gas")).status_code == 200
        assert (await rest.client.get("/meter")).status_code == 200
        stale = {m["id"]: m["stale"] for m in (await rest.client.get("/meters")).json()["meters"]}
        assert stale == {"gas": False, "heatpump": True, default: False}
