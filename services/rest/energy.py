"""REST for energy accounting: what the accounting service stored in Redis, per meter. REST
never computes accounting; it reads `services.accounting.store`'s keys.

- `GET /meters/{id}/energy?resolution=15m|1h|1d|1mo&from=&to=&format=json|csv`: energy per
  interval, `{"meter", "resolution", "unit": "kWh", "intervals": [{"start", "import", "export",
  "reactive_import", "reactive_export", "estimated"}]}` (reactive in kvarh); `format=csv` for a
  spreadsheet. `from`/`to`: ISO 8601 (a date or a time without offset is the meter's clock) or
  ms since the epoch; `from` defaults to the start of today (15m, 1h), of this month (1d), of
  this year (1mo), `to` to open.
- `GET /meters/{id}/tariff`: the live capacity-tariff state (docs/accounting.md).
- `GET /meter/energy`, `GET /meter/tariff`: the same for the default meter.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from services.accounting import store
from services.accounting.intervals import interval_start, to_ms
from shared.meters import default_meter
from shared.stream import REDIS_DOWN

from .api import BAD, READ_SECURITY, REDIS_503, REFUSALS, Context, Reader, error, json_response
from .history import BadParameter

router = APIRouter(tags=["energy"])

Resolution = Literal["15m", "1h", "1d", "1mo"]
MAX_INTERVALS = 100_000  # two years of quarter-hours fit
DEFAULT_FROM: dict[str, Any] = {"15m": "day", "1h": "day", "1d": "month", "1mo": "year"}
CSV_HEADER = "start,import_kwh,export_kwh,reactive_import_kvarh,reactive_export_kvarh,estimated\r\n"
NOT_FOUND = {404: {"description": "No accounting state for this meter (yet)."}}
METER_ID = Path(description="The meter's name (`GET /meters`).", pattern=r"^[A-Za-z0-9._-]{1,64}$")


async def default_meter_name(context: Context) -> str | None:
    """The meter `/meter/energy` and `/meter/tariff` serve: the one `/meter` serves (the REST
    state's default meter); before any is known, the configured one or the first with
    accounting state."""
    known = context.state.default
    if known is not None:
        return known
    names = await store.meters(context.redis)
    return default_meter(names, context.settings.default_meter, None)


async def zone_of(context: Context, meter: str) -> tuple[ZoneInfo, dict[str, Any] | None]:
    answer = await store.read_tariff(context.redis, meter)
    name = answer.get("zone") if answer else None
    with contextlib.suppress(Exception):
        if name:
            return ZoneInfo(str(name)), answer
    return ZoneInfo("UTC"), answer


def parse_time(name: str, value: str | None, zone: ZoneInfo) -> int | None:
    """`from`/`to`: ms since the epoch, an ISO 8601 date or time (no offset: the meter's clock)."""
    if value is None or value == "":
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return to_ms(datetime.combine(day, time(), tzinfo=zone))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadParameter(
            name, value, "expected ms since the epoch or ISO 8601 (2026-03-01, 2026-03-01T12:00)"
        ) from None
    return to_ms(moment if moment.tzinfo else moment.replace(tzinfo=zone))


def default_from(resolution: str, zone: ZoneInfo, now_ms: int) -> int:
    now = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone)
    span = DEFAULT_FROM[resolution]
    if span == "year":
        return to_ms(datetime(now.year, 1, 1, tzinfo=zone))
    return to_ms(interval_start(now, span, zone))


def interval_json(row: store.IntervalRow, zone: ZoneInfo) -> dict[str, Any]:
    start = datetime.fromtimestamp(row.start_ms / 1000, UTC).astimezone(zone)
    ic, ec, ric, rec = row.values
    return {
        "start": start.isoformat(),
        "import": round(ic, 6),
        "export": round(ec, 6),
        "reactive_import": round(ric, 6),
        "reactive_export": round(rec, 6),
        "estimated": row.estimated,
    }


def csv_body(intervals: list[dict[str, Any]]) -> bytes:
    lines = [CSV_HEADER]
    for i in intervals:
        lines.append(
            f"{i['start']},{i['import']},{i['export']},{i['reactive_import']},"
            f"{i['reactive_export']},{'true' if i['estimated'] else 'false'}\r\n"
        )
    return "".join(lines).encode()


async def energy_answer(
    context: Context,
    meter: str | None,
    resolution: str,
    start: str | None,
    end: str | None,
    form: str,
) -> Response:
    try:
        if meter is None:
            return error(404, "not_found", "no meter has accounting state yet")
        zone, answer = await zone_of(context, meter)
        if answer is None and meter not in await store.meters(context.redis):
            return no_state(meter)
        from_ms = parse_time("from", start, zone)
        to_ms_ = parse_time("to", end, zone)
        if from_ms is None:
            now_ms = int(answer["now_ms"]) if answer else int(datetime.now(UTC).timestamp() * 1000)
            from_ms = default_from(resolution, zone, now_ms)
        rows = await store.read_intervals(
            context.redis, meter, resolution, from_ms, to_ms_, limit=MAX_INTERVALS + 1
        )
    except REDIS_DOWN:
        return error(503, "redis_unavailable", "Redis is not reachable; retry shortly")
    if len(rows) > MAX_INTERVALS:
        raise BadParameter("from", start, f"more than {MAX_INTERVALS} intervals: narrow from/to")
    intervals = [interval_json(row, zone) for row in rows]
    if form == "csv":
        return Response(
            csv_body(intervals),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="{meter}-energy-{resolution}.csv"',
                "cache-control": "no-store",
            },
        )
    body = {
        "meter": meter,
        "resolution": resolution,
        "unit": "kWh",
        "reactive_unit": "kvarh",
        "intervals": intervals,
    }
    return json_response(msgspec.json.encode(body))


