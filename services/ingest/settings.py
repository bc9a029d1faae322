"""The ingest service's settings: `HANPORT_*` environment variables on top of `CommonSettings`.

Consumed by `services/ingest/__main__.py` (and `services/run.py`); a bad value stops the
service at start with one line naming the variable, the value and what is allowed.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from shared.settings import CommonSettings

from .decoders import DecoderOptions
from .sources import SourceSpec, parse_source


class IngestSettings(CommonSettings):
    source: str = Field(
        "simulator",
        description=(
            "Where the meter's bytes come from: `simulator`, "
            "`serial:///dev/ttyUSB0?baud=115200&parity=N&bytesize=8&stopbits=1`, a device path, "
            "`tcp://host:port` or `file:///path?pace=recorded|fast`."
        ),
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

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        parse_source(value)  # raises ValueError with the allowed forms
        return value

    @field_validator("meter_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone name such as Europe/Helsinki") from None
        return value

    def source_spec(self) -> SourceSpec:
        return parse_source(self.source)

    def decoder_options(self) -> DecoderOptions:
        return DecoderOptions(
            check_crc=self.crc_check,
            timezone=self.meter_timezone,
            max_size=self.max_telegram_bytes,
        )
