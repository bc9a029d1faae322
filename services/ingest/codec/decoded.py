"""What every protocol decoder in the ingest service looks like, and the errors it may report.

A decoder is incremental: the source hands it bytes as they arrive, it answers the readings and
the errors found so far, keeping any partial frame for the next call. P1 (`p1/decoder.py`)
and the binary DLMS decoder (`dlms/decoder.py`: HDLC, M-Bus, bare APDUs) have this shape, so
the service and `hanport decode` treat every protocol alike.
"""

from __future__ import annotations

from typing import Literal, Protocol

from shared.reading import Reading

Reason = Literal["crc_error", "parse_error", "truncated", "overflow", "key_error", "auth_error"]


class DecodeError(Exception):
    """A telegram or frame that did not decode. Never carries key material.

    `reason` is a metric label; `offset` is the byte offset of the frame's start in the input
    fed so far (for `hanport decode` messages); `raw` the frame's bytes when known."""

    def __init__(
        self, reason: Reason, message: str, *, offset: int | None = None, raw: bytes = b""
    ) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.offset = offset
        self.raw = raw


class Decoded(tuple[Reading, bytes]):
    """A reading and the raw bytes of the telegram or frame it came from."""

    __slots__ = ()

    @property
    def reading(self) -> Reading:
        return self[0]

    @property
    def raw(self) -> bytes:
        return self[1]


class Decoder(Protocol):
    protocol: str

    def feed(self, data: bytes, received_ms: int) -> list[Decoded | DecodeError]:
        """Consume `data`; answer what it completed, in order."""
        ...
