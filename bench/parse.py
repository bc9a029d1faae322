"""Parsing speed: hanport's P1 parser against dsmr_parser (the library Home Assistant uses).

Two kinds of P1 stream, made from real captures (tests/fixtures/p1, and the Luxembourg Smarty
telegram decrypted from tests/fixtures/encrypted/smarty_lu_gcm.bin; the files are never edited):

- steady: one meter, its layout fixed, every value moving: each telegram is the capture with
  the clock one second on, energies growing, powers, voltages and currents drawn afresh (same
  digits and decimals as the meter writes them) and the CRC recomputed;
- all new layouts: every telegram has a layout of its own (three data lines left out, a
  different three each time), values moving as above.

Each is read by a `P1Decoder` from the byte stream (framing, CRC, values) and by dsmr_parser
(CRC checked too) with the specification that fits the flavour; before timing, the values of
every telegram are checked to agree. Then the same through `hanport decode` as a whole process
against a dsmr_parser process, start-up subtracted (N telegrams against a handful), in CPU
seconds of each process (the machine may be shared).

    python -m bench.parse [p1] [p1-process] [hdlc]      (or all of it: `python -m bench parse`)

Sections are a list (`SECTIONS`): another protocol's benchmark adds a `Section` there.
"""

from __future__ import annotations

import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SMARTY_KEY = "D491470F47126332B07D1923B3504188"  # published with the capture (fixtures README)


@dataclass(frozen=True)
class Flavour:
    name: str
    spec: str  # dsmr_parser.telegram_specifications name
    zone: str  # dsmr_parser reads clocks as CET/CEST: zones with the same offsets
    capture: str  # file under tests/fixtures/p1, or "smarty" for the decrypted Luxembourg one


FLAVOURS = (
    Flavour("Nordic (L+G E360, SE)", "SWEDEN", "Europe/Stockholm", "lgf5e360_se.txt"),
    Flavour("Nordic (Kamstrup, SE)", "SWEDEN", "Europe/Stockholm", "kam5_b.txt"),
    Flavour("DSMR 5 NL (2 M-Bus)", "V5", "Europe/Amsterdam", "isk5_nl_two_mbus.txt"),
    Flavour("Fluvius BE", "BELGIUM_FLUVIUS", "Europe/Brussels", "flu5_be_v171.txt"),
    Flavour("Luxembourg Smarty", "LUXEMBOURG_SMARTY", "Europe/Luxembourg", "smarty"),
)

# (hanport field, index or key, dsmr_parser name, factor to hanport's unit): compared whenever
# dsmr_parser's specification reads the line.
AGREE: tuple[tuple[str, Any, str, int], ...] = (
    ("ic", None, "ELECTRICITY_IMPORTED_TOTAL", 1),
    ("ec", None, "ELECTRICITY_EXPORTED_TOTAL", 1),
    ("tariffs", "1.8.1", "ELECTRICITY_USED_TARIFF_1", 1),
    ("tariffs", "1.8.2", "ELECTRICITY_USED_TARIFF_2", 1),
    ("tariffs", "2.8.1", "ELECTRICITY_DELIVERED_TARIFF_1", 1),
    ("tariffs", "2.8.2", "ELECTRICITY_DELIVERED_TARIFF_2", 1),
    ("pi", 0, "CURRENT_ELECTRICITY_USAGE", 1000),
    ("pe", 0, "CURRENT_ELECTRICITY_DELIVERY", 1000),
    *(("pi", n, f"INSTANTANEOUS_ACTIVE_POWER_L{n}_POSITIVE", 1000) for n in (1, 2, 3)),
    *(("pe", n, f"INSTANTANEOUS_ACTIVE_POWER_L{n}_NEGATIVE", 1000) for n in (1, 2, 3)),
    *(("u", n - 1, f"INSTANTANEOUS_VOLTAGE_L{n}", 1) for n in (1, 2, 3)),
    *(("i", n - 1, f"INSTANTANEOUS_CURRENT_L{n}", 1) for n in (1, 2, 3)),
)


def crc16(data: bytes) -> int:
    from services.ingest.codec.p1.parser import crc16 as arc

    return arc(data)


