"""200 simulated boxes at 1 Hz into the 3-node hub (operator mode, each box with its own
credentials issued after the hub started): every reading stored once, under its box's subject.
5 s of traffic (1,000 readings); `python -m bench.fleet boxes` runs it longer and with more."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError

from services.hub.credentials import Fleet, box_inbox
from services.hub.stream import HUB_STREAM
from services.uplink.messages import MSG_ID, readings_subject
from shared.reading import encode_reading
from tests.fleet.nats import cluster
from tests.fleet.support import create_hub_stream, eventually
from tests.readings import simulated_readings

BOXES = 200
SECONDS = 5


async def test_two_hundred_boxes_at_one_hertz(tmp_path: Path) -> None:
    fleet = Fleet.new()
    nodes = cluster(tmp_path, extra=fleet.server_config())
    for node in nodes:
        node.start()
    urls = [n.url for n in nodes]
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "admin.creds").write_text(fleet.service_creds("admin"))
    admin = await nats.connect(urls, user_credentials=str(creds / "admin.creds"))
    boxes = [f"HPSIM{n:04d}" for n in range(BOXES)]
    clients: list[Client] = []
    payload = encode_reading(simulated_readings(1)[0])
    try:

        async def created() -> bool:
            try:
                await create_hub_stream(admin, replicas=3)
            except (APIError, NatsTimeout):
                return False
            return True

        await eventually(created, "the R3 stream (cluster formed)", within=60)
        for n, box in enumerate(boxes):
            path = creds / f"{box}.creds"
            path.write_text(fleet.box_creds(box))
            clients.append(
                await nats.connect(
                    urls[n % 3 :] + urls[: n % 3],
                    user_credentials=str(path),
                    inbox_prefix=box_inbox(box),
                    dont_randomize=True,
                )  # fmt: skip
            )
        start = time.monotonic() + 0.5

        async def box_loop(box: str, nc: Client) -> int:
            js = nc.jetstream()
            acked = 0
            for tick in range(SECONDS):
                await asyncio.sleep(max(0.0, start + tick - time.monotonic()))
                headers = {MSG_ID: f"{box}:m:{tick}-0"}
                ack = await js.publish(readings_subject(box, "m"), payload, headers=headers,
                                       timeout=10)  # fmt: skip
                acked += 0 if ack.duplicate else 1
            return acked

        acked = await asyncio.gather(*(box_loop(b, c) for b, c in zip(boxes, clients, strict=True)))
        assert sum(acked) == BOXES * SECONDS
        info = await admin.jetstream().stream_info(HUB_STREAM)
        assert info.state.messages == BOXES * SECONDS
        subjects = await admin.jetstream().stream_info(HUB_STREAM, subjects_filter=">")
        assert subjects.state.subjects == {readings_subject(b, "m"): SECONDS for b in boxes}
    finally:
        for client in clients:
            await client.close()
        await admin.close()
        for node in nodes:
            node.stop()
