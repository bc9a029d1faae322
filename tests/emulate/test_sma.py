"""The SMA Energy Meter sender (services/emulate/sma/sender.py) on real UDP sockets.

pysma-plus's energy-meter reader (`SMAspeedwireEM`, Home Assistant's) is the receiving
protocol on a socket of the test's own: it reads the datagrams sent by unicast and by
multicast over loopback and must find the reading's values. A stale or missing reading sends
nothing; bad settings stop with a line saying what to set.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from pysmaplus.device_em import SMAspeedwireEM

from services.emulate.sma import SmaSettings, run_sma
from services.emulate.sma import metrics as sma_metrics
from services.emulate.sma.sender import derived_serial as serial_of
from services.emulate.sma.sender import destinations, open_socket
from services.emulate.sma.speedwire import MULTICAST_GROUP
from shared.reading import Reading
from shared.settings import load_settings
from tests.servers import free_port

WAIT = 10.0  # seconds any wait may take before the test fails
SERIAL = 3_911_111_111


def reading(received_s: float | None = None, meter: str | None = None) -> Reading:
    now_ms = int((time.time() if received_s is None else received_s) * 1000)
    return Reading(
        ts=now_ms,
        received=now_ms,
        meter=meter,
        ic=4321.5,
        ec=1234.25,
        p=[-850.0, -1000.0, 100.0, 50.0],
        pi=[0.0, 0.0, 100.0, 50.0],
        pe=[850.0, 1000.0, 0.0, 0.0],
        r=[120.0, 40.0, 40.0, 40.0],
        u=[230.1, 231.2, 229.3],
        i=[4.5, 0.6, 0.3],
        frequency=49.98,
    )


def sma_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> SmaSettings:
    monkeypatch.chdir("/")  # no .env file of a developer's
    defaults = {"HANPORT_SMA_INTERVAL": "0.05"}
    for name, value in {**defaults, **env}.items():
        monkeypatch.setenv(name, value)
    return load_settings(SmaSettings)


def receiver(multicast_on: str | None = None) -> socket.socket:
    """A UDP socket on a free loopback port; joined to the SMA group on `multicast_on`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if multicast_on is None:
        sock.bind(("127.0.0.1", free_port()))
        return sock
    sock.bind(("", free_port()))
    try:
        sock.setsockopt(
            socket.IPPROTO_IP,
            socket.IP_ADD_MEMBERSHIP,
            socket.inet_aton(MULTICAST_GROUP) + socket.inet_aton(multicast_on),
        )
    except OSError as error:
        sock.close()
        pytest.skip(f"this kernel refuses multicast membership on {multicast_on}: {error}")
    return sock


def unicast_receiver(
    monkeypatch: pytest.MonkeyPatch, **env: str
) -> tuple[socket.socket, SmaSettings]:
    """A receiving socket, and settings that send to it alone (no multicast), plus `env`."""
    sock = receiver()
    settings = sma_settings(
        monkeypatch,
        HANPORT_SMA_MULTICAST="false",
        HANPORT_SMA_UNICAST=f"127.0.0.1:{sock.getsockname()[1]}",
        **env,
    )
    return sock, settings


@contextlib.asynccontextmanager
async def sending(
    settings: SmaSettings,
    latest: Callable[[], Reading | None],
    box_serial: str | None = "HP0A1B2C3D4E",
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run_sma(settings, latest, box_serial))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def pysma_on(sock: socket.socket) -> AsyncIterator[SMAspeedwireEM]:
    """pysma-plus's energy-meter reader receiving on `sock`."""
    em = SMAspeedwireEM()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: em,
        sock=sock,
    )
    try:
        yield em
    finally:
        transport.close()


async def read_values(em: SMAspeedwireEM, serial: int) -> dict[str, float]:
    """The named values pysma-plus reads from the next datagram of `serial` (its units)."""
    sensors = await em.get_sensors()
    await asyncio.wait_for(em.read(sensors, deviceID=str(serial)), WAIT)
    return {sensor.key: sensor.value for sensor in sensors}


def assert_the_readings_values(values: dict[str, float], sent: Reading) -> None:
    assert values["1:4:0"] == 0  # exporting: nothing imported
    assert values["2:4:0"] == 850.0
    assert values["1:8:0"] == sent.ic and values["2:8:0"] == sent.ec
    assert values["22:4:0"] == 1000.0 and values["21:4:0"] == 0
    assert values["41:4:0"] == 100.0 and values["61:4:0"] == 50.0
    assert [values["31:4:0"], values["51:4:0"], values["71:4:0"]] == sent.i
    assert [values["32:4:0"], values["52:4:0"], values["72:4:0"]] == sent.u
    assert values["14:4:0"] == sent.frequency


