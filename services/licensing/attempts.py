"""Failed admin-token attempts on the licensing API, per client: guessing the token is slowed to
`limit` tries per `window_s` per client address, and the log gets one summary line per window
instead of one line per failure.

Pure bookkeeping with a clock the caller may pass (tests); no I/O but the summary log line.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16  # a shorter admin token is refused at start
LIMIT = 5  # failed attempts per client per window ...
WINDOW_S = 60.0  # ... after which that client is refused until the oldest leaves the window
MAX_CLIENTS = 4096  # clients remembered (the oldest are forgotten first)


class FailedAttempts:
    def __init__(
        self,
        limit: int = LIMIT,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._since_summary = 0  # failures (and refused tries) since the last summary line
        self._clients: set[str] = set()
        self._summary_at: float | None = None

    def wait_s(self, client: str) -> float | None:
        """Seconds `client` must wait before its token is looked at again; None: go ahead."""
        failures = self._recent(client)
        if len(failures) < self.limit:
            return None
        self._noted(client)
        return max(0.0, failures[0] + self.window_s - self.clock())

    def failed(self, client: str) -> None:
        """A wrong or missing token from `client`."""
        failures = self._recent(client)
        failures.append(self.clock())
        self._failures[client] = failures
        if len(self._failures) > MAX_CLIENTS:
            del self._failures[next(iter(self._failures))]
        self._noted(client)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.pop(client, deque())  # re-inserted: newest clients last
        horizon = self.clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if failures:
            self._failures[client] = failures
        return failures

    def _noted(self, client: str) -> None:
        """Count a refused try; log a summary at the first one and then at most once a window."""
        self._since_summary += 1
        self._clients.add(client)
        now = self.clock()
        if self._summary_at is not None and now - self._summary_at < self.window_s:
            return
        clients = sorted(self._clients)
        log.warning(
            "%d admin request(s) refused for a wrong or missing token (or too many tries) in "
            "the last %.0f s, from %s; each client may try %d times per %.0f s",
            self._since_summary,
            self.window_s if self._summary_at is not None else 0,
            ", ".join(clients[:5]) + (f" and {len(clients) - 5} more" if len(clients) > 5 else ""),
            self.limit,
            self.window_s,
        )
        self._summary_at = now
        self._since_summary = 0
        self._clients.clear()
