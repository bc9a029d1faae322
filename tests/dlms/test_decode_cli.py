"""`hanport decode` on binary captures: HDLC hex dumps, raw binary, encrypted frames with
`--key`/`--auth-key`, and clear errors that never echo a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import main as hanport
from shared.reading import decode_reading

from .conftest import FIXTURES

EK = "34743677397A24432646294A404E6352"
AK = "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF"
LG = str(FIXTURES / "encrypted" / "lg_e450_at_hdlc_gcm.hex")


def test_hex_dumps_of_every_hdlc_capture(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (FIXTURES / "hdlc").glob("*.hex"))
    assert hanport(["decode", "--hex", *files]) == 0
    out = capsys.readouterr().out.splitlines()
    readings = [decode_reading(line) for line in out]
    assert len(readings) == len(files)
    assert all(r.protocol == "hdlc" and r.crc == "ok" for r in readings)


def test_raw_binary_with_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "lg.bin"
    capture.write_bytes(bytes.fromhex(Path(LG).read_text()))
    assert hanport(["decode", str(capture), "--key", EK, "--auth-key", AK]) == 0
    (reading,) = [decode_reading(line) for line in capsys.readouterr().out.splitlines()]
    assert reading.meter_id == "30137181" and reading.u == [236.0, 237.0, 236.0]


def test_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ek").write_text(EK + "\n")
    (tmp_path / "ak").write_text(AK)
    code = hanport(
        ["decode", "--hex", LG, "--key-file", str(tmp_path / "ek")]
        + ["--auth-key-file", str(tmp_path / "ak")]
    )
    assert code == 0 and "30137181" in capsys.readouterr().out


def test_missing_key_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert hanport(["decode", "--hex", LG]) == 1
    err = capsys.readouterr().err
    assert "key_error" in err and "LGZ" in err and "byte 0" in err


def test_wrong_auth_key_and_malformed_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert hanport(["decode", "--hex", LG, "--key", EK, "--auth-key", "00" * 16]) == 1
    err = capsys.readouterr().err
    assert "auth_error" in err and EK.lower() not in err.lower()
    assert hanport(["decode", "--hex", LG, "--key", EK[:-2]]) == 2
    err = capsys.readouterr().err
    assert "--key" in err and "15 bytes" in err and EK[:10] not in err


def test_smarty_binary(capsys: pytest.CaptureFixture[str]) -> None:
    smarty = str(FIXTURES / "encrypted" / "smarty_lu_gcm.bin")
    key = "D491470F47126332B07D1923B3504188"
    assert hanport(["decode", smarty, "--key", key, "--timezone", "Europe/Luxembourg"]) == 0
    (reading,) = [decode_reading(line) for line in capsys.readouterr().out.splitlines()]
    assert reading.protocol == "smarty" and reading.ic == 6.695


def test_truncated_binary_capture_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = tmp_path / "cut.bin"
    frame = bytes.fromhex((FIXTURES / "hdlc" / "kaifa_gh180.hex").read_text())
    capture.write_bytes(frame + frame[:50])
    assert hanport(["decode", str(capture)]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    assert "truncated" in captured.err


def test_key_errors_name_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    """Frame errors about keys say what to pass to this command, not the service's settings."""
    assert hanport(["decode", "--hex", LG]) == 1
    err = capsys.readouterr().err
    assert "--key" in err and "HANPORT_" not in err
    assert hanport(["decode", "--hex", LG, "--key", EK, "--auth-key", "00" * 16]) == 1
    err = capsys.readouterr().err
    assert "--key or --auth-key" in err and "HANPORT_" not in err
