"""shared/stale.py: the one stale rule (pure, no server)."""

from __future__ import annotations

from shared.reading import Reading
from shared.stale import NO_READING, age_s, is_stale, stale_reason

NOW = 1_764_152_400.0  # s since the epoch


def received_ago(seconds: float) -> Reading:
    ms = int((NOW - seconds) * 1000)
    return Reading(ts=ms - 5000, received=ms)  # the meter's clock does not count


def test_age_is_counted_from_when_the_gateway_received_it() -> None:
    assert age_s(received_ago(1.5), NOW) == 1.5
    assert age_s(received_ago(-2.0), NOW) == 0.0  # received "in the future": never negative
    assert age_s(None, NOW) is None


def test_stale_only_when_older_than_the_limit_or_missing() -> None:
    assert not is_stale(received_ago(30.0), 30.0, NOW)  # exactly at the limit: still fresh
    assert is_stale(received_ago(30.001), 30.0, NOW)
    assert is_stale(None, 30.0, NOW)


def test_reasons_say_how_old_and_the_limit() -> None:
    assert stale_reason(received_ago(3.0), 30.0, NOW) is None
    assert stale_reason(None, 30.0, NOW) == (NO_READING, None)
    assert stale_reason(received_ago(31.25), 30.0, NOW) == (
        "the newest reading is 31.2 s old (limit 30 s)",
        31.25,
    )
