"""The wheel: pip builds it (in an isolated build environment, as `pip install` does) without a
deprecation warning, and it holds what docs/architecture.md's packaging note says: the
top-level packages `services` and `shared` with the live page's files, and the license as an
SPDX expression."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "services", "shared")


def test_the_wheel_builds_without_deprecation_warnings(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside it
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), "./source"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warned = [line for line in output.splitlines() if "deprecat" in line.lower()]
    assert warned == [], "\n".join(warned)

    (wheel,) = tmp_path.glob("hanport-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        headers = archive.read(metadata).decode().split("\n\n")[0].splitlines()
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_level == {"services", "shared"}
    assert "License-Expression: Apache-2.0" in headers
    assert not any(line.startswith("License:") for line in headers)
    page = {n for n in names if n.startswith("services/rest/") and n.endswith((".html", ".js"))}
    assert page, "the live page's files are not in the wheel"
