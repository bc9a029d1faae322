"""Shared fixtures: real servers the tests start themselves (see tests/servers.py) and the
path of the copied corpus captures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import MosquittoServer, RedisServer

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port; `.stop()`, `.start()`, `.kill()`, `.url`."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mosquitto_server(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A fresh mosquitto on a free port; `.stop()`, `.start()`, `.url`, `.extra_config`."""
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
