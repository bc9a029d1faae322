"""Settings of the Modbus TCP server (`HANPORT_MODBUS_*`), read by `load_settings`.

Consumes environment variables; produces a validated `ModbusSettings`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from shared.meters import check_name
from shared.settings import NUMBER_FROM_TEXT, CommonSettings


def parse_units(text: str) -> dict[int, str]:
    """`1=main,2=heatpump` -> {1: "main", 2: "heatpump"}; ValueError saying what is wrong."""
    units: dict[int, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        unit_text, sep, name = (part.strip() for part in item.partition("="))
        if not sep or not unit_text.isdigit() or not 1 <= int(unit_text) <= 247:
            raise ValueError(
                f"{item!r} is not <unit id>=<meter>: unit ids are 1-247, e.g. 1=main,2=heatpump"
            )
        unit = int(unit_text)
        if unit in units:
            raise ValueError(f"unit id {unit} is given twice ({units[unit]} and {name})")
        try:
            units[unit] = check_name(name)
        except ValueError as error:
            raise ValueError(f"unit id {unit}: {error}") from None
    return units


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
    modbus_units: str = Field(
        "",
        description="A unit id per meter, e.g. `1=main,2=heatpump` (unit ids 1-247, meter names "
        "as on the box or equipment ids): each answers for its meter, whose stale data answers "
        "exception 0x0B on that unit only. Unit ids not listed answer for the default meter, "
        "as a one-meter box does (only HANPORT_MODBUS_UNIT_ID when that is set).",
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

    @field_validator("modbus_units")
    @classmethod
    def _check_units(cls, value: str, info: ValidationInfo) -> str:
        units = parse_units(value)
        unit_id = info.data.get("modbus_unit_id")
        if unit_id is not None and unit_id in units:
            raise ValueError(
                f"unit id {unit_id} is also HANPORT_MODBUS_UNIT_ID (the default meter's): give "
                f"meter {units[unit_id]} another unit id, or leave HANPORT_MODBUS_UNIT_ID unset"
            )
        return value

    def units(self) -> dict[int, str]:
        """HANPORT_MODBUS_UNITS as unit id -> meter."""
        return parse_units(self.modbus_units)
