"""Wiring: the ASGI app a replica serves. The fast path (`/meter`, `/meter/data`) sits in front
of the FastAPI app; CORS (when configured) in front of both. The lifespan starts the stream
follower, the Redis/freshness watcher, the serial lookup and the entitlements, and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from shared.cancellation import stop
from shared.entitlements import Entitlements
from shared.stream import ReadingStream, redis_client
from shared.supervise import run_supervised

from .api import (
    METER_OR_ALL,
    STATIC,
    SWAGGER_ASSETS,
    SWAGGER_UI,
    VERSION,
    Context,
    Refused,
    http_error_answer,
    router,
)
from .auth import Tokens
from .energy import router as energy_router
from .fastpath import FastPath
from .follower import follow_every_meter, learn_serial, read_directory, watch
from .guard import Guard
from .history import BadParameter
from .meters_api import router as meters_router
from .metrics import BAD_REQUESTS
from .settings import RestSettings
from .state import State
from .stopping import on_stop_signal

WATCH_INTERVAL = 1.0

DESCRIPTION = """Live readings of an electricity meter's HAN/P1 port, compatible with clients
written for the Cozify HAN reader (`/meter`, `/meter/data`), plus history, server-sent events,
a WebSocket, the reader's state, health and Prometheus metrics.

A box may read several meters: `/meters` lists them, `/meters/{id}` (and its `/history`,
`/telegram`, `/events`) serves each; `/meter` and the rest serve the default meter.

Reads are open on the LAN unless `HANPORT_REST_READ_AUTH` is set; then send
`Authorization: Bearer <token>` (or `?access_token=` where headers cannot be set: EventSource,
WebSocket). Admin endpoints always need a token with the `admin` scope.

`GET /ws` (WebSocket): the newest reading as a text frame (a Cozify HAN meter message), then one
frame per new reading."""


WS_OPERATION: dict[str, Any] = {
    "summary": "Live readings over a WebSocket: a snapshot, then every reading",
    "description": "Upgrade to a WebSocket. Text frames, each a Cozify HAN meter message: the "
    "newest reading first, then one per new reading. Close code 1013 means the client fell "
    "too far behind and should reconnect. Same access rules as /meter. Without `meter`, the "
    "default meter's readings, exactly as before several meters; with `meter` (a meter's id, "
    "or `*` for every meter: each one's newest first), each frame is that meter's message as "
    "`/meters/{id}` serves it, saying `meter` (and its `submeters`).",
    "operationId": "websocket_ws",
    "security": [{}, {"bearer": ["read"]}],
    "parameters": [
        {
            "name": "meter",
            "in": "query",
            "required": False,
            "description": "Whose readings: a meter's id (as `/meters` lists), or `*` for every "
            "meter; left out: the default meter's (frames as before).",
            "schema": {"type": "string", "pattern": METER_OR_ALL},
        }
    ],
    "responses": {
        "101": {"description": "Switching to the WebSocket protocol."},
        "401": {
            "description": "A token is required (HANPORT_REST_READ_AUTH) and was missing "
            "or unknown."
        },
        "403": {"description": "No license for 'rest' (commercial use) or token lacks 'read'."},
        "404": {
            "description": "`meter` names no meter of this box.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/UnknownMeter"}}
            },
        },
        "422": {
            "description": "`meter` is no meter id (nor `*`).",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BadRequest"}}
            },
        },
        "426": {
            "description": "A plain HTTP request (no `Upgrade: websocket`): connect as a "
            "WebSocket.",
            "headers": {"Upgrade": {"schema": {"type": "string", "enum": ["websocket"]}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    },
}


def bad_request(message: str, detail: list[dict[str, Any]]) -> Response:
    BAD_REQUESTS.inc()
    body = msgspec.json.encode(
        {"error": "bad_request", "message": message, "detail": detail}, enc_hook=str
    )
    return Response(body, 422, media_type="application/json")


def add_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> Response:
        refusal = exc.refusal
        headers = {k.decode(): v.decode() for k, v in refusal.headers}
        return Response(refusal.body, refusal.status, headers, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return http_error_answer(request, exc)

    @app.exception_handler(BadParameter)
    async def bad_parameter(_request: Request, exc: BadParameter) -> Response:
        return bad_request(str(exc), [{"loc": ["query", exc.name], "msg": exc.why}])

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        return bad_request(*describe_validation(exc.errors()))


def describe_validation(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """FastAPI's validation errors as one sentence per parameter: where, what, what is allowed.
    (A union such as int | datetime gives one error per branch: they are joined with "or".)"""
    reasons: dict[tuple[str, str], list[str]] = {}
    given: dict[tuple[str, str], Any] = {}
    for item in errors:
        loc = [str(p) for p in item.get("loc", ())]
        where = (loc[0] if loc else "request", loc[1] if len(loc) > 1 else "")
        reasons.setdefault(where, [])
        if item.get("msg") not in reasons[where]:
            reasons[where].append(str(item.get("msg", "invalid")))
        given.setdefault(where, item.get("input"))
    detail = [
        {"loc": [kind, name], "msg": " or ".join(msgs), "input": given[(kind, name)]}
        for (kind, name), msgs in reasons.items()
    ]
    message = "; ".join(
        f"{d['loc'][0]} parameter '{d['loc'][1]}'={d['input']!r}: {d['msg']}" for d in detail
    )
    return message or "bad request", detail


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the bearer scheme and the WebSocket endpoint (described as GET)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "HANPORT_REST_TOKENS"}
        }
        schema["paths"]["/ws"] = {"get": WS_OPERATION}
        drop_null_parameters(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def drop_null_parameters(schema: dict[str, Any]) -> None:
    """An optional parameter is left out, never sent as `null` (a header or query value is
    text): drop pydantic's `{"type": "null"}` branch from every parameter's schema."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                branches = parameter["schema"].get("anyOf")
                if branches is not None:
                    kept = [b for b in branches if b != {"type": "null"}]
                    parameter["schema"]["anyOf"] = kept
                    if len(kept) == 1:
                        parameter["schema"].update(parameter["schema"].pop("anyOf")[0])


