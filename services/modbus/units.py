"""Several meters on one Modbus server: a unit id per meter.

Consumes every meter's newest readings (`update`, from a `Follower` over
`shared.meter_streams.MeterStreams`), the directory of meters (`set_directory`), the unit ids
of `HANPORT_MODBUS_UNITS` and the `modbus` license decision; produces the answer to a read of
any unit id (`async_getValues`, the datastore interface pymodbus's server calls):

- a unit id of `HANPORT_MODBUS_UNITS` answers from its meter's registers (a `RegisterStore`
  each, so a stale meter answers exception 0x0B on its unit only, and the others keep serving);
- any other unit id answers for the default meter exactly as a one-meter box does (the store
  `make_store` made; only `HANPORT_MODBUS_UNIT_ID` when that is set, others 0x0A): the default
  meter is `HANPORT_DEFAULT_METER`, else the meter on the classic stream, else the first by name
  (`shared.meters.default_meter`);
- a meter the license does not serve (a license naming other meters) answers 0x0A (gateway path
  unavailable) on its unit, logged once and counted (`shared.entitlements.MeterFilter`).

A meter is named in `HANPORT_MODBUS_UNITS` or `HANPORT_DEFAULT_METER` by its name on the box or
its equipment id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pymodbus.constants import ExcCodes

from shared.entitlements import Decision, MeterFilter
from shared.meters import MeterRecord, default_meter, equipment_name, meter_of
from shared.reading import Reading
from shared.stream import Entry

from .register_map import Identity, blocks
from .settings import ModbusSettings
from .store import ReadOnlyDevice, RegisterStore

Decide = Callable[[], Decision]


class Units(ReadOnlyDevice):
    """The datastore behind the server when it serves every meter (see the module docstring)."""

    def __init__(
        self,
        default: RegisterStore,
        meters: dict[int, tuple[str, RegisterStore]],
        *,
        classic_stream: str,
        configured: str | None = None,
    ) -> None:
        # SimCore.__init__ builds simulated devices; this answers from the stores.
        self.default = default  # the default meter's registers (unit ids not mapped)
        self.meters = meters  # unit id -> (meter, its registers)
        self.classic_stream = classic_stream
        self.configured = configured
        self.decide: Decide | None = None  # the `modbus` license decision (set by the service)
        self.filter = MeterFilter("modbus")
        self.latest: dict[str, Reading] = {}  # every meter's newest reading, by name
        self.listed: set[str] = set()  # the directory's meters
        self.own_stream: set[str] = set()  # meters the directory lists with a stream of their own
        self.classic: str | None = None  # the meter of the newest reading on the classic stream
        self.unconfirmed: set[str] = set()  # new meters not (yet) known to have their own stream
        self.default_name: str | None = None

    @classmethod
    def of(cls, settings: ModbusSettings, default: RegisterStore) -> Units:
        """The units of `settings` around the default meter's store (its identity's serial and
        version; each meter's says its own unit id)."""
        meters = {}
        for unit, name in settings.units().items():
            identity = Identity(
                serial=default.identity.serial, version=default.identity.version, unit_id=unit
            )
            store = RegisterStore(
                blocks(settings.modbus_sunspec_model),
                identity,
                unit_id=None,  # Units routes by unit id
                stale_after=settings.modbus_stale_after,
                clock=default.clock,
            )
            meters[unit] = (name, store)
        return cls(
            default, meters, classic_stream=settings.stream, configured=settings.default_meter
        )

    # ------------------------------------------------------------ readings in

    def update(self, batch: list[Entry]) -> None:
        """A batch of one meter's readings: its newest into the stores that serve that meter."""
        reading = batch[-1][1]
        name = meter_of(reading)
        self.latest[name] = reading
        if name not in self.own_stream and name != self.classic:
            # a meter without a stream of its own writes the classic one; one that is new while
            # another does, on a box with named meters, is taken for it only once the directory
            # does not list it (a meter that appeared just now may not be in the copy read last)
            if self.classic is None or not self.own_stream:
                self.classic = name
            else:
                self.unconfirmed.add(name)
        ids = (reading.meter_id, equipment_name(reading.meter_id)) if reading.meter_id else ()
        for meter, store in self.meters.values():
            if meter == name or meter in ids:
                store.update(reading)
        self._serve_default()

    def set_directory(self, records: Iterable[MeterRecord]) -> None:
        """The directory as last read: which meters there are, and which have their own stream
        (the others write the classic one)."""
        records = list(records)
        self.listed = {r.name for r in records}
        self.own_stream = {r.name for r in records if r.readings != self.classic_stream}
        if self.classic in self.own_stream:
            self.classic = None
        for name in sorted(self.unconfirmed - self.own_stream, key=self._received):
            self.classic = name  # the newest reading on the classic stream wins
        self.unconfirmed.clear()
        self._serve_default()

    def _received(self, name: str) -> int:
        return self.latest[name].received if name in self.latest else 0

    def _serve_default(self) -> None:
        """Keep the default store on the default meter's newest reading."""
        names = sorted(set(self.latest) | self.listed)
        default = self._resolve(default_meter(names, self.configured, self.classic))
        reading = self.latest.get(default) if default is not None else None
        if default != self.default_name or (
            reading is not None and reading is not self.default.reading
        ):
            self.default_name = default
            if reading is not None or self.default.reading is not None:
                self.default.update(reading)

    def _resolve(self, name: str | None) -> str | None:
        """A configured default given as an equipment id: the name of the meter that has it."""
        if name is None or name in self.latest:
            return name
        return next(
            (
                meter
                for meter, reading in self.latest.items()
                if reading.meter_id and name in (reading.meter_id, equipment_name(reading.meter_id))
            ),
            name,
        )

    def ages(self) -> list[tuple[str, str, float]]:
        """(meter, unit id, seconds since its newest reading; NaN: none) of every unit id mapped,
        and of the default meter (`default`)."""
        out = []
        for unit, (name, store) in sorted(self.meters.items()):
            age = store.age()
            out.append((name, str(unit), float("nan") if age is None else age))
        age = self.default.age()
        out.append((self.default_name or "", "default", float("nan") if age is None else age))
        return out

    # ------------------------------------------------------------ requests in

    def device_ids(self) -> list[int]:
        return [0]

    def read(self, unit: int, function: int, address: int, count: int) -> list[int] | ExcCodes:
        mapped = self.meters.get(unit)
        if mapped is None:
            name, store = self.default_name, self.default
        else:
            name, store = mapped
        if name is not None and not self._serves(name, store.reading):
            return ExcCodes.GATEWAY_PATH_UNAVIABLE
        return store.read(unit, function, address, count)

    def _serves(self, name: str, reading: Reading | None) -> bool:
        if self.decide is None:
            return True
        known = meter_of(reading) if reading is not None else name
        meter_id = reading.meter_id if reading is not None else None
        return self.filter.serves(self.decide(), known, meter_id)
