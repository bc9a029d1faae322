"""A-XDR decoding of DLMS/COSEM data: tagged bytes in, Python values out.

Consumes the `Data` encoding meters use in data-notification bodies (IEC 62056-6-2): structure,
array, integers of 8 to 64 bits, enum, boolean, octet and visible strings, date-time, float.
Produces plain values: `list` for structure/array, `int`, `float`, `bool`, `bytes` (octet string,
date-time, bit string), `str` (visible/UTF-8 string), `None` (null-data).
Malformed input raises `AxdrError`; nothing else escapes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any


class AxdrError(ValueError):
    """The bytes are not valid A-XDR data (unknown tag, length past the end, nesting too deep)."""


MAX_DEPTH = 16

# Fixed-size types: tag -> (struct format, size).
_FIXED: dict[int, tuple[str, int]] = {
    0x03: (">?", 1),  # boolean
    0x05: (">i", 4),  # double-long
    0x06: (">I", 4),  # double-long-unsigned
    0x0F: (">b", 1),  # integer
    0x10: (">h", 2),  # long
    0x11: (">B", 1),  # unsigned
    0x12: (">H", 2),  # long-unsigned
    0x14: (">q", 8),  # long64
    0x15: (">Q", 8),  # long64-unsigned
    0x16: (">B", 1),  # enum
    0x17: (">f", 4),  # float32
    0x18: (">d", 8),  # float64
}
_UNPACKERS: dict[int, tuple[Callable[[bytes, int], tuple[Any, ...]], int]] = {
    tag: (struct.Struct(fmt).unpack_from, size) for tag, (fmt, size) in _FIXED.items()
}
# Fixed-size octet types: date-time, date, time.
_OCTETS_FIXED = {0x19: 12, 0x1A: 5, 0x1B: 4}
_STRUCTURED = (0x01, 0x02)  # array, structure
_OCTETS = 0x09
_TEXT = (0x0A, 0x0C)  # visible-string, utf8-string
_BITS = 0x04
_NULL = 0x00


def read_length(data: bytes, pos: int) -> tuple[int, int]:
    """An A-XDR length at `pos`: one byte below 0x80, else 0x8n then n big-endian bytes."""
    if pos >= len(data):
        raise AxdrError(f"length expected at byte {pos}, data ends")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 4 or pos + 1 + count > len(data):
        raise AxdrError(f"bad length encoding at byte {pos}")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def decode(data: bytes, pos: int = 0, depth: int = 0) -> tuple[Any, int]:
    """The value whose tag is at `pos`, and the position after it."""
    end = len(data)
    if pos >= end:
        raise AxdrError(f"data tag expected at byte {pos}, data ends")
    tag = data[pos]
    pos += 1
    fixed = _UNPACKERS.get(tag)
    if fixed is not None:
        unpack, size = fixed
        if pos + size > end:
            raise AxdrError(f"value of tag 0x{tag:02X} at byte {pos - 1} runs past the end")
        return unpack(data, pos)[0], pos + size
    if tag in _STRUCTURED:
        if depth >= MAX_DEPTH:
            raise AxdrError(f"nesting deeper than {MAX_DEPTH} at byte {pos - 1}")
        count, pos = read_length(data, pos)
        if count > end - pos:
            raise AxdrError(f"{count} elements announced at byte {pos - 1}, too few bytes left")
        items: list[Any] = []
        append = items.append
        for _ in range(count):
            # Leaves inline (numbers, short octet strings): most elements are leaves.
            if pos < end:
                leaf = _UNPACKERS.get(data[pos])
                if leaf is not None:
                    unpack, size = leaf
                    if pos + 1 + size <= end:
                        append(unpack(data, pos + 1)[0])
                        pos += 1 + size
                        continue
                elif data[pos] == _OCTETS and pos + 1 < end and data[pos + 1] < 0x80:
                    size = data[pos + 1]
                    if pos + 2 + size <= end:
                        append(data[pos + 2 : pos + 2 + size])
                        pos += 2 + size
                        continue
            item, pos = decode(data, pos, depth + 1)
            append(item)
        return items, pos
    if tag == _OCTETS or tag in _TEXT:
        size, pos = read_length(data, pos)
        if pos + size > end:
            raise AxdrError(f"string of {size} bytes at byte {pos} runs past the end")
        raw = data[pos : pos + size]
        if tag == _OCTETS:
            return bytes(raw), pos + size
        try:
            return bytes(raw).decode("utf-8" if tag == 0x0C else "latin-1"), pos + size
        except UnicodeDecodeError:
            raise AxdrError(f"UTF-8 string at byte {pos} is not UTF-8") from None
    fixed_size = _OCTETS_FIXED.get(tag)
    if fixed_size is not None:
        if pos + fixed_size > end:
            raise AxdrError(f"date/time at byte {pos - 1} runs past the end")
        return bytes(data[pos : pos + fixed_size]), pos + fixed_size
    if tag == _NULL:
        return None, pos
    if tag == _BITS:
        bits, pos = read_length(data, pos)
        size = (bits + 7) // 8
        if pos + size > end:
            raise AxdrError(f"bit string at byte {pos} runs past the end")
        return bytes(data[pos : pos + size]), pos + size
    raise AxdrError(f"unsupported data tag 0x{tag:02X} at byte {pos - 1}")


Leaf = tuple[int, int, "Callable[[bytes, int], tuple[Any, ...]] | None"]
_DATE_TIME = 0x19


def leaves(data: bytes, pos: int, out: list[Leaf]) -> int:
    """Walk the value at `pos` (already decoded once, so valid) and append, in document order,
    every leaf whose bytes may change from frame to frame while the shape stays: numbers (not
    booleans) as (offset, size, unpack), 12-byte octet strings and date-times as (offset, 12,
    None). Answers the position after the value. Used to replay a meter's repeated list shape."""
    tag = data[pos]
    pos += 1
    fixed = _UNPACKERS.get(tag)
    if fixed is not None:
        unpack, size = fixed
        if tag != 0x03:
            out.append((pos, size, unpack))
        return pos + size
    if tag in _STRUCTURED:
        count, pos = read_length(data, pos)
        for _ in range(count):
            pos = leaves(data, pos, out)
        return pos
    if tag in (_OCTETS, _BITS) or tag in _TEXT:
        size, pos = read_length(data, pos)
        if tag == _BITS:
            size = (size + 7) // 8
        elif tag == _OCTETS and size == 12:
            out.append((pos, 12, None))
        return pos + size
    if tag == _DATE_TIME:
        out.append((pos, 12, None))
        return pos + 12
    fixed_size = _OCTETS_FIXED.get(tag)
    if fixed_size is not None:
        return pos + fixed_size
    return pos  # null-data
