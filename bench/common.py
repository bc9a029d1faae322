"""What several benchmarks use: free ports, waiting for a listener, a process's CPU time, the
result of a request load (`Load`), and an always-granted entitlement (benchmarks measure
serving, not licensing)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from shared.entitlements import Decision, Feature
from tests.servers import free_port, wait_for_port

__all__ = ["Granted", "Load", "cpu_seconds", "free_port", "wait_for_port"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children: the live ones' own, the ended ones' as the
    parent counts them once it reaped them (PostgreSQL's backends)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):  # (ended meanwhile)
                total += tree_cpu_seconds(int(child))
    return total


@dataclass
class Load:
    """Requests answered under a load, over one or more rounds: their latencies (s), the wall
    time and the server's CPU time."""

    answered: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, latencies: list[float], seconds: float, cpu: float) -> None:
        self.answered += len(latencies)
        self.seconds += seconds
        self.cpu += cpu
        self.latencies += latencies

    @property
    def rate(self) -> float:
        return self.answered / self.seconds

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(len(ordered) * 0.99)] * 1000

    @property
    def cpu_us(self) -> float:
        """Server CPU time per answer: what the server costs, whatever else loads the machine."""
        return self.cpu / max(1, self.answered) * 1e6


class Granted:
    """An entitlement source that grants every feature."""

    def decide(self, feature: Feature) -> Decision:
        return Decision(True, "benchmark")

    async def wait_until(self, feature: Feature, granted: bool) -> Decision:
        if not granted:
            await asyncio.Event().wait()
        return self.decide(feature)
