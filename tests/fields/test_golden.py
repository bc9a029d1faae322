"""Every interface that derives from a reading's fields answers exactly as the golden files
in tests/fields/golden/ say (written from the code before the field catalogue; see
tests/fields/snapshot.py): discovery configs, split topics, meter gauges, Modbus registers,
REST model schemas, the Grafana dashboard."""

from __future__ import annotations

import json

import pytest

from tests.fields.snapshot import GOLDEN, SNAPSHOTS, text


@pytest.mark.parametrize("name", list(SNAPSHOTS))
def test_interface_answers_as_the_golden_file(name: str) -> None:
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    now = json.loads(text(name))
    assert now[name] == golden[name]
    assert text(name) == (GOLDEN / f"{name}.json").read_text()  # byte for byte, too
