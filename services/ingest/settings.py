"""The ingest service's settings: `HANPORT_*` environment variables on top of `CommonSettings`.

Consumed by `services/ingest/__main__.py` (and `services/run.py`); a bad value stops the
service at start with one line naming the variable, the value and what is allowed.
"""

from __future__ import annotations

import os
import sys
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from shared.meters import MeterKeys, check_name
from shared.settings import CommonSettings

from .codec.dlms.ciphering import Keys
from .codec.factory import DecoderOptions
from .meter_keys import load_keys
from .sources.spec import SourceSpec, parse_source


class IngestSettings(CommonSettings):
    source: str = Field(
        "simulator",
        description=(
            "Where the meter's bytes come from: `simulator`, a device path such as "
            "`/dev/ttyUSB0` (the line settings are detected: 115200 8N1, 2400 8E1, ...), "
            "`serial:///dev/ttyUSB0?baud=2400&parity=E&bytesize=8&stopbits=1` (fixed line "
            "settings), `tcp://host:port` or `file:///path?pace=recorded|fast`."
        ),
    )
    meter_name: str | None = Field(
        None,
        description="This meter's name on the box (1-64 letters, digits, `.`, `_`, `-`): its "
        "readings carry it and go to its own streams `hanport:{<name>}:readings` and `:raw`. "
        "Unset: the classic streams (`HANPORT_STREAM`), and the name is the equipment id the "
        "meter sends, else one made from the source. Set one per meter when a box reads "
        "several.",
    )
    simulator_interval: float = Field(
        1.0, gt=0, le=3600, description="Seconds between simulated telegrams."
    )
    meter_timezone: str = Field(
        "Europe/Helsinki",
        description="IANA time zone of the meter's clock (its S/W flag settles the autumn hour).",
    )
    crc_check: bool = Field(
        True,
        description="Check each P1 telegram's CRC; `false` only for a meter known to send bad ones.",
    )
    stream_maxlen: int = Field(
        86400, ge=1, description="Approximate number of readings kept in the readings stream."
    )
    raw_maxlen: int = Field(
        1000, ge=0, description="Approximate raw telegrams kept in the raw stream (0: none)."
    )
    buffer_max_readings: int = Field(
        100_000, ge=1, description="Readings held in memory while Redis is away (oldest dropped)."
    )
    buffer_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Bytes held in memory while Redis is away."
    )
    max_telegram_bytes: int = Field(
        16384, ge=256, description="Longest telegram accepted; longer input is dropped as overflow."
    )
    source_idle_timeout: float = Field(
        60.0, gt=0, description="Reconnect a TCP source after this many seconds without data."
    )
    metrics_port: int = Field(
        9101, ge=0, le=65535, description="Prometheus /metrics port (0 turns it off)."
    )
    meter_protocol: Literal["auto", "p1", "hdlc", "mbus", "dlms"] = Field(
        "auto",
        description=(
            "What the meter port speaks: `auto` (found from the first valid frame), `p1`, "
            "`hdlc` (DLMS in HDLC), `mbus` (DLMS in M-Bus) or `dlms` (bare encrypted APDUs)."
        ),
    )
    meter_key: SecretStr | None = Field(
        None,
        description="Encrypted meters: the AES-128 encryption key (GUEK) from the grid operator, "
        "32 hex digits. Never logged.",
    )
    meter_key_file: str | None = Field(
        None, description="A file holding `HANPORT_METER_KEY` instead (e.g. a Docker secret)."
    )
    meter_auth_key: SecretStr | None = Field(
        None,
        description="Encrypted meters sending authenticated frames: the authentication key "
        "(GAK), 32 hex digits; Luxembourg Smarty meters need none. Never logged.",
    )
    meter_auth_key_file: str | None = Field(
        None, description="A file holding `HANPORT_METER_AUTH_KEY` instead."
    )
    _keys: Keys = PrivateAttr(default_factory=Keys)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        spec = parse_source(value)  # raises ValueError with the allowed forms
        if spec.kind == "file" and not os.access(spec.path, os.R_OK):
            raise ValueError(f"cannot read the capture file {spec.path}")
        return value

    @field_validator("meter_name")
    @classmethod
    def _meter_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @field_validator("meter_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone name such as Europe/Helsinki") from None
        return value

    @model_validator(mode="after")
    def _meter_keys(self) -> IngestSettings:
        # Checked here, not by a field validator: a validation error would echo the value, and
        # a key must never be printed. Bad key: one line naming the setting, exit 2.
        def secret(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value is not None else None

        try:
            self._keys = load_keys(
                secret(self.meter_key),
                self.meter_key_file,
                secret(self.meter_auth_key),
                self.meter_auth_key_file,
            )
        except ValueError as error:
            print(f"hanport: bad setting {error}", file=sys.stderr)
            raise SystemExit(2) from None
        return self

    def meter_keys(self) -> Keys:
        return self._keys

    def meter_keys_in_redis(self) -> MeterKeys:
        """The streams and status hash this meter's readings go to."""
        if self.meter_name:
            return MeterKeys.named(self.meter_name)
        return MeterKeys.classic(self.stream, self.raw_stream)

    def source_spec(self) -> SourceSpec:
        return parse_source(self.source)

    def decoder_options(self) -> DecoderOptions:
        return DecoderOptions(
            protocol=self.meter_protocol,
            keys=self.meter_keys(),
            check_crc=self.crc_check,
            timezone=self.meter_timezone,
            max_size=self.max_telegram_bytes,
        )
