"""Settings of the emulation service (`HANPORT_EMULATE`, `HANPORT_SHELLY_*`,
`HANPORT_HOMEWIZARD_*`), read by `load_settings`.

Consumes environment variables; produces a validated `EmulateSettings`.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from shared.meters import check_name

from .sma.settings import SmaSettings

PERSONALITIES = ("shelly", "homewizard", "sma")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def words(text: str) -> list[str]:
    """`shelly, homewizard` -> ["shelly", "homewizard"]: a comma-separated setting."""
    return [part.strip() for part in text.split(",") if part.strip()]


def client_meters(text: str) -> list[tuple[Network, str]]:
    """`192.168.1.40=garage,10.0.0.0/24=house` -> [(network, meter)...]; ValueError naming the
    bad part otherwise."""
    out = []
    for part in words(text):
        address, sep, meter = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not `address=meter`")
        try:
            network = ipaddress.ip_network(address.strip(), strict=False)
        except ValueError as error:
            raise ValueError(f"{part!r}: {error}") from None
        out.append((network, check_name(meter.strip())))
    return out


class EmulateSettings(SmaSettings):
    """Which devices to appear as, on which ports, serving which meter (the SMA Energy
    Meter's own settings, `HANPORT_SMA_*` and the stale limit, come from `SmaSettings`)."""

    metrics_port: int = Field(
        9106, ge=0, le=65535, description="Prometheus /metrics port (0 turns it off)."
    )
    emulate: str = Field(
        "shelly,homewizard",
        description="Devices to appear as, comma-separated: `shelly` (Shelly Pro 3EM), "
        "`homewizard` (HomeWizard P1 meter), `sma` (SMA Energy Meter). Each needs its license "
        "feature of the same name.",
    )
    emulate_host: str = Field(
        "0.0.0.0", min_length=1, description="Address the HTTP and UDP servers listen on."
    )
    emulate_clients: str = Field(
        "",
        description="Meter per client address, comma-separated `address=meter` or "
        "`network/bits=meter` (e.g. `192.168.1.40=garage,10.0.0.0/24=house`); the first match "
        "wins, over the device's own meter setting.",
    )
    emulate_mdns: bool = Field(
        True,
        description="Announce the devices over mDNS (`_shelly._tcp`, `_http._tcp`, "
        "`_hwenergy._tcp`), as the real ones do.",
    )
    emulate_max_request_bytes: int = Field(
        8192,
        ge=256,
        le=1_048_576,
        description="Largest HTTP request body and request head accepted; larger ones are "
        "refused (413/400) and counted in `hanport_emulate_refused_total`.",
    )
    shelly_http_port: int = Field(
        80,
        ge=1,
        le=65535,
        description="HTTP port of the Shelly Pro 3EM (`/shelly`, `/rpc`, RPC over WebSocket). "
        "Clients expect 80; it may equal HANPORT_HOMEWIZARD_PORT (one server answers both).",
    )
    shelly_udp_ports: str = Field(
        "1010,2220",
        description="UDP ports answering Shelly JSON-RPC datagrams, comma-separated (Marstek "
        "batteries ask on 1010, newer B2500 firmware on 2220); `none`: no UDP.",
    )
    shelly_meter: str | None = Field(
        None, description="Meter the Shelly Pro 3EM serves; unset: HANPORT_DEFAULT_METER's."
    )
    homewizard_port: int = Field(
        80,
        ge=1,
        le=65535,
        description="HTTP port of the HomeWizard P1 meter's API (`/api`, `/api/v1/data`). "
        "Clients expect 80.",
    )
    homewizard_meter: str | None = Field(
        None, description="Meter the HomeWizard P1 meter serves; unset: HANPORT_DEFAULT_METER's."
    )

    @field_validator("emulate")
    @classmethod
    def _known(cls, value: str) -> str:
        unknown = [v for v in words(value) if v not in PERSONALITIES]
        if unknown:
            raise ValueError(
                f"unknown device {', '.join(unknown)}: choose from {', '.join(PERSONALITIES)}"
            )
        return value

    @field_validator("shelly_udp_ports")
    @classmethod
    def _ports(cls, value: str) -> str:
        for word in words(value):
            if word == "none":
                continue
            if not word.isdigit() or not 1 <= int(word) <= 65535:
                raise ValueError(f"UDP ports are numbers 1-65535, got {word!r}")
        return value

    @field_validator("emulate_clients")
    @classmethod
    def _clients(cls, value: str) -> str:
        client_meters(value)
        return value

    @field_validator("shelly_meter", "homewizard_meter")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @property
    def personalities(self) -> list[str]:
        return words(self.emulate)

    @property
    def udp_ports(self) -> list[int]:
        return [int(word) for word in words(self.shelly_udp_ports) if word != "none"]

    @property
    def clients(self) -> list[tuple[Network, str]]:
        return client_meters(self.emulate_clients)
