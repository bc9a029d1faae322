"""A box someone built themselves: `hanport license self-activate` switches on MQTT and Modbus for
consumer use with the box's own key, and that key can never make a commercial license. Real
licensing and Modbus processes on a real redis-server; the command runs as a user runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.licensing.cli import main as license_cli
from services.licensing.signing import load_private_key, new_license
from shared.license import (
    LOCAL_KEYS_DIR,
    LicenseError,
    load_local_keys,
    read_signed,
)
from tests.licensing.test_identity import modbus_serves, start_licensing, start_modbus
from tests.licensing.test_interfaces import LIMIT, SLACK, Processes, eventually
from tests.servers import RedisServer

SERIAL = "HPSELF0001"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    yield running
    running.stop()


def self_activate(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    monkeypatch.chdir(folder.parent)  # no stray .env
    monkeypatch.setenv("HANPORT_LICENSE_DIR", str(folder))
    monkeypatch.delenv("HANPORT_SERIAL", raising=False)
    assert license_cli(["self-activate"]) == 0
    return capsys.readouterr().out


def local_private(folder: Path) -> Path:
    return next((folder / LOCAL_KEYS_DIR).glob("hanport-*.key"))


def local_keys(folder: Path) -> dict[str, Ed25519PublicKey]:
    return load_local_keys(folder)


async def test_self_activation_switches_on_modbus_without_any_vendor_key(
    redis_server: RedisServer,
    procs: Processes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "licenses"
    folder.mkdir()
    (folder / "serial").write_text(f"{SERIAL}\n")  # established by the licensing service
    env = {
        "HANPORT_REDIS_URL": redis_server.url,
        "HANPORT_USE": "consumer",
        "HANPORT_LICENSE_DIR": str(folder),
    }  # no HANPORT_LICENSE_PUBLIC_KEYS: no vendor key ships
    lic_port = start_licensing(procs, env)
    modbus_port = start_modbus(procs, env)
    assert not await modbus_serves(modbus_port)

    out = self_activate(folder, monkeypatch, capsys)
    assert (
        f"consumer activation of mqtt, modbus, shelly, homewizard, sma, export for reader {SERIAL}"
        in out
    )
    assert (local_private(folder).stat().st_mode & 0o777) == 0o600

    async def serving() -> bool:
        return await modbus_serves(modbus_port)

    # the folder watch (5 s) picks the license up, Modbus verifies it with the box's key
    assert await eventually(serving, 5 + LIMIT + SLACK) < 5 + LIMIT + SLACK
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{lic_port}", timeout=5) as lic:
        state = (await lic.get("/license")).json()
    assert state["features"]["mqtt"]["granted"] and state["features"]["modbus"]["granted"]
    assert not state["features"]["rest"]["reason"].startswith("license")  # free, not licensed

    # running it again reuses the box's key
    self_activate(folder, monkeypatch, capsys)
    assert len(list((folder / LOCAL_KEYS_DIR).glob("*.key"))) == 1


def test_self_activate_needs_the_serial_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "licenses"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HANPORT_LICENSE_DIR", str(folder))
    monkeypatch.delenv("HANPORT_SERIAL", raising=False)
    assert license_cli(["self-activate"]) == 1
    assert "start the licensing service once" in capsys.readouterr().err
    assert not folder.exists() or not list(folder.glob("*.lic"))


@pytest.mark.parametrize(
    ("use", "kind", "features"),
    [
        ("commercial", "full", ["rest", "mqtt", "modbus"]),
        ("commercial", "trial", ["mqtt"]),
        ("consumer", "activation", ["rest", "mqtt"]),
        ("consumer", "full", ["mqtt"]),
    ],
)
def test_the_box_key_signs_nothing_beyond_a_consumer_activation(
    use: str,
    kind: str,
    features: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "licenses"
    folder.mkdir()
    (folder / "serial").write_text(f"{SERIAL}\n")
    self_activate(folder, monkeypatch, capsys)
    text = new_license(
        load_private_key(local_private(folder)),
        serial=SERIAL,
        use=use,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        features=features,  # type: ignore[arg-type]
    )
    with pytest.raises(LicenseError) as refused:
        read_signed(text, {}, local_keys(folder))
    assert refused.value.reason == "local_key_scope"


def test_the_activation_it_writes_verifies_with_the_box_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "licenses"
    folder.mkdir()
    (folder / "serial").write_text(f"{SERIAL}\n")
    self_activate(folder, monkeypatch, capsys)
    (written,) = folder.glob("*.lic")
    signed = read_signed(written.read_bytes(), {}, local_keys(folder))
    license = signed.license
    assert (license.serial, license.use, license.kind) == (SERIAL, "consumer", "activation")
    assert license.features == ["mqtt", "modbus", "shelly", "homewizard", "sma", "export"]
    assert license.expires is None
    with pytest.raises(LicenseError) as unknown:  # not a vendor key: unknown without the folder
        read_signed(written.read_bytes(), {})
    assert unknown.value.reason == "unknown_key"
