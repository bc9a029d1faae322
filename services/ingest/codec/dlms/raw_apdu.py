"""General-glo-ciphering APDUs sent bare on the line (`DB 08 ...`, Luxembourg Smarty): a byte
stream in, candidate APDUs out, each delimited by its own A-XDR length."""

from __future__ import annotations

from . import axdr

MAX_RAW_APDU = 4096


class RawApduFramer:
    """General-glo-ciphering APDUs sent bare on the line (`DB 08 ...`), delimited by their
    own length. There is no checksum, so the decoder says whether a candidate was one: `accept`
    drops it, `reject` looks again from its second byte, so garbage that looked like a start
    (and swallowed the next frame's first bytes) never costs that frame."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0
        self._end = 0  # end of the candidate `next` answered

    @property
    def pending(self) -> int:
        return len(self._buf) if len(self._buf) > 1 else 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self._base += count

    def next(self) -> tuple[bytes, int] | None:
        """The next candidate APDU and its offset, or None until more bytes arrive."""
        buf = self._buf
        while True:
            start = buf.find(b"\xdb\x08")
            if start < 0:
                self._drop(max(len(buf) - 1, 0))
                return None
            self._drop(start)
            try:
                size, body = axdr.read_length(buf, 10)
            except axdr.AxdrError:
                if len(buf) < 15:
                    return None
                self._drop(1)
                continue
            if size > MAX_RAW_APDU or size < 5:
                self._drop(1)
                continue
            if body + size > len(buf):
                return None
            self._end = body + size
            return bytes(buf[: self._end]), self._base

    def accept(self) -> None:
        self._drop(self._end)

    def reject(self) -> None:
        self._drop(1)
