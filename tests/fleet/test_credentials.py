"""Fleet credentials: a hub in operator mode (its config names no box) takes two boxes, each
with a .creds file issued afterwards by `hanport hub box-creds`; a box publishing under the
other box's subjects is refused, and nothing of it is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from services.hub.cli import main as hub_main
from services.hub.credentials import Fleet, box_inbox, decode_claims, public_key
from services.uplink.messages import readings_subject
from services.uplink.uplink import run_uplink
from shared.stream import connect
from tests.fleet.nats import NatsServer
from tests.fleet.support import Feeder, create_hub_stream, eventually, hub_readings, settings
from tests.servers import RedisServer


def issue(keys: Path, *args: str, out: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert hub_main([*args[:1], str(keys), *args[1:]]) == 0
    out.write_text(capsys.readouterr().out)
    return out


async def test_two_boxes_own_subjects_only(
    tmp_path: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "fleet.json"
    assert hub_main(["keys", str(keys)]) == 0
    assert hub_main(["keys", str(keys)]) == 1  # never overwritten
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    capsys.readouterr()
    assert hub_main(["server-config", str(keys)]) == 0
    hub = NatsServer(tmp_path / "hub", extra=capsys.readouterr().out)
    hub.start()
    # boxes are provisioned after the hub started: its config never changes
    service = issue(keys, "service-creds", "sink", out=tmp_path / "sink.creds", capsys=capsys)
    creds = {
        box: issue(keys, "box-creds", box, out=tmp_path / f"{box}.creds", capsys=capsys)
        for box in ("HPBOXA", "HPBOXB")
    }
    claims = decode_claims(creds["HPBOXA"].read_text().split("\n")[1])
    assert claims["nats"]["pub"] == {"allow": ["hanport.HPBOXA.>"]}
    assert claims["nats"]["issuer_account"] == public_key(Fleet.from_json(keys.read_text()).account)

    admin = await nats.connect(hub.url, user_credentials=str(service))
    await create_hub_stream(admin)
    redis = await connect(redis_server.url)
    tasks, feeders = [], {}
    try:
        for n, box in enumerate(creds):
            config = settings(hub.url, redis_server.url, uplink_box=box,
                              uplink_creds_file=creds[box], stream=f"readings:{n}")  # fmt: skip
            feeders[box] = Feeder(redis, config.stream, meters=("m",))
            await feeders[box].add(20)
            tasks.append(asyncio.create_task(run_uplink(config, redis)))
        for box, feeder in feeders.items():

            async def arrived(box: str = box, feeder: Feeder = feeder) -> bool:
                return dict(await hub_readings(admin, box)) == dict(feeder.sent)

            await eventually(arrived, f"{box}'s readings at the hub")

        # box A tries to publish as box B: the server refuses (permissions violation)
        errors: list[Exception] = []

        async def on_error(error: Exception) -> None:
            errors.append(error)

        rogue = await nats.connect(
            hub.url, user_credentials=str(creds["HPBOXA"]), inbox_prefix=box_inbox("HPBOXA"),
            error_cb=on_error,
        )  # fmt: skip
        with pytest.raises(nats.errors.TimeoutError):
            await rogue.jetstream().publish(readings_subject("HPBOXB", "m"), b"{}", timeout=1.0)
        await eventually(lambda: _true(errors), "the permissions violation")
        assert "permissions violation" in str(errors[0]).lower()
        assert "hanport.hpboxb.m.readings" in str(errors[0]).lower()
        await rogue.close()
        # nothing of it stored (health messages of both boxes may have arrived meanwhile)
        stored = await hub_readings(admin, "HPBOXB")
        assert dict(stored) == dict(feeders["HPBOXB"].sent)
        # a connection without credentials is refused at once
        with pytest.raises(Exception):  # noqa: B017,PT011 - nats-py raises several kinds
            await nats.connect(hub.url, allow_reconnect=False, connect_timeout=2)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await admin.close()
        hub.stop()


async def _true(items: list[Exception]) -> bool:
    return bool(items)
