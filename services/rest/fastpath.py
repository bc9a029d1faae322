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
_encoder = msgspec.json.Encoder()


def stale_body(state: State, now: float | None = None) -> bytes | None:
    """The 503 body when the newest reading is missing or too old, else None."""
    reason = state.stale_reason(now)
    if reason is None:
        return None
    message, age = reason
    latest = state.latest
    return _encoder.encode(
        {
            "error": "stale",
            "message": f"no fresh reading: {message}",
            "age_seconds": age,
            "stale_after": state.stale_after,
            "last_reading": latest.reading.ts if latest else None,
        }
    )


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
        if refusal is not None:
            await send_refusal(send, refusal)
            return
        snapshot = self.state.latest
        if snapshot is None or is_stale(snapshot.reading, self.state.stale_after):
            body = stale_body(self.state) or b"{}"
            METER_STALE.inc()
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
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_refusal(send: Send, refusal: Refusal) -> None:
    await send_json(send, refusal.status, refusal.body, refusal.headers)
