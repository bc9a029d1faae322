"""What several benchmarks use: free ports, waiting for a listener, a process's CPU time, and
an always-granted entitlement (benchmarks measure serving, not licensing)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from shared.entitlements import Decision, Feature
from tests.servers import free_port, wait_for_port

__all__ = ["Granted", "cpu_seconds", "free_port", "wait_for_port"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Granted:
    """An entitlement source that grants every feature."""

    def decide(self, feature: Feature) -> Decision:
        return Decision(True, "benchmark")

    async def wait_until(self, feature: Feature, granted: bool) -> Decision:
        if not granted:
            await asyncio.Event().wait()
        return self.decide(feature)
