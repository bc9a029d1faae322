"""Which decoder reads a meter's bytes: the one place that chooses, for the service and for
`hanport decode` alike. Consumes `DecoderOptions`; produces a `decoder.Decoder`.

Protocols: `p1`, the binary DLMS ones (`hdlc`, `mbus`, `dlms` = bare general-glo-ciphering
APDUs, see `dlms.py`), and `auto`, which finds the protocol from the first valid frame
(`detect.AutoDecoder`). Encrypted meters need `keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .ciphering import Keys
from .decoder import Decoded, DecodeError, Decoder
from .p1 import DEFAULT_TIMEZONE, MAX_TELEGRAM_BYTES, P1Decoder


@dataclass(frozen=True)
class DecoderOptions:
    protocol: str = "p1"
    check_crc: bool = True
    timezone: str = DEFAULT_TIMEZONE
    max_size: int = MAX_TELEGRAM_BYTES
    keys: Keys | None = None  # the meter's AES keys (DLMS general-glo-ciphering)


def make_decoder(options: DecoderOptions) -> Decoder:
    """A fresh decoder for one byte stream."""
    if options.protocol == "p1":
        return P1Decoder(
            check_crc=options.check_crc, tz=options.timezone, max_size=options.max_size
        )
    if options.protocol in ("hdlc", "mbus", "dlms"):
        from .detect import make_decoder as make_binary

        return make_binary(options.protocol, keys=options.keys, tz=options.timezone)
    if options.protocol == "auto":
        from .detect import AutoDecoder

        return AutoDecoder(
            lambda found: make_decoder(replace(options, protocol=found)), keys=options.keys
        )
    raise ValueError(
        f"unknown protocol {options.protocol!r}; expected auto, p1, hdlc, mbus or dlms"
    )


def finish(decoder: Decoder, received_ms: int) -> list[Decoded | DecodeError]:
    """End of input: what the decoder still holds (a P1 telegram waiting for CRC digits, or a
    cut-off frame reported as `truncated`). Decoders without a `flush` hold nothing."""
    flush = getattr(decoder, "flush", None)
    return list(flush(received_ms)) if flush is not None else []
