"""`hanport licensing` / `python -m services.licensing`: run the licensing service (its HTTP API
on HANPORT_LICENSING_HOST:HANPORT_LICENSING_PORT, and the entitlement publisher) with uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn

from shared.licence import KeyFileError, load_public_keys
from shared.log import redact_url, setup_logging
from shared.settings import load_settings
from shared.stream import redis_client

from .api import create_app
from .service import LicensingService
from .settings import LicensingSettings

log = logging.getLogger("services.licensing")


def main(argv: list[str] | None = None) -> int:
    if argv:
        print(
            "usage: hanport licensing   (configured by HANPORT_* environment variables)",
            file=sys.stderr,
        )
        return 2
    settings = load_settings(LicensingSettings)
    setup_logging("licensing", settings.log_level, settings.log_format)
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
    if not keys:
        log.warning(
            "no trusted licence keys (HANPORT_LICENSE_PUBLIC_KEYS): no licence can be accepted"
        )
    if token is None:
        log.warning("no admin token (HANPORT_ADMIN_TOKEN): PUT/DELETE /license are refused")
    service = LicensingService(settings, redis_client(settings.redis_url), keys)
    config = uvicorn.Config(
        create_app(service, token),
        host=settings.licensing_host,
        port=settings.licensing_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
    )
    log.info(
        "licensing on %s:%d, use %s, %d trusted key(s), licences in %s, Redis %s",
        settings.licensing_host,
        settings.licensing_port,
        settings.use,
        len(keys),
        settings.license_dir,
        redact_url(settings.redis_url),
    )
    server = uvicorn.Server(config)
    server.run()  # stops gracefully on SIGTERM/SIGINT; the lifespan stops the service
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
