"""`hanport rest` / `python -m services.rest`: run the REST service with uvicorn (uvloop,
httptools) on HANPORT_REST_HOST:HANPORT_REST_PORT."""

from __future__ import annotations

import logging
import sys

import uvicorn

from shared.log import redact_url, setup_logging
from shared.settings import load_settings

from .app import create_app
from .auth import TokenError, Tokens
from .settings import RestSettings

log = logging.getLogger("services.rest")


def main(argv: list[str] | None = None) -> int:
    if argv:
        print(
            "usage: hanport rest   (configured by HANPORT_* environment variables)", file=sys.stderr
        )
        return 2
    settings = load_settings(RestSettings)
    setup_logging("rest", settings.log_level, settings.log_format)
    try:
        tokens = Tokens.load(settings.rest_tokens, settings.rest_tokens_file)
    except TokenError as error:
        print(f"hanport: {error}", file=sys.stderr)
        return 2
    if settings.rest_read_auth and not tokens:
        print(
            "hanport: HANPORT_REST_READ_AUTH is on but no token has the 'read' scope: set "
            "HANPORT_REST_TOKENS or HANPORT_REST_TOKENS_FILE",
            file=sys.stderr,
        )
        return 2
    config = uvicorn.Config(
        create_app(settings, tokens),
        host=settings.rest_host,
        port=settings.rest_port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        access_log=settings.rest_access_log,
        log_config=None,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=2,  # open SSE/WebSocket streams never end on their own
    )
    log.info(
        "REST on %s:%d, stream %s at %s",
        settings.rest_host,
        settings.rest_port,
        settings.stream,
        redact_url(settings.redis_url),
    )
    server = uvicorn.Server(config)
    server.run()  # uvloop; stops gracefully on SIGTERM/SIGINT (lifespan shutdown runs)
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
