"""A simulated meter behind a pseudo-terminal for the serial tests.

A pty ignores parity and really ignores speed too, so the simulator reads the speed the reader
set from the pty's termios: at the meter's speed it sends its frames, at any other it sends line
noise, as a real port at the wrong speed shows."""

from __future__ import annotations

import os
import pty
import random
import termios
import threading


class Meter:
    """Writes to the pty master: `frames` in turn while the reader's speed is `baud`, line noise
    otherwise."""

    def __init__(self, frames: list[bytes], baud: int = termios.B2400) -> None:
        self.frames = frames
        self.baud = baud
        self.master, self.slave = pty.openpty()
        self.path = os.ttyname(self.slave)
        os.set_blocking(self.master, False)  # nobody reading: bytes are lost, as on a real line
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.noise = random.Random(7)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            speed = termios.tcgetattr(self.master)[5]
            right = speed == self.baud
            data = self.frames[n % len(self.frames)] if right else self.noise.randbytes(200)
            n += 1
            try:
                os.write(self.master, data)
            except BlockingIOError:
                pass
            except OSError:
                return
            self.stop.wait(0.05)  # the meter's pace

    def __enter__(self) -> Meter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        os.close(self.master)
        os.close(self.slave)
