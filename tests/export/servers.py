"""The stores the export tests write to, each a real server on a free loopback port in its own
temporary folder, that a test can stop and start again with its data: VictoriaMetrics, InfluxDB
1.x and a PostgreSQL cluster made with `initdb` (not the machine's own)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import Server, free_port, wait_for_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class OwnPort(Server):
    """A server that makes sure the port it waited for is its own: other test runs on this
    machine hand out ports from the same block, so when the process ended (it could not bind)
    it starts again on another free port."""

    def start(self) -> None:
        for _attempt in range(5):
            self._launch()
            with contextlib.suppress(TimeoutError):
                wait_for_port(self.port, timeout=30)
            time.sleep(0.2)  # a server that lost the port to another exits at once
            if self.proc is not None and self.proc.poll() is None:
                return
            self.port = free_port()
        raise RuntimeError(f"{self.binary} did not start; see {self.workdir}/server.log")

    def _launch(self) -> None:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            self.command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )


class VictoriaMetricsServer(OwnPort):
    """victoria-metrics single node, deduplicating samples of one series and time (as a replay
    writes them twice), answering queries without the usual 30 s delay."""

    binary = "victoria-metrics"

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=100y",
            "-dedup.minScrapeInterval=1ms",
            "-search.latencyOffset=0s",
            "-search.disableCache",
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def samples(self, match: str = '{__name__=~"hanport.*"}') -> list[dict[str, Any]]:
        """Every series matching (its labels, values and timestamps), from /api/v1/export."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()
        answer = httpx.post(
            f"{self.url}/api/v1/export",
            data={"match[]": match, "reduce_mem_usage": "1"},
            timeout=30,
        )
        answer.raise_for_status()
        return [json.loads(line) for line in answer.text.splitlines() if line.strip()]


class InfluxServer(OwnPort):
    """InfluxDB 1.x (`influxd`) with its data, WAL and meta in the folder."""

    binary = "influxd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.rpc_port = free_port()

    def command(self) -> list[str]:
        config = self.workdir / "influxdb.conf"
        config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.workdir}/meta"
[data]
  dir = "{self.workdir}/data"
  wal-dir = "{self.workdir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
"""
        )
        return [self.binary, "-config", str(config)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, text: str, database: str = "hanport") -> list[dict[str, Any]]:
        """The series of an InfluxQL query: [{name, tags, columns, values}]."""
        answer = httpx.post(
            f"{self.url}/query", params={"db": database, "epoch": "ms"}, data={"q": text}
        )
        answer.raise_for_status()
        result = answer.json()["results"][0]
        if "error" in result:
            raise AssertionError(result["error"])
        return list(result.get("series", []))

    def write(self, lines: str, database: str = "hanport") -> None:
        """Line protocol, precision ms."""
        answer = httpx.post(
            f"{self.url}/write", params={"db": database, "precision": "ms"}, content=lines
        )
        answer.raise_for_status()

    def create_database(self, name: str = "hanport") -> None:
        self.query(f'CREATE DATABASE "{name}"', database="")


class PostgresServer(OwnPort):
    """A PostgreSQL cluster of its own: `initdb` in a temporary folder, `postgres` on a free
    port (as the user `postgres` when the tests run as root: the server refuses root)."""

    binary = str(PG_BIN / "postgres")

    def __init__(self, workdir: Path) -> None:
        if not PG_BIN.exists():
            pytest.skip("PostgreSQL 15 is not installed (.ci/run installs it)")
        super().__init__(workdir)
        # a folder the server's user can enter (pytest's tmp_path is root's only)
        self.datadir = Path(tempfile.mkdtemp(prefix="hanport-pg-"))
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.datadir / "data"), "-U", "hanport",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, user=self.user,
        )  # fmt: skip

    def command(self) -> list[str]:
        return [
            self.binary,
            "-D", str(self.datadir / "data"),
            "-p", str(self.port),
            "-k", str(self.datadir),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip

    def _launch(self) -> None:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, user=self.user
        )

    def stop(self, sig: int = signal.SIGINT) -> None:  # SIGINT: fast shutdown
        super().stop(sig)

    @property
    def dsn(self) -> str:
        return f"postgresql://hanport@127.0.0.1:{self.port}/postgres"

    def cleanup(self) -> None:
        shutil.rmtree(self.datadir, ignore_errors=True)
