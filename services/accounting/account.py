"""One meter's accounting state: its ledger of intervals, the power drawn since the import
register last moved, its monthly values, and the live tariff answer formed from them. Pure: the
service feeds readings and stores what `snapshot`, `rows` and `tariff_state` return.

- `MeterAccount.add(reading)` counts one reading (registers into the ledger; import power into
  the live window, so a meter that sends energy only hourly still has a window so far).
- `snapshot()` / `MeterAccount.restore(...)`: the state that is not in the stored intervals
  (baselines, entries applied, monthly values, the live window), as JSON-ready data.
- `rows(changed)`: the changed intervals as `IntervalRow`s, one per (period, start).
- `tariff_state(now_ms)`: the answer of `GET /meters/{id}/tariff` (see docs/accounting.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.reading import Reading
from shared.stream_id import StreamId

from . import seeds
from .intervals import (
    REGISTERS,
    Event,
    IntervalEnergy,
    MeterLedger,
    Period,
    Sample,
    from_ms,
    interval_start,
    next_start,
    to_ms,
)
from .tariffs import CapacityRule, billed_value, headroom, month_value, step_bounds, window_kw

# The REST `resolution` of each period, and back
RESOLUTIONS: dict[Period, str] = {"quarter": "15m", "hour": "1h", "day": "1d", "month": "1mo"}
PERIOD_OF: dict[str, Period] = {v: k for k, v in RESOLUTIONS.items()}
# The names of the registers' energies in answers (REST, MQTT)
ENERGY_NAMES = ("import", "export", "reactive_import", "reactive_export")
# Import power between two readings further apart than this is not integrated (the box was off)
POWER_GAP_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class IntervalRow:
    """One interval's import, export (kWh), reactive import, reactive export (kvarh)."""

    period: Period
    start_ms: int
    values: tuple[float, float, float, float]
    estimated: bool


def window_period(tariff: CapacityRule) -> Period:
    return "quarter" if tariff.window_minutes == 15 else "hour"


@dataclass
class LiveWindow:
    """Import energy (kWh) from power in the current tariff window since the import register's
    last sample (its part before that is in the ledger)."""

    start_ms: int = 0
    kwh: float = 0.0
    last_ts: int = 0
    last_w: float | None = None


