"""Settings of the uplink (`HANPORT_UPLINK_*`): the hub, the box's spool, credentials, pacing.

Consumes environment variables; produces a validated `UplinkSettings`. The uplink stays off
while `HANPORT_UPLINK_URL` is unset.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from shared.settings import CommonSettings


def _check_urls(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    for url in value.split(","):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError("expected nats://host:port or tls://host:port, comma-separated")
        parts.port  # noqa: B018 - raises ValueError on a bad port
    return value


class UplinkSettings(CommonSettings):
    """Where the hub is, how to prove who this box is, and the box's disk spool."""

    metrics_port: int = Field(
        9107, ge=0, le=65535, description="Prometheus /metrics port (0 turns it off)."
    )
    uplink_url: str | None = Field(
        None,
        description="The fleet hub's NATS servers, `nats://host:4222` or `tls://host:4222`, "
        "comma-separated (any node of the cluster); the uplink stays off when unset.",
    )
    uplink_creds_file: Path | None = Field(
        None,
        description="The box's NATS credentials (`.creds`: its JWT and nkey seed, from "
        "`hanport hub box-creds`).",
    )
    uplink_nkey_file: Path | None = Field(
        None, description="An nkey seed file instead of a `.creds` file (hubs without JWTs)."
    )
    uplink_ca_file: Path | None = Field(
        None, description="CA certificate(s) (PEM) that signed the hub's TLS certificate."
    )
    uplink_spool_url: str | None = Field(
        None,
        description="The box's own nats-server with JetStream on disk (the spool: days offline "
        "without loss), e.g. `nats://127.0.0.1:4223`; unset: readings go straight from Redis "
        "to the hub, and an outage is bounded by the Redis stream's length.",
    )
    uplink_spool_max_bytes: int = Field(
        2 * 1024**3,
        gt=0,
        description="Bytes the spool keeps at most; past it the oldest readings are dropped.",
    )
    uplink_spool_max_days: float = Field(
        14.0, gt=0, description="Days the spool keeps a reading the hub has not acknowledged."
    )
    uplink_box: str | None = Field(
        None,
        description="The box's id in subjects and message ids; default the reader serial.",
    )
    uplink_group: str = Field("uplink", min_length=1, description="Redis consumer group name.")
    uplink_consumer: str = Field(
        "uplink",
        min_length=1,
        description="The uplink's name in the consumer group. Fixed, not the host name: a box "
        "runs one uplink (order per meter), and a restarted or recreated one must find the "
        "entries its predecessor left unacknowledged.",
    )
    uplink_batch: int = Field(
        100, ge=1, le=10000, description="Messages sent back to back before awaiting their acks."
    )
    uplink_ack_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for JetStream to acknowledge a message."
    )
    uplink_energy_interval: float = Field(
        60.0,
        gt=0,
        description="Seconds between looks for changed accounting intervals (sent on "
        "`hanport.<box>.<meter>.energy`).",
    )
    uplink_health_interval: float = Field(
        30.0, gt=0, description="Seconds between the box's health messages."
    )

    @field_validator("uplink_url", "uplink_spool_url")
    @classmethod
    def _check(cls, value: str | None) -> str | None:
        return _check_urls(value)

    def hub_urls(self) -> list[str]:
        return [u.strip() for u in (self.uplink_url or "").split(",") if u.strip()]
