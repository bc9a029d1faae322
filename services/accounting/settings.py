"""Settings of the accounting service (`HANPORT_ACCOUNTING_*`, `HANPORT_TARIFF_RULE`,
`HANPORT_METER_TIMEZONE`), read by `load_settings`.

Consumes environment variables; produces a validated `AccountingSettings` (an unknown tariff
rule or time zone stops the service at start with one line, exit 2).
"""

from __future__ import annotations

import socket
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from shared.settings import CommonSettings

from .tariffs import RULES, CapacityRule, UnknownRule, rule


class AccountingSettings(CommonSettings):
    """Which tariff rule, which clock, how long intervals are kept."""

    metrics_port: int = Field(
        9104, ge=0, le=65535, description="Prometheus /metrics port (0 turns it off)."
    )
    tariff_rule: str = Field(
        "no-elvia",
        description="Capacity-tariff rule the live state and headroom follow: "
        + ", ".join(f"`{r.name}`" for r in RULES)
        + " (docs/accounting.md).",
    )
    meter_timezone: str | None = Field(
        None,
        description="IANA time zone of the meter's clock, which sets quarter-hours, hours, days "
        "and months (DST days have 23 or 25 hours); unset: the tariff rule's zone.",
    )
    accounting_group: str = Field(
        "accounting",
        min_length=1,
        description="Consumer group the accounting service reads each meter's readings with "
        "(run one replica: the state of a meter is kept by one process).",
    )
    accounting_consumer: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="This replica's consumer name in the group (default: the host name).",
    )
    accounting_keep_15m_days: int = Field(
        731,
        ge=0,
        description="Days quarter-hour intervals are kept (0: forever).",
    )
    accounting_keep_1h_days: int = Field(
        3653,
        ge=0,
        description="Days hourly intervals are kept (0: forever); days and months are kept "
        "forever.",
    )
    accounting_tariff_interval: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Seconds between recomputations of a meter's live tariff state (value, "
        "step, headroom); the intervals are stored with every batch of readings.",
    )

    @field_validator("tariff_rule")
    @classmethod
    def _rule(cls, value: str) -> str:
        try:
            rule(value)
        except UnknownRule as error:
            raise ValueError(str(error.args[0])) from None
        return value

    @field_validator("meter_timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone name such as Europe/Oslo") from None
        return value

    def rule(self) -> CapacityRule:
        return rule(self.tariff_rule)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.meter_timezone or self.rule().zone)
