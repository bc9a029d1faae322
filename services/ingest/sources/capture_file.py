"""A capture file replayed (`file:///path?pace=recorded|fast`): as fast as possible, or at the
pace its meter clocks say; the source ends after the last byte."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from ..codec.p1.clock import DEFAULT_TIMEZONE, parse_timestamp, timezone
from ..metrics import SOURCE_CONNECTED
from .spec import SourceSpec

log = logging.getLogger(__name__)
READ_SIZE = 65536


_CLOCK = re.compile(rb"0-0:1\.0\.0\(([^)\r\n]*)\)")
_TELEGRAM_START = re.compile(rb"(?:^|\n)/")


@dataclass
class FileSource:
    """A capture replayed as fast as possible or at its recorded pace: the gaps between the
    meter clocks of successive telegrams (`default_gap` seconds when a telegram has none)."""

    spec: SourceSpec
    tz: ZoneInfo | str = DEFAULT_TIMEZONE
    default_gap: float = 1.0
    max_gap: float = 60.0

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            data = await asyncio.to_thread(Path(self.spec.path).read_bytes)
        except OSError as error:
            log.error("cannot read the capture %s: %s", self.spec.path, error.strerror or error)
            return
        SOURCE_CONNECTED.set(1)
        if self.spec.pace == "fast":
            for start in range(0, len(data), READ_SIZE):
                yield data[start : start + READ_SIZE]
            return
        zone = timezone(self.tz) if isinstance(self.tz, str) else self.tz
        starts = [m.end() - 1 for m in _TELEGRAM_START.finditer(data)] or [0]
        if starts[0] != 0:
            starts.insert(0, 0)
        previous: int | None = None
        for index, start in enumerate(starts):
            piece = data[start : starts[index + 1] if index + 1 < len(starts) else len(data)]
            clock = _CLOCK.search(piece)
            moment = parse_timestamp(clock.group(1).decode("latin-1"), zone) if clock else None
            if index:
                gap = self.default_gap
                if moment is not None and previous is not None:
                    gap = min(max((moment - previous) / 1000, 0.0), self.max_gap)
                await asyncio.sleep(gap)
            previous = moment
            yield piece
