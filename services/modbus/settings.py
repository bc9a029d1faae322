"""Settings of the Modbus TCP server (`HANPORT_MODBUS_*`), read by `load_settings`.

Consumes environment variables; produces a validated `ModbusSettings`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.settings import NUMBER_FROM_TEXT, CommonSettings


class ModbusSettings(CommonSettings):
    """Where the Modbus server listens, which unit id it answers and when data counts as stale."""

    metrics_port: int = Field(
        9103, ge=0, le=65535, description="Prometheus /metrics port (0 turns it off)."
    )
    modbus_host: str = Field(
        "0.0.0.0", min_length=1, description="Address the Modbus TCP server listens on."
    )
    modbus_port: int = Field(
        5020, ge=1, le=65535, description="Modbus TCP port (the container maps it to 502)."
    )
    modbus_unit_id: int | None = Field(
        None,
        ge=1,
        le=247,
        description="Answer only this unit id (1-247); unset: answer any unit id. Other ids get "
        "exception 0x0A (gateway path unavailable).",
    )
    modbus_sunspec_model: Annotated[Literal[213, 203], NUMBER_FROM_TEXT] = Field(
        213,
        description="SunSpec meter model at 40070: `213` (float32) or `203` (integers with scale "
        "factors).",
    )
    modbus_stale_after: float = Field(
        30.0,
        gt=0,
        description="Seconds after which the newest reading is stale: measurement registers then "
        "answer exception 0x0B (gateway target device failed to respond).",
    )
    modbus_max_clients: int = Field(
        128,
        ge=1,
        le=10000,
        description="Most Modbus TCP clients connected at once; more are refused (counted in "
        "`hanport_modbus_connections_refused_total`).",
    )
    modbus_idle_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a Modbus TCP connection may go without a complete request (silent, "
        "sending a frame too slowly, or not reading its answers) before it is dropped.",
    )
