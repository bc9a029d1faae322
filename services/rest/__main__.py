"""`hanport rest` / `python -m services.rest`: run the REST service with uvicorn (uvloop,
httptools) on HANPORT_REST_HOST:HANPORT_REST_PORT."""

from __future__ import annotations

import logging
import sys

from shared.http_limits import GuardedHttpProtocol
from shared.log import redact_url
from shared.service import serve_http, start

from .app import create_app
from .auth import TokenError, Tokens
from .settings import RestSettings

log = logging.getLogger("services.rest")


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "rest", RestSettings, argv, "Serve readings over HTTP: REST, SSE, WebSocket, live page."
    )
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
    log.info(
        "REST on %s:%d, stream %s at %s",
        settings.rest_host,
        settings.rest_port,
        settings.stream,
        redact_url(settings.redis_url),
    )
    return serve_http(
        create_app(settings, tokens),
        settings.rest_host,
        settings.rest_port,
        setting="HANPORT_REST_PORT",
        ws="websockets-sansio",
        access_log=settings.rest_access_log,
        proxy_headers=True,
        timeout_graceful_shutdown=2,  # open SSE/WebSocket streams never end on their own
        # uvicorn waits for ever for a request's head: this protocol gives it a deadline and a size
        http=GuardedHttpProtocol.limited(
            settings.rest_request_timeout, settings.rest_max_head_bytes
        ),
        timeout_keep_alive=5,  # seconds an idle keep-alive connection stays open
        limit_concurrency=settings.rest_max_connections,
    )


if __name__ == "__main__":
    raise SystemExit(main())
