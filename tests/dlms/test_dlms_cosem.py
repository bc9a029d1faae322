"""Differential check of the AES-GCM decryption against the `dlms-cosem` library (a dependency
of the test dependency dsmr-parser) on the authenticated corpus frames: same plaintext."""

from __future__ import annotations

import pytest

from services.ingest.codec.dlms.ciphering import SMARTY_AUTH_KEY, decrypt, parse

from .conftest import KEYS, frame

security = pytest.importorskip("dlms_cosem.security")


@pytest.mark.parametrize(
    ("name", "start"),
    [("encrypted/lg_e450_at_hdlc_gcm.hex", b"\xdb\x08"), ("encrypted/smarty_lu_gcm.bin", b"")],
)
def test_same_plaintext_as_dlms_cosem(name: str, start: bytes) -> None:
    raw = frame(name)
    apdu = raw[raw.index(start) :] if start else raw
    if apdu.endswith(b"\x7e"):
        apdu = apdu[:-3]  # FCS and closing flag of the HDLC frame
    ciphered = parse(apdu)
    keys = KEYS[name]
    assert keys.encryption is not None
    theirs = security.decrypt(
        security.SecurityControlField.from_bytes(bytes([ciphered.security])),
        ciphered.system_title,
        int.from_bytes(ciphered.counter, "big"),
        keys.encryption,
        ciphered.payload,
        keys.authentication or SMARTY_AUTH_KEY,
    )
    assert decrypt(ciphered, keys) == theirs
