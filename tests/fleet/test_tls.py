"""The uplink over TLS with its box credentials: `tls://` URL, the hub's CA from
HANPORT_UPLINK_CA_FILE; a client without TLS is refused."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import nats
import pytest

from services.hub.credentials import Fleet
from services.uplink.uplink import run_uplink
from shared.stream import connect
from tests.fleet.nats import NatsServer
from tests.fleet.support import BOX, Feeder, create_hub_stream, eventually, hub_readings, settings
from tests.mqtt.certs import make_ca, make_server_cert
from tests.servers import RedisServer


async def test_uplink_over_tls(tmp_path: Path, redis_server: RedisServer) -> None:
    ca_path, ca_key, ca_cert = make_ca(tmp_path / "ca", "hub CA")
    cert, key = make_server_cert(tmp_path / "ca", ca_key, ca_cert)
    fleet = Fleet.new()
    tls = f"tls {{ cert_file: {cert}, key_file: {key} }}\n"
    hub = NatsServer(tmp_path / "hub", extra=tls + fleet.server_config())
    hub.start()
    (tmp_path / "box.creds").write_text(fleet.box_creds(BOX))
    (tmp_path / "admin.creds").write_text(fleet.service_creds("admin"))
    context = ssl.create_default_context(cafile=str(ca_path))
    admin = await nats.connect(
        f"tls://127.0.0.1:{hub.port}", tls=context, user_credentials=str(tmp_path / "admin.creds")
    )
    await create_hub_stream(admin)
    redis = await connect(redis_server.url)
    config = settings(
        f"tls://127.0.0.1:{hub.port}", redis_server.url,
        uplink_creds_file=tmp_path / "box.creds", uplink_ca_file=ca_path,
    )  # fmt: skip
    feeder = Feeder(redis, config.stream)
    await feeder.add(40)
    uplink = asyncio.create_task(run_uplink(config, redis))
    try:

        async def arrived() -> bool:
            return dict(await hub_readings(admin)) == dict(feeder.sent)

        await eventually(arrived, "the readings over TLS")
        with pytest.raises(Exception):  # noqa: B017,PT011 - nats-py raises several kinds
            await nats.connect(
                hub.url, user_credentials=str(tmp_path / "box.creds"), allow_reconnect=False,
                connect_timeout=2,
            )  # fmt: skip
    finally:
        uplink.cancel()
        await asyncio.gather(uplink, return_exceptions=True)
        await admin.close()
        hub.stop()
