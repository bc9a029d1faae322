"""The InfluxDB line protocol sink: HTTP v1 `/write` (InfluxDB 1.x, VictoriaMetrics) or v2
`/api/v2/write` (InfluxDB 2.x, 3 and Cloud: org, bucket, token), precision ms.

How answers map to the `Sink` contract (services/export/sinks/__init__.py):
- 2xx: stored.
- 400, 413, 422 (a bad point, a body too big): the batch is split in halves and written again,
  down to single points (`bisect`); a single point refused is refused for good, with the
  server's message. Points written twice overwrite themselves (same series, same time).
- anything else (401/403 a wrong token, 404 no such database, 429, 5xx, no answer):
  `SinkDown`, the batch is tried again later. The message names the URL (without credentials),
  never the token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import httpx

from shared.log import redact_url

from . import Batch, Prepared, Rejected, SinkDown, WriteResult, bisect, made_ahead, made_to_write
from .entries import Entries
from .intervals import Interval, intervals_body
from .lineprotocol import PRECISION, stream_body

API = Literal["v1", "v2"]
# An idle connection is kept this long (httpx's default, 5 s, is the export's default batch wait:
# every batch made a new connection, a new TLS handshake to InfluxDB Cloud); below the usual
# servers' idle timeouts (VictoriaMetrics and many load balancers: 60 s)
KEEPALIVE_S = 30.0
REFUSED_STATUS = (400, 413, 422)
HINTS = {
    401: "the token (HANPORT_EXPORT_INFLUX_TOKEN) is missing or wrong",
    403: "the token may not write to this database or bucket",
    404: "no such database or bucket (create it, or correct HANPORT_EXPORT_INFLUX_DATABASE / "
    "_BUCKET)",
    429: "the server limits the write rate",
}


def write_request(
    url: str,
    api: API,
    *,
    database: str = "hanport",
    org: str | None = None,
    bucket: str | None = None,
    token: str | None = None,
) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL, query parameters, headers) of a write: pure, so the fleet hub can reuse it."""
    base = url.rstrip("/")
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if token:
        headers["Authorization"] = f"Token {token}"
    if api == "v2":
        params = {"bucket": bucket or database, "precision": PRECISION}
        if org:
            params["org"] = org
        return f"{base}/api/v2/write", params, headers
    return f"{base}/write", {"db": database, "precision": PRECISION}, headers


def http_client(timeout: float) -> httpx.AsyncClient:
    """The HTTP client of a line protocol writer (the export's sink, the fleet hub's)."""
    return httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S))


async def post_lines(
    client: httpx.AsyncClient,
    endpoint: str,
    params: dict[str, str],
    headers: dict[str, str],
    data: bytes,
) -> None:
    """POST a line protocol body (from `write_request`); the answer as the module docstring
    says: `Rejected` for a refused body, `SinkDown` for anything else but 2xx."""
    where = redact_url(endpoint)
    try:
        answer = await client.post(endpoint, params=params, headers=headers, content=data)
    except httpx.HTTPError as error:
        raise SinkDown(f"{where}: {type(error).__name__}: {error}") from None
    if answer.is_success:
        return
    text = answer.text.strip().replace("\n", " ")[:300]
    if answer.status_code in REFUSED_STATUS:
        raise Rejected(f"HTTP {answer.status_code}: {text}")
    hint = HINTS.get(answer.status_code, "the server cannot take writes now")
    raise SinkDown(f"{where} answered HTTP {answer.status_code} ({hint}): {text}")


@dataclass
class InfluxSink:
    """Writes batches of readings as line protocol to one InfluxDB-compatible server."""

    url: str
    box: str
    api: API = "v1"
    database: str = "hanport"
    org: str | None = None
    bucket: str | None = None
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    name: str = "influx"
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _bodies: Prepared[bytes] = field(default_factory=Prepared, init=False, repr=False)
    # its lines are made of the stream's JSON (`stream_body`): the worker need not decode a read
    reads_json = True

    def __post_init__(self) -> None:
        self._endpoint, self._params, self._headers = write_request(
            self.url,
            self.api,
            database=self.database,
            org=self.org,
            bucket=self.bucket,
            token=self.token,
        )
        self.where = redact_url(self._endpoint)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = http_client(self.timeout)
        return self._client

    async def prepare(self, batch: Batch) -> None:
        """Make the batch's body now (the worker calls this while the previous write waits)."""
        made = await made_ahead(batch, self._body)
        if made is not None:
            entries, parts = made
            self._bodies.put(entries, b"\n".join(part for part in parts if part))

    def _body(self, batch: Entries) -> bytes:
        return stream_body(batch, self.box)

    async def write(self, batch: Batch) -> WriteResult:
        return await bisect(Entries.of(batch), self._send)

    async def write_intervals(self, intervals: list[Interval]) -> None:
        if intervals:
            await self._post(intervals_body(intervals, self.box))

    async def _send(self, batch: Entries) -> None:
        data = self._bodies.take(batch)
        if data is None:
            data = made_to_write(batch, self._body)
        if data:  # readings without a single value: nothing to store
            await self._post(data)

    async def _post(self, data: bytes) -> None:
        await post_lines(self._http(), self._endpoint, self._params, self._headers, data)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
