"""The register store without a server: a new reading is encoded only when a read first needs
one of its blocks, once per block, and reads always answer the newest reading."""

from __future__ import annotations

from services.modbus.register_map import Identity, blocks, encode, reading_values
from services.modbus.store import RegisterStore
from tests.modbus.conftest import export_reading, import_reading

IDENTITY = Identity(serial="HPTEST0001", version="1.2.3", unit_id=1)


def _store() -> RegisterStore:
    return RegisterStore(blocks(213), IDENTITY, unit_id=1, stale_after=30.0)


def test_a_block_is_encoded_on_its_first_read_and_once_per_reading() -> None:
    store = _store()
    sdm = next(a for a in store.areas["input"] if a.block.name == "SDM630")
    first, second = import_reading(), export_reading()
    store.update(first)
    assert store.images == {}  # nothing encoded until a client reads
    assert store.read(1, 4, sdm.start, 4) == encode(sdm.block, reading_values(first, IDENTITY))[:4]
    assert list(store.images) == ["SDM630"]  # only the block that was read
    image = store.images["SDM630"]
    store.read(1, 4, sdm.start + 10, 6)
    assert store.images["SDM630"] is image  # the second read reuses it

    store.update(second)
    assert store.images == {}
    expected = encode(sdm.block, reading_values(second, IDENTITY))
    assert store.read(1, 4, sdm.start, 60) == expected[:60]
    assert (
        store.read(1, 4, sdm.start, 60) != encode(sdm.block, reading_values(first, IDENTITY))[:60]
    )


def test_readings_nobody_read_are_never_encoded_and_the_newest_is_served() -> None:
    store = _store()
    readings = [import_reading(p=[float(n), 0.0, 0.0, 0.0]) for n in range(50)]
    for reading in readings:
        store.update(reading)
    assert store.images == {}
    sdm = next(a for a in store.areas["input"] if a.block.name == "SDM630")
    words = store.read(1, 4, sdm.start, sdm.end - sdm.start)
    assert words == encode(sdm.block, reading_values(readings[-1], IDENTITY))