@dataclass
class MeterAccount:
    meter: str
    zone: ZoneInfo
    tariff: CapacityRule
    ledger: MeterLedger
    applied: dict[str, str] = field(default_factory=dict)  # stream key -> last entry id counted
    monthly_kw: dict[str, float] = field(default_factory=dict)  # own month values, YYYY-MM
    meter_months_kw: dict[str, float] = field(default_factory=dict)  # the meter's 0-0:98.1.0
    meter_peak: tuple[int, float] | None = None  # the meter's 1-0:1.6.0: (ms, kW)
    live: LiveWindow = field(default_factory=LiveWindow)
    last_ts: int | None = None
    events: dict[str, int] = field(default_factory=dict)
    _seen_extras: object = field(default=None, repr=False, compare=False)

    @classmethod
    def new(cls, meter: str, zone: ZoneInfo, tariff: CapacityRule) -> MeterAccount:
        return cls(meter, zone, tariff, MeterLedger(meter, zone))

    # --- counting -------------------------------------------------------------------------

    def seen(self, stream: str, entry_id: str) -> bool:
        """Whether the entry was counted already (a redelivery after a crash between storing the
        state and acknowledging it)."""
        last = self.applied.get(stream)
        return last is not None and StreamId.parse(entry_id) <= StreamId.parse(last)

    def add(self, reading: Reading, stream: str = "", entry_id: str | None = None) -> list[Event]:
        values = {"ic": reading.ic, "ec": reading.ec, "ric": reading.ric, "rec": reading.rec}
        events = self.ledger.add(reading.ts, values)
        for event in events:
            self.events[event.kind] = self.events.get(event.kind, 0) + 1
        self._integrate(reading)
        if reading.extras:
            self._seed(reading)
        if self.last_ts is None or reading.ts > self.last_ts:
            self.last_ts = reading.ts
        if entry_id is not None:
            self.applied[stream] = entry_id
        return events

    def _integrate(self, reading: Reading) -> None:
        period = window_period(self.tariff)
        start = to_ms(interval_start(from_ms(reading.ts, self.zone), period, self.zone))
        live = self.live
        power = reading.pi[0] if reading.pi and reading.pi[0] is not None else None
        if power is None and reading.p and reading.p[0] is not None:
            power = max(0.0, reading.p[0])
        if reading.ic is not None or start != live.start_ms:
            # the register moved (its energy is in the ledger now) or a new window began
            live.start_ms, live.kwh = start, 0.0
        elif (
            live.last_w is not None
            and 0 < reading.ts - live.last_ts <= POWER_GAP_MS
            and reading.ts > start
        ):
            live.kwh += live.last_w * (reading.ts - max(live.last_ts, start)) / 3.6e9
        live.last_ts, live.last_w = reading.ts, power

    def _seed(self, reading: Reading) -> None:
        raw = (reading.extras.get(seeds.PEAK_CODE), reading.extras.get(seeds.HISTORY_CODE))
        if raw == self._seen_extras:
            return  # a meter repeats them in every telegram: parsed once per change
        self._seen_extras = raw
        peak = seeds.meter_peak(reading.extras, self.zone)
        if peak is not None:
            self.meter_peak = (to_ms(peak[0]), peak[1])
        months = seeds.monthly_peaks(reading.extras, self.zone)
        if months:
            self.meter_months_kw.update(months)

    # --- storing --------------------------------------------------------------------------

    def rows(self, changed: set[tuple[Period, int]]) -> list[IntervalRow]:
        out = []
        for period, start in sorted(changed):
            values = []
            estimated = False
            for register in REGISTERS:
                total = self.ledger.totals.get(register, {}).get(period, {}).get(start)
                values.append(total.kwh if total else 0.0)
                estimated = estimated or bool(total and total.estimated)
            out.append(
                IntervalRow(period, start, (values[0], values[1], values[2], values[3]), estimated)
            )
        return out

    def load_rows(self, rows: list[IntervalRow]) -> None:
        """Put stored intervals back into the ledger (after a restart)."""
        for row in rows:
            for register, kwh in zip(REGISTERS, row.values, strict=True):
                if kwh or row.estimated:
                    by_start = self.ledger.totals.setdefault(register, {}).setdefault(
                        row.period, {}
                    )
                    by_start[row.start_ms] = IntervalEnergy(kwh, row.estimated)

    def horizon_ms(self) -> int | None:
        """Intervals that start before this can no longer change: the month of the oldest
        register baseline (a gap is spread from its baseline on). None before any sample."""
        if not self.ledger.baselines:
            return None
        oldest = min(b.ts_ms for b in self.ledger.baselines.values())
        return to_ms(interval_start(from_ms(oldest, self.zone), "month", self.zone))

    def forget_before(self, horizon_ms: int) -> None:
        """Drop from memory the intervals before `horizon_ms` (they stay stored)."""
        for by_period in self.ledger.totals.values():
            for by_start in by_period.values():
                for start in [s for s in by_start if s < horizon_ms]:
                    del by_start[start]

    def snapshot(self) -> dict[str, Any]:
        return {
            "baselines": {k: [b.ts_ms, b.value] for k, b in self.ledger.baselines.items()},
            "applied": self.applied,
            "monthly_kw": self.monthly_kw,
            "meter_months_kw": self.meter_months_kw,
            "meter_peak": list(self.meter_peak) if self.meter_peak else None,
            "live": [self.live.start_ms, self.live.kwh, self.live.last_ts, self.live.last_w],
            "last_ts": self.last_ts,
            "events": self.events,
        }

    @classmethod
    def restore(
        cls, meter: str, zone: ZoneInfo, tariff: CapacityRule, data: dict[str, Any]
    ) -> MeterAccount:
        account = cls.new(meter, zone, tariff)
        account.ledger.baselines = {
            k: Sample(int(v[0]), float(v[1])) for k, v in data.get("baselines", {}).items()
        }
        account.applied = dict(data.get("applied", {}))
        account.monthly_kw = {k: float(v) for k, v in data.get("monthly_kw", {}).items()}
        account.meter_months_kw = {k: float(v) for k, v in data.get("meter_months_kw", {}).items()}
        peak = data.get("meter_peak")
        account.meter_peak = (int(peak[0]), float(peak[1])) if peak else None
        live = data.get("live") or [0, 0.0, 0, None]
        account.live = LiveWindow(int(live[0]), float(live[1]), int(live[2]), live[3])
        account.last_ts = data.get("last_ts")
        account.events = dict(data.get("events", {}))
        return account

    # --- the tariff -----------------------------------------------------------------------

    def month_windows(self, month_start_ms: int, month_end_ms: int) -> list[tuple[datetime, float]]:
        by_start = self.ledger.totals.get("ic", {}).get(window_period(self.tariff), {})
        return [
            (from_ms(start, self.zone), total.kwh)
            for start, total in by_start.items()
            if month_start_ms <= start < month_end_ms
        ]

    def tariff_state(self, now_ms: int | None = None) -> dict[str, Any]:
        """The live tariff answer at `now_ms` (default: the newest reading's time)."""
        tariff = self.tariff
        now_ms = now_ms if now_ms is not None else (self.last_ts or 0)
        now = from_ms(now_ms, self.zone)
        period = window_period(tariff)
        month = interval_start(now, "month", self.zone)
        month_start, month_end = to_ms(month), to_ms(next_start(month, "month", self.zone))
        window = interval_start(now, period, self.zone)
        window_ms = to_ms(window)
        window_end_ms = to_ms(next_start(window, period, self.zone))
        windows = self.month_windows(month_start, month_end)
        registered = self.ledger.totals.get("ic", {}).get(period, {}).get(window_ms)
        window_kwh = (registered.kwh if registered else 0.0) + (
            self.live.kwh if self.live.start_ms == window_ms else 0.0
        )
        seconds_left = max(0.0, (window_end_ms - now_ms) / 1000)
        present_w = (self.live.last_w or 0.0) if self.live.last_ts == now_ms else 0.0
        others = [w for w in windows if to_ms(w[0]) != window_ms]
        value = month_value(tariff, [*others, (window, window_kwh)])
        self.monthly_kw[seeds.month_key(now)] = value.kw
        self._close_previous_month(month)
        room = headroom(tariff, others, window, window_kwh, seconds_left, present_w)
        room_w = room.step_w if tariff.steps_kw else room.value_w
        projected_kwh = window_kwh + present_w * seconds_left / 3.6e6
        from_kw, to_kw = step_bounds(tariff, value.step)
        months = self._months_for_billing(seeds.month_key(now))
        answer: dict[str, Any] = {
            "meter": self.meter,
            "rule": tariff.name,
            "window": tariff.window_minutes,
            "period": seeds.month_key(now),
            "now": now.isoformat(),
            "now_ms": now_ms,
            "zone": str(self.zone),
            "peaks": [{"start": s.isoformat(), "kw": round(kw, 6)} for s, kw in value.peaks],
            "value_kw": round(value.kw, 6),
            "step": {"index": value.step, "from_kw": from_kw, "to_kw": to_kw},
            "window_start": window.isoformat(),
            "window_energy_kwh": round(window_kwh, 6),
            "projected_kw": round(window_kw(tariff, projected_kwh), 6),
            "present_w": present_w,
            "headroom_w": _finite(room_w),
            "headroom_value_w": _finite(room.value_w),
            "headroom_step_w": _finite(room.step_w),
            "billed_kw": round(billed_value(tariff, [months[k] for k in sorted(months)]), 6),
            "months_kw": {k: round(v, 6) for k, v in sorted(months.items())},
        }
        answer["energy"] = self.current_energy(now)
        if self.meter_peak is not None and seeds.month_key(
            from_ms(self.meter_peak[0], self.zone)
        ) == seeds.month_key(now):
            answer["meter_peak_kw"] = self.meter_peak[1]
            answer["meter_peak_difference_kw"] = round(value.kw - self.meter_peak[1], 6)
        return answer

    def current_energy(self, now: datetime) -> dict[str, dict[str, Any]]:
        """The interval holding `now` of each resolution: its start and energies so far."""
        out: dict[str, dict[str, Any]] = {}
        for period, resolution in RESOLUTIONS.items():
            start = interval_start(now, period, self.zone)
            entry: dict[str, Any] = {"start": start.isoformat()}
            for register, name in zip(REGISTERS, ENERGY_NAMES, strict=True):
                total = self.ledger.totals.get(register, {}).get(period, {}).get(to_ms(start))
                entry[name] = round(total.kwh, 6) if total else 0.0
            out[resolution] = entry
        return out

    def _close_previous_month(self, month: datetime) -> None:
        """The previous month's final value, while its windows are still in memory."""
        previous = interval_start(from_ms(to_ms(month) - 1, self.zone), "month", self.zone)
        windows = self.month_windows(to_ms(previous), to_ms(month))
        if windows:
            self.monthly_kw[seeds.month_key(previous)] = month_value(self.tariff, windows).kw

    def _months_for_billing(self, current: str) -> dict[str, float]:
        """The last 12 months' values, current one last: own figures, else the meter's
        history (seeding), each at least the rule's floor."""
        merged = {**self.meter_months_kw, **self.monthly_kw}
        kept = {k: max(v, self.tariff.floor_kw) for k, v in merged.items() if k <= current}
        return {k: kept[k] for k in sorted(kept)[-12:]}


def _finite(watts: float) -> float | None:
    """Watts rounded, or None (JSON null) when unbounded (the window does not count)."""
    return None if math.isinf(watts) else round(watts, 1)
