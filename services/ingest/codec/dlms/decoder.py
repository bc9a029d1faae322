"""The incremental decoder for binary meters: HDLC, M-Bus or raw DLMS APDU bytes in, `Reading`s out.

`DlmsDecoder` implements `codec.decoded.Decoder` for DLMS/COSEM meters: it frames the byte stream
(`hdlc.HdlcFramer` + `hdlc.Segments`, `mbus.MbusFramer` + `mbus.MbusSegments`, or raw
general-glo-ciphering APDUs, `raw_apdu`), joins general block transfers, decrypts (`ciphering`), and turns
each data notification into a reading with a `plan.Plan` (A-XDR + list layout, compiled
once per list shape and replayed for the meter's next frames of that shape).
A P1 telegram found inside a decrypted APDU (Luxembourg Smarty) goes to the P1 parser,
which checks its own CRC. Every failure is a `DecodeError`; nothing else escapes `feed`.
"""

from __future__ import annotations

import logging
from typing import Literal
from zoneinfo import ZoneInfo

from shared.reading import CrcStatus

from ..decoded import Decoded, DecodeError
from ..obis import UnitError
from ..p1.parser import P1Parser
from . import axdr, ciphering, cosem
from . import list_layouts as layouts
from .ciphering import Keys
from .hdlc import HdlcFramer, Segments
from .mbus import MbusFramer, MbusSegments
from .plan import Plan
from .raw_apdu import RawApduFramer

log = logging.getLogger(__name__)

Framing = Literal["hdlc", "mbus", "apdu"]
PROTOCOLS: dict[str, str] = {"hdlc": "hdlc", "mbus": "mbus", "apdu": "dlms"}
MAX_PLANS = 4  # list shapes kept per APDU length
MAX_LENGTHS = 16  # APDU lengths with kept shapes


