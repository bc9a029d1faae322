"""Starting a service: the command line, settings and logging every entry point shares, then
its main coroutine (uvloop, clean stop on SIGTERM/SIGINT) or its HTTP app (uvicorn)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, TypeVar

from redis.asyncio import Redis

from .cancellation import stop
from .log import setup_logging
from .metrics import serve_metrics
from .settings import CommonSettings, load_settings
from .stream import connect
from .supervise import Fatal

log = logging.getLogger(__name__)

S = TypeVar("S", bound=CommonSettings)
# Seconds a stopping service may take after SIGTERM before the process simply exits (Docker
# sends SIGKILL after 10 s).
STOP_DEADLINE_S = 8.0


def start(name: str, settings_cls: type[S], argv: list[str] | None, summary: str) -> S:
    """Answer `--help` (and refuse arguments: services are configured by environment only),
    load the settings (a bad value: one line, exit 2) and set up logging."""
    argparse.ArgumentParser(
        prog=f"hanport {name}",
        description=f"{summary} Configured by HANPORT_* environment variables "
        "(docs/configuration.md).",
    ).parse_args(argv or [])
    settings = load_settings(settings_cls)
    setup_logging(name, settings.log_level, settings.log_format)
    return settings


async def _until_signalled(main: Callable[[], Awaitable[None]]) -> int:
    """Run `main()`; its exit status: 0 when it returned or a signal stopped it, 1 when it
    failed (a `Fatal` error is logged as its message, anything else with its traceback)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main())
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if not stopping:
            stopping.append(asyncio.create_task(_stop_within(task, STOP_DEADLINE_S)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopped by signal")
        return 0
    except Fatal as error:
        log.error("stopping: %s", error)
        return 1
    except Exception:
        log.exception("stopping after an unexpected error")
        return 1
    return 0


async def _stop_within(task: asyncio.Task[None], deadline: float) -> None:
    """Stop `task` (cancelling again while it runs on); if it has not ended within `deadline`
    s, end the process: a stop is never ignored."""
    try:
        await asyncio.wait_for(stop(task), deadline)
    except TimeoutError:
        log.error("did not stop within %.0f s of the signal; exiting now", deadline)
        logging.shutdown()
        os._exit(1)


def freeze_startup_objects() -> None:
    """Move everything the imports and the set-up made into the collector's permanent
    generation. A full collection otherwise walks those ~50,000 to 70,000 long-lived objects
    every few minutes and pauses the service for 10 to 25 ms (measured on the 2-core VM: it was
    the p99 of the stack's 1 reading/s latency); what the service allocates while it runs is
    still collected as usual."""
    gc.collect()
    gc.freeze()


def run(main: Callable[[], Awaitable[None]]) -> int:
    """Run `main()` until it returns or the process is told to stop (SIGTERM/SIGINT; a task
    that ignores the stop ends the process after STOP_DEADLINE_S); returns the exit status."""
    freeze_startup_objects()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(_until_signalled(main))
    return uvloop.run(_until_signalled(main))


def run_on_redis(
    settings: CommonSettings, work: Callable[[Redis], Awaitable[None]], says: str
) -> int:
    """A stream consumer's whole life: /metrics served, `says` logged, a Redis client that
    waits out any Redis error, `work(redis)` run until the service stops, the client closed."""
    serve_metrics(settings.metrics_port, settings.metrics_host)

    async def service() -> None:
        log.info("%s", says)
        redis = await connect(settings.redis_url)
        try:
            await work(redis)
        finally:
            await redis.aclose()

    return run(service)


def exit_cleanly_after_stop() -> None:
    """A stop signal means a clean exit (status 0). uvicorn, once it has shut down after a
    signal, raises that signal again with the handlers it found at start: these (without them
    every stop of an HTTP service ended with status 143)."""

    def exit_now(sig: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, exit_now)


def refuse_taken_port(host: str, port: int, setting: str) -> None:
    """Exit 2 with one line naming `setting` when `host`:`port` cannot be listened on (taken,
    or an address this machine does not have), instead of a server library's traceback."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        print(
            f"hanport: cannot listen on {host}:{port} ({os.strerror(error.errno) if error.errno else error}): "
            f"set {setting} to a free port",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def serve_http(app: Any, host: str, port: int, *, setting: str, **options: Any) -> int:
    """Serve an ASGI app with uvicorn (uvloop, httptools, no access log, no server header)
    until SIGTERM/SIGINT; `setting` names the variable that moves the port (a taken port is one
    line and exit 2); `options` add to or override uvicorn's settings."""
    import uvicorn

    refuse_taken_port(host, port, setting)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        **{
            "loop": "uvloop",
            "http": "httptools",
            "lifespan": "on",
            "access_log": False,
            "log_config": None,
            "server_header": False,
            **options,
        },
    )
    server = uvicorn.Server(config)
    exit_cleanly_after_stop()
    freeze_startup_objects()
    server.run()  # stops gracefully on SIGTERM/SIGINT; the app's lifespan shutdown runs
    return 0 if server.started else 1
