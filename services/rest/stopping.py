"""Ending open push streams as soon as the process is told to stop.

uvicorn waits (up to its graceful timeout) for open responses to finish, then cancels them: an
SSE or WebSocket stream never finishes on its own, so every one was cancelled and logged as an
error with its traceback. Chained in front of uvicorn's own SIGTERM/SIGINT handler, this ends
every stream first (`State.close_streams`), so uvicorn stops with nothing left to cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop_signal(callback: Callable[[], None]) -> Iterator[None]:
    """While in the block, SIGTERM/SIGINT first schedule `callback` on the running loop, then
    go on to whatever handled them before (uvicorn's shutdown). Does nothing outside the main
    thread, where signals cannot be handled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        before = previous[sig]
        if callable(before):
            before(sig, frame)
        elif before == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous[sig])
