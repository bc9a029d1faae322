"""Fixture helpers for the DLMS tests: the corpus frames and their keys."""

from __future__ import annotations

from pathlib import Path

from services.ingest.codec.dlms.ciphering import Keys

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def frame(name: str) -> bytes:
    """A fixture file's bytes: `.hex` files hold hex digits, others raw bytes."""
    path = FIXTURES / name
    if path.suffix == ".hex":
        return bytes.fromhex(path.read_text().strip())
    return path.read_bytes()


KEYS = {
    "encrypted/kaifa_ma309_at_apdu_gcm.hex": Keys(
        bytes.fromhex("101112131415161718191A1B1C1D1E1F")
    ),
    "encrypted/lg_e450_at_hdlc_gcm.hex": Keys(
        bytes.fromhex("34743677397A24432646294A404E6352"),
        bytes.fromhex("C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF"),
    ),
    "encrypted/smarty_lu_gcm.bin": Keys(bytes.fromhex("D491470F47126332B07D1923B3504188")),
}
HDLC_FILES = sorted(p.name for p in (FIXTURES / "hdlc").glob("*.hex"))
