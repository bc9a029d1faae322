"""/metrics carries live readings without authentication, so `serve_metrics` listens on loopback
unless told otherwise. Checked on a real process: a server bound to 127.0.0.1 does not answer on
127.0.0.2 (another loopback address, standing in for the LAN side), one bound to 0.0.0.0 does."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.servers import free_port, wait_for_port

SERVE = """
import sys, threading
from shared.metrics import serve_metrics
port = int(sys.argv[1])
serve_metrics(port) if len(sys.argv) == 2 else serve_metrics(port, sys.argv[2])
threading.Event().wait()
"""


@contextmanager
def metrics_process(*host: str) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(port), *host])
    try:
        wait_for_port(port, 20)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def scrape(address: str, port: int) -> str:
    return urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=5).read().decode()


def test_metrics_listen_on_loopback_by_default() -> None:
    with metrics_process() as port:
        assert "hanport_redis_connected" in scrape("127.0.0.1", port)
        with pytest.raises(OSError):  # connection refused: nothing listens there
            scrape("127.0.0.2", port)


def test_metrics_listen_where_told() -> None:
    with metrics_process("0.0.0.0") as port:
        assert "hanport_redis_connected" in scrape("127.0.0.2", port)