def capture(flavour: Flavour) -> bytes:
    """The flavour's real telegram, as the meter sent it."""
    if flavour.capture != "smarty":
        return (FIXTURES / "p1" / flavour.capture).read_bytes()
    from services.ingest.codec.dlms.ciphering import SMARTY_AUTH_KEY, Keys, decrypt, parse

    apdu = (FIXTURES / "encrypted" / "smarty_lu_gcm.bin").read_bytes()
    plain = decrypt(parse(apdu), Keys(bytes.fromhex(SMARTY_KEY), SMARTY_AUTH_KEY))
    return plain.rstrip(b"\r\n") + b"\r\n"


# --- streams made from a real telegram -------------------------------------------------------

_DATA = re.compile(r"(\d+-\d+:\d+\.\d+\.\d+)(\(.*)")
_GROUP = re.compile(r"\(([^()]*)\)")
_CLOCK = re.compile(r"(\d{12})([SW])")
_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?(\*.+)?")
_LOGS = ("1-0:99.97.0", "0-0:98.1.0")  # event logs: as sent
_COUNTERS = ("0-0:96.7.21", "0-0:96.7.9", "0-0:96.14.0", "0-0:96.3.10")  # counters, tariff


def _moved(group: str, code: str, step: int, rng: random.Random) -> str:
    """One `(...)` group `step` seconds later: clocks on, energies up, other numbers redrawn,
    each in the digits and decimals the meter wrote it with; text and ids as sent."""
    clock = _CLOCK.fullmatch(group)
    if clock is not None:
        moment = datetime.strptime(clock.group(1), "%y%m%d%H%M%S") + timedelta(seconds=step)
        return f"{moment:%y%m%d%H%M%S}{clock.group(2)}"
    number = _NUMBER.fullmatch(group)
    if number is None or (number.group(2) is None and number.group(3) is None):
        return group  # text, ids, device types, bare counters
    whole, decimals, unit = number.group(1), number.group(2) or "", number.group(3) or ""
    value = float(f"{whole}.{decimals or 0}")
    if ".8." in code or ":24.2." in code:  # a register that only grows
        value += step * rng.uniform(0.0005, 0.002)
    else:
        value = value * rng.uniform(0.9, 1.1) + rng.uniform(0, 0.5)
    limit = 10 ** len(whole) - 10 ** -len(decimals)
    value = min(value, limit)
    width = len(whole) + (len(decimals) + 1 if decimals else 0)
    return f"{value:0{width}.{len(decimals)}f}{unit}"


def moved(
    telegram: bytes, step: int, rng: random.Random, drop: frozenset[int] = frozenset()
) -> bytes:
    """`telegram` `step` seconds later, its data lines numbered in `drop` left out, CRC anew."""
    text = telegram[: telegram.rindex(b"!") + 1].decode("latin-1") if b"!" in telegram else ""
    if not text:
        text = telegram.decode("latin-1").rstrip("\r\n") + "\r\n!"
    out = []
    data_line = 0
    for line in text.split("\n"):
        data = _DATA.fullmatch(line.rstrip("\r"))
        if data is None:
            out.append(line)
            continue
        data_line += 1
        if data_line in drop:
            continue
        code = data.group(1)
        if code in _LOGS or code in _COUNTERS:
            out.append(line)
            continue
        groups = _GROUP.sub(
            lambda g, code=code: f"({_moved(g.group(1), code, step, rng)})",
            data.group(2),
        )
        out.append(code + groups + ("\r" if line.endswith("\r") else ""))
    frame = "\n".join(out).encode("latin-1")
    return frame + f"{crc16(frame):04X}\r\n".encode()


def steady(telegram: bytes, count: int, seed: int = 1) -> list[bytes]:
    """One meter's telegrams, one a second, every value moving."""
    rng = random.Random(seed)
    return [moved(telegram, step, rng) for step in range(count)]


def all_new_layouts(telegram: bytes, count: int, seed: int = 1) -> list[bytes]:
    """`count` telegrams, each of a layout of its own: three data lines left out (a different
    three each time, more once those run out; never the clock), values moving."""
    rng = random.Random(seed)
    lines = [n for n, line in enumerate(_data_lines(telegram), 1) if "0-0:1.0.0" not in line]
    seen: set[frozenset[int]] = set()
    out = []
    size = 3
    for step in range(count):
        drop = frozenset(rng.sample(lines, size))
        tries = 0
        while drop in seen:
            tries += 1
            if tries % 100 == 0:  # three-line subsets running out: leave out one line more
                size += 1
            drop = frozenset(rng.sample(lines, size))
        seen.add(drop)
        out.append(moved(telegram, step, rng, drop))
    return out


