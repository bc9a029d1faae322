"""Run by a Home Assistant venv's python (tests/clients/venvs.py), not by hanport's: sets up
Cozify's own Home Assistant integration (cozify_han, its unchanged source: argv[1] is the folder
holding `custom_components/cozify_han`) against a hanport REST service, with a real Home
Assistant core, its HTTP session and the integration's coordinator and sensors.

argv[2]: the host:port of hanport's REST service. Prints `ready` once imported, then takes one
command a line on stdin: `refresh` (the first one sets the integration up) runs the coordinator's update (what its timer does every 5 s) and prints one JSON line:
`{"success": bool, "entities": {name: {"available": bool, "value": ... or "error: ..."}}}`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import sys
import tempfile
from datetime import datetime
from typing import Any

from aiohttp import ThreadedResolver
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import aiohttp_client


def make_entry(host: str) -> ConfigEntry:
    fields: dict[str, Any] = dict(
        data={"host": host}, discovery_keys={}, domain="cozify_han", minor_version=1,
        options={}, source="user", title="Cozify HAN", unique_id=None, version=1,
    )  # fmt: skip
    if "subentries_data" in inspect.signature(ConfigEntry).parameters:  # 2025.3 and later
        fields["subentries_data"] = ()
    entry = ConfigEntry(**fields)
    object.__setattr__(entry, "state", ConfigEntryState.SETUP_IN_PROGRESS)
    return entry


def shown(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def entity_report(entity: Any) -> dict[str, Any]:
    try:
        value = shown(entity.native_value)
    except Exception as problem:  # what Home Assistant would log when writing the state
        value = f"error: {type(problem).__name__}: {problem}"
    return {"available": bool(entity.available), "value": value}


def plain_resolver(hass: HomeAssistant) -> ThreadedResolver:
    """The session's name resolver without mDNS (zeroconf is not installed in the venv; the
    service is reached by IP address anyway)."""
    return ThreadedResolver()


async def main() -> None:
    root, host = sys.argv[1], sys.argv[2]
    sys.path.insert(0, root)
    from custom_components.cozify_han import sensor  # the integration's own code

    logging.basicConfig(level=logging.CRITICAL)
    aiohttp_client._async_make_resolver = plain_resolver
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        entry = make_entry(host)
        config_entries.current_entry.set(entry)
        entities: list[Any] = []
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() != "refresh":
                continue
            if not entities:  # set up at the first refresh (it fetches everything once)
                await sensor.async_setup_entry(hass, entry, lambda new: entities.extend(new))
            coordinator = entities[0].coordinator
            await coordinator.async_refresh()
            report = {
                "success": coordinator.last_update_success,
                "entities": {e._attr_name: entity_report(e) for e in entities},
            }
            print(json.dumps(report), flush=True)
        await hass.async_stop(force=True)


if __name__ == "__main__":
    asyncio.run(main())
