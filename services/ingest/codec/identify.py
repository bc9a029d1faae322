"""Which protocol a meter port speaks: sample bytes in, protocol name out.

- `candidates(sample)`: the protocols whose signature occurs in the bytes, earliest first:
  `/XXX5` = P1, `7E A?` = HDLC, `68 L L 68` = M-Bus, `DB 08` = raw general-glo-ciphering ("dlms").
- `Prober`: feeds a growing sample to a decoder per signature found and answers the protocol
  whose decoder finds a valid frame. A frame that fails only for its key (key_error, auth_error)
  still proves the protocol; so does a whole P1 telegram whose CRC did not match.
- `AutoDecoder`: the decoder for protocol `auto`: holds the first bytes until a `Prober` names
  the protocol, then hands them and everything after to that protocol's decoder.
Decoders come from a `new_decoder(protocol)` callable (`factory.make_decoder` with the caller's
options), so this module makes none itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from .decoded import Decoded, DecodeError, Decoder

log = logging.getLogger(__name__)

NewDecoder = Callable[[str], Decoder]
PROTOCOLS = ("p1", "hdlc", "mbus", "dlms")
SIGNATURES: dict[str, re.Pattern[bytes]] = {
    "p1": re.compile(rb"/[A-Za-z]{3}[0-9]"),
    "hdlc": re.compile(rb"\x7e[\xa0-\xaf]"),
    "mbus": re.compile(rb"\x68(.)\1\x68", re.DOTALL),
    "dlms": re.compile(rb"\xdb\x08"),
}
# Errors that still prove the protocol: a frame was found and only its key failed; a whole P1
# telegram (`/` ... `!XXXX`) whose CRC did not match is readable text, so the line is right.
_PROOF = ("key_error", "auth_error")
_P1_PROOF = ("key_error", "auth_error", "crc_error")


def candidates(sample: bytes) -> list[str]:
    """Protocols whose signature occurs in `sample`, earliest first."""
    found = [(m.start(), name) for name, rx in SIGNATURES.items() if (m := rx.search(sample))]
    return [name for _, name in sorted(found)]


class Prober:
    """Feeds a growing sample to a decoder per signature found; `feed` answers the protocol
    once one of them decodes a valid frame."""

    def __init__(self, new_decoder: NewDecoder) -> None:
        self.new_decoder = new_decoder
        self._sample = bytearray()
        self._decoders: dict[str, Decoder] = {}

    @property
    def sample(self) -> bytes:
        """Every byte fed so far: feed it to the real decoder first, so nothing is lost."""
        return bytes(self._sample)

    def feed(self, data: bytes) -> str | None:
        self._sample += data
        for name in candidates(bytes(self._sample)):
            decoder = self._decoders.get(name)
            if decoder is None:
                decoder = self._decoders[name] = self.new_decoder(name)
                chunk = bytes(self._sample)
            else:
                chunk = data
            for item in decoder.feed(chunk, 0):
                proof = _P1_PROOF if name == "p1" else _PROOF
                if isinstance(item, Decoded) or (
                    isinstance(item, DecodeError) and item.reason in proof
                ):
                    return name
        return None


class AutoDecoder:
    """A `decoded.Decoder` that first finds the protocol, then delegates to its decoder.

    `factory(protocol)` makes the real decoder (with the service's options). Nothing is lost:
    the bytes held while detecting are fed to it first. Without any valid frame in `max_sample`
    bytes, it reports one `parse_error` saying what to check and starts over."""

    def __init__(
        self,
        factory: NewDecoder,
        *,
        max_sample: int = 65536,
    ) -> None:
        self.protocol = "auto"
        self.factory = factory
        self.max_sample = max_sample
        self.decoder: Decoder | None = None
        self._prober = Prober(factory)
        self._offset = 0

    @property
    def skipped(self) -> int:
        return int(getattr(self.decoder, "skipped", 0))

    def feed(self, data: bytes, received_ms: int) -> list[Decoded | DecodeError]:
        if self.decoder is not None:
            return self.decoder.feed(data, received_ms)
        found = self._prober.feed(data)
        if found is None:
            held = len(self._prober.sample)
            if held <= self.max_sample:
                return []
            self._prober = Prober(self.factory)
            offset, self._offset = self._offset, self._offset + held
            return [
                DecodeError(
                    "parse_error",
                    f"no P1 telegram, HDLC, M-Bus or DLMS frame in {held} bytes: check the "
                    "port's line settings (serial://...?baud=auto finds them) and the wiring",
                    offset=offset,
                )
            ]
        log.info("meter speaks %s", found)
        self.protocol = found
        self.decoder = self.factory(found)
        return self.decoder.feed(self._prober.sample, received_ms)

    def flush(self, received_ms: int) -> list[Decoded | DecodeError]:
        """End of input. Still undecided: the protocol whose signature came first reads what
        was held, so a cut-off or damaged last frame is reported as what it is."""
        out: list[Decoded | DecodeError] = []
        if self.decoder is None:
            sample = self._prober.sample
            found = candidates(sample)
            if not found:
                return []
            self.decoder = self.factory(found[0])
            out = self.decoder.feed(sample, received_ms)
        flush = getattr(self.decoder, "flush", None)
        return out + (list(flush(received_ms)) if flush is not None else [])
