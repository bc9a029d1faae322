"""Announcing the devices over mDNS (zeroconf), as the real ones announce themselves:
the Shelly as `_shelly._tcp` and `_http._tcp` (instance `ShellyPro3EM-<MAC>`, TXT `gen=2`,
`app=Pro3EM`, `ver`), the HomeWizard as `_hwenergy._tcp` (TXT `api_enabled=1`,
`path=/api/v1`, `product_type=HWE-P1`, `serial`).

The addresses announced are the host's own (every non-loopback IPv4 address, but those of
container and VM bridges, when the service listens on all of them, else the address it
listens on).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import ifaddr
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from .metrics import ERRORS

log = logging.getLogger(__name__)
# Interfaces of Docker's (and podman's, libvirt's) own networks, seen under host networking:
# clients on the LAN cannot reach those addresses, so they are not announced.
CONTAINER_BRIDGES = ("docker", "br-", "veth", "cni", "podman", "virbr", "flannel", "cali")


@dataclass(frozen=True)
class Announcement:
    kind: str  # `_shelly._tcp.local.`
    instance: str  # `ShellyPro3EM-AABBCCDDEEFF`
    port: int
    properties: dict[str, str]
    host: str  # `shellypro3em-aabbccddeeff.local.`


def host_addresses(listen: str) -> list[str]:
    """The IPv4 addresses to announce for a server listening on `listen`."""
    if listen not in ("0.0.0.0", "", "::"):
        return [listen]
    found = [
        ip.ip
        for adapter in ifaddr.get_adapters()
        if not adapter.name.startswith(CONTAINER_BRIDGES)
        for ip in adapter.ips
        if isinstance(ip.ip, str) and not ip.ip.startswith("127.")
    ]
    return found or ["127.0.0.1"]


def info(announcement: Announcement, addresses: list[str]) -> ServiceInfo:
    return ServiceInfo(
        announcement.kind,
        f"{announcement.instance}.{announcement.kind}",
        addresses=[socket.inet_aton(a) for a in addresses],
        port=announcement.port,
        properties=announcement.properties,
        server=announcement.host,
    )


class Announcer:
    """One zeroconf instance for the service; devices come and go with their license."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self._zeroconf: AsyncZeroconf | None = None
        self._users = 0

    @asynccontextmanager
    async def announcing(self, announcements: list[Announcement]) -> AsyncIterator[None]:
        """The announcements registered for the body's duration (a failure is logged and
        counted: the device still answers those who know its address)."""
        if self._zeroconf is None:
            try:
                self._zeroconf = AsyncZeroconf(ip_version=IPVersion.V4Only)
            except OSError as error:  # no multicast-capable interface, port 5353 refused
                ERRORS.labels("mdns").inc()
                log.warning("mDNS unavailable (%s): the devices are not announced", error)
                yield
                return
        self._users += 1
        zc = self._zeroconf
        registered = []
        try:
            for announcement in announcements:
                service = info(announcement, self.addresses)
                try:
                    await zc.async_register_service(service, allow_name_change=True)
                    registered.append(service)
                except Exception as error:  # zeroconf raises many kinds; none must stop serving
                    ERRORS.labels("mdns").inc()
                    log.warning("cannot announce %s over mDNS: %s", announcement.instance, error)
            yield
        finally:
            for service in registered:
                try:
                    await zc.async_unregister_service(service)
                except Exception as error:
                    ERRORS.labels("mdns").inc()
                    log.debug("mDNS unregister of %s: %s", service.name, error)
            self._users -= 1
            if self._users == 0 and self._zeroconf is not None:
                zeroconf, self._zeroconf = self._zeroconf, None
                await zeroconf.async_close()
