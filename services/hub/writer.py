"""Line protocol writes of many boxes' readings in one request (VictoriaMetrics, InfluxDB 1.x).

Reuses the export service's pure parts: `lineprotocol.lines` (a box's readings -> lines, tags
`box` and `meter`), `influx.write_request` and `influx.post_lines` (a v1 write and its answer) and `bisect` (a refused batch
split down to the bad readings). The export's `InfluxSink` serves one box; a hub batch holds
many, so this writer groups the batch by box into one body. Accounting intervals go as the
export's `intervals_body` (measurement `hanport_energy`), one request per box. Entries are `(message id, Reading)`;
the message id starts with the box (`<box>:<meter>:<entry id>`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import httpx

from services.export.sinks import Entry, WriteResult, bisect
from services.export.sinks.influx import http_client, post_lines, write_request
from services.export.sinks.intervals import Interval, intervals_body
from services.export.sinks.lineprotocol import lines
from shared.log import redact_url


class Writer(Protocol):
    async def write(self, batch: list[Entry]) -> WriteResult: ...

    async def write_box_intervals(self, box: str, intervals: list[Interval]) -> None:
        """One box's accounting intervals, as the export sinks' `write_intervals` (SinkDown,
        Rejected; an interval written again overwrites itself)."""
        ...

    async def close(self) -> None: ...


def box_of(msg_id: str) -> str:
    return msg_id.split(":", 1)[0]


def fleet_body(batch: list[Entry]) -> bytes:
    """One body for a batch of many boxes' readings, in batch order per box."""
    by_box: dict[str, list[Entry]] = {}
    for entry in batch:
        by_box.setdefault(box_of(entry[0]), []).append(entry)
    out: list[bytes] = []
    for box, entries in by_box.items():
        out += lines([reading for _id, reading in entries], box)
    return b"\n".join(out)


@dataclass
class FleetLineWriter:
    url: str
    database: str = "hanport"
    timeout: float = 10.0
    name: str = "victoriametrics"
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._endpoint, self._params, self._headers = write_request(
            self.url, "v1", database=self.database
        )
        self.where = redact_url(self._endpoint)

    async def write(self, batch: list[Entry]) -> WriteResult:
        return await bisect(batch, self._send)

    async def write_box_intervals(self, box: str, intervals: list[Interval]) -> None:
        if intervals:  # the export's measurement `hanport_energy` (its `intervals_body`)
            await self._post(intervals_body(intervals, box))

    async def _send(self, batch: list[Entry]) -> None:
        data = fleet_body(batch)
        if data:
            await self._post(data)

    async def _post(self, data: bytes) -> None:
        if self._client is None:
            self._client = http_client(self.timeout)
        await post_lines(self._client, self._endpoint, self._params, self._headers, data)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@dataclass
class Fanout:
    """Every store of the hub: a batch counts as written when each has confirmed it (a store
    down raises `SinkDown`, and the whole batch is tried again: writes are idempotent)."""

    writers: list[Writer]

    async def write(self, batch: list[Entry]) -> WriteResult:
        result = WriteResult()
        for writer in self.writers:
            part = await writer.write(batch)
            result.written = max(result.written, part.written)
            result.refused += part.refused
        return result

    async def write_box_intervals(self, box: str, intervals: list[Interval]) -> None:
        for writer in self.writers:
            await writer.write_box_intervals(box, intervals)

    async def close(self) -> None:
        for writer in self.writers:
            await writer.close()
