"""The incremental P1 decoder: a meter's byte stream in, `Decoded` readings and `DecodeError`s out.

`P1Decoder` finds telegrams (`/` ... `!CRC`) in the bytes as they arrive, skips noise between
them, reports cut-off and over-long telegrams, keeps at most `max_size` bytes of a pending
telegram, and hands each whole telegram to its `parser.P1Parser`.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from ..decoded import Decoded, DecodeError
from .clock import DEFAULT_TIMEZONE, timezone
from .parser import P1Parser

MAX_TELEGRAM_BYTES = 16384
_CRC_DIGITS = re.compile(rb"[0-9A-Fa-f]{0,4}")


class P1Decoder:
    """Incremental P1 decoder (the `decoder.Decoder` protocol).

    Feed it bytes as they arrive; it answers each telegram it completed as `Decoded`, or as a
    `DecodeError` (`crc_error`, `parse_error`, `truncated`, `overflow`). Bytes outside telegrams
    (line noise, NULs) are skipped and counted in `skipped`. Once a meter has sent a CRC, a
    telegram from it without one is refused: a damaged trailer must not pass as "no CRC"."""

    protocol = "p1"

    def __init__(
        self,
        *,
        check_crc: bool = True,
        tz: ZoneInfo | str = DEFAULT_TIMEZONE,
        max_size: int = MAX_TELEGRAM_BYTES,
    ) -> None:
        self.check_crc = check_crc
        self.tz = timezone(tz) if isinstance(tz, str) else tz
        self.parser = P1Parser(tz=self.tz, check_crc=check_crc)
        self.max_size = max_size
        self.skipped = 0
        self.sends_crc = False
        self._buffer = b""  # immutable: slices of it are single copies
        self._pos = 0  # where unread bytes start in _buffer (dropped after each call)
        self._offset = 0  # input offset of _buffer[0]

    def feed(self, data: bytes, received_ms: int) -> list[Decoded | DecodeError]:
        self._buffer = self._buffer + bytes(data) if self._buffer else bytes(data)
        return self._scan(received_ms, final=False)

    def flush(
        self, received_ms: int, *, ends_telegram: bool = False
    ) -> list[Decoded | DecodeError]:
        """End of input: complete a telegram waiting for more CRC digits, report a cut-off one.

        `ends_telegram`: the input ends where a telegram ends (a capture of one decrypted
        telegram, which has no `!` line). A telegram left open whose last line is whole is then
        decoded with `crc="absent"`, unless this meter sends CRCs (then it was cut off)."""
        out = self._scan(received_ms, final=True)
        buffer = self._buffer
        if buffer:
            start = buffer.find(b"/")
            self.skipped += len(buffer) if start < 0 else start
            if start >= 0:
                out.append(self._unended(buffer[start:], start, received_ms, ends_telegram))
            self._offset += len(buffer)
            self._buffer = b""
        return out

    def _unended(
        self, telegram: bytes, start: int, received_ms: int, ends_telegram: bool
    ) -> Decoded | DecodeError:
        """A telegram the input ended inside: cut off, or whole though it has no `!` line."""
        offset = self._offset + start
        frame = telegram.rstrip(b"\r\n")
        if ends_telegram and not self.sends_crc and frame.endswith(b")") and b"\n" in frame:
            try:
                return Decoded((self.parser.parse_frame(frame, b"", received_ms, offset), frame))
            except DecodeError as error:
                return error
        return DecodeError(
            "truncated", "input ends inside a telegram", offset=offset, raw=bytes(telegram)
        )

    def _error(self, reason: Any, message: str, start: int, stop: int) -> DecodeError:
        self._pos = stop
        return DecodeError(
            reason, message, offset=self._offset + start, raw=bytes(self._buffer[start:stop])
        )

    def _scan(self, received_ms: int, *, final: bool) -> list[Decoded | DecodeError]:
        out: list[Decoded | DecodeError] = []
        buffer = self._buffer
        size = len(buffer)
        try:
            while self._pos < size:
                start = buffer.find(b"/", self._pos)
                if start < 0:
                    self.skipped += size - self._pos
                    self._pos = size
                    break
                self.skipped += start - self._pos
                self._pos = start
                end = buffer.find(b"!", start + 1)
                limit = end if end >= 0 else size
                # No '/' in a telegram after its header line: one there starts the next telegram.
                header_end = buffer.find(b"\n", start + 1, limit)
                restart = buffer.find(b"/", header_end, limit) if header_end > 0 else -1
                if restart > 0:
                    out.append(
                        self._error(
                            "truncated",
                            "telegram cut off: a new one starts before '!'",
                            start,
                            restart,
                        )
                    )
                    continue
                if end < 0:
                    if size - start > self.max_size:
                        cut = buffer.find(b"/", start + 1)
                        out.append(
                            self._error(
                                "overflow",
                                f"no '!' within {self.max_size} bytes: not a P1 telegram or no end",
                                start,
                                cut if cut > 0 else size,
                            )
                        )
                        continue
                    break
                # The trailer: up to 4 hex CRC digits right after '!', then a line end.
                first = end + 1
                stop = _CRC_DIGITS.match(buffer, first).end()  # type: ignore[union-attr]
                if stop == size and stop - first < 4 and not final:
                    break  # wait for the rest of the CRC (or the line end saying there is none)
                if stop - first < 4 and stop < size and buffer[stop] not in b"\r\n":
                    out.append(
                        self._error(
                            "parse_error",
                            f"{bytes(buffer[first : stop + 1])!r} after '!' is not a CRC",
                            start,
                            stop,
                        )
                    )
                    continue
                out.append(self._complete(start, end, first, stop, received_ms))
        finally:
            if self._pos:
                self._buffer = buffer[self._pos :]
                self._offset += self._pos
                self._pos = 0
        return out

    def _complete(
        self, start: int, end: int, first: int, stop: int, received_ms: int
    ) -> Decoded | DecodeError:
        buffer = self._buffer
        frame = buffer[start : end + 1]
        crc = buffer[first:stop]
        offset = self._offset + start
        self._pos = stop + 2 if buffer[stop : stop + 2] == b"\r\n" else stop
        if frame[-2] != 0x0A:
            return DecodeError(
                "parse_error", "'!' is not at the start of a line", offset=offset, raw=frame + crc
            )
        if crc:
            self.sends_crc = True
        elif self.sends_crc and self.check_crc:
            return DecodeError(
                "crc_error",
                "telegram without CRC from a meter that sends one (damaged trailer)",
                offset=offset,
                raw=frame,
            )
        try:
            reading = self.parser.parse_frame(frame, crc, received_ms, offset)
        except DecodeError as error:
            return error
        return Decoded((reading, buffer[start:stop]))
