"""The SMA Energy Meter runs inside the emulation service when HANPORT_EMULATE names `sma`:
licensed by its own feature, serving its chosen meter from the service's `Latest`."""

from __future__ import annotations

import asyncio

from tests.emulate.conftest import StartEmulate, UdpClient, free_udp_port, fresh


async def test_the_service_sends_sma_datagrams_of_the_chosen_meter(
    start_emulate: StartEmulate, udp_client: UdpClient
) -> None:
    assert udp_client.transport is not None
    port = udp_client.transport.get_extra_info("sockname")[1]
    service = await start_emulate(
        emulate="shelly,sma",
        licensed=("shelly", "sma"),
        shelly_udp_ports=str(free_udp_port()),
        sma_multicast=False,
        sma_unicast=f"127.0.0.1:{port}",
        sma_interval=0.1,
        sma_meter="garage",
    )
    await service.publish(fresh(meter="house"))
    assert udp_client.answers.empty()  # the chosen meter has sent nothing yet: silence
    await service.publish(fresh(meter="garage"))
    datagram = await asyncio.wait_for(udp_client.answers.get(), 10)
    assert datagram.startswith(b"SMA\x00")