def no_state(meter: str) -> Response:
    return error(
        404,
        "not_found",
        f"no accounting state for meter {meter!r}: is the accounting service running "
        "(docs/accounting.md), and has this meter sent readings?",
    )


async def tariff_answer(context: Context, meter: str | None) -> Response:
    if meter is None:
        return error(404, "not_found", "no meter has accounting state yet")
    try:
        raw = await context.redis.get(store.tariff_key(meter))
    except REDIS_DOWN:
        return error(503, "redis_unavailable", "Redis is not reachable; retry shortly")
    if raw is None:
        return no_state(meter)
    return json_response(raw if isinstance(raw, bytes) else raw.encode())


ResolutionQuery = Annotated[
    Resolution, Query(description="Interval length: 15m, 1h, 1d or 1mo (by the meter's clock).")
]
FromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        description="First interval start: ISO 8601 (no offset: the meter's clock) or ms.",
    ),
]
ToQuery = Annotated[
    str | None, Query(description="Intervals starting before this: ISO 8601 or ms.")
]
FormatQuery = Annotated[
    Literal["json", "csv"], Query(alias="format", description="`json` or `csv`.")
]
ENERGY_DOC: dict[str, Any] = {
    "responses": {**BAD, **REDIS_503, **REFUSALS, **NOT_FOUND},
    "openapi_extra": READ_SECURITY,
    "response_class": Response,
    "response_model": None,
}


@router.get("/meters/{meter}/energy", summary="Energy per interval of one meter", **ENERGY_DOC)
async def meter_energy(
    context: Reader,
    meter: Annotated[str, METER_ID],
    resolution: ResolutionQuery = "1h",
    start: FromQuery = None,
    to: ToQuery = None,
    form: FormatQuery = "json",
) -> Response:
    return await energy_answer(context, meter, resolution, start, to, form)


@router.get("/meter/energy", summary="Energy per interval of the default meter", **ENERGY_DOC)
async def default_energy(
    context: Reader,
    resolution: ResolutionQuery = "1h",
    start: FromQuery = None,
    to: ToQuery = None,
    form: FormatQuery = "json",
) -> Response:
    try:
        meter = await default_meter_name(context)
    except REDIS_DOWN:
        return error(503, "redis_unavailable", "Redis is not reachable; retry shortly")
    return await energy_answer(context, meter, resolution, start, to, form)


TARIFF_DOC: dict[str, Any] = {
    "responses": {**BAD, **REDIS_503, **REFUSALS, **NOT_FOUND},
    "openapi_extra": READ_SECURITY,
    "response_class": Response,
    "response_model": None,
}


@router.get(
    "/meters/{meter}/tariff", summary="Live capacity-tariff state of one meter", **TARIFF_DOC
)
async def meter_tariff(context: Reader, meter: Annotated[str, METER_ID]) -> Response:
    return await tariff_answer(context, meter)


@router.get(
    "/meter/tariff", summary="Live capacity-tariff state of the default meter", **TARIFF_DOC
)
async def default_tariff(context: Reader) -> Response:
    try:
        meter = await default_meter_name(context)
    except REDIS_DOWN:
        return error(503, "redis_unavailable", "Redis is not reachable; retry shortly")
    return await tariff_answer(context, meter)
