"""HDLC framing (IEC 62056-46, frame format type 3): bytes in, checked frames and their payloads out.

`HdlcFramer.feed` consumes the serial byte stream and produces `HdlcFrame`s (or `DecodeError`s).
A frame is delimited by its length field, never by scanning for 0x7E inside it (meters do not
escape 0x7E). Addresses are variable-length; HCS and FCS are CRC-16/X-25, least significant byte
first. After garbage or a broken frame the framer resynchronises one byte past the bad start, so
the next good frame is never lost. `Segments` reassembles segmented frames (format S bit) and
strips the LLC header `E6 E7 00`, producing the APDU bytes.
"""

from __future__ import annotations

from typing import NamedTuple

from fastcrc import crc16

from ..decoded import DecodeError

FLAG = 0x7E
LLC_HEADERS = (b"\xe6\xe7\x00", b"\xe6\xe6\x00")
MAX_MESSAGE = 65536  # reassembled segments larger than this are dropped as overflow

_crc = crc16.ibm_sdlc  # CRC-16/X-25


class HdlcFrame(NamedTuple):
    """One frame whose HCS and FCS checked."""

    segmented: bool
    destination: bytes
    source: bytes
    control: int
    info: bytes
    offset: int  # where the opening flag was, in bytes fed so far
    raw: bytes


def _address_end(buf: bytearray, pos: int, end: int, n: int) -> int:
    """Position after a variable-length address (1, 2 or 4 bytes; the last has bit 0 set);
    -1 when more bytes are needed, -2 when this is no valid address."""
    for size in (1, 2, 3, 4):
        if pos + size > end:
            return -2
        if pos + size > n:
            return -1
        if buf[pos + size - 1] & 1:
            return pos + size if size != 3 else -2
    return -2


class HdlcFramer:
    """Incremental HDLC frame extraction; keeps at most one partial frame between calls."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # offset of _buf[0] in the whole input

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame (a lone flag does not count)."""
        return 0 if self._buf == b"\x7e" else len(self._buf)

    def feed(self, data: bytes) -> list[HdlcFrame | DecodeError]:
        buf = self._buf
        buf += data
        out: list[HdlcFrame | DecodeError] = []
        n = len(buf)
        pos = 0
        while True:
            start = buf.find(FLAG, pos)
            if start < 0:
                pos = n
                break
            if start + 3 > n:
                pos = start
                break
            fmt = buf[start + 1]
            length = ((fmt & 0x07) << 8) | buf[start + 2]
            if fmt & 0xF0 != 0xA0 or length < 7:
                pos = start + 1
                continue
            end = start + 1 + length  # index of the closing flag
            dest_end = _address_end(buf, start + 3, end - 3, n)
            src_end = _address_end(buf, dest_end, end - 3, n) if dest_end > 0 else dest_end
            if src_end == -1:
                pos = start  # header not complete yet
                break
            if src_end < 0:
                pos = start + 1
                continue
            control_at = src_end
            header_end = control_at + 1  # HCS follows when there is an information field
            has_info = end - header_end > 4
            if has_info:
                if header_end + 2 > n:
                    pos = start
                    break
                hcs = buf[header_end] | (buf[header_end + 1] << 8)
                if _crc(bytes(buf[start + 1 : header_end])) != hcs:
                    out.append(
                        DecodeError(
                            "crc_error",
                            f"HDLC frame at byte {self._base + start}: header check (HCS) failed",
                            offset=self._base + start,
                        )
                    )
                    pos = start + 1
                    continue
            if end >= n:
                pos = start  # wait for the rest
                break
            raw = bytes(buf[start : end + 1])
            if buf[end] != FLAG:
                out.append(
                    DecodeError(
                        "parse_error",
                        f"HDLC frame at byte {self._base + start}: no closing flag where its "
                        f"length ({length}) ends it",
                        offset=self._base + start,
                        raw=raw,
                    )
                )
                pos = start + 1
                continue
            fcs = buf[end - 2] | (buf[end - 1] << 8)
            if _crc(raw[1:-3]) != fcs:
                out.append(
                    DecodeError(
                        "crc_error",
                        f"HDLC frame at byte {self._base + start}: frame check (FCS) failed",
                        offset=self._base + start,
                        raw=raw,
                    )
                )
                pos = start + 1
                continue
            if has_info:
                info = raw[header_end + 2 - start : -3]
                out.append(
                    HdlcFrame(
                        bool(fmt & 0x08),
                        raw[3 : dest_end - start],
                        raw[dest_end - start : src_end - start],
                        buf[control_at],
                        info,
                        self._base + start,
                        raw,
                    )
                )
            pos = end  # the closing flag may open the next frame
        if pos:
            del buf[:pos]
            self._base += pos
        return out


class Segments:
    """Reassembles segmented HDLC frames into one APDU (LLC header removed)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._offset = 0

    def push(self, frame: HdlcFrame) -> list[bytes | DecodeError]:
        """The APDUs and errors this frame completes, in order."""
        out: list[bytes | DecodeError] = []
        info = frame.info
        if self._parts and info[:3] in LLC_HEADERS:
            out.append(
                DecodeError(
                    "truncated",
                    f"segmented HDLC message from byte {self._offset} lost its last segment",
                    offset=self._offset,
                )
            )
            self._parts, self._size = [], 0
        if not self._parts:
            self._offset = frame.offset
        self._parts.append(info)
        self._size += len(info)
        if self._size > MAX_MESSAGE:
            out.append(
                DecodeError(
                    "overflow",
                    f"segmented HDLC message from byte {self._offset} exceeds {MAX_MESSAGE} bytes",
                    offset=self._offset,
                )
            )
            self._parts, self._size = [], 0
            return out
        if frame.segmented:
            return out
        message = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts, self._size = [], 0
        if message[:3] in LLC_HEADERS:
            message = message[3:]
        out.append(message)
        return out