async def test_unicast_reaches_a_real_socket_and_pysma_plus_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock, settings = unicast_receiver(
        monkeypatch,
        HANPORT_SMA_SERIAL=str(SERIAL),
    )
    sent = reading()
    before = sma_metrics.DATAGRAMS.labels("unicast")._value.get()
    async with pysma_on(sock) as em, sending(settings, lambda: sent):
        values = await read_values(em, SERIAL)
        assert_the_readings_values(values, sent)
        assert em.di.last_data is not None
        assert em.di.last_data["susyid"] == 349
    assert sma_metrics.DATAGRAMS.labels("unicast")._value.get() > before


async def test_multicast_over_loopback_reaches_a_member_of_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock = receiver(multicast_on="127.0.0.1")
    settings = sma_settings(
        monkeypatch,
        HANPORT_SMA_PORT=str(sock.getsockname()[1]),
        HANPORT_SMA_INTERFACE="127.0.0.1",
    )
    sent = reading(meter="garage")
    serial = serial_of("HP0A1B2C3D4E", "garage")
    async with pysma_on(sock) as em, sending(settings, lambda: sent):
        values = await read_values(em, serial)
        assert_the_readings_values(values, sent)


async def test_pysma_plus_finds_the_meter_with_its_own_multicast_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pysma-plus's whole receive path, as Home Assistant runs it: its own socket on port 9522,
    joined to the group on the interface it is told (loopback here), `new_session`, then
    `device_list` and `read`. Port 9522 is the protocol's; pysma-plus binds it shared
    (SO_REUSEADDR), so another receiver on this host does not stop the test."""
    settings = sma_settings(monkeypatch, HANPORT_SMA_INTERFACE="127.0.0.1")
    sent = reading(meter="house")
    serial = serial_of("HP0A1B2C3D4E", "house")
    em = SMAspeedwireEM()
    em.set_options({"bindingAddr": "127.0.0.1"})
    async with sending(settings, lambda: sent):
        try:
            await asyncio.wait_for(em.new_session(), WAIT)
            assert str(serial) in await asyncio.wait_for(em.device_list(), WAIT)
            values = await read_values(em, serial)
        finally:
            await em.close_session()
    assert_the_readings_values(values, sent)


class Calls:
    """`latest` for the sender, counting its calls: each call is one round of the sender."""

    def __init__(self, value: Reading | None) -> None:
        self.value = value
        self.calls = 0
        self._called = asyncio.Event()

    def __call__(self) -> Reading | None:
        self.calls += 1
        self._called.set()
        return self.value

    async def rounds(self, count: int) -> None:
        target = self.calls + count
        while self.calls < target:
            self._called.clear()
            await asyncio.wait_for(self._called.wait(), WAIT)


def nothing_received(sock: socket.socket) -> bool:
    try:
        sock.recv(2048)
    except BlockingIOError:
        return True
    return False


@pytest.mark.parametrize("stale", ["old", "none"])
async def test_stale_or_missing_data_sends_nothing_until_fresh(
    monkeypatch: pytest.MonkeyPatch, stale: str
) -> None:
    sock, settings = unicast_receiver(
        monkeypatch,
        HANPORT_EMULATE_STALE_AFTER="20",
    )
    old = reading(received_s=time.time() - 21) if stale == "old" else None
    latest = Calls(old)
    loop = asyncio.get_running_loop()
    with sock:
        async with sending(settings, latest):
            await latest.rounds(5)
            assert nothing_received(sock)
            assert sma_metrics.SILENT._value.get() == 1
            latest.value = reading()  # a fresh reading: the meter speaks again
            data = await asyncio.wait_for(loop.sock_recv(sock, 2048), WAIT)
            assert data[:4] == b"SMA\x00"
            assert sma_metrics.SILENT._value.get() == 0


async def test_a_refused_destination_is_counted_and_the_others_still_get_theirs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the kernel refuses a broadcast on a socket without SO_BROADCAST (EACCES): a destination
    # the network refuses, reported by the transport, not raised
    sock = receiver()
    port = sock.getsockname()[1]
    settings = sma_settings(
        monkeypatch,
        HANPORT_SMA_MULTICAST="false",
        HANPORT_SMA_UNICAST=f"255.255.255.255:{port}, 127.0.0.1:{port}",
    )
    refused = sma_metrics.ERRORS.labels("send")
    before = refused._value.get()
    latest = Calls(reading())
    loop = asyncio.get_running_loop()
    with sock:
        async with sending(settings, latest):
            for _ in range(3):
                data = await asyncio.wait_for(loop.sock_recv(sock, 2048), WAIT)
                assert data[:4] == b"SMA\x00"
            await latest.rounds(1)
    assert refused._value.get() >= before + 3
    said = [r.getMessage() for r in caplog.records if "was not sent" in r.getMessage()]
    assert len(said) == 1, said  # logged once, counted every time


async def test_a_reading_of_the_wrong_shape_is_skipped_and_the_sender_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock, settings = unicast_receiver(monkeypatch)
    skipped = sma_metrics.ERRORS.labels("encode")
    before = skipped._value.get()
    now = int(time.time() * 1000)
    latest = Calls(Reading(ts=now, received=now, p=[100.0]))  # one value where four belong
    loop = asyncio.get_running_loop()
    with sock:
        async with sending(settings, latest):
            await latest.rounds(3)
            assert nothing_received(sock)
            assert skipped._value.get() >= before + 2
            latest.value = reading()
            data = await asyncio.wait_for(loop.sock_recv(sock, 2048), WAIT)
            assert data[:4] == b"SMA\x00"


def test_bad_settings_stop_with_a_line_saying_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable, value, says in (
        ("HANPORT_SMA_UNICAST", "inverter.lan", "not an IPv4 address"),
        ("HANPORT_SMA_UNICAST", "192.168.1.20:99999", "port must be a number 1-65535"),
        ("HANPORT_SMA_UNICAST", "239.12.255.254", "unicast"),
        ("HANPORT_SMA_INTERFACE", "eth0", "not an IPv4 address"),
        ("HANPORT_SMA_INTERVAL", "0", "HANPORT_SMA_INTERVAL"),
        ("HANPORT_SMA_SERIAL", "4294967296", "HANPORT_SMA_SERIAL"),
        ("HANPORT_SMA_METER", "my meter", "is not a meter name"),
    ):
        with monkeypatch.context() as patch, pytest.raises(SystemExit) as stop:
            sma_settings(patch, **{variable: value})
        assert stop.value.code == 2
        line = capsys.readouterr().err
        assert variable in line and says in line, line


def test_sending_nowhere_or_from_a_foreign_interface_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="HANPORT_SMA_UNICAST=<inverter address>"):
        destinations(sma_settings(monkeypatch, HANPORT_SMA_MULTICAST="false"))
    foreign = sma_settings(monkeypatch, HANPORT_SMA_INTERFACE="198.51.100.77")
    with pytest.raises(ValueError, match="no interface of this host has that address"):
        open_socket(foreign)


def test_settings_examples_load(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sma_settings(
        monkeypatch,
        HANPORT_SMA_UNICAST="192.168.1.20, 192.168.1.21:9523",
        HANPORT_SMA_INTERFACE="192.168.1.5",
        HANPORT_SMA_SERIAL="3901234567",
        HANPORT_SMA_METER="house",
    )
    assert settings.sma_targets == [("192.168.1.20", 9522), ("192.168.1.21", 9523)]
    assert destinations(settings)[0] == (MULTICAST_GROUP, 9522)
    assert (settings.sma_interface, settings.sma_serial, settings.sma_meter) == (
        "192.168.1.5",
        3_901_234_567,
        "house",
    )


def test_derived_serials_are_stable_and_one_per_meter() -> None:
    serials = {serial_of("HP0A1B2C3D4E", meter) for meter in ("house", "garage", "pv")}
    assert len(serials) == 3
    assert all(3_900_000_000 <= s < 4_000_000_000 for s in serials)
    assert serial_of("HP0A1B2C3D4E", "house") == serial_of("HP0A1B2C3D4E", "house")
    assert serial_of("HP0A1B2C3D4E", "house") != serial_of("HPFFFFFFFFFF", "house")


@pytest.fixture(autouse=True)
def _no_env_leak(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.startswith("HANPORT_"):
            monkeypatch.delenv(name)
    yield
