"""The incremental decoder for binary meters: HDLC, M-Bus or raw DLMS APDU bytes in, `Reading`s out.

`DlmsDecoder` implements `decoder.Decoder` for DLMS/COSEM meters: it frames the byte stream
(`hdlc.HdlcFramer` + `hdlc.Segments`, `mbus.MbusFramer` + `mbus.MbusSegments`, or raw
general-glo-ciphering APDUs), joins general block transfers, decrypts (`ciphering`), parses the
data notification (`cosem`), reads its list layout (`layouts`) and fills a `ReadingBuilder`.
A P1 telegram found inside a decrypted APDU (Luxembourg Smarty) goes to `p1.parse_telegram`,
which checks its own CRC. Every failure is a `DecodeError`; nothing else escapes `feed`.
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.reading import CrcStatus

from . import axdr, ciphering, cosem, layouts
from .assemble import ReadingBuilder, Slot, numeric_slot
from .ciphering import Keys
from .decoder import Decoded, DecodeError
from .hdlc import HdlcFramer, Segments
from .mbus import MbusFramer, MbusSegments
from .obis import UnitError

Framing = Literal["hdlc", "mbus", "apdu"]
PROTOCOLS: dict[str, str] = {"hdlc": "hdlc", "mbus": "mbus", "apdu": "dlms"}
MAX_RAW_APDU = 4096

_IDENTITY = {  # codes that name the meter, per make, and where they go
    "1-0:0.0.5": "0-0:96.1.0",  # Kamstrup meter id
    "0-0:42.0.0": "device_name",
}
_CLOCKS = (layouts.CLOCK, "0-1:1.0.0")  # Kamstrup sends its clock on channel 1
_MODEL_CODES = ("0-0:96.1.7", "1-0:96.1.1")  # meter type (Aidon, Kaifa; Kamstrup)


_SLOTS: dict[tuple[str, str | None], Slot | None] = {}


def _slot(code: str, unit: str | None) -> Slot | None:
    """`assemble.numeric_slot`, memoised in a plain dict (bounded)."""
    key = (code, unit)
    try:
        return _SLOTS[key]
    except KeyError:
        slot = numeric_slot(code, unit)
        if len(_SLOTS) < 4096:
            _SLOTS[key] = slot
        return slot


def _store(builder: ReadingBuilder, slot: Slot, value: float) -> None:
    """What `ReadingBuilder.add` does for a numeric register, with the lookups precomputed."""
    number = float(value) if slot.factor == 1.0 else round(value * slot.factor, 6)
    target = slot.target
    if target == "arrays":
        builder.arrays[slot.key][slot.position] = number
    elif target == "scalars":
        builder.scalars[slot.key] = number
    elif target == "tariffs":
        builder.tariffs[slot.key] = number
    else:
        builder.scalars[slot.key] = int(number)


class RawApduFramer:
    """General-glo-ciphering APDUs sent bare on the line (`DB 08 ...`), delimited by their
    own length; there is no checksum, so the GCM tag (when sent) is the only check."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0

    @property
    def pending(self) -> int:
        return len(self._buf) if len(self._buf) > 1 else 0

    def feed(self, data: bytes) -> list[tuple[bytes, int]]:
        buf = self._buf
        buf += data
        out: list[tuple[bytes, int]] = []
        pos = 0
        while True:
            start = buf.find(b"\xdb\x08", pos)
            if start < 0:
                pos = max(len(buf) - 1, pos)
                break
            try:
                size, body = axdr.read_length(buf, start + 10)
            except axdr.AxdrError:
                if len(buf) < start + 15:
                    pos = start
                    break
                pos = start + 1
                continue
            if size > MAX_RAW_APDU or size < 5:
                pos = start + 1
                continue
            if body + size > len(buf):
                pos = start
                break
            out.append((bytes(buf[start : body + size]), self._base + start))
            pos = body + size
        if pos:
            del buf[:pos]
            self._base += pos
        return out


def _text(value: Any) -> Any:
    """Octet strings that are text become `str`; other bytes become hex."""
    if isinstance(value, bytes):
        if value.isascii() and all(32 <= b < 127 for b in value):
            return value.decode("ascii")
        return value.hex()
    return value


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
            for apdu, offset in self._raw.feed(data):
                out.extend(self._apdu(apdu, offset, apdu, received_ms, "absent"))
        return out

    def flush(self, received_ms: int) -> list[Decoded | DecodeError]:
        """End of input: report a frame left incomplete, and start afresh."""
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
                from .p1 import parse_telegram

                if self.zone is None:
                    reading = parse_telegram(plain, received_ms=received_ms)
                else:
                    reading = parse_telegram(plain, received_ms=received_ms, tz=self.zone)
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
            notification = cosem.parse_notification(apdu)
            return [Decoded((self._reading(notification, received_ms, crc), raw))]
        raise cosem.CosemError(f"APDU tag 0x{tag & 0xFF:02X} is not a data notification")

    def _reading(self, notification: cosem.Notification, received_ms: int, crc: CrcStatus) -> Any:
        layout, items = layouts.list_items(notification.body)
        builder = ReadingBuilder(received=received_ms, protocol=self.protocol)
        ts: int | None = None
        if notification.datetime is not None:
            ts, text = cosem.to_epoch_ms(notification.datetime, self.zone)
            if text is not None:
                builder.add(layouts.CLOCK, text)
        model: str | None = None
        for code, value, unit in items:
            if code in _CLOCKS and isinstance(value, bytes) and len(value) == 12:
                clock_ts, text = cosem.to_epoch_ms(value, self.zone)
                if text is not None:
                    builder.add(layouts.CLOCK, text)
                ts = ts if ts is not None else clock_ts
                continue
            value = _text(value)
            if code in _MODEL_CODES:
                model = str(value)
                continue
            target = _IDENTITY.get(code, code)
            if target == "device_name" or code == "list_id":
                builder.extras[code] = value
                continue
            if type(value) is int or type(value) is float:
                slot = _slot(target, unit)
                if slot is not None:
                    _store(builder, slot, value)
                    continue
            try:
                builder.add(target, value, unit)
            except UnitError:
                builder.extras[code] = {"value": value, "unit": unit}
        builder.extras.setdefault("layout", layout)
        return builder.build(ts=ts, crc=crc, meter_model=model)
