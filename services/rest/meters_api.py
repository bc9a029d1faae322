"""The routes of several meters: `/meters` (every meter of the box) and `/meters/{id}`, its
history, raw telegram and event stream (docs/rest.md, "Several meters").

Consumes the `Context` (per-meter state, the directory as last read, Redis); produces the same
answers as `/meter`, `/meter/history`, `/meter/telegram` and `/events` give for the default
meter, for any meter by id. An id this box does not know is 404 listing those it does; a
meter whose data is stale is 503, the others keep serving.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from shared.reading import Reading, SubMeter
from shared.stream import REDIS_DOWN, ReadingStream
from shared.submeters import medium

from . import models
from .api import (
    BAD,
    METER_RESPONSES,
    READ_SECURITY,
    REDIS_503,
    REFUSALS,
    UNKNOWN_METER,
    Context,
    HistoryFrom,
    HistoryLimit,
    HistorySince,
    HistoryTo,
    LastEventId,
    LastEventIdQuery,
    Reader,
    busy,
    error,
    event_answer,
    json_response,
    meter_answer,
    meter_refused,
    redis_unavailable,
    sse_route,
    streams_of,
    unknown_meter,
    why_no_reading,
)
from .history import bounds, history_chunks, last_telegram
from .read_gate import GatedAnswer
from .state import State

router = APIRouter()

MeterId = Annotated[
    str,
    Path(
        description="The meter's id on this box, as `GET /meters` lists it.",
        pattern=models.METER_NAME,
        examples=["main"],
    ),
]


def listing(context: Context) -> bytes:
    """The `HAN_METERS` answer: every meter the box knows, by id."""
    state = context.state
    default = state.default
    meters: list[dict[str, Any]] = []
    for name in state.names():
        meter = state.meter(name)
        record = state.records.get(name)
        reading = meter.latest.reading if meter and meter.latest else None
        age = state.age(name=name)
        meters.append(
            {
                "id": name,
                "model": (reading.meter_model if reading else None)
                or (record.model if record else None),
                "meter_id": (reading.meter_id if reading else None)
                or (record.meter_id if record else None),
                "default": name == default,
                "last_reading": reading.ts if reading else None,
                "last_reading_age": None if age is None else round(age, 3),
                "stale": state.stale_reason(name=name) is not None,
                "submeters": [
                    {"channel": sub.channel, "medium": sub_medium}
                    for sub, sub_medium in submeter_media(reading)
                ],
                "stream": streams_of(context, name)[0],
                "source": (record.source or None) if record else None,
                "in_directory": record is not None,
                "served": context.guard.serves(name, reading.meter_id if reading else None),
            }
        )
    return msgspec.json.encode({"type": "HAN_METERS", "default": default, "meters": meters})


def submeter_media(reading: Reading | None) -> list[tuple[SubMeter, str]]:
    return [(sub, medium(sub)) for sub in (reading.submeters if reading else [])]


@router.get(
    "/meters",
    response_model=models.MeterList,
    responses={**REFUSALS},
    openapi_extra=READ_SECURITY,
    summary="Every meter of the box: id, model, last reading and its age, which is the default",
)
async def meters(context: Reader) -> Response:
    return json_response(listing(context))


def known(state: State, name: str) -> bool:
    return name in state.meters or name in state.records


@router.get(
    "/meters/{meter}",
    response_model=models.MeterOfBox,
    responses={
        **METER_RESPONSES,
        200: {
            "description": "That meter's newest reading.",
            "content": {
                "application/json": {
                    "example": {
                        **models.METER_EXAMPLE,
                        "meter": "main",
                        "submeters": models.SUBMETERS_EXAMPLE,
                    }
                }
            },
        },
        **UNKNOWN_METER,
        **BAD,
    },
    openapi_extra=READ_SECURITY,
    summary="One meter's newest reading (Cozify HAN meter message, its sub-meters beside)",
    description="As `/meter` for the default meter: 503 when that meter's newest reading is "
    "older than HANPORT_REST_STALE_AFTER seconds (the other meters keep serving). The Cozify "
    "keys as `/meter`, plus `meter` and, for a meter with M-Bus sub-meters, `submeters`.",
)
async def one_meter(context: Reader, meter: MeterId, request: Request) -> Response:
    state = context.state
    if not known(state, meter):
        return unknown_meter(context, meter)
    answer = meter_answer(context, request.headers.get("user-agent"), meter)
    if answer.status_code == 503 and answer.media_type == "application/json":
        why = await why_no_reading(context, meter)  # that meter's ingest: why no fresh reading
        if why:
            body = {**msgspec.json.decode(bytes(answer.body)), **why}
            return json_response(msgspec.json.encode(body), 503)
    return answer


@router.get(
    "/meters/{meter}/history",
    response_model=models.History,
    responses={**UNKNOWN_METER, **BAD, **REDIS_503, **REFUSALS},
    openapi_extra=READ_SECURITY,
    summary="One meter's readings from its stream, oldest first",
    description="As `/meter/history`, for this meter: its own stream, or its readings in the "
    "classic stream.",
)
async def meter_history(
    context: Reader,
    meter: MeterId,
    start: HistoryFrom = None,
    end: HistoryTo = None,
    since: HistorySince = None,
    limit: HistoryLimit = 100,
) -> Response:
    if not known(context.state, meter):
        return unknown_meter(context, meter)
    refused = meter_refused(context, meter)
    if refused is not None:
        return refused
    low, high = bounds(start, end, since)
    settings = context.settings
    limit = min(limit, settings.rest_history_limit)
    stream = ReadingStream(context.redis, streams_of(context, meter)[0])
    chunks = history_chunks(stream, low, high, limit, settings.rest_redis_timeout, meter=meter)
    return GatedAnswer(
        context.gate, "history", chunks, busy("the history"), redis_unavailable("the history")
    )


@router.get(
    "/meters/{meter}/telegram",
    response_model=models.Telegram,
    responses={
        404: {
            "model": models.UnknownMeter,
            "description": "No such meter (`unknown_meter`), or no raw telegram of it stored "
            "yet (`not_found`).",
        },
        **BAD,
        **REDIS_503,
        **REFUSALS,
    },
    openapi_extra=READ_SECURITY,
    summary="One meter's last raw telegram as sent (text for P1, hex for binary frames)",
    description="From the meter's raw stream (its directory record's `raw`; the classic "
    "`HANPORT_RAW_STREAM` for the meter on the classic stream).",
)
async def meter_telegram(context: Reader, meter: MeterId) -> Response:
    if not known(context.state, meter):
        return unknown_meter(context, meter)
    refused = meter_refused(context, meter)
    if refused is not None:
        return refused
    raw_key = streams_of(context, meter)[1]
    try:
        async with asyncio.timeout(context.settings.rest_redis_timeout):
            body = await last_telegram(context.redis, raw_key)
    except REDIS_DOWN:
        return redis_unavailable("the raw telegram")
    if body is None:
        return error(404, "not_found", f"no raw telegram in stream '{raw_key}' yet")
    return json_response(body)


@router.get(
    "/meters/{meter}/events",
    **sse_route(
        "Server-sent events of this meter only, as `/events` sends the default meter's: "
        "resumable with Last-Event-ID (its stream's ids); its `HAN_STATUS` says `meter`."
    ),
    summary="One meter's live readings as server-sent events, resumable with Last-Event-ID",
)
async def meter_events(
    context: Reader,
    meter: MeterId,
    last_event_id: LastEventId = None,
    resume: LastEventIdQuery = None,
) -> Response:
    return await event_answer(context, last_event_id, resume, meter)
