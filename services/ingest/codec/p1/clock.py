"""Meter clocks as P1 telegrams send them: text in, ms since the epoch out.

`parse_timestamp` reads DSMR's `YYMMDDhhmmssX` (X = `S` summer / `W` winter, which settles the
hour that repeats when clocks go back), `YYYYMMDDhhmmssX` and `YYYY-MM-DD hh:mm:ss`. The start
of each hour is computed once (`functools.lru_cache`, a pure function) and the minutes and
seconds added to it, so a meter sending every second costs no `datetime` per telegram.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Europe/Helsinki"

# Meter clock formats seen in the wild, tried in order: (pattern, century added to the year).
_TIME_FORMATS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)([SW]?)"), 2000),  # DSMR YYMMDDhhmmssX
    (re.compile(r"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)([SW]?)"), 0),  # YYYYMMDDhhmmssX
    (re.compile(r"(\d{4})-?(\d\d)-?(\d\d)[ T](\d\d):(\d\d):(\d\d)()"), 0),  # 20240111 09:35:00
)


@lru_cache(maxsize=16)
def timezone(name: str) -> ZoneInfo:
    """The zone meter clocks are read in; raises `ZoneInfoNotFoundError` for unknown names."""
    return ZoneInfo(name)


def parse_timestamp(text: str, tz: ZoneInfo) -> int | None:
    """Meter clock text to ms since the epoch, or None when it is no time we know."""
    if len(text) == 13 and text[:12].isdigit():  # DSMR: the hour's start, then arithmetic
        start = _hour_start(text[:8], text[12], tz)
        if start is None:
            return None
        minutes, seconds = int(text[8:10]), int(text[10:12])
        if minutes > 59 or seconds > 59:
            return None
        return start + minutes * 60_000 + seconds * 1000
    return _parse_timestamp(text, tz)


@lru_cache(maxsize=256)
def _hour_start(hour: str, flag: str, tz: ZoneInfo) -> int | None:
    """The start of DSMR hour `YYMMDDhh` with its S/W flag, in ms (None: no such hour)."""
    return _parse_timestamp(hour + "0000" + flag, tz)


def _parse_timestamp(text: str, tz: ZoneInfo) -> int | None:
    for pattern, century in _TIME_FORMATS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        y, mo, d, h, mi, s, flag = match.groups()
        try:
            moment = datetime(
                int(y) + century,
                int(mo),
                int(d),
                int(h),
                int(mi),
                int(s),
                tzinfo=tz,
                fold=1 if flag == "W" else 0,
            )
        except ValueError:
            return None
        return int(moment.timestamp()) * 1000
    return None
