"""A simulated three-phase meter: produces P1 telegrams (DSMR 5 / Nordic layout, valid CRC).

Consumes nothing but the time it is asked about; produces, per `telegram(at_ms)`, the bytes a
real meter would send at that moment: a household load curve (night base, morning and evening
peaks), solar production around midday that turns into export, voltages that move with load
and a slow wander, currents that follow power, and energy counters integrated from the powers
so they only grow. Solar yield follows the season. Deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from ..codec.p1.clock import DEFAULT_TIMEZONE, timezone
from ..codec.p1.parser import crc16

HEADER = "/HAN5\\hanport-simulator"
METER_ID = "HANPORTSIM0001"


def _bump(hour: float, centre: float, width: float) -> float:
    """A bell curve around `centre` (hours), wrapping at midnight."""
    distance = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-((distance / width) ** 2))


@dataclass
class MeterSimulator:
    """Telegrams of an imaginary three-phase meter with solar panels; call `telegram` with
    increasing times."""

    seed: int = 1
    tz: ZoneInfo | str = DEFAULT_TIMEZONE
    solar_peak_w: float = 5000.0
    import_kwh: float = 12345.678
    export_kwh: float = 2345.678
    reactive_import_kvarh: float = 345.678
    reactive_export_kvarh: float = 123.456
    _random: random.Random = field(init=False, repr=False)
    _season: float = field(default=1.0, init=False, repr=False)
    _last_ms: int | None = field(default=None, init=False, repr=False)
    _wander: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0], init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.tz = timezone(self.tz) if isinstance(self.tz, str) else self.tz

    def phase_powers(self, local_hour: float) -> tuple[list[float], list[float]]:
        """Import and export per phase (W) at a local hour of day."""
        rnd = self._random
        load = (
            250
            + 900 * _bump(local_hour, 7.5, 1.2)
            + 1800 * _bump(local_hour, 18.5, 2.0)
            + 400 * _bump(local_hour, 13.0, 3.0)
        )
        solar = (
            self.solar_peak_w
            * self._season
            * max(0.0, math.cos((local_hour - 13.0) / 7.0 * math.pi / 2))
        )
        shares = (0.45, 0.25, 0.30)
        imports: list[float] = []
        exports: list[float] = []
        for share in shares:
            net = load * share * rnd.uniform(0.85, 1.15) - solar / 3 * rnd.uniform(0.95, 1.0)
            imports.append(round(max(net, 0.0)))
            exports.append(round(max(-net, 0.0)))
        return imports, exports

    def telegram(self, at_ms: int) -> bytes:
        """The telegram the meter sends at `at_ms` (ms since the epoch), CRC included."""
        assert isinstance(self.tz, ZoneInfo)
        moment = datetime.fromtimestamp(at_ms / 1000, self.tz)
        hour = moment.hour + moment.minute / 60 + moment.second / 3600
        # Solar yield by season: full around midsummer (day 172), a sixth of it in midwinter.
        day = moment.timetuple().tm_yday
        self._season = 1 / 6 + 5 / 6 * (1 + math.cos(2 * math.pi * (day - 172) / 365)) / 2
        imports, exports = self.phase_powers(hour)
        total_import, total_export = sum(imports), sum(exports)
        reactive = [round(p * 0.12 + 20) for p in imports]
        if self._last_ms is not None and at_ms > self._last_ms:
            hours = (at_ms - self._last_ms) / 3_600_000
            self.import_kwh += total_import / 1000 * hours
            self.export_kwh += total_export / 1000 * hours
            self.reactive_import_kvarh += sum(reactive) / 1000 * hours
            self.reactive_export_kvarh += 5 / 1000 * hours
        self._last_ms = at_ms
        voltages, currents = [], []
        for phase in range(3):
            self._wander[phase] = max(
                -4.0, min(4.0, self._wander[phase] + self._random.uniform(-0.3, 0.3))
            )
            drop = (imports[phase] - exports[phase]) / 1000 * 0.8
            volts = 231.0 + self._wander[phase] - drop
            voltages.append(volts)
            currents.append((imports[phase] + exports[phase]) / volts)
        flag = "S" if moment.dst() else "W"
        lines = [
            HEADER,
            "",
            f"0-0:1.0.0({moment:%y%m%d%H%M%S}{flag})",
            f"0-0:96.1.0({METER_ID})",
            f"1-0:1.8.0({self.import_kwh:012.3f}*kWh)",
            f"1-0:2.8.0({self.export_kwh:012.3f}*kWh)",
            f"1-0:3.8.0({self.reactive_import_kvarh:012.3f}*kvarh)",
            f"1-0:4.8.0({self.reactive_export_kvarh:012.3f}*kvarh)",
            f"1-0:1.7.0({total_import / 1000:08.3f}*kW)",
            f"1-0:2.7.0({total_export / 1000:08.3f}*kW)",
            f"1-0:3.7.0({sum(reactive) / 1000:08.3f}*kvar)",
            "1-0:4.7.0(0000.005*kvar)",
        ]
        for phase, (imp, exp) in enumerate(zip(imports, exports, strict=True)):
            c = 21 + 20 * phase
            lines.append(f"1-0:{c}.7.0({imp / 1000:08.3f}*kW)")
            lines.append(f"1-0:{c + 1}.7.0({exp / 1000:08.3f}*kW)")
            lines.append(f"1-0:{c + 2}.7.0({reactive[phase] / 1000:08.3f}*kvar)")
        for phase in range(3):
            c = 32 + 20 * phase
            lines.append(f"1-0:{c}.7.0({voltages[phase]:05.1f}*V)")
        for phase in range(3):
            c = 31 + 20 * phase
            lines.append(f"1-0:{c}.7.0({currents[phase]:05.1f}*A)")
        frame = ("\r\n".join(lines) + "\r\n!").encode("ascii")
        return frame + f"{crc16(frame):04X}\r\n".encode("ascii")

    def telegrams(self, count: int, start_ms: int, interval_ms: int = 1000) -> list[bytes]:
        """`count` telegrams, `interval_ms` apart from `start_ms`."""
        return [self.telegram(start_ms + n * interval_ms) for n in range(count)]
