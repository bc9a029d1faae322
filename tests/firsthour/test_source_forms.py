"""The docs a new user follows (README.md, deploy/README.md, .env.example) show one form of
`HANPORT_SOURCE` for a USB adapter: the bare device path, the same path as `HANPORT_DEVICE`.
Each value they show is loaded as the ingest service loads it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.ingest.settings import IngestSettings
from shared.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "deploy/README.md", ".env.example")
VALUE = r"=([^\s`'\\]+)"


def shown(doc: str, variable: str) -> list[str]:
    return re.findall(variable + VALUE, (ROOT / doc).read_text())


@pytest.mark.parametrize("doc", DOCS)
def test_a_usb_adapter_is_shown_as_its_device_path(
    doc: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    sources = shown(doc, "HANPORT_SOURCE")
    devices = shown(doc, "HANPORT_DEVICE")
    assert devices, f"{doc} shows no HANPORT_DEVICE"
    serial_paths = []
    for value in sources:
        monkeypatch.setenv("HANPORT_SOURCE", value)
        spec = load_settings(IngestSettings).source_spec()
        assert spec.kind in ("simulator", "serial", "tcp"), (doc, value)
        if spec.kind == "serial":
            assert value == spec.path, f"{doc}: {value} is not a bare device path"
            assert spec.describe().endswith("(line settings detected)"), (doc, value)
            serial_paths.append(value)
    assert set(devices) <= set(serial_paths), (doc, devices, sources)