class DlmsDecoder:
    """Incremental DLMS decoder (the `decoder.Decoder` protocol) for one meter."""

    def __init__(
        self,
        framing: Framing = "hdlc",
        *,
        keys: Keys | None = None,
        tz: ZoneInfo | str | None = None,
    ) -> None:
        self.framing = framing
        self.protocol = PROTOCOLS[framing]
        self.keys = keys or Keys()
        self.zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._hdlc = HdlcFramer()
        self._segments = Segments()
        self._mbus = MbusFramer()
        self._mbus_segments = MbusSegments()
        self._raw = RawApduFramer()
        self._blocks = cosem.BlockTransfer()
        # P1 telegrams inside decrypted APDUs (Luxembourg Smarty), with their learnt layouts
        self.p1 = P1Parser() if self.zone is None else P1Parser(tz=self.zone)
        # List shapes seen, by APDU length (Aidon alternates lists 1, 2 and 3), replayed while
        # their bytes outside the changing values match.
        self._plans: dict[int, list[Plan]] = {}

    def feed(self, data: bytes, received_ms: int) -> list[Decoded | DecodeError]:
        out: list[Decoded | DecodeError] = []
        if self.framing == "hdlc":
            for frame in self._hdlc.feed(data):
                if isinstance(frame, DecodeError):
                    out.append(frame)
                    continue
                for apdu in self._segments.push(frame):
                    if isinstance(apdu, DecodeError):
                        out.append(apdu)
                    else:
                        out.extend(self._apdu(apdu, frame.offset, frame.raw, received_ms, "ok"))
        elif self.framing == "mbus":
            for mframe in self._mbus.feed(data):
                if isinstance(mframe, DecodeError):
                    out.append(mframe)
                    continue
                for apdu in self._mbus_segments.push(mframe):
                    if isinstance(apdu, DecodeError):
                        out.append(apdu)
                    else:
                        out.extend(self._apdu(apdu, mframe.offset, mframe.raw, received_ms, "ok"))
        else:
            self._raw.feed(data)
            while (candidate := self._raw.next()) is not None:
                apdu, offset = candidate
                results = self._apdu(apdu, offset, apdu, received_ms, "absent")
                if any(isinstance(r, DecodeError) for r in results):
                    self._raw.reject()
                else:
                    self._raw.accept()
                out.extend(results)
        return out

    def _keep(self, plan: Plan) -> None:
        """Remember a list shape: at most MAX_PLANS per APDU length, MAX_LENGTHS lengths."""
        shapes = self._plans.pop(plan.length, [])
        if len(shapes) >= MAX_PLANS:
            shapes.pop(0)
        shapes.append(plan)
        if len(self._plans) >= MAX_LENGTHS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[plan.length] = shapes  # most recently used length last

    def flush(
        self, received_ms: int, *, ends_telegram: bool = False
    ) -> list[Decoded | DecodeError]:
        """End of input: report a frame left incomplete, and start afresh (frames carry their
        length: `ends_telegram` changes nothing here)."""
        held = self._hdlc.pending + self._mbus.pending + self._raw.pending
        self._hdlc, self._mbus, self._raw = HdlcFramer(), MbusFramer(), RawApduFramer()
        if held:
            return [DecodeError("truncated", f"input ends inside a frame ({held} bytes held)")]
        return []

    def _apdu(
        self, apdu: bytes, offset: int, raw: bytes, received_ms: int, crc: CrcStatus
    ) -> list[Decoded | DecodeError]:
        try:
            return self._dispatch(apdu, offset, raw, received_ms, crc, depth=0)
        except DecodeError as error:
            if error.offset is None:
                error.offset = offset
            if not error.raw:
                error.raw = raw
            return [error]
        except (axdr.AxdrError, cosem.CosemError, layouts.LayoutError, UnitError) as error:
            return [
                DecodeError(
                    "parse_error", f"frame at byte {offset}: {error}", offset=offset, raw=raw
                )
            ]
        except Exception as error:  # a decoder bug must not take the service down
            log.exception("frame at byte %s: unexpected %s", offset, type(error).__name__)
            return [
                DecodeError(
                    "parse_error",
                    f"frame at byte {offset}: decoder failed ({type(error).__name__}); "
                    "please report it with a capture (docs/meters.md)",
                    offset=offset,
                    raw=raw,
                )
            ]

    def _dispatch(
        self, apdu: bytes, offset: int, raw: bytes, received_ms: int, crc: CrcStatus, depth: int
    ) -> list[Decoded | DecodeError]:
        if depth > 3:
            raise cosem.CosemError("APDUs nested too deep")
        tag = apdu[0] if apdu else -1
        if tag == cosem.GENERAL_BLOCK_TRANSFER:
            whole = self._blocks.push(apdu)
            if whole is None:
                return []
            return self._dispatch(whole, offset, raw, received_ms, crc, depth + 1)
        if tag == ciphering.TAG:
            ciphered = ciphering.parse(apdu)
            plain = ciphering.decrypt(ciphered, self.keys)
            if ciphered.security & 0x10:
                crc = "ok"
            if plain[:1] == b"/":
                reading = self.p1.parse_telegram(plain, received_ms)
                reading.protocol = "smarty" if self.framing == "apdu" else self.protocol
                return [Decoded((reading, raw))]
            try:
                return self._dispatch(plain, offset, raw, received_ms, crc, depth + 1)
            except (axdr.AxdrError, cosem.CosemError, layouts.LayoutError) as error:
                if ciphered.security & 0x10:
                    raise
                raise DecodeError(
                    "key_error",
                    f"meter {ciphered.meter}: decrypted frame does not decode ({error}): "
                    "HANPORT_METER_KEY is probably wrong",
                ) from None
        if tag == cosem.DATA_NOTIFICATION:
            shapes = self._plans.get(len(apdu), ())
            plan = next((p for p in shapes if p.matches(apdu)), None)
            if plan is None:
                plan = Plan(apdu, cosem.parse_notification(apdu))
                if plan.replayable:
                    self._keep(plan)
            reading = plan.run(
                apdu, received_ms=received_ms, crc=crc, protocol=self.protocol, zone=self.zone
            )
            return [Decoded((reading, raw))]
        raise cosem.CosemError(f"APDU tag 0x{tag & 0xFF:02X} is not a data notification")
