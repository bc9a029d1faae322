"""Meter keys from settings: hex or a file, clear errors that never show the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ingest.codec.dlms.ciphering import Keys
from services.ingest.meter_keys import load_keys

KEY = "34743677397A24432646294A404E6352"


def test_hex_and_file(tmp_path: Path) -> None:
    path = tmp_path / "ak"
    path.write_text("C0C1C2C3 C4C5C6C7 C8C9CACB CCCDCECF\n")
    keys = load_keys(KEY, None, None, str(path))
    assert keys == Keys(bytes.fromhex(KEY), bytes.fromhex("C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF"))
    assert KEY.lower() not in repr(keys).lower() and "set" in repr(keys)
    assert load_keys() == Keys(None, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [(KEY[:-2], "15 bytes"), (KEY[:-1] + "Z", "not hexadecimal")],
)
def test_bad_key_is_named_not_shown(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        load_keys(value)
    assert "HANPORT_METER_KEY" in str(caught.value)
    assert value[:8] not in str(caught.value)


def test_missing_file_and_both_forms(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HANPORT_METER_AUTH_KEY_FILE"):
        load_keys(auth_key_file=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="not both"):
        load_keys(KEY, str(tmp_path / "nope"))
