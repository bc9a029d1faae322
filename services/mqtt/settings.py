"""Settings of the MQTT bridge (`HANPORT_MQTT_*`), read from the environment by `load_settings`.

Consumes environment variables; produces a validated `MqttSettings`. The bridge stays off while
`HANPORT_MQTT_URL` is unset.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.settings import NUMBER_FROM_TEXT, CommonSettings


class MqttSettings(CommonSettings):
    """Broker, TLS, topics, QoS and delivery pacing of the MQTT bridge."""

    metrics_port: int = Field(
        9102, ge=0, le=65535, description="Prometheus /metrics port (0 turns it off)."
    )
    mqtt_url: str | None = Field(
        None,
        description="Broker as `mqtt://host:1883` or `mqtts://host:8883`; the bridge stays off "
        "when unset.",
    )
    mqtt_username: str | None = Field(None, description="User name for the broker.")
    mqtt_password: SecretStr | None = Field(None, description="Password for the broker.")
    mqtt_password_file: Path | None = Field(
        None, description="File holding the broker password (wins over HANPORT_MQTT_PASSWORD)."
    )
    mqtt_client_id: str | None = Field(
        None,
        description="MQTT client id; default `hanport-<consumer>-<6 random hex digits>`, new at "
        "each start, so two bridges on one host never share one (the broker would disconnect "
        "the first when the second connects).",
    )
    mqtt_keepalive: int = Field(60, ge=5, le=65535, description="Keepalive in seconds.")
    mqtt_protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1", description="MQTT protocol version: `3.1.1` or `5`."
    )
    mqtt_ca_file: Path | None = Field(
        None, description="CA certificate(s) (PEM) that signed the broker's certificate."
    )
    mqtt_cert_file: Path | None = Field(
        None, description="Client certificate (PEM) for brokers that require one."
    )
    mqtt_key_file: Path | None = Field(None, description="Private key (PEM) of the client cert.")
    mqtt_tls_insecure: bool = Field(
        False,
        description="Accept any broker certificate (self-signed brokers). Off by default; "
        "prefer HANPORT_MQTT_CA_FILE.",
    )
    mqtt_topic: str | None = Field(
        None,
        description="Topic of each reading (Cozify /meter JSON); default "
        "`hanport/<serial>/data`. Used as is, e.g. `Cozify/HAN123/Data`.",
    )
    mqtt_topic_prefix: str | None = Field(
        None,
        description="Prefix of split topics and of the availability topic; default "
        "`hanport/<serial>`.",
    )
    mqtt_qos: Annotated[Literal[0, 1, 2], NUMBER_FROM_TEXT] = Field(
        1, description="QoS of reading messages: 0, 1 or 2."
    )
    mqtt_retain: bool = Field(False, description="Publish readings with the retain flag.")
    mqtt_min_interval: float = Field(
        0.0,
        ge=0,
        description="Minimum seconds between reading messages; readings in between are "
        "superseded by the latest (for metered cloud brokers). 0: publish every reading.",
    )
    mqtt_split_topics: bool = Field(
        False, description="Also publish one value per topic (`<prefix>/power/import`, ...)."
    )
    mqtt_raw_topic: str | None = Field(
        None, description="Topic for raw telegrams from the raw stream; off when unset."
    )
    mqtt_discovery: bool = Field(True, description="Publish Home Assistant discovery configs.")
    mqtt_discovery_prefix: str = Field(
        "homeassistant", min_length=1, description="Home Assistant discovery prefix."
    )
    mqtt_expire_after: int = Field(
        60, ge=0, description="Seconds after which Home Assistant marks a sensor unavailable."
    )
    mqtt_consumer: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="This replica's name in the `mqtt` consumer group; default the host name.",
    )
    mqtt_group: str = Field("mqtt", min_length=1, description="Redis consumer group name.")
    mqtt_claim_idle: float = Field(
        60.0,
        gt=0,
        description="Seconds after which another replica's unacknowledged entries are taken over.",
    )
    mqtt_backlog_rate: float = Field(
        200.0,
        gt=0,
        description="Readings per second at most when publishing a backlog after an outage.",
    )
    mqtt_inflight: int = Field(
        1000, ge=1, le=65535, description="Messages awaiting broker confirmation at most."
    )
    mqtt_read_linger: float = Field(
        0.005,
        ge=0,
        le=1,
        description="Seconds between reads of the stream while readings keep coming, so those "
        "arriving faster go out in batches (far fewer Redis and broker round trips, so less CPU "
        "per reading) at the cost of at most this much latency. A lone reading is not delayed. "
        "0: read again at once.",
    )
    mqtt_publish_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for the broker to confirm a message."
    )

    @model_validator(mode="after")
    def _unique_client_id(self) -> MqttSettings:
        if not self.mqtt_client_id:
            self.mqtt_client_id = default_client_id(self.mqtt_consumer)
        return self

    @field_validator("mqtt_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("expected mqtt://host[:port] or mqtts://host[:port]")
        parts.port  # noqa: B018 - raises ValueError on a bad port
        return value

    @field_validator("mqtt_discovery_prefix", "mqtt_topic", "mqtt_topic_prefix", "mqtt_raw_topic")
    @classmethod
    def _check_topic(cls, value: str | None) -> str | None:
        if value is not None and ("#" in value or "+" in value):
            raise ValueError("a topic to publish to cannot contain the wildcards + or #")
        return value

    def password(self) -> str | None:
        """The broker password, from the file when one is set."""
        if self.mqtt_password_file is not None:
            return self.mqtt_password_file.read_text().strip()
        return self.mqtt_password.get_secret_value() if self.mqtt_password else None


def default_client_id(consumer: str) -> str:
    """`hanport-<consumer>-<6 random hex digits>`: the consumer (the host name by default) says
    which box, the random part which bridge, as two bridges on one host (host networking, or
    one per meter) share the host name. A new id at each start costs nothing: the bridge's
    sessions are clean (delivery rests on the Redis group and the broker's acknowledgements,
    never on a session the broker keeps)."""
    return f"hanport-{consumer}-{secrets.token_hex(3)}"