def _data_lines(telegram: bytes) -> list[str]:
    text = telegram.decode("latin-1")
    return [line for line in text.split("\n") if _DATA.fullmatch(line.rstrip("\r"))]


# --- both parsers, and the check that they agree ---------------------------------------------


def peer(flavour: Flavour) -> Callable[[str], Any]:
    """dsmr_parser's parse for the flavour, CRC checked."""
    from dsmr_parser import telegram_specifications
    from dsmr_parser.parsers import TelegramParser

    spec = getattr(telegram_specifications, flavour.spec)
    return TelegramParser(spec, apply_checksum_validation=True).parse


def ours(flavour: Flavour) -> Callable[[bytes], list[Any]]:
    """A fresh `P1Decoder` reading a byte stream (the service keeps one per meter)."""
    from services.ingest.codec.p1.decoder import P1Decoder

    def read(stream: bytes) -> list[Any]:
        decoder = P1Decoder(tz=flavour.zone)
        return decoder.feed(stream, 0) + decoder.flush(0)

    return read


def check_agree(flavour: Flavour, telegrams: list[bytes]) -> int:
    """Our values against dsmr_parser's for every telegram; raises AssertionError on the first
    disagreement; answers how many values were compared."""
    from services.ingest.codec.decoded import Decoded

    theirs = peer(flavour)
    readings = ours(flavour)(b"".join(telegrams))
    assert len(readings) == len(telegrams), (flavour.name, len(readings))
    compared = 0
    for telegram, item in zip(telegrams, readings, strict=True):
        assert isinstance(item, Decoded), (flavour.name, item)
        reading = item.reading
        other = theirs(telegram.decode("latin-1"))
        for field, index, name, factor in AGREE:
            obj = getattr(other, name, None)
            if obj is None:
                continue
            value: Any = getattr(reading, field)
            if index is not None:
                value = value[index]
            expected = float(Decimal(obj.value) * factor)
            assert value == expected, (flavour.name, field, index, value, expected)
            compared += 1
        stamp = getattr(other, "P1_MESSAGE_TIMESTAMP", None)
        if stamp is not None:
            assert reading.ts == int(stamp.value.timestamp()) * 1000, (flavour.name, reading.ts)
            compared += 1
        for device in getattr(other, "MBUS_DEVICES", []):
            meter = getattr(device, "MBUS_METER_READING", None)
            if meter is None or meter.value is None:
                continue
            [mine] = [s for s in reading.submeters if s.channel == device.channel_id]
            assert mine.value == float(meter.value), (flavour.name, mine, meter.value)
            compared += 1
    return compared


# --- timing ----------------------------------------------------------------------------------


def best_rate(run: Callable[[], int], seconds: float = 6.0, rounds: int = 40) -> float:
    """Telegrams per second of the fastest of short samples: on a shared machine the fastest
    sample is the one nothing else disturbed."""
    best = 0.0
    deadline = time.monotonic() + seconds
    for _ in range(rounds):
        start = time.perf_counter()
        done = run()
        best = max(best, done / (time.perf_counter() - start))
        if time.monotonic() > deadline:
            break
    return best


