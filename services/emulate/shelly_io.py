"""The Shelly Pro 3EM on the network: HTTP (`GET /shelly`, `GET /rpc/<Method>`, `POST /rpc`),
JSON-RPC over WebSocket (`/rpc`, with `NotifyStatus` pushed as readings arrive, as the real
device pushes) and JSON-RPC over UDP (Marstek batteries). The answers are services/emulate/
shelly.py's; this module only moves bytes.

UDP: a datagram that is too large or not a JSON-RPC request (an object with `method` and `id`)
is ignored and counted; a request without a fresh reading gets no answer (a Marstek battery
treats a meter that stops answering as lost), an unknown method the device's error frame.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from shared.reading import Reading

from .latest import Choice
from .metrics import ERRORS, REFUSED, REQUESTS
from .shelly import HTTP_STATUS, MEASURED, Device, RpcError, answer, em_status, emdata_status
from .shelly import frame as rpc_frame
from .web import Port

log = logging.getLogger(__name__)
PERSONALITY = "shelly"
MAX_DATAGRAM = 1024  # a Marstek request is under 100 bytes; a real Pro 3EM takes about this much
NOTIFY_MIN_INTERVAL = 0.5  # seconds between two NotifyStatus to one WebSocket client
MAX_WEBSOCKETS = 32  # open at once; more are refused (a real Pro 3EM takes a handful)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(body), status=status, content_type="application/json")


_COUNTERS = {
    (transport, kind): REQUESTS.labels(PERSONALITY, transport, kind)
    for transport in ("http", "websocket", "udp")
    for kind in ("ok", "error", "unavailable")
}


def _result(transport: str, out: dict[str, Any]) -> None:
    error = out.get("error")
    kind = "ok" if error is None else "unavailable" if error["code"] == -114 else "error"
    _COUNTERS[transport, kind].inc()


def _request(data: bytes) -> dict[str, Any] | None:
    """A JSON-RPC request frame, or None for anything else."""
    try:
        request = _decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return None
    return request


def add_routes(port: Port, choice: Choice, device: Device) -> None:
    """The device's HTTP and WebSocket routes on `port`."""

    async def shelly(request: web.Request) -> web.Response:
        REQUESTS.labels(PERSONALITY, "http", "ok").inc()
        return _json(answer("Shelly.GetDeviceInfo", None, None, device))

    async def get_rpc(request: web.Request) -> web.Response:
        return call(request, request.match_info["method"])

    def call(request: web.Request, method: str) -> web.Response:
        params: dict[str, Any] = {}
        for key, value in request.query.items():
            params[key] = int(value) if value.lstrip("-").isdigit() else value
        _meter, reading = choice.reading_for(request.remote)
        try:
            result = answer(method, params, reading, device)
        except RpcError as error:
            _result("http", {"error": {"code": error.code}})
            body = {"code": error.code, "message": error.message}
            return _json(body, HTTP_STATUS.get(error.code, 500))
        REQUESTS.labels(PERSONALITY, "http", "ok").inc()
        return _json(result)

    async def post_rpc(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await websocket(request)
        frame = _request(await request.read())
        if frame is None:
            REFUSED.labels(PERSONALITY, "malformed").inc()
            return _json({"code": -103, "message": "not a JSON-RPC request"}, 400)
        _meter, reading = choice.reading_for(request.remote)
        out = rpc_frame(frame, reading, device)
        _result("http", out)
        return _json(out)

    open_sockets = [0]

    async def websocket(request: web.Request) -> web.StreamResponse:
        if open_sockets[0] >= MAX_WEBSOCKETS:
            REFUSED.labels(PERSONALITY, "too_many").inc()
            return _json({"code": -114, "message": "too many WebSocket clients"}, 503)
        open_sockets[0] += 1
        try:
            return await _serve_websocket(request)
        finally:
            open_sockets[0] -= 1

    async def _serve_websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=port.max_bytes, heartbeat=None)
        await ws.prepare(request)
        peer: dict[str, Any] = {}
        pusher = asyncio.create_task(_push(ws, choice, device, request.remote, peer))
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    if message.type == WSMsgType.ERROR:
                        REFUSED.labels(PERSONALITY, "too_large").inc()
                    continue
                frame = _request(message.data.encode())
                if frame is None:
                    REFUSED.labels(PERSONALITY, "malformed").inc()
                    continue
                peer.setdefault("src", frame.get("src"))
                _meter, reading = choice.reading_for(request.remote)
                out = rpc_frame(frame, reading, device)
                _result("websocket", out)
                await ws.send_str(_encode(out).decode())
        finally:
            pusher.cancel()
            with suppress(asyncio.CancelledError):
                await pusher
        return ws

    async def rpc_get_or_ws(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await websocket(request)
        method = request.query.get("method")
        if method is None:
            return _json({"code": -103, "message": "no method"}, 400)
        return call(request, method)

    port.add(PERSONALITY, "GET", "/shelly", shelly)
    port.add(PERSONALITY, "GET", "/rpc/{method}", get_rpc)
    port.add(PERSONALITY, "GET", "/rpc", rpc_get_or_ws)
    port.add(PERSONALITY, "POST", "/rpc", post_rpc)


async def _push(
    ws: web.WebSocketResponse,
    choice: Choice,
    device: Device,
    address: str | None,
    peer: dict[str, Any],
) -> None:
    """`NotifyStatus` with `em:0` and `emdata:0` for each new fresh reading of the client's
    meter (at most one per NOTIFY_MIN_INTERVAL), as the real device pushes its status."""
    latest = choice.latest
    sent: Reading | None = None
    while not ws.closed:

        def new(last: Reading | None = sent) -> bool:
            reading = choice.reading_for(address)[1]
            return reading is not None and reading is not last

        await latest.until(new)
        reading = choice.reading_for(address)[1]
        if reading is None or ws.closed:
            continue
        sent = reading
        notify: dict[str, Any] = {
            "src": device.id,
            "method": "NotifyStatus",
            "params": {
                "ts": reading.received / 1000,
                "em:0": em_status(reading),
                "emdata:0": emdata_status(reading),
            },
        }
        if peer.get("src"):
            notify["dst"] = peer["src"]
        try:
            await ws.send_str(_encode(notify).decode())
        except ConnectionError:
            return
        await asyncio.sleep(NOTIFY_MIN_INTERVAL)


class ShellyUdp(asyncio.DatagramProtocol):
    """JSON-RPC over UDP on one port (see the module docstring)."""

    def __init__(self, choice: Choice, device: Device) -> None:
        self.choice = choice
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > MAX_DATAGRAM:
            REFUSED.labels(PERSONALITY, "too_large").inc()
            return
        request = _request(data)
        if request is None or "id" not in request:
            REFUSED.labels(PERSONALITY, "malformed").inc()
            return
        _meter, reading = self.choice.reading_for(addr[0])
        if reading is None and request["method"] in MEASURED:
            REQUESTS.labels(PERSONALITY, "udp", "unavailable").inc()
            return  # silence: the client's "meter lost"
        out = rpc_frame(request, reading, self.device)
        _result("udp", out)
        if self.transport is not None:
            try:
                self.transport.sendto(_encode(out), addr)
            except OSError as error:
                ERRORS.labels("send").inc()
                log.warning("cannot answer %s:%d over UDP: %s", addr[0], addr[1], error)

    def error_received(self, exc: Exception) -> None:
        ERRORS.labels("send").inc()
        log.debug("UDP error: %s", exc)


async def open_udp(
    host: str, port: int, choice: Choice, device: Device
) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: ShellyUdp(choice, device), local_addr=(host, port), allow_broadcast=True
    )
    return transport
