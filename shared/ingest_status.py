"""The ingest service's word on its source, as other services read it: the Redis hash
`STATUS_KEY` (`hanport:ingest:status`, docs/streams.md) that ingest rewrites every
`EVERY_SECONDS`, its reader, and the one-line explanation REST gives when no fresh reading
arrives (`/han`, `/readyz`, the live page).

    fields = read_status(await redis.hgetall(STATUS_KEY))  # {"state": "source", "reason": ...}
    explain(fields, now_ms)   # {"state", "reason", "fix", "updated"}: what to tell a user

The writer is `services/ingest/status.py`; `hanport doctor` reads the hash too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATUS_KEY = "hanport:ingest:status"
EVERY_SECONDS = 10.0  # ingest rewrites the hash this often
FRESH_SECONDS = 3 * EVERY_SECONDS  # a status older than this: ingest is not running

# Said when the hash is missing or older than FRESH_SECONDS: the ingest service is not there.
SILENT_STATE = "ingest"
SILENT_REASON = "the ingest service has not reported {since}"
SILENT_FIX = (
    "start the ingest service (`docker compose ps ingest`, `systemctl status hanport@ingest`); "
    "its log says why it stopped, and `hanport doctor` checks the meter side"
)


def read_status(fields: Mapping[Any, Any]) -> dict[str, str]:
    """The hash as HGETALL returns it (bytes, or str with decode_responses), as text."""

    def text(value: Any) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    return {text(k): text(v) for k, v in fields.items()}


def updated_ms(fields: Mapping[str, str]) -> int | None:
    """When ingest wrote the status, ms since the epoch; None when never (or unreadable)."""
    value = fields.get("updated", "")
    return int(value) if value.isdigit() else None


def is_fresh(fields: Mapping[str, str], now_ms: int) -> bool:
    """Whether the status was written within FRESH_SECONDS (ingest is running)."""
    updated = updated_ms(fields)
    return updated is not None and now_ms - updated <= FRESH_SECONDS * 1000


def explain(fields: Mapping[str, str], now_ms: int) -> dict[str, Any]:
    """What to tell a user waiting for readings: ingest's verdict (`state`, `reason`, `fix`,
    `updated` in ms) when it is fresh, else that the ingest service is silent."""
    updated = updated_ms(fields)
    if is_fresh(fields, now_ms):
        return {
            "state": fields.get("state", ""),
            "reason": fields.get("reason", ""),
            "fix": fields.get("fix", ""),
            "updated": updated,
        }
    since = (
        "yet (no status in Redis)"
        if updated is None
        else f"for {max(0, now_ms - updated) // 1000} s (status older than {FRESH_SECONDS:.0f} s)"
    )
    return {
        "state": SILENT_STATE,
        "reason": SILENT_REASON.format(since=since),
        "fix": SILENT_FIX,
        "updated": updated,
    }


def one_line(explained: Mapping[str, Any]) -> str:
    """`explain`'s answer as one sentence: "reason — fix" (just the reason without a fix)."""
    reason, fix = explained["reason"], explained["fix"]
    return f"{reason} — {fix}" if fix else reason
