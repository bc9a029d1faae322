"""Untrusted license text (pure code, no servers): whatever bytes arrive, verification ends in a
`LicenseError` with a reason, never in another exception."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from shared.entitlements import decode_record
from shared.license import MAX_DEPTH, LicenseError, load_public_keys, nesting_depth, read_signed
from tests.licensing_helpers import issue, make_keys


def test_nesting_depth_counts_brackets_outside_strings_only() -> None:
    assert nesting_depth(b'{"a": [1, {"b": []}]}') == 4
    assert nesting_depth(b'{"licensee": "[[[[[[[[[[[[ {{{{{{ \\" [[[["}') == 1
    assert nesting_depth(b"[" * 5000) == MAX_DEPTH + 1  # stops counting early


@pytest.mark.parametrize(
    "text",
    [
        b'{"licence": ' + b"[" * 1500 + b"]" * 1500 + b', "signature": "x"}',
        b"[" * 3000,
        b'{"licence": [], "signature": 7}',
        b'{"licence": {"key_id": ["x"]}, "signature": ""}',
        b'{"licence": {"key_id": "\\ud800"}, "signature": ""}',
        b"\xff\xfe\x00",
        b"",
        b"null",
        b'{"licence": {}, "signature": "' + b"A" * 20000 + b'"}',
    ],
)
def test_hostile_documents_are_refused_with_a_reason(text: bytes, tmp_path: Path) -> None:
    _private, public = make_keys(tmp_path)
    with pytest.raises(LicenseError) as refused:
        read_signed(text, load_public_keys(public))
    assert refused.value.reason in {
        "too_large",
        "too_deep",
        "malformed_json",
        "malformed",
        "malformed_base64",
        "unknown_key",
    }
    with pytest.raises(LicenseError):
        decode_record(text if text.startswith(b"[") else b'{"feature": ' + text + b"}")


def test_mutated_licenses_never_raise_anything_else(tmp_path: Path) -> None:
    private, public = make_keys(tmp_path)
    keys = load_public_keys(public)
    good = issue(private, serial="HPTEST0001", features=["mqtt"])
    rng = random.Random(20261204)
    for _ in range(3000):
        data = bytearray(good)
        for _edit in range(rng.randint(1, 8)):
            at = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.4:
                data[at] = rng.randrange(256)
            elif choice < 0.7:
                data[at:at] = bytes(rng.choice(b'[]{}",:\\0e-') for _ in range(rng.randint(1, 40)))
            else:
                del data[at : at + rng.randint(1, 30)]
        try:
            read_signed(bytes(data), keys)
        except LicenseError:
            continue
