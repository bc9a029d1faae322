"""Fixtures of the export tests: the stores, started fresh for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import InfluxServer, PostgresServer, VictoriaMetricsServer


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetricsServer]:
    server = VictoriaMetricsServer(tmp_path / "victoria")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path / "influx")
    server.start()
    server.create_database()
    yield server
    server.stop()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path / "postgres")
    server.start()
    yield server
    server.stop()
    server.cleanup()
