"""`hanport licensing` / `python -m services.licensing`: run the licensing service (its HTTP API
on HANPORT_LICENSING_HOST:HANPORT_LICENSING_PORT, and the entitlement publisher) with uvicorn."""

from __future__ import annotations

import logging
import sys

from shared.http_limits import GuardedHttpProtocol
from shared.license import KeyFileError, load_public_keys
from shared.log import redact_url
from shared.service import serve_http, start
from shared.stream import redis_client

from .api import create_app
from .attempts import MIN_TOKEN_CHARS
from .service import LicensingService
from .settings import LicensingSettings

# The admin API's requests are small: a whole request within 10 s, its head within 64 KiB
REQUEST_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024

log = logging.getLogger("services.licensing")


def main(argv: list[str] | None = None) -> int:
    settings = start("licensing", LicensingSettings, argv, "Decide which interfaces are licensed.")
    try:
        keys = load_public_keys(settings.license_public_keys)
    except KeyFileError as error:
        print(f"hanport: {error} (HANPORT_LICENSE_PUBLIC_KEYS)", file=sys.stderr)
        return 2
    try:
        token = settings.admin_secret()
    except OSError as error:
        print(f"hanport: cannot read HANPORT_ADMIN_TOKEN_FILE: {error}", file=sys.stderr)
        return 2
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        print(
            f"hanport: the admin token (HANPORT_ADMIN_TOKEN or HANPORT_ADMIN_TOKEN_FILE) has "
            f"{len(token)} characters; use at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex "
            "16`)",
            file=sys.stderr,
        )
        return 2
    if not keys:
        log.warning(
            "no trusted license keys (HANPORT_LICENSE_PUBLIC_KEYS): no license can be accepted"
        )
    if token is None:
        log.warning("no admin token (HANPORT_ADMIN_TOKEN): PUT/DELETE /license are refused")
    service = LicensingService(settings, redis_client(settings.redis_url), keys)
    log.info(
        "licensing on %s:%d, use %s, %d trusted key(s), licenses in %s, Redis %s",
        settings.licensing_host,
        settings.licensing_port,
        settings.use,
        len(keys),
        settings.license_dir,
        redact_url(settings.redis_url),
    )
    return serve_http(
        create_app(service, token),
        settings.licensing_host,
        settings.licensing_port,
        setting="HANPORT_LICENSING_PORT",
        # uvicorn waits for ever for a request's head: this protocol gives it a deadline and a size
        http=GuardedHttpProtocol.limited(REQUEST_TIMEOUT_S, MAX_HEAD_BYTES),
    )


if __name__ == "__main__":
    raise SystemExit(main())
