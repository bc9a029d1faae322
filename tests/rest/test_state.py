"""The in-memory state: newest reading by stream order, freshness, and slow clients cut off
(with their last delivered reading intact, so an SSE client resumes without a gap)."""

from __future__ import annotations

import time

import msgspec

from services.rest.state import Snapshot, State
from shared.reading import Reading
from tests.rest.readings import sample_readings


def fresh(n: int) -> list[Reading]:
    now = int(time.time() * 1000)
    return [msgspec.structs.replace(r, received=now) for r in sample_readings(n)]


async def test_a_client_too_far_behind_is_ended_after_what_it_already_has() -> None:
    state = State(stale_after=30, queue_size=2)
    queue = state.subscribe()
    one, two, three = fresh(3)
    state.publish("1-0", one)
    state.publish("2-0", two)
    state.publish("3-0", three)  # queue full: the client is ended
    assert state.clients == 0
    items = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [i.entry_id for i in items if isinstance(i, Snapshot)] == ["2-0"]
    assert items[-1] is None
    assert state.latest is not None and state.latest.entry_id == "3-0"


async def test_newest_by_stream_id_and_staleness() -> None:
    state = State(stale_after=5)
    assert state.stale_reason() == ("no reading received yet", None)
    one, two = fresh(2)
    state.publish("10-1", one)
    state.publish("10-0", two)  # older id (a catch-up after an outage): not the newest
    assert state.latest is not None and state.latest.entry_id == "10-1"
    assert state.stale_reason() is None
    later = time.time() + 60
    reason = state.stale_reason(later)
    assert reason is not None and "limit 5 s" in reason[0] and reason[1] is not None
    assert reason[1] >= 59
