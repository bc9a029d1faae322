"""Topic names and the split topics: which value of a `Reading` goes to which sub-topic.

Consumes the settings and the reader serial; produces `Topics` (every topic the bridge publishes
to; the default meter's are the settings', another meter's `for_meter`) and `split_messages(reading)`: one (sub-topic, payload) per value the meter sent. The
sub-topics are the values of the field catalogue (shared/fields.py) that have `topic`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.fields import ELECTRICAL, OTHER, getter, showing, topic_path, totals_first
from shared.reading import Reading

from .settings import MqttSettings

# sub-topic under the prefix -> the value it carries (units as in `Reading`: kWh, W, var, V, A):
# the catalogue's electrical values (totals, then per phase), then the others
SPLIT_TOPICS: tuple[tuple[str, Callable[[Reading], Any]], ...] = tuple(
    (topic_path(value), getter(value))
    for value in showing("topic", totals_first(ELECTRICAL) + totals_first(OTHER))
)


@dataclass(frozen=True)
class Topics:
    data: str
    prefix: str
    availability: str
    raw: str | None

    @property
    def submeters(self) -> str:
        """The meter's M-Bus sub-meters (gas, water, heat): one JSON message."""
        return f"{self.prefix}/submeters"

    def for_meter(self, name: str) -> Topics:
        """The topics of a meter other than the default one: under `<prefix>/meters/<name>`
        (data, split topics, sub-meters); availability stays the bridge's."""
        prefix = f"{self.prefix}/meters/{name}"
        return Topics(
            data=f"{prefix}/data", prefix=prefix, availability=self.availability, raw=None
        )

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
    for sub_topic, value_of in SPLIT_TOPICS:
        value = value_of(reading)
        if value is not None:
            out.append((f"{prefix}/{sub_topic}", _text(value)))
    return out
