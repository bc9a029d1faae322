"""`hanport decode` and `hanport simulate` as a user runs them (the `hanport` command line)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.p1.decoder import P1Decoder
from services.ingest.codec.p1.parser import parse_telegram
from shared.reading import decode_reading
from tests.servers import free_port

P1_DIR = Path(__file__).parent.parent / "fixtures" / "p1"
HANPORT = [sys.executable, "-m", "services.cli"]


def hanport(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*HANPORT, *args], capture_output=True, timeout=60, check=False)


def test_decode_good_captures_exit_0_json_per_line() -> None:
    files = [str(P1_DIR / n) for n in ("lgf5e360_se.txt", "kam5_se_summertime.txt")]
    result = hanport("decode", *files, "--timezone", "Europe/Stockholm")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and result.stderr == b""
    first = decode_reading(lines[0])
    assert first.ic == 2721.126 and first.ts == 1671115850000 and first.crc == "ok"
    assert json.loads(lines[1])["pi"] == [1453.0, 1218.0, 213.0, 22.0]


def test_decode_bad_frames_exit_1_with_file_offset_reason(tmp_path: Path) -> None:
    good = (P1_DIR / "lgf5e360_se.txt").read_bytes()
    capture = tmp_path / "mixed.txt"
    capture.write_bytes(good + (P1_DIR / "elgama_gh1177.txt").read_bytes() + good)
    result = hanport("decode", str(capture))
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 2
    [line] = result.stderr.decode().splitlines()
    assert line.startswith(f"{capture}: byte {len(good)}: crc_error: CRC mismatch")
    unchecked = hanport("decode", "--no-crc", str(capture))
    assert unchecked.returncode == 0 and len(unchecked.stdout.splitlines()) == 3


def test_decode_hex_dump(tmp_path: Path) -> None:
    good = (P1_DIR / "nes5_dk_odd_timestamp.txt").read_bytes()
    dump = tmp_path / "dump.hex"
    dump.write_text("# captured with a logic analyser\n" + " ".join(f"{b:02x}" for b in good))
    result = hanport("decode", "--hex", str(dump), "--timezone", "Europe/Copenhagen")
    assert result.returncode == 0, result.stderr
    assert decode_reading(result.stdout).meter_time == "20240111 09:35:00"


def test_decode_usage_errors_exit_2(tmp_path: Path) -> None:
    assert hanport("decode").returncode == 2
    assert hanport("decode", "--bogus", "x").returncode == 2
    missing = hanport("decode", str(tmp_path / "missing.txt"))
    assert missing.returncode == 2 and b"cannot read" in missing.stderr
    zone = hanport("decode", "--timezone", "Nowhere/Land", str(P1_DIR / "kam5_b.txt"))
    assert zone.returncode == 2


def test_simulate_to_stdout_and_file(tmp_path: Path) -> None:
    result = hanport("simulate", "--interval", "0", "--count", "5")
    assert result.returncode == 0
    out = P1Decoder().feed(result.stdout, 0)
    assert len(out) == 5 and all(isinstance(o, Decoded) for o in out)
    target = tmp_path / "sim.txt"
    written = hanport("simulate", "--interval", "0", "--count", "3", "--output", str(target))
    assert written.returncode == 0
    assert target.read_bytes().count(b"/HAN5") == 3


def test_simulate_serves_tcp() -> None:
    port = free_port()
    output = f"tcp://127.0.0.1:{port}"
    command = [*HANPORT, "simulate", "--interval", "0", "--count", "4", "--output", output]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    try:
        # it says when it listens; a probe connection would count as the client it serves
        assert proc.stderr is not None
        assert b"serving telegrams on" in proc.stderr.readline()
        received = b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            while chunk := conn.recv(65536):
                received += chunk
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    telegrams = [b"/" + part for part in received.split(b"/")[1:]]
    assert len(telegrams) == 4
    assert all(parse_telegram(t, received_ms=0).crc == "ok" for t in telegrams)


def test_simulate_to_a_pty() -> None:
    command = [*HANPORT, "simulate", "--interval", "0.05", "--count", "200", "--output", "pty"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        path = proc.stderr.readline().decode().rsplit(" ", 1)[1].strip()
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
        try:
            data = b""
            while data.count(b"!") < 4:
                data += os.read(fd, 4096)
        finally:
            os.close(fd)
    finally:
        proc.kill()
        proc.wait()
    decoded = [o for o in P1Decoder().feed(data, 0) if isinstance(o, Decoded)]
    assert len(decoded) >= 2 and all(d.reading.crc == "ok" for d in decoded)


def test_decode_a_hex_dump_without_hex_gets_a_hint(tmp_path: Path) -> None:
    dump = tmp_path / "dump.hex"
    dump.write_text(" ".join(f"{b:02x}" for b in (P1_DIR / "kam5_b.txt").read_bytes()))
    result = hanport("decode", str(dump))
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        f"{dump}: byte 0: no telegram or frame found (it looks like a hex dump: add --hex)"
    ]
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"\x00 noise, not hex \xff")
    [line] = hanport("decode", str(empty)).stderr.decode().splitlines()
    assert line == f"{empty}: byte 0: no telegram or frame found"


def test_decode_reads_standard_input() -> None:
    telegram = (P1_DIR / "lgf5e360_se.txt").read_bytes()
    result = subprocess.run(
        [*HANPORT, "decode", "-", "--timezone", "Europe/Stockholm"],
        input=telegram,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert decode_reading(result.stdout).ic == 2721.126


def test_decode_a_decrypted_telegram_without_end_line() -> None:
    """The Austrian Sagemcom's decrypted payload has no `!` line: the capture's end is the
    telegram's end, so it decodes, flagged as having no CRC (not reported as cut off)."""
    capture = P1_DIR / "sagemcom_at_decrypted.txt"
    assert b"!" not in capture.read_bytes()
    result = hanport("decode", str(capture), "--timezone", "Europe/Vienna")
    assert result.returncode == 0, result.stderr
    reading = decode_reading(result.stdout)
    assert (reading.crc, reading.ic, reading.pi[0]) == ("absent", 9699.947, 274.0)
    assert result.stderr == b""


def test_decode_still_reports_a_cut_off_telegram(tmp_path: Path) -> None:
    """A capture that stops inside a CRC-carrying meter's telegram stays `truncated`, even at
    a line end; so does one that stops inside a line."""
    good = (P1_DIR / "lgf5e360_se.txt").read_bytes()
    lines = good.split(b"\r\n")
    for name, data in (("line.txt", good + b"\r\n".join(lines[:8])), ("mid.txt", good[:150])):
        capture = tmp_path / name
        capture.write_bytes(data)
        result = hanport("decode", str(capture))
        assert result.returncode == 1
        assert b"truncated: input ends inside a telegram" in result.stderr, name
