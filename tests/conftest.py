"""Shared fixtures: real servers the tests start themselves (see tests/servers.py) and the
path of the copied corpus captures. Under CI (`CI` set, as `.ci/run` runs) a skipped test fails:
a skip there means a tool CI should have installed is missing."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
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


def _fail_skip_in_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Under CI, a skip (not an expected failure) becomes a failure that says why it skipped."""
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI (a missing install step in .ci/run?): {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport() -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_skip_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report() -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _fail_skip_in_ci(report)
    return report
