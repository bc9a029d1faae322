"""What a source last knew about its port or connection: open or not, why not (the error as
the operating system gave it), and the line settings detection found. Serial and TCP sources
keep one (`source.status`); the ingest service and `hanport doctor` read it
(`services/ingest/diagnosis.py`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SourceStatus:
    opened: bool = False  # open now
    ever_opened: bool = False
    error: str = ""  # why the last open or read failed ("" when none)
    errno: int | None = None  # the OS error number behind it, when there is one
    line: str = ""  # line settings detection found, e.g. "2400 8E1" ("" until then)

    def open(self) -> None:
        self.opened, self.ever_opened, self.error, self.errno = True, True, "", None

    def failed(self, error: BaseException | str) -> None:
        self.opened = False
        self.error = str(error) or type(error).__name__
        self.errno = getattr(error, "errno", None)
        if self.errno is None and isinstance(error, BaseException):
            cause = error.__cause__ or error.__context__
            self.errno = getattr(cause, "errno", None)
