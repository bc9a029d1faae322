"""Who an emulated device says it is: ids and MAC-like numbers derived from the reader's
serial, so they stay the same across restarts and differ between boxes."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field


def hex_id(serial: str, personality: str) -> str:
    """12 hex digits (a MAC's worth) from the serial and the personality, upper case."""
    digest = hashlib.sha256(f"{serial}/{personality}".encode()).hexdigest().upper()
    # the locally administered bit set, the multicast bit clear: never a real vendor's MAC
    first = (int(digest[:2], 16) | 0x02) & 0xFE
    return f"{first:02X}{digest[2:12]}"


@dataclass(frozen=True)
class Identity:
    serial: str  # the reader's serial
    version: str  # hanport's version
    started: float = field(default_factory=time.time)  # seconds since the epoch

    def mac(self, personality: str) -> str:
        return hex_id(self.serial, personality)
