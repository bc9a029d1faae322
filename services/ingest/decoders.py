"""Which decoder reads a meter's bytes: the one place that chooses, for the service and for
`hanport decode` alike. Consumes `DecoderOptions`; produces a `decoder.Decoder`.

Today every source speaks P1. Binary meters (HDLC/DLMS, M-Bus, encrypted frames) slot in here:
add their options (keys, a protocol name or "auto" detection) to `DecoderOptions` and a branch
to `make_decoder`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .decoder import Decoded, DecodeError, Decoder
from .p1 import DEFAULT_TIMEZONE, MAX_TELEGRAM_BYTES, P1Decoder


@dataclass(frozen=True)
class DecoderOptions:
    protocol: str = "p1"
    check_crc: bool = True
    timezone: str = DEFAULT_TIMEZONE
    max_size: int = MAX_TELEGRAM_BYTES


def make_decoder(options: DecoderOptions) -> Decoder:
    """A fresh decoder for one byte stream."""
    if options.protocol == "p1":
        return P1Decoder(
            check_crc=options.check_crc, tz=options.timezone, max_size=options.max_size
        )
    raise ValueError(f"unknown protocol {options.protocol!r}; expected p1")


def finish(decoder: Decoder, received_ms: int) -> list[Decoded | DecodeError]:
    """End of input: what the decoder still holds (a P1 telegram waiting for CRC digits, or a
    cut-off frame reported as `truncated`). Decoders without a `flush` hold nothing."""
    flush = getattr(decoder, "flush", None)
    return list(flush(received_ms)) if flush is not None else []
