"""shared/service.py: a service process always ends after SIGTERM (a real subprocess): at once
when its work stops on the cancel, and within STOP_DEADLINE_S with status 1 when some task keeps
swallowing cancels; a failure ends it with status 1."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.service import STOP_DEADLINE_S

ROOT = Path(__file__).resolve().parents[1]

# argv[1]: "polite" stops on the cancel, "stubborn" swallows every cancel, "fails" raises Fatal
PROGRAM = r"""
import asyncio, sys
from shared.log import setup_logging
from shared.service import run
from shared.supervise import Fatal

async def main():
    print("ready", flush=True)
    if sys.argv[1] == "fails":
        raise Fatal("HANPORT_STREAM names a hash: delete it or name another key")
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if sys.argv[1] == "polite":
                raise

setup_logging("test", "INFO", "text")
raise SystemExit(run(main))
"""


def started(kind: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, kind],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_sigterm_stops_a_service_at_once() -> None:
    proc = started("polite")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


def test_a_task_that_swallows_every_cancel_cannot_keep_the_process_alive() -> None:
    proc = started("stubborn")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=STOP_DEADLINE_S + 5) == 1
    assert time.monotonic() - sent >= STOP_DEADLINE_S - 0.5
    assert proc.stderr is not None and "did not stop within" in proc.stderr.read()


def test_a_fatal_error_ends_it_with_status_1_and_its_message() -> None:
    proc = started("fails")
    assert proc.wait(timeout=5) == 1
    assert proc.stderr is not None
    assert "HANPORT_STREAM names a hash: delete it" in proc.stderr.read()
