"""General-glo-ciphering (DLMS tag 0xDB): an encrypted APDU and the meter's keys in, plaintext out.

AES-128-GCM with IV = system title (8) + frame counter (4). Security control 0x20/0x21 means
encryption only: no tag, so it is decrypted as GCM encrypts, AES-CTR from IV || 00000002.
0x30/0x31 adds authentication: a 12-byte tag over AAD = SC || authentication key; Luxembourg's
Smarty uses the fixed authentication key 00112233445566778899AABBCCDDEEFF, the default here.
Failures are `DecodeError("key_error" | "auth_error")` naming the meter by system title; key
material never appears in any message.
"""

from __future__ import annotations

from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..decoded import DecodeError
from . import axdr

TAG = 0xDB
TAG_LENGTH = 12
SMARTY_AUTH_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
_ENCRYPTED, _AUTHENTICATED = 0x20, 0x10


class Keys(NamedTuple):
    """The meter's keys (16 bytes each); None when not configured."""

    encryption: bytes | None = None
    authentication: bytes | None = None

    def __repr__(self) -> str:  # never print key material
        return (
            f"Keys(encryption={'set' if self.encryption else None}, "
            f"authentication={'set' if self.authentication else None})"
        )


class Ciphered(NamedTuple):
    system_title: bytes
    security: int
    counter: bytes
    payload: bytes  # ciphertext, then the tag when authenticated

    @property
    def meter(self) -> str:
        return meter_name(self.system_title)


def meter_name(system_title: bytes) -> str:
    """`KFM 1010000023` style: the manufacturer's three letters when printable, then hex."""
    maker = system_title[:3]
    if maker.isalpha() and maker.isascii():
        return f"{maker.decode()} {system_title[3:].hex().upper()}"
    return system_title.hex().upper()


def parse(apdu: bytes) -> Ciphered:
    """Split a general-glo-ciphering APDU; raises `axdr.AxdrError` when malformed."""
    if len(apdu) < 2 or apdu[0] != TAG:
        raise axdr.AxdrError("not a general-glo-ciphering APDU (tag 0xDB)")
    title_length = apdu[1]
    system_title = apdu[2 : 2 + title_length]
    size, pos = axdr.read_length(apdu, 2 + title_length)
    body = apdu[pos : pos + size]
    if title_length != 8 or len(body) != size or size < 5:
        raise axdr.AxdrError(
            f"general-glo-ciphering APDU: {len(body)} of {size} bytes, system title "
            f"of {title_length} bytes"
        )
    return Ciphered(bytes(system_title), body[0], bytes(body[1:5]), bytes(body[5:]))


def decrypt(ciphered: Ciphered, keys: Keys) -> bytes:
    """The plaintext; `DecodeError` when a key is missing or the tag does not verify."""
    sc = ciphered.security
    meter = ciphered.meter
    if not sc & _ENCRYPTED:
        raise DecodeError(
            "parse_error",
            f"meter {meter}: security control 0x{sc:02X} (authentication only) is not supported",
        )
    if keys.encryption is None:
        raise DecodeError(
            "key_error",
            f"meter {meter} sends encrypted frames: set HANPORT_METER_KEY (or "
            "HANPORT_METER_KEY_FILE) to the key from the grid operator",
        )
    iv = ciphered.system_title + ciphered.counter
    if not sc & _AUTHENTICATED:
        decryptor = Cipher(
            algorithms.AES(keys.encryption), modes.CTR(iv + b"\x00\x00\x00\x02")
        ).decryptor()
        return decryptor.update(ciphered.payload) + decryptor.finalize()
    if len(ciphered.payload) < TAG_LENGTH:
        raise DecodeError("truncated", f"meter {meter}: authenticated frame shorter than its tag")
    text, tag = ciphered.payload[:-TAG_LENGTH], ciphered.payload[-TAG_LENGTH:]
    auth_key = keys.authentication if keys.authentication is not None else SMARTY_AUTH_KEY
    decryptor = Cipher(
        algorithms.AES(keys.encryption), modes.GCM(iv, tag, min_tag_length=TAG_LENGTH)
    ).decryptor()
    decryptor.authenticate_additional_data(bytes([sc]) + auth_key)
    try:
        return decryptor.update(text) + decryptor.finalize()
    except InvalidTag:
        hint = "HANPORT_METER_KEY or HANPORT_METER_AUTH_KEY"
        if keys.authentication is None:
            hint += " (unset: the Smarty default was tried)"
        raise DecodeError(
            "auth_error",
            f"meter {meter}: authentication tag check failed: check {hint}",
        ) from None
