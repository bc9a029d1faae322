"""The licensing HTTP API: `GET /license`, `PUT /license` (admin), `DELETE /license/{id}`
(admin), `/healthz`, `/metrics`.

Consumes HTTP requests and a running `LicensingService`; produces JSON. Every refusal is JSON
`{"error": <reason code>, "detail": <what is wrong and what to do>}` with a fitting status, and is
counted in `hanport_license_refused_total{reason}`. The admin token is compared in constant time
and never logged; a client that sent a wrong token 5 times within 60 s is answered 429 without
its token being looked at (`services.licensing.attempts`), and failures are logged as one
summary line per minute. An upload larger than `HANPORT_LICENSE_MAX_BYTES` is refused before it
is read in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.cancellation import stop
from shared.entitlements import FEATURES
from shared.license import LicenseError

from .attempts import FailedAttempts
from .decide import FeatureState
from .metrics import REFUSED
from .running import run
from .service import LicensingService

# Seconds the API waits at start-up for the service to read its licenses (and Redis to answer
# the serial), so its first answers show them; after that it answers anyway.
STARTUP_WAIT_S = 5.0

STATUS = {
    "too_large": 413,
    "malformed_json": 400,
    "too_deep": 400,
    "malformed_base64": 400,
    "malformed": 400,
    "unauthorized": 401,
    "too_many_attempts": 429,
    "not_found": 404,
    "storage": 500,
}  # every other reason: 422 (a well-formed license that does not hold here)


def refusal(error: LicenseError, retry_after: float | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.reason == "unauthorized" else None
    if retry_after is not None:
        headers = {"Retry-After": str(max(1, round(retry_after)))}
    return JSONResponse(
        {"error": error.reason, "detail": str(error)},
        status_code=STATUS.get(error.reason, 422),
        headers=headers,
    )


def feature_status(state: FeatureState) -> dict[str, Any]:
    return {
        "granted": state.granted,
        "until": state.until,
        "licence_id": state.license.id if state.license is not None else None,
        "reason": state.reason,
    }


def status(service: LicensingService) -> dict[str, Any]:
    states = service.preview()
    return {
        "serial": service.serial,
        "use": service.settings.use,
        "meter_id": service.meter_id,
        "time": service.now(),
        "features": {feature: feature_status(states[feature]) for feature in FEATURES},
        "licences": [signed.license.summary() for signed in service.licenses.values()],
    }


def create_app(
    service: LicensingService,
    admin_token: str | None,
    *,
    run_service: bool = True,
    attempts: FailedAttempts | None = None,
) -> FastAPI:
    """The API for `service`; with `run_service` its lifespan runs the service's loops
    (`services.licensing.running.run`) (tests that
    drive the app through httpx's ASGI transport start the service themselves)."""
    attempts = attempts or FailedAttempts()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(run(service)) if run_service else None
        if task is not None:  # answer from the first request with the installed licenses
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(service.loaded.wait(), STARTUP_WAIT_S)
        try:
            yield
        finally:
            if task is not None:
                await stop(task)
            await service.redis.aclose()

    app = FastAPI(title="hanport licensing", docs_url=None, redoc_url=None, lifespan=lifespan)
    limit = service.settings.license_max_bytes

    def check_token(request: Request) -> None:
        if admin_token is None:
            raise LicenseError("unauthorized", "none is configured: set HANPORT_ADMIN_TOKEN")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise LicenseError("unauthorized", "send 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given.strip().encode(), admin_token.encode()):
            raise LicenseError("unauthorized", "the token given is not the admin token")

    def authorize(request: Request) -> JSONResponse | None:
        """None when the request carries the admin token; else the refusal to answer (counted;
        logged only as the per-minute summary)."""
        client = request.client.host if request.client else "unknown"
        wait = attempts.wait_s(client)
        if wait is not None:
            REFUSED.labels("too_many_attempts").inc()
            detail = f"{attempts.limit} wrong tokens within {attempts.window_s:.0f} s"
            return refusal(LicenseError("too_many_attempts", detail), retry_after=wait)
        try:
            check_token(request)
        except LicenseError as error:
            REFUSED.labels(error.reason).inc()
            attempts.failed(client)
            return refusal(error)
        attempts.succeeded(client)
        return None

    async def body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise LicenseError("too_large", declared, limit=limit)
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise LicenseError("too_large", f"more than {limit}", limit=limit)
        return bytes(data)

    @app.get("/license")
    async def get_license() -> dict[str, Any]:
        return status(service)

    @app.put("/license", status_code=201, response_model=None)
    async def put_license(request: Request) -> dict[str, Any] | JSONResponse:
        if (refused := authorize(request)) is not None:
            return refused
        try:
            text = await body(request)
        except LicenseError as error:
            service.refused(error)
            return refusal(error)
        try:
            signed = service.install(text)  # counts and logs its own refusals
        except LicenseError as error:
            return refusal(error)
        return {"installed": signed.license.summary(), **status(service)}

    @app.delete("/license/{license_id}", response_model=None)
    async def delete_license(license_id: str, request: Request) -> dict[str, Any] | JSONResponse:
        if (refused := authorize(request)) is not None:
            return refused
        try:
            if not service.remove(license_id):
                raise LicenseError("not_found", license_id)
        except LicenseError as error:
            service.refused(error)
            return refusal(error)
        return {"removed": license_id, **status(service)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=None)
    async def healthz() -> dict[str, Any] | JSONResponse:
        body = {"status": "ok" if service.redis_ok else "degraded", "redis": service.redis_ok}
        return body if service.redis_ok else JSONResponse(body, status_code=503)

    return app
