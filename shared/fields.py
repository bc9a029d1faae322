"""The field catalogue: every value of a `Reading`, described once, for every interface.

`FIELDS` holds one `Field` row per attribute of `Reading` (shared/reading.py) that some interface
shows: its key (the attribute, and the key in the Cozify JSON), human name, unit, a sentence
describing it, its positions (a scalar, Cozify's `[total, L1, L2, L3]` or `[L1, L2, L3]`), and
how each interface shows it:

| row attribute | interface | module that derives from it |
|---|---|---|
| `home_assistant` | MQTT discovery sensor (device/state class) | services/mqtt/discovery.py |
| `topic` | MQTT split sub-topic | services/mqtt/topics.py |
| `gauge` | Prometheus gauge and its labels | shared/meter_metrics.py, deploy/grafana/dashboard.py |
| `register` | Modbus native map: address, type, text | services/modbus/register_map.py, docs.py |
| `description` | REST/OpenAPI description of the key | services/rest/models.py |

An interface that is None does not show the value. `values(fields)` expands rows into `Value`s,
one per number the meter sends (`p` gives p[0] total, p[1] L1, p[2] L2, p[3] L3), and each
`Value` names itself for every consumer the same way: `path` (`p[1]`, the Cozify JSON path and
the Modbus value name), `column` (`p_l1`, a flat name for exports), `phase` (`l1`), `name` and
`slug` (`Power L1`, `power_l1`); `value.of(reading)` (or `getter(value)` in per-reading loops)
reads it. `showing(interface, values)` keeps those an interface shows.

The table is checked when this module is imported (`check`): every key must be an attribute of
`Reading` of the shape its positions say, and names that must be unique are. A misspelt row
stops every service at start with a message naming the row, instead of a value silently missing.

How to add a field
------------------
1. Add the attribute to `Reading` in shared/reading.py (default None: the meter may not send it),
   and have the decoders fill it (services/ingest/obis.py maps OBIS codes to keys).
2. Add a `Field` row to `ELECTRICAL` (the values of the Cozify message) or `OTHER` below, with
   `positions` for an array. Give it only the interfaces that should show it:
   `home_assistant=HomeAssistant(device_class, state_class)` for a Home Assistant sensor (a
   device class Home Assistant 2025.1 knows, or None: tests/clients checks with its code),
   `topic=Topic("sub/topic")` for a split topic, `gauge=Series(METRIC, (label values...))` for a
   Prometheus series (new metrics are `Metric` constants here), `register=Register(type,
   address, text)` for the Modbus native map (a free address after the last one of the map in
   docs/modbus.md: clients address registers by number, so existing ones never move).
3. Regenerate what is generated: `python -m services.modbus.docs` (docs/modbus.md),
   `python deploy/grafana/dashboard.py` when a panel uses it, and the golden files of the
   interfaces that changed on purpose (`python -m tests.fields.snapshot`, then read the diff).

A new consumer (an export's column names, an emulated device's table) adds an attribute to
`Field` or walks `values()`; per-phase names come from `Value`, never from a second table.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .reading import Reading

Phase = Literal["total", "l1", "l2", "l3"]
SCALAR: tuple[Phase, ...] = ()
TOTAL_AND_PHASES: tuple[Phase, ...] = ("total", "l1", "l2", "l3")  # Cozify's p, pi, pe, r
PHASES: tuple[Phase, ...] = ("l1", "l2", "l3")  # Cozify's u, i

MEASUREMENT = "measurement"
TOTAL_INCREASING = "total_increasing"


class FieldError(ValueError):
    """A row of the catalogue does not fit `Reading` or clashes with another row."""


@dataclass(frozen=True)
class HomeAssistant:
    """A Home Assistant sensor per value (name and entity id come from the field's name).
    `device_class` None: no device class (Home Assistant before 2025.6 refuses a config whose
    device class it does not know, so only those of the oldest version supported are used)."""

    device_class: str | None
    state_class: str
    per_phase: bool = True  # False: only the total of an array gets a sensor


@dataclass(frozen=True)
class Topic:
    """An MQTT split sub-topic under the topic prefix; phases add `/l1`..`/l3`."""

    path: str
    per_phase: bool = True  # False: only the total of an array gets a topic


@dataclass(frozen=True)
class Metric:
    """A Prometheus gauge; a field's `Series` gives its label values."""

    name: str
    help: str
    labels: tuple[str, ...] = ()  # `phase` last when the fields it shows have positions


@dataclass(frozen=True)
class Series:
    """Where a field's values go among a metric's series: the fixed label values (the phase
    label is added per position) and the divisor from the reading's unit (ms -> s: 1000)."""

    metric: Metric
    labels: tuple[str, ...] = ()
    divisor: int = 1


@dataclass(frozen=True)
class Register:
    """The field in the Modbus native map: register type (a name of
    services/modbus/register_map.py), address of its first value (an array's values follow
    each other), the text in docs/modbus.md (phases add ` total`, ` L1`...). `status` values
    answer even when the data is stale."""

    type: str
    address: int
    doc: str
    status: bool = False


@dataclass(frozen=True)
class Field:
    """One attribute of `Reading` and how every interface shows it."""

    key: str  # attribute of `Reading` and key of the Cozify JSON
    name: str  # human name, "Power import"; per phase "Power import L1"
    unit: str  # the reading's unit (shared/reading.py)
    description: str  # one sentence for API documentation
    positions: tuple[Phase, ...] = SCALAR
    home_assistant: HomeAssistant | None = None
    topic: Topic | None = None
    gauge: Series | None = None
    register: Register | None = None


@dataclass(frozen=True)
class Value:
    """One number (or text) of a reading: a scalar field, or one position of an array field."""

    field: Field
    index: int | None = None  # position in the array; None for a scalar

    @property
    def phase(self) -> Phase | None:
        """`total`, `l1`, `l2`, `l3`; None for a scalar."""
        return None if self.index is None else self.field.positions[self.index]

    @property
    def per_phase(self) -> bool:
        """Whether this is one phase's value (not a scalar, not an array's total)."""
        return self.phase not in (None, "total")

    @property
    def path(self) -> str:
        """`ic`, `p[1]`: where the value is in the Cozify JSON (and its Modbus value name)."""
        return self.field.key if self.index is None else f"{self.field.key}[{self.index}]"

    @property
    def column(self) -> str:
        """`ic`, `p_total`, `p_l1`, `u_l1`: a flat name (database columns, export fields)."""
        return self.field.key if self.phase is None else f"{self.field.key}_{self.phase}"

    @property
    def name(self) -> str:
        """`Energy import`, `Power`, `Power L1`: the field's name, with the phase if per phase."""
        phase = self.phase
        return f"{self.field.name} {phase.upper()}" if phase and self.per_phase else self.field.name

    @property
    def slug(self) -> str:
        """`energy_import`, `power_l1`: the name as an identifier."""
        return self.name.lower().replace(" ", "_")

    def of(self, reading: Reading) -> Any:
        """This value in `reading` (None when the meter did not send it)."""
        value = getattr(reading, self.field.key)
        return value if self.index is None else value[self.index]


def getter(value: Value) -> Callable[[Reading], Any]:
    """`value.of` as a plain function, for loops that run once per reading (a third faster)."""
    if value.index is None:
        return operator.attrgetter(value.field.key)
    key, index = value.field.key, value.index
    return lambda reading: getattr(reading, key)[index]


def values(fields: Iterable[Field]) -> tuple[Value, ...]:
    """Every value of `fields`, field by field (`p[0]`, `p[1]`... before `pi[0]`)."""
    return tuple(
        Value(field, index)
        for field in fields
        for index in (range(len(field.positions)) if field.positions else (None,))
    )


Interface = Literal["home_assistant", "topic", "gauge", "register"]


def showing(interface: Interface, among: Iterable[Value]) -> tuple[Value, ...]:
    """The values of `among` that `interface` shows: of fields that have it, and per-phase
    values only when it is per phase (`HomeAssistant`, `Topic` may show only an array's total)."""
    out = []
    for value in among:
        spec = getattr(value.field, interface)
        if spec is not None and (not value.per_phase or getattr(spec, "per_phase", True)):
            out.append(value)
    return tuple(out)


def totals_first(fields: Iterable[Field]) -> tuple[Value, ...]:
    """The values of `fields`, scalars and totals before the per-phase values (the order Home
    Assistant sensors and split topics are published in)."""
    every = values(fields)
    return tuple(v for v in every if not v.per_phase) + tuple(v for v in every if v.per_phase)


# ---------------------------------------------------------------- Prometheus metrics
# Every meter value's series is also labeled with the meter's name on the box
# (`shared.meters.meter_of`), the first label, added by shared/meter_metrics.py; the `labels`
# of a `Metric` below are those after it.
METER_LABEL = "meter"

POWER = Metric(
    "hanport_meter_power_watts",
    "Active power from the meter, by direction (import, export, net) and phase (total, l1-l3).",
    ("direction", "phase"),
)
REACTIVE_POWER = Metric(
    "hanport_meter_reactive_power_var",
    "Reactive power (import minus export) by phase (total, l1-l3).",
    ("phase",),
)
VOLTAGE = Metric("hanport_meter_voltage_volts", "Phase voltage from the meter.", ("phase",))
CURRENT = Metric("hanport_meter_current_amperes", "Phase current from the meter.", ("phase",))
ENERGY = Metric(
    "hanport_meter_energy_kilowatt_hours",
    "Active energy register of the meter (only grows), by direction (import, export).",
    ("direction",),
)
REACTIVE_ENERGY = Metric(
    "hanport_meter_reactive_energy_kvarh",
    "Reactive energy register of the meter, by direction (import, export).",
    ("direction",),
)
FREQUENCY = Metric("hanport_meter_frequency_hertz", "Grid frequency, when the meter sends it.")
READING_TIME = Metric(
    "hanport_meter_reading_timestamp_seconds", "The meter's time of the newest reading."
)

# every metric, in the order /metrics lists them
METRICS = (
    POWER,
    REACTIVE_POWER,
    VOLTAGE,
    CURRENT,
    ENERGY,
    REACTIVE_ENERGY,
    FREQUENCY,
    READING_TIME,
)

# ---------------------------------------------------------------- the catalogue

_ENERGY = HomeAssistant("energy", TOTAL_INCREASING)
# `reactive_energy` is a device class only since Home Assistant 2025.6, which refuses it before:
# reactive counters go without one (unit kvarh, total_increasing), which every version takes
_REACTIVE_ENERGY = HomeAssistant(None, TOTAL_INCREASING)
_POWER = HomeAssistant("power", MEASUREMENT)

# energy registers, power, voltage and current: the measurements of the Cozify message
ELECTRICAL: tuple[Field, ...] = (
    Field(
        "ic", "Energy import", "kWh",
        "Imported active energy, kWh (1.8.0 or sum of tariffs).",
        home_assistant=_ENERGY,
        topic=Topic("energy/import"),
        gauge=Series(ENERGY, ("import",)),
        register=Register("float64", 1008, "active energy imported"),
    ),
    Field(
        "ec", "Energy export", "kWh",
        "Exported active energy, kWh (2.8.0 or sum of tariffs).",
        home_assistant=_ENERGY,
        topic=Topic("energy/export"),
        gauge=Series(ENERGY, ("export",)),
        register=Register("float64", 1012, "active energy exported"),
    ),
    Field(
        "ric", "Reactive energy import", "kvarh",
        "Imported reactive energy, kvarh.",
        home_assistant=_REACTIVE_ENERGY,
        topic=Topic("energy/reactive_import"),
        gauge=Series(REACTIVE_ENERGY, ("import",)),
        register=Register("float64", 1016, "reactive energy imported"),
    ),
    Field(
        "rec", "Reactive energy export", "kvarh",
        "Exported reactive energy, kvarh.",
        home_assistant=_REACTIVE_ENERGY,
        topic=Topic("energy/reactive_export"),
        gauge=Series(REACTIVE_ENERGY, ("export",)),
        register=Register("float64", 1020, "reactive energy exported"),
    ),
    Field(
        "p", "Power", "W",
        "Net active power pi - pe, W, [total, L1, L2, L3].",
        TOTAL_AND_PHASES,
        home_assistant=_POWER,
        topic=Topic("power/active"),
        gauge=Series(POWER, ("net",)),
        register=Register("float32", 1024, "active power (import - export)"),
    ),
    Field(
        "pi", "Power import", "W",
        "Imported active power, W, [total, L1, L2, L3].",
        TOTAL_AND_PHASES,
        home_assistant=_POWER,
        topic=Topic("power/import"),
        gauge=Series(POWER, ("import",)),
        register=Register("float32", 1032, "active power imported"),
    ),
    Field(
        "pe", "Power export", "W",
        "Exported active power, W, [total, L1, L2, L3].",
        TOTAL_AND_PHASES,
        home_assistant=_POWER,
        topic=Topic("power/export"),
        gauge=Series(POWER, ("export",)),
        register=Register("float32", 1040, "active power exported"),
    ),
    Field(
        "r", "Reactive power", "var",
        "Reactive power import - export, var, [total, L1, L2, L3].",
        TOTAL_AND_PHASES,
        home_assistant=HomeAssistant("reactive_power", MEASUREMENT, per_phase=False),
        topic=Topic("power/reactive", per_phase=False),
        gauge=Series(REACTIVE_POWER),
        register=Register("float32", 1048, "reactive power (import - export)"),
    ),
    Field(
        "u", "Voltage", "V",
        "Voltage, V, [L1, L2, L3].",
        PHASES,
        home_assistant=HomeAssistant("voltage", MEASUREMENT),
        topic=Topic("voltage"),
        gauge=Series(VOLTAGE),
        register=Register("float32", 1056, "voltage"),
    ),
    Field(
        "i", "Current", "A",
        "Current, A, [L1, L2, L3].",
        PHASES,
        home_assistant=HomeAssistant("current", MEASUREMENT),
        topic=Topic("current"),
        gauge=Series(CURRENT),
        register=Register("float32", 1062, "current"),
    ),
)  # fmt: skip

# the reading's other values: time, grid frequency, tariff, the meter itself
OTHER: tuple[Field, ...] = (
    Field(
        "frequency", "Frequency", "Hz",
        "Grid frequency, Hz, when the meter sends it.",
        topic=Topic("frequency"),
        gauge=Series(FREQUENCY),
        register=Register("float32", 1068, "frequency (not in the Cozify message)"),
    ),
    Field("tariff", "Tariff", "", "The tariff in use (0-0:96.14.0), as sent.",
          topic=Topic("tariff")),
    Field("meter_time", "Meter time", "", "The meter's clock, as sent.",
          topic=Topic("meter/time")),
    Field(
        "ts", "Time", "ms since 1970",
        "Reading time, ms since the Unix epoch (meter clock if sent).",
        topic=Topic("timestamp"),
        gauge=Series(READING_TIME, divisor=1000),
        register=Register("uint64", 1004, "the reading's time `ts` (meter clock)", status=True),
    ),
    Field("received", "Received", "ms since 1970",
          "When the gateway received the reading, ms since the Unix epoch (its own clock)."),
    Field("meter", "Meter", "", "The meter's name on this box (HANPORT_METER_NAME, else its id)."),
    Field("meter_id", "Meter id", "", "Meter id (0-0:96.1.0 / 96.1.1) as sent."),
    Field("meter_model", "Meter model", "", "Meter model / identification line."),
    Field("power_failures", "Power failures", "", "Number of power failures in any phase."),
    Field("long_power_failures", "Long power failures", "",
          "Number of long power failures in any phase."),
)  # fmt: skip

FIELDS: tuple[Field, ...] = ELECTRICAL + OTHER


def check(fields: Iterable[Field]) -> dict[str, Field]:
    """The rows by key; raises `FieldError` naming the row when one does not fit `Reading`
    (no such attribute, a scalar given positions, an array of another length) or clashes
    with another (same key, same sensor, topic or series)."""
    defaults = Reading(ts=0, received=0)
    by_key: dict[str, Field] = {}
    for field in fields:
        where = f"field {field.key!r} of shared/fields.py"
        if field.key not in Reading.__struct_fields__:
            raise FieldError(f"{where}: Reading has no attribute {field.key!r}; add it to "
                             "shared/reading.py first, or correct the key")  # fmt: skip
        default = getattr(defaults, field.key)
        size = len(default) if isinstance(default, list) else 0
        if len(field.positions) != size:
            raise FieldError(f"{where}: Reading.{field.key} has {size or 'no'} positions, the "
                             f"row says {len(field.positions)} ({field.positions})")  # fmt: skip
        series = field.gauge
        if series and series.metric not in METRICS:
            raise FieldError(f"{where}: its metric {series.metric.name} is not in METRICS")
        if series and series.metric.labels != series.metric.labels[: len(series.labels)] + (
            ("phase",) if field.positions else ()
        ):
            raise FieldError(f"{where}: {series.metric.name} has labels {series.metric.labels}, "
                             f"the row gives {series.labels} and phase: {bool(field.positions)}")  # fmt: skip
        if field.key in by_key:
            raise FieldError(f"{where}: the key appears twice")
        by_key[field.key] = field
    every = values(by_key.values())
    for what, names in (
        ("Home Assistant sensor", [v.slug for v in showing("home_assistant", every)]),
        ("split topic", [topic_path(v) for v in showing("topic", every)]),
        ("Prometheus series", [str(series_labels(v)) for v in showing("gauge", every)]),
    ):
        twice = sorted({str(n) for n in names if names.count(n) > 1})
        if twice:
            raise FieldError(f"shared/fields.py: two rows give the {what} {', '.join(twice)}")
    return by_key


def topic_path(value: Value) -> str:
    """The value's split sub-topic: `power/import`, `power/import/l1`, `voltage/l1`."""
    assert value.field.topic is not None
    path = value.field.topic.path
    return f"{path}/{value.phase}" if value.per_phase else path


def series_labels(value: Value) -> tuple[str, ...]:
    """The metric name and label values of the value's Prometheus series."""
    assert value.field.gauge is not None
    labels = value.field.gauge.labels + (() if value.phase is None else (value.phase,))
    return (value.field.gauge.metric.name, *labels)


BY_KEY: dict[str, Field] = check(FIELDS)
