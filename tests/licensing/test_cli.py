"""`hanport license keygen|issue|trial|verify|show` through the real `hanport` dispatcher, and
the license model underneath: canonical encoding, key rotation, readable output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.cli import main as hanport
from shared.license import (
    DAY_MS,
    KeyFileError,
    LicenseError,
    canonical,
    load_public_keys,
    now_ms,
    parse_time,
    read_signed,
    verify,
)


def keygen(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    assert hanport(["license", "keygen", "--out", str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    private = Path(re.search(r"private key: (\S+)", out).group(1))  # type: ignore[union-attr]
    public = Path(re.search(r"public key:\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    assert private.stat().st_mode & 0o077 == 0  # the private key is readable by its owner only
    return private, public


def test_keygen_issue_verify_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private, public = keygen(tmp_path, "keys", capsys)
    out = tmp_path / "a.lic"
    argv = ["license", "issue", "--key", str(private), "--serial", "HP1", "--use", "consumer"]
    argv += ["--kind", "activation", "--features", "mqtt,modbus", "--meter-id", "M1"]
    argv += ["--days", "30", "--licensee", "Ada", "--out", str(out)]
    assert hanport(argv) == 0
    document = json.loads(out.read_text())
    license = document["licence"]
    assert license["serial"] == "HP1" and license["meter_id"] == "M1"
    assert license["features"] == ["mqtt", "modbus"] and license["licensee"] == "Ada"
    assert parse_time(license["expires"]) - parse_time(license["not_before"]) == 30 * DAY_MS
    assert canonical(license) == json.dumps(license, sort_keys=True, separators=(",", ":")).encode()
    capsys.readouterr()

    assert hanport(["license", "verify", "--public-key", str(public), str(out)]) == 0
    assert "valid: license " + license["id"] in capsys.readouterr().out
    # a folder of keys works too
    assert hanport(["license", "verify", "--public-key", str(public.parent), str(out)]) == 0
    capsys.readouterr()

    wrong = ["license", "verify", "--public-key", str(public), "--serial", "HP2", str(out)]
    assert hanport(wrong) == 1
    assert "wrong_serial" in capsys.readouterr().err
    wrong = ["license", "verify", "--public-key", str(public), "--meter-id", "M9", str(out)]
    assert hanport(wrong) == 1
    assert "wrong_meter" in capsys.readouterr().err
    wrong = ["license", "verify", "--public-key", str(public), "--use", "commercial", str(out)]
    assert hanport(wrong) == 1
    assert "consumer_in_commercial" in capsys.readouterr().err

    out.write_text(out.read_text().replace('"HP1"', '"HP2"'))
    assert hanport(["license", "verify", "--public-key", str(public), str(out)]) == 1
    assert "bad_signature" in capsys.readouterr().err

    assert hanport(["license", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "Reader serial: HP2" in shown and "Features:      mqtt, modbus" in shown
    assert "not checked" in shown


def test_trial_is_commercial_all_features_21_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keygen(tmp_path, "keys", capsys)
    out = tmp_path / "trial.lic"
    argv = ["license", "trial", "--key", str(private), "--serial", "HP1", "--out", str(out)]
    assert hanport(argv) == 0
    signed = read_signed(out.read_bytes(), load_public_keys(public))
    assert signed.license.kind == "trial" and signed.license.use == "commercial"
    assert signed.license.features == [
        "rest", "mqtt", "modbus", "shelly", "homewizard", "sma", "export"
    ]  # fmt: skip
    assert signed.license.expires_ms == signed.license.not_before_ms + 21 * DAY_MS
    verify(out.read_bytes(), load_public_keys(public), serial="HP1", use="commercial", now=now_ms())


def test_bad_arguments_and_files_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        hanport(["license", "issue", "--key", "k", "--serial", "S", "--use", "consumer"]
                + ["--kind", "full", "--features", "mqtt,ftp", "--out", "x"])  # fmt: skip
    assert exit_info.value.code == 2
    assert "features are a comma-separated list" in capsys.readouterr().err
    missing = tmp_path / "nope.key"
    argv = ["license", "trial", "--key", str(missing), "--serial", "S", "--out", "x"]
    assert hanport(argv) == 1
    assert f"cannot read private key {missing}" in capsys.readouterr().err
    assert hanport(["license", "show", str(tmp_path / "none.lic")]) == 1


def test_key_rotation_trusts_every_key_in_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_private, old_public = keygen(tmp_path, "old", capsys)
    new_private, new_public = keygen(tmp_path, "new", capsys)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    for public in (old_public, new_public):
        (trusted / public.name).write_bytes(public.read_bytes())
    licenses = {}
    for name, private in (("old", old_private), ("new", new_private)):
        out = tmp_path / f"{name}.lic"
        argv = ["license", "trial", "--key", str(private), "--serial", "HP1", "--out", str(out)]
        assert hanport(argv) == 0
        licenses[name] = out.read_bytes()
    keys = load_public_keys(trusted)
    assert len(keys) == 2
    for text in licenses.values():
        read_signed(text, keys)
    (trusted / old_public.name).unlink()  # the old key retired
    with pytest.raises(LicenseError) as error:
        read_signed(licenses["old"], load_public_keys(trusted))
    assert error.value.reason == "unknown_key"
    read_signed(licenses["new"], load_public_keys(trusted))


def test_unusable_key_locations_are_named(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_public_keys(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyFileError, match="no \\*.pub or \\*.pem"):
        load_public_keys(tmp_path / "empty")
    (tmp_path / "bad.pub").write_text("not a key")
    with pytest.raises(KeyFileError, match="bad.pub"):
        load_public_keys(tmp_path / "bad.pub")
