"""What every interface derived from a reading's fields answers, as plain JSON data: the Home
Assistant discovery configs, the MQTT split topics, the Prometheus meter gauges, every Modbus
register block (layout and words), the REST reading models' JSON schemas and the Grafana
dashboard. tests/fields/test_golden.py compares it with tests/fields/golden/, written by

    .venv/bin/python -m tests.fields.snapshot      (rewrites tests/fields/golden/*.json)

The golden files were written from the code before the field catalogue (shared/fields.py)
existed, so the catalogue is held to answer byte for byte as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

GOLDEN = Path(__file__).parent / "golden"
VERSION = "0.0.0-golden"  # stands in for the package version in discovery's `sw_version`
MADE = "python -m tests.fields.snapshot, from the code before shared/fields.py existed"


def full_reading() -> Any:
    """Every value present and distinct, so a value taken from the wrong place shows."""
    from shared.reading import Reading

    return Reading(
        ts=1_764_152_400_000,
        received=1_764_152_400_123,
        ic=2721.126,
        ec=12.0,
        ric=1384.336,
        rec=0.09,
        p=[4190.0, 1980.5, 354.0, 1855.5],
        pi=[4200.0, 1990.5, 364.0, 1845.5],
        pe=[10.0, 10.25, 10.0, -10.0],
        r=[120.0, 40.0, 0.5, 79.5],
        u=[230.7, 230.1, 231.0],
        i=[9.7, 1.9, 9.25],
        meter_id="7350000000000001",
        meter_model="LGF5E360",
        meter_time="2026-11-26T12:20:00+02:00",
        tariffs={"1": 2000.0, "2": 721.126},
        tariff="0002",
        frequency=50.02,
        power_failures=3,
        long_power_failures=1,
    )


def partial_reading() -> Any:
    """A single-phase meter that sends no reactive values, no frequency, no tariff."""
    from shared.reading import Reading

    return Reading(
        ts=1_764_152_401_000,
        received=1_764_152_401_050,
        ic=1001.0,
        ec=None,
        p=[1500.0, 1500.0, None, None],
        pi=[1500.0, 1500.0, None, None],
        pe=[0.0, 0.0, None, None],
        u=[229.9, None, None],
        i=[6.5, None, None],
    )


def _messages(messages: list[tuple[str, bytes]]) -> list[list[str]]:
    return [[topic, payload.decode()] for topic, payload in messages]


def discovery() -> dict[str, Any]:
    from services.mqtt import discovery
    from services.mqtt.topics import Topics

    topics = Topics(data="hanport/HP0A1B2C/data", prefix="hanport/HP0A1B2C",
                    availability="hanport/HP0A1B2C/availability", raw=None)  # fmt: skip
    original = discovery.software_version
    discovery.software_version = lambda: VERSION
    try:
        out: dict[str, Any] = {}
        for name, reading, expire in (
            ("full", full_reading(), 0),
            ("partial", partial_reading(), 90),
        ):
            sensors = discovery.present_sensors(reading, discovery.SENSORS)
            out[name] = _messages(discovery.discovery_messages(
                sensors, reading=reading, topics=topics, serial="HP0A1B2C",
                prefix="homeassistant", expire_after=expire,
            ))  # fmt: skip
        return out
    finally:
        discovery.software_version = original


def split_topics() -> dict[str, Any]:
    from services.mqtt.topics import split_messages

    return {
        "full": _messages(split_messages(full_reading(), "hanport/HP0A1B2C")),
        "partial": _messages(split_messages(partial_reading(), "pre/fix")),
    }


def _gauges() -> list[Any]:
    from prometheus_client import REGISTRY

    out = []
    for family in REGISTRY.collect():
        if family.name.startswith("hanport_meter_"):
            samples = sorted(
                _line([s.name, sorted(s.labels.items()), None if math.isnan(s.value) else s.value])
                for s in family.samples
            )
            out.append([family.name, family.documentation, family.type, samples])
    return sorted(out)


def meter_metrics() -> dict[str, Any]:
    from shared import meter_metrics

    meter_metrics.clear()  # every meter's series: only those these readings give
    meter_metrics.observe(full_reading())
    full = _gauges()
    meter_metrics.observe(partial_reading())
    return {"full": full, "partial": _gauges()}


def _line(row: list[Any]) -> str:
    """A row as one line of compact JSON (the golden files stay short)."""
    return json.dumps(row, ensure_ascii=False)


def _hex(words: list[int]) -> str:
    return " ".join(f"{w:04x}" for w in words)


def _value(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


def modbus() -> dict[str, Any]:
    from services.modbus.register_map import Identity, blocks, encode, reading_values

    identity = Identity(serial="HP0A1B2C3D4E", version="1.2.3", unit_id=7)
    out: dict[str, Any] = {}
    for model in (213, 203):
        for block in blocks(model):
            layout = [
                _line([address, p.name, p.type.name, p.unit, p.doc, _value(p.source), p.factor,
                       p.sf, p.exponent, p.measurement, p.live])
                for address, p in block.layout()
            ]  # fmt: skip
            words = {
                name: _hex(encode(block, reading_values(reading, identity)))
                for name, reading in (("none", None), ("full", full_reading()),
                                      ("partial", partial_reading()))
            }  # fmt: skip
            out[f"{model} {block.name}"] = {
                "space": block.space, "start": block.start, "gap": block.gap.name,
                "doc": block.doc, "layout": layout, "words": words,
            }  # fmt: skip
    return out


MODES: tuple[Literal["validation", "serialization"], ...] = ("validation", "serialization")


def rest_models() -> dict[str, Any]:
    from services.rest.models import History, HistoryItem, MeterMessage

    return {
        f"{model.__name__} {mode}": model.model_json_schema(mode=mode)
        for model in (MeterMessage, HistoryItem, History)
        for mode in MODES
    }


def dashboard() -> dict[str, Any]:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboard.py"
    spec = importlib.util.spec_from_file_location("dashboard", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"render": module.render()}


SNAPSHOTS: dict[str, Callable[[], dict[str, Any]]] = {
    "discovery": discovery,
    "split_topics": split_topics,
    "meter_metrics": meter_metrics,
    "modbus": modbus,
    "rest_models": rest_models,
    "dashboard": dashboard,
}


def text(name: str) -> str:
    """The golden file's text for the snapshot `name` as the code answers now."""
    data = {"made": MADE, name: SNAPSHOTS[name]()}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    for name in SNAPSHOTS:
        path = GOLDEN / f"{name}.json"
        path.write_text(text(name))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
