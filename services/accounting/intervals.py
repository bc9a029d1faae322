"""Interval boundaries by the meter's local clock, and energy split into those intervals.

What this module holds, top to bottom:

- `interval_start`, `next_start`, `interval_starts`: where a quarter-hour, hour, day or month
  begins in a time zone (zoneinfo), as aware datetimes. Days follow daylight saving time: in
  Europe/Oslo 2026-03-29 has 23 hours (92 quarter-hours) and 2026-10-25 has 25 (100).
- `split_energy`: from two successive samples of one energy register, the energy of each interval
  the gap spans, spread in proportion to time; marked estimated when the gap is longer than the
  interval or longer than a threshold.
- `step_register`: one register's next sample against its baseline: a register that goes down
  (meter replaced or reset) starts a new baseline, a sample whose time does not move forward is
  left out; both say so in an `Event`, and neither creates nor loses energy.
- `MeterLedger`: per-interval totals of import, export, reactive import and reactive export for
  one meter, fed reading by reading; `Accounts`: one ledger per meter, fed `Reading`s.

Intervals are keyed by their start in milliseconds since the Unix epoch, never by the aware
datetime: two local times that differ only by `fold` (the repeated autumn hour) compare equal in
Python, epoch milliseconds do not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.reading import Reading

Period = Literal["quarter", "hour", "day", "month"]
PERIODS: tuple[Period, ...] = ("quarter", "hour", "day", "month")

# The registers a reading carries (shared/reading.py): import/export kWh, reactive kvarh
Register = Literal["ic", "ec", "ric", "rec"]
REGISTERS: tuple[Register, ...] = ("ic", "ec", "ric", "rec")

_CLOCK_MINUTES: dict[Period, int] = {"quarter": 15, "hour": 60}


def to_ms(instant: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime."""
    return round(instant.timestamp() * 1000)


def from_ms(ts_ms: int, zone: ZoneInfo) -> datetime:
    """The aware local datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(zone)


def interval_start(instant: datetime, period: Period, zone: ZoneInfo) -> datetime:
    """The start of the `period` holding `instant` (aware), by the clock in `zone`."""
    local = instant.astimezone(zone)
    if period in _CLOCK_MINUTES:
        minutes = _CLOCK_MINUTES[period]
        # replace keeps `fold`, so the repeated autumn hour stays itself
        return local.replace(minute=local.minute // minutes * minutes, second=0, microsecond=0)
    if period == "day":
        return datetime(local.year, local.month, local.day, tzinfo=zone)
    if period == "month":
        return datetime(local.year, local.month, 1, tzinfo=zone)
    raise ValueError(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")


def next_start(start: datetime, period: Period, zone: ZoneInfo) -> datetime:
    """The start of the interval after the one beginning at `start`."""
    local = start.astimezone(zone)
    if period in _CLOCK_MINUTES:
        later = local.astimezone(UTC) + timedelta(minutes=_CLOCK_MINUTES[period])
        return interval_start(later, period, zone)
    if period == "day":
        day = local.date() + timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=zone)
    if period == "month":
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return datetime(year, month, 1, tzinfo=zone)
    raise ValueError(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")


def interval_starts(
    begin: datetime, end: datetime, period: Period, zone: ZoneInfo
) -> Iterator[datetime]:
    """The starts of every `period` overlapping [begin, end), the first at or before `begin`."""
    start = interval_start(begin, period, zone)
    end_ms = to_ms(end)
    while to_ms(start) < end_ms:
        yield start
        start = next_start(start, period, zone)


@dataclass(frozen=True)
class Share:
    """The energy one interval gets from one gap between samples."""

    start_ms: int
    kwh: float
    estimated: bool


def split_energy(
    t0_ms: int,
    kwh0: float,
    t1_ms: int,
    kwh1: float,
    period: Period,
    zone: ZoneInfo,
    estimate_over_ms: int,
) -> list[Share]:
    """The energy between two samples of one register, spread over the intervals (t0, t1].

    Each interval gets the register's rise in proportion to the time of the gap it covers; the last
    one gets the remainder, so the shares add up to `kwh1 - kwh0` (to float rounding). All are estimated when
    the gap is longer than the interval it touches or longer than `estimate_over_ms`.
    Needs `t1_ms > t0_ms` and `kwh1 >= kwh0` (`step_register` sees to both).
    """
    if t1_ms <= t0_ms or kwh1 < kwh0:
        raise ValueError(f"need a later, not lower sample: ({t0_ms}, {kwh0}) -> ({t1_ms}, {kwh1})")
    delta = kwh1 - kwh0
    gap = t1_ms - t0_ms
    # energy at t0 was counted up to t0: the gap is (t0, t1], so start from the interval of t0 + 1
    starts = [
        to_ms(s)
        for s in interval_starts(from_ms(t0_ms + 1, zone), from_ms(t1_ms, zone), period, zone)
    ]
    bounds = starts[1:] + [t1_ms]
    shortest = min(to_ms(next_start(from_ms(s, zone), period, zone)) - s for s in starts)
    estimated = gap > shortest or gap > estimate_over_ms
    shares: list[Share] = []
    given = 0.0
    for index, start in enumerate(starts):
        if index == len(starts) - 1:
            kwh = max(0.0, delta - given)
        else:
            covered = min(bounds[index], t1_ms) - max(start, t0_ms)
            kwh = delta * covered / gap
            given += kwh
        shares.append(Share(start, kwh, estimated))
    return shares


@dataclass(frozen=True)
class Sample:
    """One register reading: when (ms since the epoch) and how much (kWh or kvarh)."""

    ts_ms: int
    value: float


EventKind = Literal["reset", "clock_back"]


@dataclass(frozen=True)
class Event:
    """Something a register did that was not a plain rise, and what was done about it.

    `reset`: the register went down (meter replaced or reset); the new value is the new baseline,
    no energy is counted for that gap. `clock_back`: the sample's time was not after the baseline's
    (clock jump, repeated or out-of-order sample); the sample is left out and the baseline kept, so
    its energy is counted with the next sample that is later.
    """

    kind: EventKind
    register: str
    before: Sample
    after: Sample


def step_register(
    baseline: Sample | None,
    sample: Sample,
    register: str,
    period: Period,
    zone: ZoneInfo,
    estimate_over_ms: int,
) -> tuple[Sample, list[Share], Event | None]:
    """The new baseline, the energy shares and any event after one more sample of a register."""
    if baseline is None:
        return sample, [], None
    if sample.ts_ms <= baseline.ts_ms:
        if sample == baseline:
            return baseline, [], None
        return baseline, [], Event("clock_back", register, baseline, sample)
    if sample.value < baseline.value:
        return sample, [], Event("reset", register, baseline, sample)
    if sample.value == baseline.value:
        return sample, [], None
    shares = split_energy(
        baseline.ts_ms, baseline.value, sample.ts_ms, sample.value, period, zone, estimate_over_ms
    )
    return sample, shares, None


DEFAULT_ESTIMATE_OVER_MS = 61 * 60 * 1000


@dataclass
class IntervalEnergy:
    """One interval's total for one register; estimated if any part of it was."""

    kwh: float = 0.0
    estimated: bool = False


