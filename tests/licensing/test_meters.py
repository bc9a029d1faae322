"""A license may name the meters it serves (`meters`): issued and shown by the vendor's CLI,
covered by the signature, and followed by `Entitlements` (its `Decision.meters`) and
`MeterFilter` (names or equipment ids; refusals logged once and counted). The MQTT and Modbus
ends are in tests/mqtt/test_meters.py and tests/modbus/test_meters.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.cli import main as hanport
from shared.entitlements import METER_REFUSED, Decision, MeterFilter
from shared.license import LicenseError, canonical, load_public_keys, read_signed, serves_meter
from tests.licensing_helpers import grant
from tests.servers import RedisServer

from .test_entitlements import SERIAL, WAIT, following, redis  # noqa: F401 - the fixture

DSMR_ID = "E0044007382246019"


def keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    assert hanport(["license", "keygen", "--out", str(tmp_path / "keys")]) == 0
    out = capsys.readouterr().out
    private = Path(re.search(r"private key: (\S+)", out).group(1))  # type: ignore[union-attr]
    public = Path(re.search(r"public key:\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return private, public


def issue(private: Path, out: Path, *extra: str) -> dict[str, object]:
    argv = ["license", "issue", "--key", str(private), "--serial", "HP1", "--use", "consumer"]
    argv += ["--kind", "activation", "--features", "mqtt,modbus", "--out", str(out), *extra]
    assert hanport(argv) == 0
    license: dict[str, object] = json.loads(out.read_text())["licence"]
    return license


def test_the_cli_issues_shows_and_verifies_a_license_naming_meters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keygen(tmp_path, capsys)
    named = tmp_path / "named.lic"
    assert issue(private, named, "--meters", f"main, {DSMR_ID},main")["meters"] == [
        "main",
        DSMR_ID,
    ]
    assert "meters" not in issue(private, tmp_path / "all.lic")  # every meter: as before
    capsys.readouterr()
    assert hanport(["license", "verify", "--public-key", str(public), str(named)]) == 0
    assert hanport(["license", "show", str(named)]) == 0
    assert re.search(rf"Serves meters:\s+main, {DSMR_ID}", capsys.readouterr().out)
    with pytest.raises(SystemExit):
        hanport(["license", "issue", "--key", str(private), "--serial", "HP1", "--use",
                 "consumer", "--kind", "activation", "--features", "mqtt", "--meters", " , ",
                 "--out", str(tmp_path / "none.lic")])  # fmt: skip
    assert "name at least one meter" in capsys.readouterr().err


def test_the_meters_are_signed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private, public = keygen(tmp_path, capsys)
    path = tmp_path / "named.lic"
    issue(private, path, "--meters", "main")
    keys = load_public_keys(public)
    assert read_signed(path.read_bytes(), keys).license.meters == ["main"]
    document = json.loads(path.read_text())
    for meters in (["main", "heatpump"], None):  # a meter added, or the list taken away
        forged = dict(document["licence"], meters=meters)
        if meters is None:
            del forged["meters"]
        text = json.dumps({"licence": forged, "signature": document["signature"]}).encode()
        with pytest.raises(LicenseError) as refused:
            read_signed(text, keys)
        assert refused.value.reason == "bad_signature"
    assert base64.b64decode(document["signature"])  # untouched
    assert canonical(document["licence"]).count(b'"meters":["main"]') == 1


def test_a_meter_is_named_by_its_name_or_its_equipment_id() -> None:
    assert serves_meter(None, "anything")
    assert serves_meter(["main", DSMR_ID], "main", "7350000000000001")
    assert serves_meter(["main", DSMR_ID], "dsmr", DSMR_ID)
    assert not serves_meter(["main", DSMR_ID], "heatpump", "HP-77")
    assert not serves_meter([], "main")
    # DSMR meters send their id hex-encoded: named as sent or as it reads
    sent = DSMR_ID.encode().hex().upper()
    assert serves_meter([DSMR_ID], "main", sent) and serves_meter([sent], "main", sent)


async def test_entitlements_follow_a_license_naming_meters(
    redis_server: RedisServer,
    redis: Redis,  # noqa: F811 - the fixture
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"], meters=["main", DSMR_ID])
    meter_filter = MeterFilter("mqtt")
    before = METER_REFUSED.labels("mqtt", "heatpump")._value.get()
    async with following(redis, env) as entitlements:
        decision = await asyncio.wait_for(entitlements.wait_until("mqtt", granted=True), WAIT)
        assert decision.meters == frozenset({"main", DSMR_ID})
        with caplog.at_level(logging.INFO, logger="shared.entitlements"):
            assert meter_filter.serves(decision, "main", "7350000000000001")
            assert meter_filter.serves(decision, "dsmr", DSMR_ID)
            assert not meter_filter.serves(decision, "heatpump", "HP-77")
            assert not meter_filter.serves(decision, "heatpump", "HP-77")
        refusals = [r.getMessage() for r in caplog.records if "heatpump" in r.getMessage()]
        assert len(refusals) == 1  # logged once, counted every time
        assert "serves only the meters E0044007382246019, main, not meter heatpump" in refusals[0]
        assert METER_REFUSED.labels("mqtt", "heatpump")._value.get() == before + 2
        # a license for every meter replaces it: the heat pump is served again, and said so
        await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"])
        await asyncio.wait_for(
            entitlements.wait_for(lambda: entitlements.decide("mqtt").meters is None), WAIT
        )
        with caplog.at_level(logging.INFO, logger="shared.entitlements"):
            assert meter_filter.serves(entitlements.decide("mqtt"), "heatpump", "HP-77")
        assert "mqtt: meter heatpump is served again" in caplog.text
    assert Decision(True, "").meters is None  # interfaces' stand-ins serve every meter
