"""The HomeWizard P1 meter as its clients see it: Home Assistant's `python-homewizard-energy`
(API v1) reads /api and /api/v1/data; the raw telegram comes from the raw stream the real
ingest publisher writes; stale data answers 503."""

from __future__ import annotations

import asyncio

import httpx
from homewizard_energy import HomeWizardEnergy

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.p1.decoder import P1Decoder
from services.ingest.publisher import Publisher
from shared.meters import meter_of
from shared.reading import Reading, SubMeter
from tests.emulate.conftest import StartEmulate, fresh, now_ms
from tests.readings import simulated_telegrams


async def test_the_v1_client_reads_device_and_data(start_emulate: StartEmulate) -> None:
    service = await start_emulate()
    gas = SubMeter(channel=1, device_type=3, id="G0012345678", value=1234.567, unit="m3",
                   ts=now_ms())  # fmt: skip
    reading = fresh(tariffs={"1.8.1": 6000.5, "1.8.2": 6345.178, "2.8.1": 1000.0},
                    tariff="0002", submeters=[gas])  # fmt: skip
    await service.publish(reading)
    host = f"127.0.0.1:{service.settings.homewizard_port}"
    async with HomeWizardEnergy(host) as client:
        device = await client.device()
        assert device.product_type == "HWE-P1" and device.api_version == "v1"
        assert device.serial and device.firmware_version
        data = await client.data()
    assert data.active_power_w == reading.p[0]
    assert [data.active_power_l1_w, data.active_power_l2_w, data.active_power_l3_w] == reading.p[1:]
    assert data.total_energy_import_kwh == reading.ic
    assert data.total_energy_export_kwh == reading.ec
    assert data.total_energy_import_t1_kwh == 6000.5
    assert data.total_energy_import_t2_kwh == 6345.178
    assert data.total_energy_export_t1_kwh == 1000.0
    assert data.active_tariff == 2
    assert [
        data.active_voltage_l1_v,
        data.active_voltage_l2_v,
        data.active_voltage_l3_v,
    ] == reading.u
    assert [
        data.active_current_l1_a,
        data.active_current_l2_a,
        data.active_current_l3_a,
    ] == reading.i
    assert data.unique_meter_id == reading.meter_id
    assert data.external_devices is not None
    (external,) = data.external_devices.values()
    assert external.meter_type.name == "GAS_METER" and external.value == 1234.567
    assert external.unique_id == "G0012345678" and external.unit == "m3"
    assert data.total_gas_m3 == 1234.567


async def test_stale_data_answers_503_never_zeros(start_emulate: StartEmulate) -> None:
    service = await start_emulate(emulate_stale_after=5)
    await service.publish(fresh(received=now_ms() - 6000))
    async with httpx.AsyncClient(base_url=service.homewizard, timeout=10) as http:
        response = await http.get("/api/v1/data")
        assert response.status_code == 503
        assert response.json()["error"]["description"].startswith("meter data unavailable")
        assert (await http.get("/api/v1/telegram")).status_code == 503
        assert (await http.get("/api")).status_code == 200
        await service.publish(fresh())
        assert (await http.get("/api/v1/data")).json()["active_power_w"] is not None


async def test_missing_values_are_left_out(start_emulate: StartEmulate) -> None:
    service = await start_emulate()
    await service.publish(fresh(p=[850.0, None, None, None], u=[None, None, None],
                                i=[None, None, None]))  # fmt: skip
    host = f"127.0.0.1:{service.settings.homewizard_port}"
    async with HomeWizardEnergy(host) as client:
        data = await client.data()
    assert data.active_power_w == 850.0
    assert data.active_power_l1_w is None and data.active_voltage_l1_v is None
    async with httpx.AsyncClient(base_url=service.homewizard, timeout=10) as http:
        body = (await http.get("/api/v1/data")).json()
    assert "active_power_l1_w" not in body and "active_voltage_l1_v" not in body


async def test_the_telegram_is_the_raw_stream_s(start_emulate: StartEmulate) -> None:
    service = await start_emulate()
    settings = service.settings
    publisher = Publisher(settings.redis_url, settings.stream, settings.raw_stream)
    task = asyncio.create_task(publisher.run())
    try:
        telegram = simulated_telegrams(1, start_ms=now_ms())[0]
        received = now_ms()
        (decoded,) = P1Decoder().feed(telegram, received)
        assert isinstance(decoded, Decoded)
        publisher.put(decoded.reading, telegram, "ok", received)
        reading: Reading = decoded.reading
        name = meter_of(reading)
        await asyncio.wait_for(
            service.latest.until(lambda: service.latest.get(name) is not None), 10
        )
        async with httpx.AsyncClient(base_url=service.homewizard, timeout=10) as http:
            response = await http.get("/api/v1/telegram")
        assert response.status_code == 200
        assert response.content == telegram and response.text.startswith("/")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
