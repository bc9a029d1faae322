"""What a source last knew about its port or connection: open or not, why not (the error as
the operating system gave it), and the line settings detection found; `changed` is set at each
open or failure. Serial and TCP sources
keep one (`source.status`); the ingest service and `hanport doctor` read it
(`services/ingest/diagnosis.py`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class SourceStatus:
    opened: bool = False  # open now
    ever_opened: bool = False
    error: str = ""  # why the last open or read failed ("" when none)
    errno: int | None = None  # the OS error number behind it, when there is one
    line: str = ""  # line settings detection found, e.g. "2400 8E1" ("" until then)
    probed: int = 0  # bytes detection read at line settings that gave no frames
    fruitless: int = 0  # detection rounds (every line setting tried) that found none
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def open(self) -> None:
        self.opened, self.ever_opened, self.error, self.errno = True, True, "", None
        self.changed.set()

    def failed(self, error: BaseException | str) -> None:
        self.opened = False
        self.error = str(error) or type(error).__name__
        self.errno = getattr(error, "errno", None)
        if self.errno is None and isinstance(error, BaseException):
            cause = error.__cause__ or error.__context__
            self.errno = getattr(cause, "errno", None)
        self.changed.set()
