"""Fixtures of the MQTT bridge tests: a real signed license granting `mqtt`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.licensing_helpers import grant
from tests.servers import RedisServer

from .support import SERIAL


@pytest.fixture
async def license_keys(redis_server: RedisServer, tmp_path: Path) -> str:
    """Grants `mqtt` to the test reader with a signed license; the trusted public key's path."""
    env = await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"])
    return env["HANPORT_LICENSE_PUBLIC_KEYS"]
