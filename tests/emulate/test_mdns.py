"""The devices announce themselves over mDNS as the real ones do; `zeroconf` (what Home
Assistant and the HomeWizard app's discovery use) browses and finds each, with its TXT."""

from __future__ import annotations

import asyncio

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from tests.emulate.conftest import StartEmulate

KINDS = ("_shelly._tcp.local.", "_http._tcp.local.", "_hwenergy._tcp.local.")


async def test_zeroconf_finds_each_announced_service(start_emulate: StartEmulate) -> None:
    service = await start_emulate(emulate_mdns=True)
    browser_zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    found: dict[str, set[str]] = {kind: set() for kind in KINDS}
    changed = asyncio.Event()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            found[service_type].add(name)
            changed.set()

    browser = AsyncServiceBrowser(browser_zc.zeroconf, list(KINDS), handlers=[on_change])
    try:
        async with asyncio.timeout(15):
            while not all(
                any(n.startswith(("ShellyPro3EM-", "p1meter-")) for n in names)
                for names in found.values()
            ):
                await changed.wait()
                changed.clear()
        shelly_name = next(n for n in found["_shelly._tcp.local."] if "ShellyPro3EM-" in n)
        info = await browser_zc.async_get_service_info("_shelly._tcp.local.", shelly_name)
        assert info is not None and info.port == service.settings.shelly_http_port
        assert info.properties[b"gen"] == b"2" and info.properties[b"app"] == b"Pro3EM"
        assert "127.0.0.1" in info.parsed_addresses()
        hw_name = next(n for n in found["_hwenergy._tcp.local."] if n.startswith("p1meter-"))
        info = await browser_zc.async_get_service_info("_hwenergy._tcp.local.", hw_name)
        assert info is not None and info.port == service.settings.homewizard_port
        assert info.properties[b"api_enabled"] == b"1"
        assert info.properties[b"path"] == b"/api/v1"
        assert info.properties[b"product_type"] == b"HWE-P1"
    finally:
        await browser.async_cancel()
        await browser_zc.async_close()