@dataclass
class MeterLedger:
    """Per-interval totals of every register of one meter, fed one reading at a time.

    `totals[register][period][start_ms]`. Registers the meter did not send this time (`None`, as
    Nordic meters send energy only hourly) keep their baseline until the next value comes.
    """

    meter_id: str
    zone: ZoneInfo
    # a gap longer than this marks its intervals estimated; an hour and a minute by default, so a
    # Nordic meter's hourly registers fill their hours as measured
    estimate_over_ms: int = DEFAULT_ESTIMATE_OVER_MS
    periods: tuple[Period, ...] = PERIODS
    baselines: dict[str, Sample] = field(default_factory=dict)
    totals: dict[str, dict[Period, dict[int, IntervalEnergy]]] = field(default_factory=dict)
    # (period, start_ms) of every interval whose total changed since the owner last cleared it
    # (the accounting service stores those, then clears the set)
    changed: set[tuple[Period, int]] = field(default_factory=set)
    # period -> [start, end) ms of the interval the last split ended in (a cache: see `add`)
    _bounds: dict[Period, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)

    def add(self, ts_ms: int, values: Mapping[str, float | None]) -> list[Event]:
        """Count one reading's registers (`{"ic": 12.3, "ec": None, ...}`); the events it caused."""
        events: list[Event] = []
        for register in REGISTERS:
            value = values.get(register)
            if value is None:
                continue
            sample = Sample(ts_ms, float(value))
            baseline = self.baselines.get(register)
            new_baseline: Sample | None = None
            for period in self.periods:
                bounds = self._bounds.get(period)
                if (
                    baseline is not None
                    and bounds is not None
                    and sample.value > baseline.value
                    and baseline.ts_ms < sample.ts_ms
                    and bounds[0] <= baseline.ts_ms + 1
                    and sample.ts_ms <= bounds[1]
                ):
                    # the common case, without a time zone lookup: the gap lies in the interval
                    # the last split ended in; what split_energy gives for it, exactly
                    gap = sample.ts_ms - baseline.ts_ms
                    estimated = gap > bounds[1] - bounds[0] or gap > self.estimate_over_ms
                    shares = [Share(bounds[0], sample.value - baseline.value, estimated)]
                    new_baseline, event = sample, None
                else:
                    new_baseline, shares, event = step_register(
                        baseline, sample, register, period, self.zone, self.estimate_over_ms
                    )
                    if shares:
                        last = shares[-1].start_ms
                        end = to_ms(next_start(from_ms(last, self.zone), period, self.zone))
                        self._bounds[period] = (last, end)
                self._count(register, period, shares)
                if event is not None and period == self.periods[0]:
                    events.append(event)
            if new_baseline is not None:
                self.baselines[register] = new_baseline
        return events

    def _count(self, register: str, period: Period, shares: list[Share]) -> None:
        if not shares:
            return
        by_start = self.totals.setdefault(register, {}).setdefault(period, {})
        for share in shares:
            total = by_start.setdefault(share.start_ms, IntervalEnergy())
            total.kwh += share.kwh
            total.estimated = total.estimated or share.estimated
            self.changed.add((period, share.start_ms))


@dataclass
class Accounts:
    """One `MeterLedger` per meter, fed the readings of every meter (keyed by `meter_id`; a
    reading without one counts for the meter id "")."""

    zone: ZoneInfo
    estimate_over_ms: int = DEFAULT_ESTIMATE_OVER_MS
    meters: dict[str, MeterLedger] = field(default_factory=dict)

    def add(self, reading: Reading) -> list[Event]:
        """Count one reading; the events it caused."""
        meter_id = reading.meter_id or ""
        ledger = self.meters.get(meter_id)
        if ledger is None:
            ledger = MeterLedger(meter_id, self.zone, self.estimate_over_ms)
            self.meters[meter_id] = ledger
        values = {"ic": reading.ic, "ec": reading.ec, "ric": reading.ric, "rec": reading.rec}
        return ledger.add(reading.ts, values)
