"""The Shelly Pro 3EM as its clients see it: Home Assistant's `aioshelly` over HTTP and
WebSocket, a Marstek battery's JSON-RPC over UDP, and raw HTTP for the edges (stale data,
missing values, a second meter, malformed datagrams, oversized requests)."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import httpx
import msgspec
import pytest
from aioshelly.common import ConnectionOptions, get_info
from aioshelly.exceptions import DeviceConnectionError
from aioshelly.rpc_device import RpcDevice
from prometheus_client import REGISTRY

from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.reading import cozify_message
from shared.stream import ReadingStream
from tests.emulate.conftest import StartEmulate, UdpClient, free_udp_port, fresh, now_ms
from tests.licensing_helpers import revoke
from tests.stack.polling import until


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "hanport_emulate_refused_total", {"personality": "shelly", "reason": reason}
    )
    return value or 0.0


def marstek_request(request_id: int, method: str = "EM.GetStatus") -> bytes:
    """What a Marstek Venus sends to port 1010 (and B2500 firmware 226+ to 2220)."""
    return msgspec.json.encode(
        {"id": request_id, "src": "marstek", "method": method, "params": {"id": 0}}
    )


async def test_aioshelly_reads_the_power_and_energy_rest_serves(
    start_emulate: StartEmulate,
) -> None:
    service = await start_emulate()
    reading = fresh()
    await service.publish(reading)
    meter = cozify_message(reading)  # what REST /meter answers for this reading
    port = service.settings.shelly_http_port
    async with aiohttp.ClientSession() as session:
        info = await get_info(session, "127.0.0.1", port=port)
        assert info["model"] == "SPEM-003CEBEU" and info["gen"] == 2 and info["app"] == "Pro3EM"
        assert info["id"].startswith("shellypro3em-")
        device = await RpcDevice.create(session, None, ConnectionOptions("127.0.0.1", port=port))
        await device.initialize()
        try:
            assert device.initialized and device.model == "SPEM-003CEBEU"
            em = device.status["em:0"]
            emdata = device.status["emdata:0"]
            assert em["total_act_power"] == meter["p"][0]
            assert [em["a_act_power"], em["b_act_power"], em["c_act_power"]] == meter["p"][1:]
            assert [em["a_voltage"], em["b_voltage"], em["c_voltage"]] == meter["u"]
            assert [em["a_current"], em["b_current"], em["c_current"]] == meter["i"]
            assert emdata["total_act"] == round(meter["ic"] * 1000, 2)
            assert emdata["total_act_ret"] == round(meter["ec"] * 1000, 2)

            # a new reading is pushed over the WebSocket as NotifyStatus, as the device does
            updates: asyncio.Queue[object] = asyncio.Queue()
            device.subscribe_updates(lambda _device, kind: updates.put_nowait(kind))
            newer = fresh(p=[1234.5, 400.0, 400.5, 434.0])
            await service.publish(newer)
            while device.status["em:0"]["total_act_power"] != 1234.5:
                await asyncio.wait_for(updates.get(), 10)
            assert device.status["em:0"]["a_act_power"] == 400.0
        finally:
            await device.shutdown()


async def test_marstek_udp_exchange_on_both_ports(
    start_emulate: StartEmulate, udp_client: UdpClient
) -> None:
    service = await start_emulate()
    reading = fresh()
    await service.publish(reading)
    for number, port in enumerate(service.settings.udp_ports):
        udp_client.send(marstek_request(number + 1), ("127.0.0.1", port))
        answer = await udp_client.answer()
        assert answer["id"] == number + 1 and answer["dst"] == "marstek"
        assert answer["src"].startswith("shellypro3em-")
        result = answer["result"]
        assert result["total_act_power"] == reading.p[0]
        assert [result["a_act_power"], result["b_act_power"], result["c_act_power"]] == reading.p[
            1:
        ]
    # a method the Pro 3EM does not have (EM1 is the Pro EM's): the device's error frame
    udp_client.send(marstek_request(9, "EM1.GetStatus"), service.udp)
    answer = await udp_client.answer()
    assert answer["id"] == 9 and answer["error"]["code"] == 404


async def test_stale_data_is_unavailable_never_zeros(
    start_emulate: StartEmulate, udp_client: UdpClient
) -> None:
    service = await start_emulate(emulate_stale_after=5)
    old = fresh(received=now_ms() - 6000)
    await service.publish(old)
    async with httpx.AsyncClient(base_url=service.shelly, timeout=10) as http:
        response = await http.get("/rpc/EM.GetStatus", params={"id": 0})
        assert response.status_code == 503 and response.json()["code"] == -114
        assert (await http.get("/rpc/EMData.GetStatus?id=0")).status_code == 503
        framed = (await http.post("/rpc", json={"id": 3, "method": "EM.GetStatus"})).json()
        assert framed["error"]["code"] == -114 and "result" not in framed
        assert (await http.get("/shelly")).status_code == 200  # who it is still answers
    # UDP: silence (Marstek treats a meter that stops answering as lost). The request after it
    # is answered: the first answer is the second request's.
    udp_client.send(marstek_request(1), service.udp)
    udp_client.send(marstek_request(2, "Shelly.GetDeviceInfo"), service.udp)
    assert (await udp_client.answer())["id"] == 2
    # Home Assistant's client: the device does not initialise (its entities are unavailable)
    async with aiohttp.ClientSession() as session:
        options = ConnectionOptions("127.0.0.1", port=service.settings.shelly_http_port)
        device = await RpcDevice.create(session, None, options)
        with pytest.raises(DeviceConnectionError):
            await device.initialize()
        await device.shutdown()
    # fresh data again: answered at once
    await service.publish(fresh())
    udp_client.send(marstek_request(3), service.udp)
    assert (await udp_client.answer())["id"] == 3


async def test_missing_per_phase_values_are_left_out(start_emulate: StartEmulate) -> None:
    service = await start_emulate()
    reading = fresh(
        p=[850.0, None, None, None],
        pi=[850.0, None, None, None],
        pe=[0.0, None, None, None],
        u=[None, None, None],
        i=[None, None, None],
    )
    await service.publish(reading)
    async with httpx.AsyncClient(base_url=service.shelly, timeout=10) as http:
        em = (await http.get("/rpc/EM.GetStatus?id=0")).json()
    assert em["total_act_power"] == 850.0
    for key in ("a_act_power", "a_voltage", "a_current", "a_pf", "total_current"):
        assert key not in em  # never 0 for a value the meter did not send


async def test_a_second_meter_per_device_and_per_client(start_emulate: StartEmulate) -> None:
    """`house` on the classic stream, `garage` on its own stream listed in the directory of
    meters (as a second ingest with HANPORT_METER_NAME=garage writes them)."""
    service = await start_emulate(shelly_meter="garage")
    mapped = await start_emulate(emulate_clients="10.0.0.0/8=garage,127.0.0.1=house")
    garage = MeterKeys.named("garage")
    redis = service.stream.redis
    await MeterDirectory(redis).put(
        MeterRecord(name="garage", readings=garage.readings, raw=garage.raw, status=garage.status,
                    updated=now_ms())
    )  # fmt: skip
    house_reading = fresh(meter="house", p=[1000.0, 300.0, 300.0, 400.0])
    garage_reading = fresh(meter="garage", p=[-200.0, -100.0, -50.0, -50.0])
    await service.stream.add(house_reading)
    await ReadingStream(redis, garage.readings).add(garage_reading)
    for running in (service, mapped):
        for reading in (house_reading, garage_reading):
            await running.seen(reading)
    async with httpx.AsyncClient(base_url=service.shelly, timeout=10) as http:
        em = (await http.get("/rpc/EM.GetStatus?id=0")).json()
        assert em["total_act_power"] == -200.0
    async with httpx.AsyncClient(base_url=mapped.shelly, timeout=10) as http:
        em = (await http.get("/rpc/EM.GetStatus?id=0")).json()
        assert em["total_act_power"] == 1000.0  # 127.0.0.1 is mapped to house
    # a meter that stops sending is stale on its own; the other one stays fresh
    stale = await start_emulate(shelly_meter="nothing-here")
    async with httpx.AsyncClient(base_url=stale.shelly, timeout=10) as http:
        assert (await http.get("/rpc/EM.GetStatus?id=0")).status_code == 503


async def test_malformed_datagrams_are_ignored_and_counted(
    start_emulate: StartEmulate, udp_client: UdpClient
) -> None:
    service = await start_emulate()
    await service.publish(fresh())
    malformed, too_large = refused("malformed"), refused("too_large")
    for junk in (b" ", b"\xff\xfe", b"{", b"[1,2]", b'{"id":1}', b'{"method":"EM.GetStatus"}'):
        udp_client.send(junk, service.udp)
    udp_client.send(b'{"id":1,"method":"EM.GetStatus","pad":"' + b"x" * 4000 + b'"}', service.udp)
    udp_client.send(marstek_request(7), service.udp)
    answer = await udp_client.answer()
    assert answer["id"] == 7 and "result" in answer  # the first answer: nothing else was
    assert refused("malformed") - malformed == 6
    assert refused("too_large") - too_large == 1


async def test_oversized_http_requests_are_refused_and_counted(
    start_emulate: StartEmulate,
) -> None:
    service = await start_emulate(emulate_max_request_bytes=1024)
    await service.publish(fresh())
    too_large, bad = refused("too_large"), refused("bad_request")
    async with httpx.AsyncClient(base_url=service.shelly, timeout=10) as http:
        body = b'{"id":1,"method":"EM.GetStatus","pad":"' + b"x" * 5000 + b'"}'
        response = await http.post("/rpc", content=body)
        assert response.status_code == 413
        response = await http.get("/rpc/EM.GetStatus", headers={"X-Long": "y" * 5000})
        assert response.status_code in (400, 431)
        response = await http.post("/rpc", content=b"not json")
        assert response.status_code == 400
        # still answering
        em = (await http.get("/rpc/EM.GetStatus?id=0")).json()
        assert "total_act_power" in em

    # the access log sees the response after it was sent: wait for the counters
    async def counted() -> bool:
        return refused("bad_request") > bad and refused("too_large") > too_large

    await until(counted, "the refusals counted", lambda: "", within=10)


async def test_unknown_method_and_component(start_emulate: StartEmulate) -> None:
    service = await start_emulate()
    await service.publish(fresh())
    async with httpx.AsyncClient(base_url=service.shelly, timeout=10) as http:
        response = await http.get("/rpc/Switch.Set")
        assert response.status_code == 404 and response.json()["code"] == 404
        response = await http.get("/rpc/EM.GetStatus?id=1")
        assert response.status_code == 400 and response.json()["code"] == -103
        methods = (await http.get("/rpc/Shelly.ListMethods")).json()["methods"]
        assert "EM.GetStatus" in methods and "EMData.GetStatus" in methods


async def test_silent_without_a_license(start_emulate: StartEmulate) -> None:
    service = await start_emulate(licensed=("homewizard",))
    await service.publish(fresh())
    async with httpx.AsyncClient(timeout=10) as http:
        # the HTTP port is the HomeWizard's too here? No: separate ports, the Shelly's is closed
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{service.shelly}/shelly")
        assert (await http.get(f"{service.homewizard}/api")).status_code == 200


async def test_shared_port_answers_only_the_licensed_device(start_emulate: StartEmulate) -> None:
    from tests.servers import free_port

    port = free_port()
    service = await start_emulate(
        licensed=("homewizard",), shelly_http_port=port, homewizard_port=port
    )
    await service.publish(fresh())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert (await http.get("/api")).status_code == 200
        assert (await http.get("/shelly")).status_code == 404


async def test_a_port_in_use_is_said_and_retried(
    start_emulate: StartEmulate, udp_client: UdpClient, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_udp_port()
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", port))
    caplog.set_level(logging.ERROR, "services.emulate")
    starting = asyncio.create_task(start_emulate(shelly_udp_ports=str(port)))

    async def said() -> bool:
        return f"cannot open UDP port {port} (HANPORT_SHELLY_UDP_PORTS)" in caplog.text

    await until(said, "the error line", lambda: caplog.text, within=10)
    taken.close()
    service = await starting  # opened on a later try
    await service.publish(fresh())
    udp_client.send(marstek_request(1), ("127.0.0.1", port))
    assert (await udp_client.answer())["id"] == 1


async def test_withdrawn_license_silences_the_device(
    start_emulate: StartEmulate, udp_client: UdpClient
) -> None:
    service = await start_emulate()
    await service.publish(fresh())
    async with httpx.AsyncClient(base_url=service.shelly, timeout=10) as http:
        framed = await http.post("/rpc", json={"id": 5, "src": "t", "method": "EM.GetStatus"})
        body = framed.json()
        assert body["id"] == 5 and body["dst"] == "t" and "total_act_power" in body["result"]
        by_query = await http.get("/rpc", params={"method": "EMData.GetStatus", "id": "0"})
        assert "total_act" in by_query.json()
    await revoke(service.settings.redis_url, ["shelly"])
    await asyncio.wait_for(service.serving.wait("shelly", False), 10)
    async with httpx.AsyncClient(timeout=10) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{service.shelly}/shelly")
        assert (await http.get(f"{service.homewizard}/api")).status_code == 200
    for port in service.settings.udp_ports:  # closed: free for anyone to bind
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", port))


async def test_a_license_naming_its_meters_serves_only_those(start_emulate: StartEmulate) -> None:
    service = await start_emulate(meters=["house"], shelly_meter="garage")
    await service.publish(fresh(meter="garage"))
    await service.publish(fresh(meter="house", p=[700.0, 200.0, 200.0, 300.0]))
    async with httpx.AsyncClient(base_url=service.shelly, timeout=10) as http:
        response = await http.get("/rpc/EM.GetStatus?id=0")
        assert response.status_code == 503 and response.json()["code"] == -114
    house = await start_emulate(meters=["house"], shelly_meter="house")
    await house.publish(fresh(meter="house", p=[700.0, 200.0, 200.0, 300.0]))
    async with httpx.AsyncClient(base_url=house.shelly, timeout=10) as http:
        assert (await http.get("/rpc/EM.GetStatus?id=0")).json()["total_act_power"] == 700.0
