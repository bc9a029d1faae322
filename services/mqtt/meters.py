"""Several meters on one bridge: which one is the default, and each meter's topics, Home
Assistant device and what has been announced for it.

Consumes every reading the deliveries hand over (with the stream it came from) and the directory
of meters (`shared.meters.MeterDirectory`, read by the bridge); produces a `MeterState` per
meter, keyed by `shared.meters.meter_of`.

The default meter (`HANPORT_DEFAULT_METER`, else the meter on the classic stream, else the first
by name: `shared.meters.default_meter`) publishes exactly as a one-meter box always did: the
configured topics, the device `hanport_<serial>` and its unique ids. Every other meter publishes
under `<prefix>/meters/<name>/` and is a device of its own, `hanport_<serial>_<name>`. As soon as
the box has a meter other than the default one, every meter's device is `via_device` the box's
own device (`hanport_<serial>-box`), which is announced then; a one-meter box announces no box
device, so its discovery stays as it was. When which meter is the default, or whether there is a
box device, changes, every meter is announced again with its new topics and device.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.meters import MeterRecord, default_meter, equipment_name, meter_of
from shared.reading import Reading

from .discovery import SENSORS, Device, Sensor, box_node
from .topics import Topics


@dataclass
class MeterState:
    """One meter as the bridge publishes it."""

    name: str
    topics: Topics
    device: Device
    unannounced: tuple[Sensor, ...] = SENSORS  # catalogue sensors not announced yet
    announced: set[str] = field(default_factory=set)  # sub-meter sensors announced (slugs)
    last_reading: Reading | None = None


class Meters:
    """Every meter the bridge has seen or the directory lists; see the module docstring."""

    def __init__(self, classic_stream: str, configured: str | None = None) -> None:
        self.classic_stream = classic_stream
        self.configured = configured
        self.serial = ""
        self.base: Topics | None = None  # the default meter's topics (the settings')
        self.listed: set[str] = set()  # the directory's meters
        self.seen: set[str] = set()  # meters readings came from
        self.ids: dict[
            str, str
        ] = {}  # equipment id -> meter name (HANPORT_DEFAULT_METER may be one)
        self.classic: str | None = None  # the meter of the newest reading on the classic stream
        self.states: dict[str, MeterState] = {}
        self.box_announced = False
        self._layout: tuple[str | None, bool] = (None, False)

    def start(self, serial: str, base: Topics) -> None:
        self.serial, self.base = serial, base
        self._relayout()

    # --- which meters, which is the default ----------------------------------------------

    def names(self) -> list[str]:
        return sorted(self.listed | self.seen)

    @property
    def default(self) -> str | None:
        configured = self.configured
        if configured is not None and configured not in self.seen:
            configured = self.ids.get(configured, configured)  # given as an equipment id
        return default_meter(self.names(), configured, self.classic)

    @property
    def boxed(self) -> bool:
        """Whether the box has a meter other than the default one (then a box device)."""
        default = self.default
        return any(name != default for name in self.names())

    def set_directory(self, records: Iterable[MeterRecord]) -> None:
        """The directory as last read: its meters, and which of them writes the classic stream."""
        listed = set()
        for record in records:
            listed.add(record.name)
            if record.readings == self.classic_stream and self.classic is None:
                self.classic = record.name
        self.listed = listed
        self._relayout()

    def note(self, reading: Reading, stream: str) -> MeterState:
        """The state of the meter `reading` is from (read from `stream`)."""
        name = meter_of(reading)
        state = self.states.get(name)
        if state is not None and (stream != self.classic_stream or name == self.classic):
            return state  # the usual case: nothing changes
        if stream == self.classic_stream:
            self.classic = name
        self.seen.add(name)
        if reading.meter_id:
            self.ids[reading.meter_id] = self.ids[equipment_name(reading.meter_id)] = name
        self._relayout()
        return self.state(name, reading.meter_id)

    def state(self, name: str, meter_id: str | None = None) -> MeterState:
        state = self.states.get(name)
        if state is None:
            state = self.states[name] = MeterState(
                name, self._topics(name), self._device(name, meter_id)
            )
        return state

    # --- announcements ---------------------------------------------------------------------

    def reset_announcements(self) -> None:
        """Announce everything again (a new connection, Home Assistant restarted)."""
        self.box_announced = False
        for state in self.states.values():
            state.unannounced, state.announced = SENSORS, set()

    def _relayout(self) -> None:
        """When the default meter or the box device changed: new topics and devices, and every
        meter announced again (its last reading kept, to announce it with)."""
        layout = (self.default, self.boxed)
        if layout == self._layout or self.base is None:
            return
        self._layout = layout
        self.box_announced = False
        old, self.states = self.states, {}
        for name, previous in old.items():
            meter_id = previous.last_reading.meter_id if previous.last_reading else None
            self.state(name, meter_id).last_reading = previous.last_reading

    def _topics(self, name: str) -> Topics:
        assert self.base is not None
        return self.base if name == self.default else self.base.for_meter(name)

    def _device(self, name: str, meter_id: str | None) -> Device:
        if name == self.default:
            device = Device.of_box(self.serial)
        else:
            device = Device.of_meter(self.serial, name, meter_id)
        if not self.boxed:
            return device
        return Device(device.node, device.name, device.serial_number, box_node(self.serial))