def create_app(settings: RestSettings, tokens: Tokens | None = None) -> ASGIApp:
    """The service's ASGI app. `tokens` defaults to those the settings name."""
    state = State(
        stale_after=settings.rest_stale_after,
        queue_size=settings.rest_client_queue,
        default_setting=settings.default_meter,
        classic_stream=settings.stream,
    )
    guard = Guard(
        tokens
        if tokens is not None
        else Tokens.load(settings.rest_tokens, settings.rest_tokens_file),
        None,
        settings.rest_read_auth,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = redis_client(settings.redis_url)
        stream = ReadingStream(redis, settings.stream)
        entitlements = Entitlements(redis, settings)
        guard.entitlements = entitlements
        app.state.context = Context(settings, state, guard, redis, stream)
        background = asyncio.create_task(
            run_supervised(
                {
                    "stream follower": follow_every_meter(redis, settings.stream, state),
                    "Redis watcher": lambda: watch(
                        redis, state, WATCH_INTERVAL, settings.rest_keepalive
                    ),
                    "meter directory": lambda: read_directory(redis, state),
                    "serial": lambda: learn_serial(
                        settings.serial, settings.license_dir, redis, state
                    ),
                    "entitlements": entitlements.run,
                }
            )
        )
        # Answer from the first request on with the newest reading and, in commercial use, the
        # verified license (when Redis answers quickly); after HANPORT_REST_STARTUP_WAIT, anyway.
        waits: list[Awaitable[object]] = [state.loaded.wait()]
        if settings.use == "commercial":
            waits.append(entitlements.wait_until("rest", granted=True))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), settings.rest_startup_wait)
        try:
            with on_stop_signal(state.close_streams):
                yield
        finally:
            await stop(background)
            await redis.aclose()

    api = FastAPI(
        title="hanport REST",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # api.py serves /docs with Swagger UI's files from this service
        redoc_url=None,
    )
    api.include_router(router)
    api.include_router(meters_router)
    api.include_router(energy_router)  # energy accounting (services/rest/energy.py)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    api.mount(SWAGGER_ASSETS, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
    add_handlers(api)
    api.openapi = lambda: openapi_document(api)  # type: ignore[method-assign]
    api.state.rest_state = state

    app: ASGIApp = FastPath(api, state, guard)
    origins = [o.strip() for o in settings.rest_cors_origins.split(",") if o.strip()]
    if origins:
        app = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Last-Event-ID", "Content-Type"],
        )
    return app
