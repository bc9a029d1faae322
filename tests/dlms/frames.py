"""Test helpers that build HDLC, M-Bus and block-transfer frames around an APDU."""

from __future__ import annotations

from fastcrc import crc16


def hdlc(
    info: bytes,
    *,
    segmented: bool = False,
    dest: bytes = b"\x41",
    src: bytes = b"\x08\x83",
    control: int = 0x13,
) -> bytes:
    """One HDLC type-3 frame with both flags, HCS and FCS (X-25, LSB first)."""
    length = 2 + len(dest) + len(src) + 1 + 2 + len(info) + 2
    header = bytes([0xA0 | (0x08 if segmented else 0) | (length >> 8), length & 0xFF])
    header += dest + src + bytes([control])
    hcs = crc16.ibm_sdlc(header).to_bytes(2, "little")
    body = header + hcs + info
    fcs = crc16.ibm_sdlc(body).to_bytes(2, "little")
    return b"\x7e" + body + fcs + b"\x7e"


def hdlc_segments(apdu: bytes, size: int) -> bytes:
    """The APDU (with LLC header) cut into segmented HDLC frames of at most `size` bytes."""
    info = b"\xe6\xe7\x00" + apdu
    chunks = [info[i : i + size] for i in range(0, len(info), size)]
    return b"".join(hdlc(c, segmented=i < len(chunks) - 1) for i, c in enumerate(chunks))


def mbus(data: bytes, ci: int, *, control: int = 0x53, address: int = 0xFF) -> bytes:
    """One M-Bus long frame carrying DLMS transport data (STSAP 01, DTSAP 67)."""
    payload = bytes([control, address, ci, 0x01, 0x67]) + data
    checksum = sum(payload) & 0xFF
    return bytes([0x68, len(payload), len(payload), 0x68]) + payload + bytes([checksum, 0x16])


def mbus_segments(apdu: bytes, size: int) -> bytes:
    chunks = [apdu[i : i + size] for i in range(0, len(apdu), size)]
    last = len(chunks) - 1
    return b"".join(mbus(c, i | (0x10 if i == last else 0)) for i, c in enumerate(chunks))


def gbt(apdu: bytes, size: int) -> list[bytes]:
    """The APDU as general-block-transfer blocks of at most `size` bytes (size < 128)."""
    chunks = [apdu[i : i + size] for i in range(0, len(apdu), size)]
    return [
        bytes([0xE0, 0x80 if n == len(chunks) else 0x00])
        + n.to_bytes(2, "big")
        + b"\x00\x00"
        + bytes([len(c)])
        + c
        for n, c in enumerate(chunks, 1)
    ]
