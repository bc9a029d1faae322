"""Settings from `HANPORT_*` environment variables (or a `.env` file), shared by every service.

Each service subclasses `CommonSettings` with its own fields and loads it with `load_settings`,
which turns a bad value into one line naming the variable, the value and what is allowed, and
stops the service with exit code 2 instead of a traceback. A field whose allowed values are a
few integers is typed `Annotated[Literal[...], NUMBER_FROM_TEXT]`: an environment variable is
always text, and pydantic matches `"1"` to no integer of a `Literal`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .meters import check_name

ENV_PREFIX = "HANPORT_"


def _number_from_text(value: object) -> object:
    """`"1"` (an environment variable's text) -> 1; anything else is left for the field's own
    check, which names the allowed values."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


NUMBER_FROM_TEXT = BeforeValidator(_number_from_text)


class CommonSettings(BaseSettings):
    """What every service needs: where the readings stream is and who this reader is."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        validate_default=True,
        # `HANPORT_X=` (empty, as compose passes an unset `${HANPORT_X:-}`) means the default
        env_ignore_empty=True,
    )

    redis_url: str = Field(
        "redis://localhost:6379/0", description="Redis holding the readings stream."
    )
    stream: str = Field("hanport:readings", min_length=1, description="Readings stream key.")
    raw_stream: str = Field(
        "hanport:raw", min_length=1, description="Stream of raw telegrams kept for support."
    )
    serial: str | None = Field(
        None,
        description="The reader's serial; unset: the licensing service generates it once and "
        "keeps it in HANPORT_LICENSE_DIR, and the other services read it there.",
    )
    license_dir: Path = Field(
        Path("/data/licences"),
        description="Folder of installed licenses (`*.lic`), the reader's serial and the box's "
        "own key; the licensing service writes it (keep it on a volume), the other services "
        "read it (mount it read-only).",
    )
    log_level: str = Field(
        "INFO",
        pattern=r"^(?i:debug|info|warning|error)$",
        description="Log level: DEBUG, INFO, WARNING or ERROR.",
    )
    log_format: str = Field(
        "auto",
        pattern=r"^(json|text|auto)$",
        description="Log lines as `json`, plain `text`, or `auto`: text when stderr is a "
        "terminal, JSON otherwise.",
    )
    default_meter: str | None = Field(
        None,
        description="The box's default meter, by name (as `GET /meters` lists them): the one "
        "REST `/meter`, `/han`, `/events` and `/ws`, the classic MQTT topics and Home Assistant "
        "device, and Modbus unit ids not in HANPORT_MODBUS_UNITS serve, as on a one-meter box. "
        "Unset: the meter on the classic stream (HANPORT_STREAM), else the first by name.",
    )
    use: Literal["consumer", "commercial"] = Field(
        "consumer", description="Declared use: `consumer` (REST free) or `commercial`."
    )
    license_public_keys: str | None = Field(
        None, description="File or folder of trusted license public keys (PEM, Ed25519)."
    )
    metrics_port: int = Field(
        9100, ge=0, le=65535, description="Prometheus /metrics port (0 turns it off)."
    )
    metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address /metrics listens on: loopback by default, since the metrics carry "
        "live readings without authentication (compose sets 0.0.0.0 for Prometheus on its "
        "private network; see docs/security.md).",
    )

    @field_validator("default_meter")
    @classmethod
    def _a_meter_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)


S = TypeVar("S", bound=BaseSettings)


def describe_error(cls: type[BaseSettings], error: ValidationError) -> str:
    """One line per bad setting: variable, value, what is allowed."""
    prefix = cls.model_config.get("env_prefix", ENV_PREFIX)
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        variable = f"{prefix}{field}".upper()
        value = os.environ.get(variable, item.get("input"))
        lines.append(f"bad setting {variable}={value!r}: {item['msg']}")
    return "; ".join(lines)


def load_settings(cls: type[S]) -> S:
    """Load `cls` from the environment; on a bad value print one clear line and exit(2)."""
    try:
        return cls()
    except ValidationError as error:
        print(f"hanport: {describe_error(cls, error)}", file=sys.stderr)
        raise SystemExit(2) from None