def compare(flavour: Flavour, telegrams: list[bytes]) -> tuple[float, float]:
    """(ours, dsmr_parser) in telegrams per second, taking turns."""
    stream = b"".join(telegrams)
    texts = [t.decode("latin-1") for t in telegrams]
    read, theirs = ours(flavour), peer(flavour)
    peer_sample = texts[: max(20, len(texts) // 20)]

    def run_ours() -> int:
        return len(read(stream))

    def run_peer() -> int:
        for text in peer_sample:
            theirs(text)
        return len(peer_sample)

    best_ours = best_peer = 0.0
    for _ in range(3):
        best_ours = max(best_ours, best_rate(run_ours, 2.0, 15))
        best_peer = max(best_peer, best_rate(run_peer, 2.0, 15))
    return best_ours, best_peer


def p1_section() -> None:
    from services.ingest.codec.p1.decoder import P1Decoder

    print(f"P1 against dsmr_parser, CRC checked in both ({_load()})")
    print(f"  {'stream':<24}{'case':<16}{'hanport/s':>11}{'dsmr/s':>9}{'ratio':>8}  values")
    for flavour in FLAVOURS:
        telegram = capture(flavour)
        for case, telegrams in (
            ("steady", steady(telegram, 1000)),
            ("all new layouts", all_new_layouts(telegram, 300)),
        ):
            compared = check_agree(flavour, telegrams)
            decoder = P1Decoder(tz=flavour.zone)
            decoder.feed(b"".join(telegrams), 0)
            layouts = decoder.parser.compiled
            ours_rate, peer_rate = compare(flavour, telegrams)
            print(
                f"  {flavour.name:<24}{case:<16}{ours_rate:11.0f}{peer_rate:9.0f}"
                f"{ours_rate / peer_rate:7.1f}x  {compared} agree, {layouts} layouts compiled"
            )
    print("  goals: steady >= 20x, all new layouts >= 2x")


# --- the same through `hanport decode`, a whole process --------------------------------------

_PEER_PROCESS = """
import sys
from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser
parse = TelegramParser(getattr(telegram_specifications, sys.argv[1]), apply_checksum_validation=True).parse
data = open(sys.argv[2], "rb").read().decode("latin-1")
start = data.find("/")
while start >= 0:
    end = data.find("!", start) + 5
    parse(data[start:end])
    start = data.find("/", end)
"""


def hanport_decode(flavour: Flavour) -> Callable[[str], list[str]]:
    """The command decoding a capture file with `hanport decode` (protocol found by itself)."""
    return lambda path: [*HANPORT, "decode", "--timezone", flavour.zone, path]


def peer_process(flavour: Flavour) -> Callable[[str], list[str]]:
    """The command reading a capture file with dsmr_parser, telegram by telegram."""
    return lambda path: [sys.executable, "-c", _PEER_PROCESS, flavour.spec, path]


HANPORT = [sys.executable, "-m", "services.cli"]


def _seconds(command: list[str], repeat: int = 3) -> float:
    """CPU seconds (user + system) of the least disturbed of `repeat` runs of `command`: on a
    shared machine a process's CPU time moves much less than its wall-clock time."""
    best = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, used)
    return best


def per_telegram(command: Callable[[str], list[str]], many: list[bytes], few: int) -> float:
    """Seconds per telegram of a whole process: (time for all - time for `few`) / difference."""
    with tempfile.TemporaryDirectory() as folder:
        big, small = Path(folder) / "many.txt", Path(folder) / "few.txt"
        big.write_bytes(b"".join(many))
        small.write_bytes(b"".join(many[:few]))
        return (_seconds(command(str(big))) - _seconds(command(str(small)))) / (len(many) - few)


def process_section() -> None:
    print(
        f"P1 through `hanport decode` (CPU time of a whole process, start-up subtracted; {_load()})"
    )
    print(f"  {'stream':<24}{'case':<16}{'hanport us':>11}{'dsmr us':>9}{'ratio':>8}")
    for flavour in FLAVOURS:
        telegram = capture(flavour)
        for case, telegrams in (
            ("steady", steady(telegram, 20000)),
            ("all new layouts", all_new_layouts(telegram, 5000)),
        ):
            mine = per_telegram(hanport_decode(flavour), telegrams, 5)
            theirs = per_telegram(peer_process(flavour), telegrams[:2000], 5)
            print(
                f"  {flavour.name:<24}{case:<16}{mine * 1e6:11.1f}{theirs * 1e6:9.1f}"
                f"{theirs / mine:7.1f}x",
                flush=True,
            )


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def hdlc_section() -> None:
    from bench import hdlc  # DLMS/HDLC against amshan

    hdlc.run()


@dataclass
class Section:
    """One benchmark: `run()` prints its figures."""

    name: str
    run: Callable[[], None]


SECTIONS: list[Section] = [
    Section("p1", p1_section),
    Section("p1-process", process_section),
    Section("hdlc", hdlc_section),
]


def main(names: list[str] | None = None) -> None:
    """Every section, or the ones named (`python -m bench.parse p1 hdlc`)."""
    for section in SECTIONS:
        if not names or section.name in names:
            section.run()


if __name__ == "__main__":
    main(sys.argv[1:])
