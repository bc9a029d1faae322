"""Topic names and the split-topic table: which value of a `Reading` goes to which sub-topic.

Consumes the settings and the reader serial; produces `Topics` (every topic the bridge publishes
to) and `split_messages(reading)`: one (sub-topic, payload) per value the meter sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.reading import Reading

from .settings import MqttSettings

Getter = Callable[[Reading], float | int | str | None]


def _at(field: str, index: int) -> Getter:
    return lambda reading: getattr(reading, field)[index]


def _field(field: str) -> Getter:
    return lambda reading: getattr(reading, field)


# sub-topic under the prefix -> the value it carries (units as in `Reading`: kWh, W, var, V, A)
SPLIT_TOPICS: tuple[tuple[str, Getter], ...] = (
    ("energy/import", _field("ic")),
    ("energy/export", _field("ec")),
    ("energy/reactive_import", _field("ric")),
    ("energy/reactive_export", _field("rec")),
    ("power/active", _at("p", 0)),
    ("power/import", _at("pi", 0)),
    ("power/export", _at("pe", 0)),
    ("power/reactive", _at("r", 0)),
    *(
        (f"power/{kind}/l{phase}", _at(field, phase))
        for kind, field in (("active", "p"), ("import", "pi"), ("export", "pe"))
        for phase in (1, 2, 3)
    ),
    *((f"voltage/l{phase + 1}", _at("u", phase)) for phase in range(3)),
    *((f"current/l{phase + 1}", _at("i", phase)) for phase in range(3)),
    ("frequency", _field("frequency")),
    ("tariff", _field("tariff")),
    ("meter/time", _field("meter_time")),
    ("timestamp", _field("ts")),
)


@dataclass(frozen=True)
class Topics:
    data: str
    prefix: str
    availability: str
    raw: str | None

    @classmethod
    def from_settings(cls, settings: MqttSettings, serial: str) -> Topics:
        prefix = (settings.mqtt_topic_prefix or f"hanport/{serial}").rstrip("/")
        return cls(
            data=settings.mqtt_topic or f"{prefix}/data",
            prefix=prefix,
            availability=f"{prefix}/availability",
            raw=settings.mqtt_raw_topic or None,
        )


def _text(value: float | int | str) -> bytes:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).encode()


def split_messages(reading: Reading, prefix: str) -> list[tuple[str, bytes]]:
    """One message per value the reading carries (values the meter did not send are left out)."""
    out = []
    for sub_topic, getter in SPLIT_TOPICS:
        value = getter(reading)
        if value is not None:
            out.append((f"{prefix}/{sub_topic}", _text(value)))
    return out
