"""Settings of the SMA Energy Meter personality (`HANPORT_SMA_*`), read by `load_settings`.

Consumes environment variables; produces a validated `SmaSettings`. The emulation service's
settings class inherits it (`class EmulateSettings(SmaSettings)`), so the SMA sender reads the
same object every other personality does.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from shared.meters import check_name
from shared.settings import CommonSettings

from .speedwire import PORT

Target = tuple[str, int]


def targets(text: str, port: int = PORT) -> list[Target]:
    """`192.168.1.20, 192.168.1.21:9523` -> [("192.168.1.20", port), ("192.168.1.21", 9523)];
    ValueError naming the bad part otherwise (IPv4 addresses only: Speedwire is IPv4)."""
    out = []
    for part in (word.strip() for word in text.split(",")):
        if not part:
            continue
        address, sep, port_text = part.partition(":")
        try:
            ip = ipaddress.IPv4Address(address.strip())
        except ValueError:
            raise ValueError(
                f"{part!r}: not an IPv4 address (write `192.168.1.20` or `192.168.1.20:9522`)"
            ) from None
        if ip.is_multicast or ip.is_unspecified:
            raise ValueError(f"{part!r}: give a device's own (unicast) address")
        number = port
        if sep:
            if not port_text.strip().isdigit() or not 1 <= int(port_text) <= 65535:
                raise ValueError(f"{part!r}: the port must be a number 1-65535")
            number = int(port_text)
        out.append((str(ip), number))
    return out


class SmaSettings(CommonSettings):
    """Where and how often the emulated SMA Energy Meter sends its datagrams."""

    emulate_stale_after: float = Field(
        20.0,
        gt=0,
        description="Seconds after which a meter's newest reading is stale: each device then "
        "answers as a real one whose meter is unavailable (docs/emulate.md), never with zeros.",
    )
    sma_interval: float = Field(
        1.0,
        ge=0.05,
        le=60,
        description="Seconds between two SMA Energy Meter datagrams (the real meter: 1 s).",
    )
    sma_multicast: bool = Field(
        True,
        description="Multicast the datagrams to 239.12.255.254 (how SMA inverters, Sunny Island, "
        "Sunny Home Manager and evcc find an Energy Meter); false: only HANPORT_SMA_UNICAST.",
    )
    sma_unicast: str = Field(
        "",
        description="Also send each datagram to these devices, comma-separated IPv4 "
        "`address` or `address:port` (port 9522 unless given), for networks where multicast "
        "does not reach them.",
    )
    sma_port: int = Field(
        PORT, ge=1, le=65535, description="UDP port the datagrams go to (SMA devices: 9522)."
    )
    sma_interface: str | None = Field(
        None,
        description="IPv4 address of the network interface to multicast from; unset: the one "
        "of the default route.",
    )
    sma_multicast_ttl: int = Field(
        1,
        ge=1,
        le=255,
        description="Hops a multicast datagram may cross (1: this network only; more for routed "
        "multicast between VLANs).",
    )
    sma_serial: int | None = Field(
        None,
        ge=1,
        le=4_294_967_295,
        description="Serial number the emulated Energy Meter announces (what an inverter is "
        "paired with); unset: one derived from the reader's serial and the meter's name, stable "
        "across restarts.",
    )
    sma_meter: str | None = Field(
        None, description="Meter the SMA Energy Meter serves; unset: HANPORT_DEFAULT_METER's."
    )

    @field_validator("sma_unicast")
    @classmethod
    def _targets(cls, value: str) -> str:
        targets(value)
        return value

    @field_validator("sma_interface")
    @classmethod
    def _interface(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.IPv4Address(value.strip()))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4 address (the interface's own address, e.g. 192.168.1.5)"
            ) from None

    @field_validator("sma_meter")
    @classmethod
    def _meter(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @property
    def sma_targets(self) -> list[Target]:
        """The unicast destinations, with the port filled in."""
        return targets(self.sma_unicast, self.sma_port)
