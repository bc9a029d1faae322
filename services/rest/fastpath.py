"""The hot path: `GET /meter` and `GET /meter/data` answered by a thin pure-ASGI layer in front
of FastAPI, from bytes encoded once per reading.

Consumes ASGI requests; for those two paths (GET/HEAD) it passes the guard, checks freshness and
sends the pre-encoded Cozify message; everything else goes to the FastAPI app, which also
declares these two routes (same answers) so the OpenAPI document describes them exactly.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.stale import is_stale

from .guard import Guard, Refusal
from .metrics import METER_OK, METER_STALE
from .state import Snapshot, State

METER_PATHS = frozenset({"/meter", "/meter/data"})
JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
# Home Assistant's HTTP session names itself so (`HomeAssistant/2025.4.4 aiohttp/... Python/...`).
# Cozify's integration (cozify_han 1.0.7) parses /meter's body whatever the status and reads a
# missing value as 0: a stale JSON body would become zero power and a counter reset (phantom
# energy in the statistics). A text body makes its fetch fail, so its entities turn unavailable.
TEXT_503_AGENTS = (b"homeassistant/",)
_encoder = msgspec.json.Encoder()


def stale_body(state: State, now: float | None = None, name: str | None = None) -> bytes | None:
    """The 503 body when the newest reading (of the default meter, or of meter `name`: then
    the body says `meter`) is missing or too old, else None."""
    reason = state.stale_reason(now, name)
    if reason is None:
        return None
    message, age = reason
    meter = state.meter(name) if name is not None else None
    latest = state.latest if name is None else meter.latest if meter else None
    body = {
        "error": "stale",
        "message": f"no fresh reading{'' if name is None else f' of meter {name!r}'}: {message}",
        "age_seconds": age,
        "stale_after": state.stale_after,
        "last_reading": latest.reading.ts if latest else None,
    }
    if name is not None:
        body["meter"] = name
    return _encoder.encode(body)


def wants_text_503(user_agent: bytes | None) -> bool:
    """Whether a stale answer goes to this client as text (docs/rest.md, "Stale data")."""
    return user_agent is not None and user_agent.lower().startswith(TEXT_503_AGENTS)


def stale_text(json_body: bytes) -> bytes:
    """The stale answer as plain text: the same message, not parseable as JSON."""
    message = msgspec.json.decode(json_body).get("message", "no fresh reading")
    return f"503 stale: {message}\n".encode()


def user_agent_of(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"user-agent":
            value_bytes: bytes = value
            return value_bytes
    return None


class FastPath:
    def __init__(self, app: ASGIApp, state: State, guard: Guard) -> None:
        self.app = app
        self.state = state
        self.guard = guard
        self._cached: Snapshot | None = None
        self._start: dict[str, Any] = {}
        self._body: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] in METER_PATHS
            and scope["method"] in ("GET", "HEAD")
        ):
            await self.meter(scope, send)
        else:
            await self.app(scope, receive, send)

    async def meter(self, scope: Scope, send: Send) -> None:
        refusal = self.guard.check_asgi("read", scope)
        snapshot = self.state.latest
        if refusal is None and self.guard.entitlements is not None:  # a license naming meters
            meter_id = snapshot.reading.meter_id if snapshot else None
            refusal = self.guard.meter_refusal(self.state.default, meter_id)
        if refusal is not None:
            await send_refusal(send, refusal)
            return
        if snapshot is None or is_stale(snapshot.reading, self.state.stale_after):
            body = stale_body(self.state) or b"{}"
            METER_STALE.inc()
            if wants_text_503(user_agent_of(scope)):
                await send_body(send, 503, stale_text(body), TEXT)
            else:
                await send_json(send, 503, body)
            return
        if snapshot is not self._cached:
            self._start = {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", JSON),
                    (b"content-length", str(len(snapshot.body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
            self._body = {"type": "http.response.body", "body": snapshot.body}
            self._cached = snapshot
        METER_OK.inc()
        await send(self._start)
        await send(self._body)


async def send_json(
    send: Send, status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    await send_body(send, status, body, JSON, extra)


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_refusal(send: Send, refusal: Refusal) -> None:
    await send_json(send, refusal.status, refusal.body, refusal.headers)
