"""The register tables against the SunSpec Alliance's own model definitions (pysunspec2), the
encoder value by value, and docs/modbus.md against the tables."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path

import pytest
import sunspec2

from services.modbus import docs
from services.modbus.register_map import (
    COMMON_MODEL,
    METER_203,
    METER_213,
    Block,
    Identity,
    blocks,
    check,
    encode,
    reading_values,
    serial32,
)
from shared.fields import FIELDS
from tests.modbus.conftest import export_reading, import_reading

MODELS = Path(sunspec2.__file__).parent / "models" / "json"
IDENTITY = Identity(serial="HP0A1B2C3D4E", version="1.2.3")


def _floats(words: list[int]) -> list[float]:
    return list(struct.unpack(f">{len(words) // 2}f", struct.pack(f">{len(words)}H", *words)))


def _point_words(block: Block, words: list[int], name: str) -> list[int]:
    for address, point in block.layout():
        if point.name == name:
            offset = address - block.start
            return words[offset : offset + point.type.size]
    raise KeyError(name)


@pytest.mark.parametrize(
    ("model", "table"), [(1, COMMON_MODEL), (213, METER_213), (203, METER_203)]
)
def test_sunspec_tables_match_the_alliance_model_definitions(model, table) -> None:
    definition = json.loads((MODELS / f"model_{model}.json").read_text())
    expected = [(p["name"], p["type"], p.get("size", 1)) for p in definition["group"]["points"]]
    ours = [(p.name, "string" if p.type.is_string else p.type.name, p.type.size) for p in table]
    assert ours == expected
    assert table[0].source == model
    assert table[1].source == sum(p.type.size for p in table) - 2  # L


def test_blocks_are_contiguous_and_never_overlap() -> None:
    for model in (213, 203):
        by_space: dict[str, list[Block]] = {}
        for block in blocks(model):
            words = encode(block, reading_values(import_reading(), IDENTITY))
            assert len(words) == block.size
            assert all(0 <= w <= 0xFFFF for w in words)
            by_space.setdefault(block.space, []).append(block)
        for space in by_space.values():
            space.sort(key=lambda b: b.start)
            for first, second in zip(space, space[1:], strict=False):
                assert first.end <= second.start
    sunspec = blocks(213)[0]
    assert sunspec.start == 40000 and sunspec.size == 2 + 68 + 126 + 2


def test_sdm630_values_are_the_readings() -> None:
    reading = export_reading()
    block = blocks()[1]
    floats = _floats(encode(block, reading_values(reading, IDENTITY)))

    def at(address: int) -> float:
        return floats[address // 2]

    f32 = lambda x: struct.unpack(">f", struct.pack(">f", x))[0]  # noqa: E731
    assert [at(0), at(2), at(4)] == [f32(v) for v in reading.u]
    assert [at(6), at(8), at(10)] == [f32(v) for v in reading.i]
    assert [at(0x0C), at(0x0E), at(0x10)] == [f32(v) for v in reading.p[1:]]
    assert at(0x34) == f32(reading.p[0]) < 0  # exporting: import-positive means negative
    assert at(0x3C) == f32(reading.r[0])
    assert at(0x46) == f32(50.02)
    assert at(0x48) == f32(reading.ic) and at(0x4A) == f32(reading.ec)
    assert at(0x4C) == f32(reading.ric) and at(0x4E) == f32(reading.rec)
    assert at(0x156) == f32((reading.ic or 0) + (reading.ec or 0))
    assert at(0x30) == f32(sum(reading.i))
    assert math.isnan(at(0x12)) and math.isnan(at(0x2C))  # not sent; a gap


def test_missing_values_are_sunspec_not_implemented() -> None:
    reading = import_reading(frequency=None, r=[None, None, None, None])
    values = reading_values(reading, IDENTITY)
    m213, m203 = blocks(213)[0], blocks(203)[0]
    w213, w203 = encode(m213, values), encode(m203, values)
    assert _point_words(m213, w213, "Hz") == [0x7FC0, 0]
    assert _point_words(m213, w213, "VAR") == [0x7FC0, 0]
    assert _point_words(m203, w203, "Hz") == [0x8000]
    assert _point_words(m203, w203, "TotWhImpPhA") == [0, 0]  # acc32
    assert _point_words(m203, w203, "Evt") == [0, 0]


def test_model_203_scale_factors_fit_the_values() -> None:
    block = blocks(203)[0]
    big = import_reading(p=[40000.0, 13000.0, 14000.0, 13000.0])
    words = encode(block, reading_values(big, IDENTITY))
    (w_sf,) = struct.unpack(">h", struct.pack(">H", *_point_words(block, words, "W_SF")))
    (w,) = struct.unpack(">h", struct.pack(">H", *_point_words(block, words, "W")))
    assert (w_sf, w * 10**w_sf) == (1, 40000)
    words = encode(block, reading_values(import_reading(), IDENTITY))
    (a,) = _point_words(block, words, "AphA")
    assert _point_words(block, words, "A_SF") == [0x10000 - 2] and a == 970  # 9.70 A
    hi, lo = _point_words(block, words, "TotWhImp")
    assert (hi << 16 | lo) == 2721126


def test_a_value_that_does_not_fit_is_not_implemented_and_reported() -> None:
    block = blocks()[3]
    errors: list[str] = []
    huge = import_reading(ts=-5)  # a negative uint64 cannot be sent
    words = encode(block, reading_values(huge, IDENTITY), errors)
    assert _point_words(block, words, "ts") == [0xFFFF] * 4
    assert errors and "ts=-5" in errors[0]


def test_identity_strings_and_serial() -> None:
    block = blocks()[0]
    words = encode(block, reading_values(import_reading(), IDENTITY))
    raw = struct.pack(f">{len(words)}H", *words)
    assert raw[:4] == b"SunS"
    assert raw[8:40].rstrip(b"\0") == b"hanport"
    sn = _point_words(block, words, "SN")
    assert struct.pack(f">{len(sn)}H", *sn).rstrip(b"\0") == b"HP0A1B2C3D4E"
    assert serial32("HP0A1B2C3D4E") == 0x1B2C3D4E
    assert 0 <= serial32("my-reader") <= 0xFFFFFFFF


def test_docs_are_generated_from_the_tables() -> None:
    assert docs.DOC.read_text() == docs.render(), "run: python -m services.modbus.docs"
    for block in blocks(213) + blocks(203)[:1]:
        for address, point in block.layout():
            assert f"| {address} | 0x{address:04X} | {point.type.size} | {point.name} |" in (
                docs.render()
            )


def test_the_native_map_is_the_field_catalogue() -> None:
    native = dict((point.name, address) for address, point in blocks()[3].layout())
    for field in FIELDS:
        if field.register:
            first = f"{field.key}[0]" if field.positions else field.key
            assert native[first] == field.register.address, field.key
    assert native["frequency"] == 1068 and native["i[2]"] == 1066


def test_a_point_naming_an_unknown_value_is_refused() -> None:
    check(METER_213)  # the real table passes
    typo = dataclasses.replace(METER_213[3], source="i[5]")
    with pytest.raises(ValueError, match=r"point 'AphA' names an unknown value 'i\[5\]'"):
        check((*METER_213, typo))
