"""The FastAPI routes: every endpoint with its response models and examples, so
`/openapi.json` describes the service exactly. `/meter` and `/meter/data` are normally answered
by the fast path (fastpath.py) before they get here; these handlers give the same answers.

Consumes a `Context` (state, stream, guard, settings); produces HTTP answers.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BeforeValidator, Field
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from starlette.exceptions import HTTPException

from shared.ingest_status import STATUS_KEY, explain, one_line, read_status
from shared.stream import REDIS_DOWN, ReadingStream

from . import models
from .auth import TokenError, Tokens
from .events import Backlog, EventStream, backlog_page, sse_chunks, websocket_feed
from .fastpath import stale_body, stale_text, wants_text_503
from .follower import redis_answers
from .guard import Guard, Refusal
from .history import ID_PATTERN, BadParameter, bounds, history_chunks, last_telegram, parse_id
from .metrics import METER_OK, METER_STALE
from .read_gate import Busy, GatedAnswer, ReadGate
from .settings import RestSettings
from .state import ALL, MeterState, Snapshot, State

STATIC = Path(__file__).parent / "static"
# Swagger UI's own files (the fastapi-offline package ships them), served at /docs/assets so the
# interactive docs work on a box without Internet access. Found without importing the package.
SWAGGER_ASSETS = "/docs/assets"


def swagger_ui_files() -> Path:
    spec = find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the fastapi-offline package is missing: reinstall hanport (pip install .)"
        )
    return Path(spec.origin).parent / "static"


SWAGGER_UI = swagger_ui_files()

try:
    VERSION = version("hanport")
except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
    VERSION = "0.0.0"


@dataclass
class Context:
    settings: RestSettings
    state: State
    guard: Guard
    redis: Redis
    stream: ReadingStream
    gate: ReadGate = field(init=False)  # heavy reads: history answers, /events replays

    def __post_init__(self) -> None:
        self.gate = ReadGate(self.settings.rest_read_concurrency, self.settings.rest_read_queue)


class Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


def json_response(body: bytes, status: int = 200) -> Response:
    return Response(
        body, status, media_type="application/json", headers={"cache-control": "no-store"}
    )


def error(status: int, code: str, message: str) -> Response:
    return json_response(msgspec.json.encode({"error": code, "message": message}), status)


# What an HTTP error Starlette raises (no route, wrong method) answers as `error`, and a message
# saying what to do; other statuses use their reason phrase.
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    404: ("not_found", "nothing at {path}: the endpoints are listed at /docs"),
    405: ("method_not_allowed", "{method} is not allowed on {path}; allowed: {allow}"),
}


def http_error_answer(request: Request, exc: HTTPException) -> Response:
    """Starlette's HTTP errors as the documented `{error, message}` body, keeping their headers
    (`Allow` on a 405)."""
    headers = dict(exc.headers or {})
    code, template = HTTP_ERRORS.get(
        exc.status_code, (HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_"), "{detail}")
    )
    message = template.format(
        path=request.url.path,
        method=request.method,
        allow=headers.get("Allow", ""),
        detail=exc.detail,
    )
    body = msgspec.json.encode({"error": code, "message": message})
    return Response(body, exc.status_code, headers, media_type="application/json")


def redis_unavailable(what: str) -> Response:
    return error(
        503,
        "redis_unavailable",
        f"Redis is not reachable, so {what} cannot be read now; retry shortly",
    )


# Seconds a client refused by the read gate is told to wait before it asks again.
RETRY_AFTER_S = 2


def busy(what: str) -> Response:
    response = error(
        503,
        "busy",
        f"too many history/replay reads at once, so {what} cannot be read now; "
        f"retry in {RETRY_AFTER_S} s",
    )
    response.headers["retry-after"] = str(RETRY_AFTER_S)
    return response


def ctx(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def read_access(request: Request) -> Context:
    """The license/token check for readings (delegates to the one `Guard`)."""
    context = ctx(request)
    refusal = context.guard.check(
        "read", request.headers.get("authorization"), request.scope.get("query_string", b"")
    )
    if refusal is not None:
        raise Refused(refusal)
    return context


def admin_access(request: Request) -> Context:
    context = ctx(request)
    refusal = context.guard.check("admin", request.headers.get("authorization"))
    if refusal is not None:
        raise Refused(refusal)
    return context


Reader = Annotated[Context, Depends(read_access)]
Admin = Annotated[Context, Depends(admin_access)]

# Readings are open on the LAN by default; with HANPORT_REST_READ_AUTH a `read` token is needed.
READ_SECURITY = {"security": [{}, {"bearer": ["read"]}]}
ADMIN_SECURITY = {"security": [{"bearer": ["admin"]}]}
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": models.Error, "description": "A token is required and was missing or unknown."},
    403: {
        "model": models.Error,
        "description": "Token lacks the scope, or (commercial use) no license for 'rest'.",
    },
}
BAD: dict[int | str, dict[str, Any]] = {
    422: {"model": models.BadRequest, "description": "A query parameter is malformed."}
}
REDIS_503: dict[int | str, dict[str, Any]] = {
    503: {
        "model": models.Error,
        "description": "Redis is not reachable right now (`redis_unavailable`), or, for "
        "history and replays, too many are being read at once (`busy`, with Retry-After).",
    }
}
METER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The newest reading.",
        "content": {"application/json": {"example": models.METER_EXAMPLE}},
    },
    503: {"model": models.StaleError, "description": "No reading yet, or the newest is stale."},
    **REFUSALS,
}

# The `HAN_STATUS` message (`State.status()`): whether the readings can be trusted now.
STATUS_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "redis", "stale", "age", "stale_after", "id"],
    "properties": {
        "type": {"const": "HAN_STATUS"},
        "redis": {"type": "boolean", "description": "Whether Redis answered the last check."},
        "stale": {"type": "boolean", "description": "Whether the newest reading is stale."},
        "age": {"type": ["number", "null"], "description": "Seconds since it was received."},
        "stale_after": {"type": "number", "description": "HANPORT_REST_STALE_AFTER."},
        "id": {"type": ["string", "null"], "description": "Stream id of the newest reading."},
        "meter": {"type": "string", "description": "Whose: only on one meter's event stream."},
    },
}


def sse_event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """One event of `/events` as OpenAPI's `itemSchema` of an event stream describes it: its
    fields, `data` holding JSON. (An event without its own `id` carries the last one sent.)"""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
            "id": {"type": "string", "pattern": ID_PATTERN},
            "retry": {"type": "integer", "minimum": 0},
            "meter": {"type": "string", "description": "The id of the reading's meter."},
        },
    }


METER_OR_ALL = r"^(\*|[A-Za-z0-9._-]{1,64})$"
UNKNOWN_METER: dict[int | str, dict[str, Any]] = {
    404: {"model": models.UnknownMeter, "description": "No such meter on this box."}
}

SSE_EVENT: dict[str, Any] = {
    "oneOf": [
        sse_event("HAN_METER_MESSAGE", {"$ref": "#/components/schemas/MeterMessage"}),
        sse_event("HAN_STATUS", STATUS_MESSAGE),
    ]
}

# A time parameter: ms since the epoch (not negative) or an ISO 8601 date-time.
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def iso_only(value: object) -> object:
    """The date-time branch takes ISO 8601 text only (pydantic would also read numbers as Unix
    seconds: a negative number must be refused, not turned into 1969)."""
    if isinstance(value, str) and not ISO_TIME.match(value):
        raise ValueError(
            "expected ms since the epoch or an ISO 8601 time such as 2025-11-26T10:20:00Z"
        )
    return value


Time = Annotated[int, Field(ge=0)] | Annotated[datetime, BeforeValidator(iso_only)]

# The query parameters of history and events, declared once (`/meter/...` and `/meters/{id}/...`)
HistoryFrom = Annotated[
    Time | None,
    Query(
        alias="from",
        description="Oldest receive time: ms since the epoch or ISO 8601 (UTC if no zone).",
        examples=["2025-11-26T10:00:00Z"],
    ),
]
HistoryTo = Annotated[
    Time | None,
    Query(
        alias="to",
        description="Newest receive time, inclusive: ms since the epoch or ISO 8601.",
        examples=[1764152400000],
    ),
]
HistorySince = Annotated[
    str | None,
    Query(
        description="Only readings after this stream id (and not before `from`).",
        pattern=ID_PATTERN,
        examples=["1764152400000-0"],
    ),
]
HistoryLimit = Annotated[
    int,
    Query(ge=1, description="Most readings to return (capped by HANPORT_REST_HISTORY_LIMIT)."),
]
LastEventId = Annotated[
    str | None,
    Header(
        description="Resume after this stream id: exactly the missed readings follow.",
        pattern=ID_PATTERN,
    ),
]
LastEventIdQuery = Annotated[
    str | None,
    Query(
        alias="last_event_id",
        description="The same as the Last-Event-ID header.",
        pattern=ID_PATTERN,
    ),
]
router = APIRouter()


def meter_refused(context: Context, name: str | None) -> Response | None:
    """403 when the REST license names the meters it serves and meter `name` (None: the
    default meter) is not one of them; None when it may be served."""
    state = context.state
    meter = state.default if name is None else name
    held = state.meter(meter)
    record = state.records.get(meter) if meter is not None else None
    if held is not None and held.latest is not None:
        meter_id = held.latest.reading.meter_id
    else:
        meter_id = record.meter_id if record else None
    refusal = context.guard.meter_refusal(meter, meter_id)
    if refusal is None:
        return None
    headers = {k.decode(): v.decode() for k, v in refusal.headers}
    return Response(refusal.body, refusal.status, headers, media_type="application/json")


def meter_answer(
    context: Context, user_agent: str | None = None, name: str | None = None
) -> Response:
    """`/meter` (the default meter), or `/meters/{name}`: the newest reading, 503 when stale."""
    refused = meter_refused(context, name)
    if refused is not None:
        return refused
    body = stale_body(context.state, name=name)
    if body is not None:
        METER_STALE.inc()
        if wants_text_503(user_agent.encode("latin-1") if user_agent else None):
            return Response(
                stale_text(body),
                503,
                media_type="text/plain; charset=utf-8",
                headers={"cache-control": "no-store"},
            )
        return json_response(body, 503)
    METER_OK.inc()
    if name is None:
        assert context.state.latest is not None
        return json_response(context.state.latest.body)
    snapshot = context.state.meters[name].latest
    assert snapshot is not None
    return json_response(snapshot.tagged)


def sse_route(description: str) -> dict[str, Any]:
    """The OpenAPI side of a server-sent events route (`/events`, `/meters/{id}/events`)."""
    return {
        "responses": {
            200: {
                "description": description,
                "content": {
                    "text/event-stream": {
                        "itemSchema": SSE_EVENT,
                        "example": "id: 1764152400000-0\nevent: HAN_METER_MESSAGE\nmeter: main\n"
                        'data: {"type":"HAN_METER_MESSAGE",...}\n\n',
                    }
                },
            },
            **UNKNOWN_METER,
            **BAD,
            **REDIS_503,
            **REFUSALS,
        },
        "openapi_extra": READ_SECURITY,
        "response_class": Response,
        "response_model": None,
    }


@router.get(
    "/meter",
    response_model=models.MeterNow,
    responses=METER_RESPONSES,
    openapi_extra=READ_SECURITY,
    summary="The newest reading (Cozify HAN meter message)",
    description="Served from memory. 503 when there is no reading yet or the newest is older "
    "than HANPORT_REST_STALE_AFTER seconds: never act on stale data.",
)
async def meter(context: Reader, request: Request) -> Response:
    return meter_answer(context, request.headers.get("user-agent"))


@router.get(
    "/meter/data",
    response_model=models.MeterNow,
    responses=METER_RESPONSES,
    openapi_extra=READ_SECURITY,
    summary="Same as /meter (the path evcc's Cozify template reads)",
)
async def meter_data(context: Reader, request: Request) -> Response:
    return meter_answer(context, request.headers.get("user-agent"))


@router.get(
    "/meter/telegram",
    response_model=models.Telegram,
    responses={
        404: {"model": models.Error, "description": "No raw telegram stored yet."},
        **REDIS_503,
        **REFUSALS,
    },
    openapi_extra=READ_SECURITY,
    summary="The last raw telegram as sent (text for P1, hex for binary frames)",
)
async def telegram(context: Reader) -> Response:
    refused = meter_refused(context, None)
    if refused is not None:
        return refused
    try:
        async with asyncio.timeout(context.settings.rest_redis_timeout):
            body = await last_telegram(context.redis, context.settings.raw_stream)
    except REDIS_DOWN:
        return redis_unavailable("the raw telegram")
    if body is None:
        return error(
            404, "not_found", f"no raw telegram in stream '{context.settings.raw_stream}' yet"
        )
    return json_response(body)


@router.get(
    "/meter/history",
    response_model=models.History,
    responses={**BAD, **REDIS_503, **REFUSALS},
    openapi_extra=READ_SECURITY,
    summary="Readings from the stream, oldest first",
    description="Select by receive time (`from`, `to`: ms since the epoch or ISO 8601, UTC when "
    "no zone is given) or resume after a stream id (`since`, exclusive). Page with "
    "`next_since` while `more` is true.",
)
async def meter_history(
    context: Reader,
    start: HistoryFrom = None,
    end: HistoryTo = None,
    since: HistorySince = None,
    limit: HistoryLimit = 100,
) -> Response:
    refused = meter_refused(context, None)
    if refused is not None:
        return refused
    low, high = bounds(start, end, since)
    settings = context.settings
    limit = min(limit, settings.rest_history_limit)
    chunks = history_chunks(context.stream, low, high, limit, settings.rest_redis_timeout)
    return GatedAnswer(
        context.gate, "history", chunks, busy("the history"), redis_unavailable("the history")
    )


@router.get(
    "/events",
    **sse_route(
        "Server-sent events: `HAN_METER_MESSAGE` (id = stream id, `meter` = the meter's id, "
        "data = the Cozify message) per reading; `HAN_STATUS` when Redis or freshness changes "
        "and as keepalive. Without Last-Event-ID the newest reading comes first. The default "
        "meter's readings; `meter` picks one meter, or `*` every meter (then live only: each "
        "meter's newest first, Last-Event-ID is not used)."
    ),
    summary="Live readings as server-sent events, resumable with Last-Event-ID",
)
async def events(
    context: Reader,
    last_event_id: LastEventId = None,
    resume: LastEventIdQuery = None,
    meter: Annotated[
        str | None,
        Query(
            description="Whose readings: a meter's id (as `/meters` lists), or `*` for every "
            "meter; left out: the default meter's.",
            pattern=METER_OR_ALL,
            examples=["*"],
        ),
    ] = None,
) -> Response:
    return await event_answer(context, last_event_id, resume, meter)


def unknown_meter(context: Context, name: str) -> Response:
    """404 for a meter id this box does not know, listing those it does."""
    known = context.state.names()
    body = {
        "error": "unknown_meter",
        "message": f"no meter {name!r} on this box; known: {', '.join(known) or 'none yet'} "
        "(GET /meters lists them)",
        "meters": known,
    }
    return json_response(msgspec.json.encode(body), 404)


def streams_of(context: Context, name: str | None) -> tuple[str, str]:
    """The readings and raw stream keys of meter `name`: its own when the directory lists a
    stream of its own, else the classic ones (`HANPORT_STREAM`, `HANPORT_RAW_STREAM`)."""
    state, settings = context.state, context.settings
    record = state.records.get(name) if name is not None else None
    if record is not None and state.named(record.name):
        return record.readings, record.raw
    return settings.stream, settings.raw_stream


async def event_answer(
    context: Context, last_event_id: str | None, resume: str | None, meter: str | None
) -> Response:
    """`/events` of the default meter (`meter` None), of one meter, or of every meter (ALL:
    live only, no replay)."""
    state = context.state
    if meter is not None and meter != ALL and meter not in state.names():
        return unknown_meter(context, meter)
    refused = None if meter == ALL else meter_refused(context, meter)
    if refused is not None:
        return refused
    after = last_event_id or resume
    if after is not None:
        after = parse_id("Last-Event-ID" if last_event_id else "last_event_id", after)
    if meter == ALL:
        after = None  # every meter's stream has its own ids: nothing to resume from
    timeout = context.settings.rest_redis_timeout
    name = state.default if meter is None else meter
    stream = ReadingStream(context.redis, streams_of(context, name)[0])

    async def replay(page_after: str) -> Backlog:
        async with context.gate.slot("replay"):
            return await backlog_page(stream, page_after, timeout, name)

    queue = state.subscribe(meter)
    try:
        if after is not None:
            first = await replay(after)
        elif meter == ALL:
            first = Backlog.every_newest(state, served(context.guard))
        else:
            one = state.latest if meter is None else state.meter(meter)
            first = Backlog.newest(one.latest if isinstance(one, MeterState) else one)
    except Busy:
        state.unsubscribe(queue)
        return busy("the missed readings")
    except REDIS_DOWN:
        state.unsubscribe(queue)
        return redis_unavailable("the missed readings")
    keepalive = context.settings.rest_keepalive
    serves = served(context.guard)
    chunks = sse_chunks(state, queue, first, after, replay, keepalive, meter, serves)
    return EventStream(chunks, lambda: state.unsubscribe(queue), state.closing)


@router.websocket("/ws")
async def websocket(websocket: WebSocket) -> None:
    context: Context = websocket.app.state.context
    refusal = context.guard.check(
        "read", websocket.headers.get("authorization"), websocket.scope.get("query_string", b"")
    )
    if refusal is not None:
        await websocket.send_denial_response(
            Response(refusal.body, refusal.status, media_type="application/json")
        )
        return
    meter = websocket.query_params.get("meter")
    if meter is not None and meter != ALL and meter not in context.state.names():
        await websocket.send_denial_response(unknown_meter(context, meter))
        return
    refused = None if meter == ALL else meter_refused(context, meter)
    if refused is not None:
        await websocket.send_denial_response(refused)
        return
    await websocket_feed(
        websocket, context.state, meter, tagged=meter is not None, serves=served(context.guard)
    )


def served(guard: Guard) -> Callable[[Snapshot], bool]:
    """Whether a reading may go out on a stream of every meter (a license may name meters)."""
    return lambda snapshot: guard.serves(snapshot.meter, snapshot.reading.meter_id)


@router.get("/ws", include_in_schema=False)  # documented with the WebSocket (app.py)
async def websocket_over_http(
    meter: Annotated[str | None, Query(pattern=METER_OR_ALL)] = None,
) -> Response:
    """`/ws` asked for without `Upgrade: websocket`: 426, saying how to connect."""
    response = error(
        426,
        "upgrade_required",
        "/ws is a WebSocket: connect with 'Upgrade: websocket' (for example "
        "new WebSocket('ws://<host>:8080/ws') in a browser); /events serves the same "
        "readings over plain HTTP",
    )
    response.headers["upgrade"] = "websocket"
    response.headers["connection"] = "Upgrade"
    return response


# --- Why no reading arrives: the ingest service's status (shared/ingest_status.py) -------------
# /han and /readyz add `ingest` ({state, reason, fix, updated}) only while no fresh reading is
# held, so a working gateway answers exactly as before; the live page shows its reason and fix.


async def why_no_reading(context: Context, name: str | None = None) -> dict[str, Any]:
    """`{"ingest": {...}}` (ingest's verdict on its source, or that ingest is silent) while there
    is no fresh reading (of the default meter, or of meter `name`); `{}` while there is one, or
    when Redis does not answer (then `redis` says so). A meter with a stream of its own has its
    own status hash (its directory record's `status`); the classic stream's, `STATUS_KEY`."""
    state = context.state
    if state.stale_reason(name=name) is None:
        return {}
    meter = state.default if name is None else name
    record = state.records.get(meter) if meter is not None else None
    key = record.status if record is not None and state.named(record.name) else STATUS_KEY
    try:
        async with asyncio.timeout(context.settings.rest_redis_timeout):
            fields = read_status(await context.redis.hgetall(key))
    except REDIS_DOWN:
        return {}
    except ResponseError:  # the key holds something else: ingest cannot write its status either
        fields = {}
    return {"ingest": explain(fields, int(time.time() * 1000))}


# --- end of the ingest status part -------------------------------------------------------------


@router.get(
    "/han",
    response_model=models.StateMessage,
    summary="The reader's state message (HAN_STATE_MESSAGE)",
)
async def han(request: Request) -> Response:
    context = ctx(request)
    state = context.state
    latest = state.latest
    reading = latest.reading if latest else None
    age = state.age()
    why = await why_no_reading(context)  # the ingest status part (above)
    return json_response(
        msgspec.json.encode(
            {
                "type": "HAN_STATE_MESSAGE",
                "name": context.settings.rest_reader_name,
                "model": "hanport",
                "serial": state.serial,
                "version": VERSION,
                "uptime": round(time.time() - state.started, 3),
                "meter": {
                    "id": reading.meter_id if reading else None,
                    "model": reading.meter_model if reading else None,
                },
                "last_reading": reading.ts if reading else None,
                "last_reading_age": None if age is None else round(age, 3),
                "redis": state.redis_ok,
                "licensed": context.guard.licensed(),
                **COZIFY_STATE_KEYS,
                **why,  # the ingest status part: `ingest` only while no fresh reading
            }
        )
    )


# --- Cozify reader keys of /han and /configuration (docs/rest.md, "Clients written for Cozify") --
# What Cozify's Home Assistant integration (cozify_han 1.0.7) reads from a Cozify reader, with
# hanport's value where it has one and null where it has none (never an invented figure).
# `mac` is left out: hanport has no MAC of its own that stays put (a container's changes), and
# without it the integration names the device by its config entry, which does.
COZIFY_STATE_KEYS: dict[str, Any] = {
    "v": VERSION,  # firmware version
    "online": False,  # connected to Cozify's cloud: hanport never is
    "channel": None,  # update channel: none
    "ethIp": None,
    "wifiIp": None,
}


def local_timezone() -> str:
    """The zone this service runs in (its TZ), as its name: `UTC`, `EET`, ..."""
    return datetime.now().astimezone().tzname() or "UTC"


@router.get(
    "/configuration",
    response_model=models.Configuration,
    summary="The reader's configuration as a Cozify reader serves it",
    description="For clients written for Cozify: `v` firmware version, `t` timezone; hanport "
    "has no main fuse or network settings of its own, so those are null, and no fixed price: "
    "`p` is left out (Cozify's Home Assistant integration fails on a null price).",
)
async def configuration() -> Response:
    network: dict[str, Any] = {"e": None, "n": {"m": None}}
    return json_response(
        msgspec.json.encode(
            {
                "v": VERSION,
                "t": local_timezone(),
                "m": {"f": None},
                "e": network,
                "w": {**network, "s": None, "z": None, "b": None},
            }
        )
    )


@router.get("/healthz", response_model=models.Health, summary="The process is up")
async def healthz() -> Response:
    return json_response(b'{"status":"ok"}')


@router.get(
    "/readyz",
    response_model=models.Ready,
    responses={
        503: {"model": models.Ready, "description": "Redis unreachable or no fresh reading."}
    },
    summary="Redis reachable and a fresh reading present",
)
async def readyz(request: Request) -> Response:
    context = ctx(request)
    redis_ok = await redis_answers(context.redis, 1.0)
    stale = context.state.stale_reason()
    reasons = []
    if not redis_ok:
        reasons.append("Redis is not reachable")
    why = await why_no_reading(context) if redis_ok else {}  # the ingest status part
    if stale is not None:
        reasons.append(stale[0])
    if why:
        reasons.append("ingest: " + one_line(why["ingest"]))
    ready = redis_ok and stale is None
    body = {
        "ready": ready,
        "redis": redis_ok,
        "fresh": stale is None,
        "message": "; ".join(reasons) or "ready",
        **why,
    }
    return json_response(msgspec.json.encode(body), 200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus metrics.",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        }
    },
    summary="Prometheus metrics",
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/admin/reload-tokens",
    responses={
        200: {
            "description": "Tokens reloaded.",
            "content": {"application/json": {"example": {"tokens": 2}}},
        },
        **REFUSALS,
        409: {
            "model": models.Error,
            "description": "The token file is malformed; old tokens kept.",
        },
    },
    openapi_extra=ADMIN_SECURITY,
    summary="Re-read HANPORT_REST_TOKENS_FILE (admin scope)",
)
async def reload_tokens(context: Admin) -> Response:
    settings = context.settings
    try:
        tokens = Tokens.load(settings.rest_tokens, settings.rest_tokens_file)
    except TokenError as problem:
        return error(409, "bad_tokens", f"{problem}; the previous tokens stay in force")
    context.guard.tokens = tokens
    return json_response(b'{"tokens":%d}' % len(tokens.scopes))


@router.get(
    "/",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The live page.",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
    summary="The live page",
)
async def page() -> FileResponse:
    return FileResponse(
        STATIC / "index.html", media_type="text/html", headers={"cache-control": "no-cache"}
    )


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    """Swagger UI for /openapi.json, every file from this service (nothing from the Internet;
    no call to the online validator)."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="hanport REST - Swagger UI",
        swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    )


__all__ = ["BadParameter", "Context", "Refused", "router"]
