"""Settings of the fleet hub's tools and sink workers (`HANPORT_HUB_*`).

Consumes environment variables; produces a validated `HubSettings` (`hanport hub init`, `hanport
hub sink`).
"""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr

from shared.settings import CommonSettings


class HubSettings(CommonSettings):
    """Where the hub's NATS cluster is, the stream, and where the sink workers write."""

    metrics_port: int = Field(
        9108, ge=0, le=65535, description="Prometheus /metrics port of a sink worker (0: off)."
    )
    hub_url: str = Field(
        "nats://127.0.0.1:4222",
        description="The hub's NATS servers, comma-separated (`nats://` or `tls://`).",
    )
    hub_creds_file: Path | None = Field(
        None, description="The hub workers' NATS credentials (`hanport hub service-creds`)."
    )
    hub_ca_file: Path | None = Field(
        None, description="CA certificate(s) (PEM) that signed the hub's TLS certificates."
    )
    hub_replicas: int = Field(3, ge=1, le=5, description="Replicas of the hub stream.")
    hub_max_age_days: float = Field(
        7.0, gt=0, description="Days the hub stream keeps a message (the sinks' catch-up room)."
    )
    hub_duplicate_window: float = Field(
        300.0,
        gt=0,
        description="Seconds the hub remembers message ids to drop a box's replays (memory per "
        "id: docs/fleet.md).",
    )
    hub_sink_durable: str = Field(
        "fleet-sink",
        min_length=1,
        description="The sink workers' durable consumer: every worker with this name shares "
        "the work (scale by starting more).",
    )
    hub_sink_batch: int = Field(
        500, ge=1, le=10000, description="Messages a sink worker fetches and writes at once."
    )
    hub_sink_name: str = Field(
        default_factory=socket.gethostname, description="This worker's name in logs."
    )
    hub_victoriametrics_url: str | None = Field(
        None,
        description="VictoriaMetrics (or InfluxDB 1.x) base URL the sink writes line protocol "
        "to, e.g. `http://victoriametrics:8428`. With neither this nor a PostgreSQL DSN the "
        "sink only keeps the fleet view.",
    )
    hub_database: str = Field("hanport", description="Database name of the line protocol writes.")
    hub_postgres_dsn: SecretStr | None = Field(
        None,
        description="PostgreSQL/TimescaleDB the sink also writes to, "
        "`postgresql://user:pass@host/db` (the export service's schema, docs/export.md).",
    )
    hub_postgres_dsn_file: Path | None = Field(
        None, description="File holding the DSN (wins over HANPORT_HUB_POSTGRES_DSN)."
    )

    def postgres_dsn(self) -> str | None:
        if self.hub_postgres_dsn_file is not None:
            return self.hub_postgres_dsn_file.read_text().strip()
        return self.hub_postgres_dsn.get_secret_value() if self.hub_postgres_dsn else None

    def urls(self) -> list[str]:
        return [u.strip() for u in self.hub_url.split(",") if u.strip()]
