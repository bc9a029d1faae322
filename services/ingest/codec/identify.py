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
PROBE_PIECE = 4096  # bytes probed at a time
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
    once one of them decodes a valid frame. That decoder has then read every byte, and what it
    answered is kept: `adopt` hands both over, so nothing is decoded twice."""

    def __init__(self, new_decoder: NewDecoder) -> None:
        self.new_decoder = new_decoder
        self._sample = bytearray()
        self._decoders: dict[str, tuple[Decoder, list[Decoded | DecodeError]]] = {}

    @property
    def sample(self) -> bytes:
        """Every byte fed so far."""
        return bytes(self._sample)

    def feed(self, data: bytes, received_ms: int = 0) -> str | None:
        self._sample += data
        found: str | None = None
        for name in candidates(bytes(self._sample)):
            if name in self._decoders:
                decoder, answered = self._decoders[name]
                chunk = data
            else:
                decoder, answered = self._decoders[name] = (self.new_decoder(name), [])
                chunk = bytes(self._sample)
            items = decoder.feed(chunk, received_ms)
            answered += items
            proof = _P1_PROOF if name == "p1" else _PROOF
            if found is None and any(
                isinstance(item, Decoded) or item.reason in proof for item in items
            ):
                found = name
                break
        return found

    def adopt(self, name: str) -> tuple[Decoder, list[Decoded | DecodeError]]:
        """The decoder that read the sample as `name` (made now if there was none, and fed the
        sample), and everything it answered so far."""
        if name not in self._decoders:
            decoder = self.new_decoder(name)
            self._decoders[name] = (decoder, decoder.feed(self.sample, 0))
        return self._decoders[name]


class AutoDecoder:
    """A `decoded.Decoder` that first finds the protocol, then delegates to its decoder.

    `factory(protocol)` makes the decoders (with the service's options). Nothing is lost and
    nothing is read twice: the decoder that found the protocol goes on reading, and what it
    answered while detecting is answered first. Without any valid frame in `max_sample`
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
        # A big chunk (a whole capture) is probed a piece at a time: detection reads only the
        # bytes up to the first valid frame, and the rest goes straight to the decoder it found.
        out: list[Decoded | DecodeError] = []
        for start in range(0, len(data), PROBE_PIECE):
            found = self._prober.feed(data[start : start + PROBE_PIECE], received_ms)
            if found is not None:
                log.info("meter speaks %s", found)
                self.protocol = found
                self.decoder, answered = self._prober.adopt(found)
                rest = data[start + PROBE_PIECE :]
                return out + answered + (self.decoder.feed(rest, received_ms) if rest else [])
            held = len(self._prober.sample)
            if held > self.max_sample:
                self._prober = Prober(self.factory)
                offset, self._offset = self._offset, self._offset + held
                out.append(
                    DecodeError(
                        "parse_error",
                        f"no P1 telegram, HDLC, M-Bus or DLMS frame in {held} bytes: check the "
                        "port's line settings (serial://...?baud=auto finds them) and the wiring",
                        offset=offset,
                    )
                )
        return out

    def flush(
        self, received_ms: int, *, ends_telegram: bool = False
    ) -> list[Decoded | DecodeError]:
        """End of input. Still undecided: the protocol whose signature came first reads what
        was held, so a cut-off or damaged last frame is reported as what it is."""
        out: list[Decoded | DecodeError] = []
        if self.decoder is None:
            sample = self._prober.sample
            found = candidates(sample)
            if not found:
                return []
            self.decoder, out = self._prober.adopt(found[0])
        flush = getattr(self.decoder, "flush", None)
        if flush is None:
            return out
        return out + list(flush(received_ms, ends_telegram=ends_telegram))
