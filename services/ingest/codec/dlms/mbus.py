"""M-Bus long-frame framing (EN 13757-2) for DLMS meters: bytes in, reassembled APDUs out.

`MbusFramer.feed` finds `68 L L 68 C A CI ... CS 16` frames (8-bit sum checksum over C..data)
in the byte stream and produces `MbusFrame`s or `DecodeError`s, resynchronising one byte past
a bad start. `MbusSegments` joins multi-segment messages: CI bits 0-3 are the sequence number,
bit 4 marks the last segment; each segment's data starts with STSAP and DTSAP, dropped here.
"""

from __future__ import annotations

from typing import NamedTuple

from ..decoded import DecodeError

START = 0x68
STOP = 0x16
MAX_MESSAGE = 65536


class MbusFrame(NamedTuple):
    control: int
    address: int
    ci: int
    data: bytes  # after CI
    offset: int
    raw: bytes


class MbusFramer:
    """Incremental M-Bus long-frame extraction."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[MbusFrame | DecodeError]:
        buf = self._buf
        buf += data
        out: list[MbusFrame | DecodeError] = []
        n = len(buf)
        pos = 0
        while True:
            start = buf.find(START, pos)
            if start < 0:
                pos = n
                break
            if start + 4 > n:
                pos = start
                break
            length = buf[start + 1]
            if buf[start + 2] != length or buf[start + 3] != START or length < 3:
                pos = start + 1
                continue
            end = start + 5 + length  # index of the stop byte
            if end >= n:
                pos = start
                break
            raw = bytes(buf[start : end + 1])
            if buf[end] != STOP:
                out.append(
                    DecodeError(
                        "parse_error",
                        f"M-Bus frame at byte {self._base + start}: no stop byte where its "
                        f"length ({length}) ends it",
                        offset=self._base + start,
                        raw=raw,
                    )
                )
                pos = start + 1
                continue
            if sum(raw[4:-2]) & 0xFF != raw[-2]:
                out.append(
                    DecodeError(
                        "crc_error",
                        f"M-Bus frame at byte {self._base + start}: checksum failed",
                        offset=self._base + start,
                        raw=raw,
                    )
                )
                pos = start + 1
                continue
            out.append(MbusFrame(raw[4], raw[5], raw[6], raw[7:-2], self._base + start, raw))
            pos = end + 1
        if pos:
            del buf[:pos]
            self._base += pos
        return out


class MbusSegments:
    """Joins the segments of one DLMS message carried in M-Bus frames, in sequence order."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._next = 0
        self._offset = 0

    def push(self, frame: MbusFrame) -> list[bytes | DecodeError]:
        out: list[bytes | DecodeError] = []
        if frame.ci >= 0x20:
            out.append(
                DecodeError(
                    "parse_error",
                    f"M-Bus frame at byte {frame.offset}: CI 0x{frame.ci:02X} is not a DLMS "
                    "transport segment",
                    offset=frame.offset,
                    raw=frame.raw,
                )
            )
            return out
        sequence, last = frame.ci & 0x0F, bool(frame.ci & 0x10)
        payload = frame.data[2:]  # STSAP, DTSAP
        if sequence == 0:
            if self._parts:
                out.append(self._lost())
            self._parts, self._offset = [], frame.offset
        elif sequence != self._next or not self._parts:
            if self._parts:
                out.append(self._lost())
            else:
                out.append(
                    DecodeError(
                        "truncated",
                        f"M-Bus segment {sequence} at byte {frame.offset} without its first "
                        "segment",
                        offset=frame.offset,
                    )
                )
            self._parts = []
            return out
        self._parts.append(payload)
        self._next = sequence + 1
        if sum(map(len, self._parts)) > MAX_MESSAGE:
            out.append(DecodeError("overflow", f"M-Bus message from byte {self._offset} too long"))
            self._parts = []
            return out
        if last:
            out.append(b"".join(self._parts))
            self._parts = []
        return out

    def _lost(self) -> DecodeError:
        return DecodeError(
            "truncated",
            f"M-Bus message from byte {self._offset} lost segment {self._next}",
            offset=self._offset,
        )
