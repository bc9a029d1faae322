"""Stopping: `State.close_streams` ends every push stream at once (nothing half-sent: what was
queued is dropped whole, the client resumes after what it got), and `on_stop_signal` runs it
on SIGTERM before handing the signal on to the handler that was there (uvicorn's)."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

from services.rest.state import CLOSING, Snapshot, State
from services.rest.stopping import on_stop_signal
from tests.rest.readings import sample_readings


async def test_close_streams_ends_every_client_queue() -> None:
    state = State(stale_after=30, queue_size=3)
    first, second = state.subscribe(), state.subscribe()
    for number, reading in enumerate(sample_readings(2)):
        state.publish(f"{number + 1}-0", reading)
    state.close_streams()
    for queue in (first, second):
        assert queue.get_nowait() is CLOSING and queue.empty()
    state.publish("3-0", sample_readings(3)[2])  # no longer fanned out to them
    assert first.empty() and second.empty() and state.clients == 0
    late = state.subscribe()
    assert late.get_nowait() is CLOSING and state.clients == 0
    assert isinstance(state.latest, Snapshot) and state.latest.entry_id == "3-0"


async def test_stop_signal_closes_then_reaches_the_previous_handler() -> None:
    handed_on: list[int] = []

    def previous(sig: int, frame: FrameType | None) -> None:
        handed_on.append(sig)

    closed = asyncio.Event()
    original = signal.signal(signal.SIGTERM, previous)
    try:
        with on_stop_signal(closed.set):
            signal.raise_signal(signal.SIGTERM)
            await asyncio.wait_for(closed.wait(), 5)
            assert handed_on == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is previous  # put back on the way out
    finally:
        signal.signal(signal.SIGTERM, original)
