"""Which decoder reads a meter's bytes: the one place that makes decoders, for the service,
`hanport decode` and protocol detection alike. Consumes `DecoderOptions`; produces a
`decoded.Decoder`.

Protocols: `p1`, the binary DLMS ones (`hdlc`, `mbus`, `dlms` = bare general-glo-ciphering
APDUs, see `dlms/decoder.py`), and `auto`, which finds the protocol from the first valid frame
(`identify.AutoDecoder`). Encrypted meters need `keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .decoded import Decoded, DecodeError, Decoder
from .dlms.ciphering import Keys
from .dlms.decoder import DlmsDecoder
from .identify import AutoDecoder
from .p1.clock import DEFAULT_TIMEZONE
from .p1.decoder import MAX_TELEGRAM_BYTES, P1Decoder

PROTOCOLS = ("auto", "p1", "hdlc", "mbus", "dlms")
_FRAMINGS = {"hdlc": "hdlc", "mbus": "mbus", "dlms": "apdu"}  # DLMS protocol -> its framing


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
    framing = _FRAMINGS.get(options.protocol)
    if framing is not None:
        return DlmsDecoder(framing, keys=options.keys, tz=options.timezone)  # type: ignore[arg-type]
    if options.protocol == "auto":
        return AutoDecoder(lambda found: make_decoder(replace(options, protocol=found)))
    raise ValueError(f"unknown protocol {options.protocol!r}; expected {', '.join(PROTOCOLS)}")


def finish(
    decoder: Decoder, received_ms: int, *, ends_telegram: bool = False
) -> list[Decoded | DecodeError]:
    """End of input: what the decoder still holds (a P1 telegram waiting for CRC digits, or a
    cut-off frame reported as `truncated`). Decoders without a `flush` hold nothing.
    `ends_telegram`: the input ends where a telegram ends (`hanport decode` of a capture), so
    a P1 telegram without `!` line held at the end is whole (a decrypted one), not cut off."""
    flush = getattr(decoder, "flush", None)
    return list(flush(received_ms, ends_telegram=ends_telegram)) if flush is not None else []
