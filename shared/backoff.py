"""Reconnect delays: exponential with jitter, capped, reset after a success.

Every service uses it for Redis, the broker, the serial port and TCP sources, so an outage
never turns into a busy loop and many replicas do not reconnect in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.2
    attempts: int = field(default=0, init=False)

    def next_delay(self) -> float:
        """The delay before the next attempt; grows with each call until `reset`."""
        delay = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return delay * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self.attempts = 0
