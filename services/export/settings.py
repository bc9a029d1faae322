"""Settings of the export service (`HANPORT_EXPORT_*`), read from the environment.

Consumes environment variables; produces a validated `ExportSettings`. Each sink is on when its
address is set (`HANPORT_EXPORT_INFLUX_URL`, `HANPORT_EXPORT_POSTGRES_DSN`); with neither the
service idles.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from shared.settings import CommonSettings


def _secret(value: SecretStr | None, path: Path | None) -> str | None:
    if path is not None:
        return path.read_text().strip()
    return value.get_secret_value() if value else None


class ExportSettings(CommonSettings):
    """Sinks, batching and consumer groups of the export service."""

    metrics_port: int = Field(
        9105, ge=0, le=65535, description="Prometheus /metrics port (0 turns it off)."
    )
    export_influx_url: str | None = Field(
        None,
        description="InfluxDB-compatible server for line protocol, `http(s)://host:port` "
        "(InfluxDB 1.x/2.x/3/Cloud, VictoriaMetrics); the sink is off when unset.",
    )
    export_influx_api: Literal["v1", "v2"] = Field(
        "v1",
        description="`v1`: `/write?db=` (InfluxDB 1.x, VictoriaMetrics); `v2`: "
        "`/api/v2/write` with org and bucket (InfluxDB 2.x, 3, Cloud).",
    )
    export_influx_database: str = Field(
        "hanport", min_length=1, description="Database for the v1 API."
    )
    export_influx_org: str | None = Field(None, description="Organization for the v2 API.")
    export_influx_bucket: str | None = Field(
        None, description="Bucket for the v2 API (default: HANPORT_EXPORT_INFLUX_DATABASE)."
    )
    export_influx_token: SecretStr | None = Field(
        None,
        description="Token, sent as `Authorization: Token ...` (v2; for InfluxDB 1.x with "
        "authentication `user:password`). Never logged.",
    )
    export_influx_token_file: Path | None = Field(
        None, description="File holding the token (wins over HANPORT_EXPORT_INFLUX_TOKEN)."
    )
    export_postgres_dsn: SecretStr | None = Field(
        None,
        description="PostgreSQL/TimescaleDB connection, `postgresql://user:pass@host/db`; the "
        "sink is off when unset. Never logged.",
    )
    export_postgres_dsn_file: Path | None = Field(
        None, description="File holding the DSN (wins over HANPORT_EXPORT_POSTGRES_DSN)."
    )
    export_batch_size: int = Field(
        5000, ge=1, le=100_000, description="Readings per write at most."
    )
    export_batch_wait: float = Field(
        5.0,
        ge=0,
        le=60,
        description="Seconds a write waits for more readings after the first (a backlog "
        "goes out in full batches at once): how far the store may lag behind the meter; "
        "longer batches cost less CPU per reading.",
    )
    export_timeout: float = Field(
        10.0, gt=0, description="Seconds a write may take before it is tried again."
    )
    export_group_prefix: str = Field(
        "export-",
        min_length=1,
        description="Consumer group of each sink: this prefix and the sink (`export-influx`, "
        "`export-postgres`). The ingest keeps entries of groups named `export-*` until "
        "confirmed.",
    )
    export_consumer: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="This export's name in its read group (`read-export-<sink>-<name>`, "
        "docs/export.md); default the host name.",
    )
    export_intervals: bool = Field(
        True,
        description="Also export the accounting service's energy intervals (15 min, hour, "
        "day, month) when it runs.",
    )
    export_intervals_every: float = Field(
        60.0, gt=0, le=3600, description="Seconds between looks for changed intervals."
    )
    export_dead_letter_stream: str = Field(
        "hanport:export:dead",
        min_length=1,
        description="Stream of readings a sink refused for good, with the sink and reason.",
    )
    export_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="How much lower the export's CPU priority is than it was started with "
        "(Linux `nice`, added once at start; 0 leaves it): a backlog then takes the CPU the "
        "box's live services and a store on the same box leave, and goes out faster where "
        "they share the cores (docs/export.md).",
    )
    export_dead_letter_maxlen: int = Field(
        10_000, ge=1, description="Approximate entries kept in the dead-letter stream."
    )

    @field_validator("export_influx_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected http(s)://host[:port]")
        return value

    def influx_token(self) -> str | None:
        return _secret(self.export_influx_token, self.export_influx_token_file)

    def postgres_dsn(self) -> str | None:
        return _secret(self.export_postgres_dsn, self.export_postgres_dsn_file)
