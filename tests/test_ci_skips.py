"""Under CI a skipped test fails (tests/conftest.py): a test that skips at run time or a module
that skips while collected fails when `CI` is set, and only skips without it; an expected
failure (xfail) stays one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SKIPS_AT_RUN = """
import pytest

def test_needs_a_tool():
    pytest.skip("the tool is not installed")

@pytest.mark.skipif(True, reason="a marked skip")
def test_marked():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

def test_passes():
    pass
"""

SKIPS_AT_COLLECTION = """
import pytest

pytest.importorskip("no_such_module_anywhere")

def test_never_runs():
    pass
"""


def run_pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only tests/conftest.py's hooks: a fast start
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "-q", "-rA", "--rootdir", str(folder), str(folder)],
        capture_output=True, text=True, timeout=120, cwd=folder, env=env,
    )  # fmt: skip


def suite(folder: Path, *files: str) -> Path:
    for n, text in enumerate(files):
        (folder / f"test_{n}.py").write_text(text)
    return folder


def test_a_skip_while_running_fails_under_ci(tmp_path: Path) -> None:
    result = run_pytest(suite(tmp_path, SKIPS_AT_RUN), "true")
    assert result.returncode == 1, result.stdout + result.stderr
    tail = result.stdout.splitlines()[-1]
    assert tail.startswith("1 failed, 1 passed, 1 xfailed, 1 error"), tail  # skipif: at setup
    for reason in ("the tool is not installed", "a marked skip"):
        assert f"skipped under CI (a missing install step in .ci/run?): Skipped: {reason}" in (
            result.stdout
        )


def test_a_module_skipped_while_collected_fails_under_ci(tmp_path: Path) -> None:
    result = run_pytest(suite(tmp_path, SKIPS_AT_COLLECTION), "true")
    assert result.returncode == 2, result.stdout + result.stderr  # collection error: interrupted
    reason = "Skipped: could not import 'no_such_module_anywhere'"
    assert f"skipped under CI (a missing install step in .ci/run?): {reason}" in result.stdout


def test_skips_only_skip_outside_ci(tmp_path: Path) -> None:
    result = run_pytest(suite(tmp_path, SKIPS_AT_RUN, SKIPS_AT_COLLECTION), None)
    assert result.returncode == 0, result.stdout + result.stderr
    tail = result.stdout.splitlines()[-1]
    assert tail.startswith("1 passed, 3 skipped, 1 xfailed"), tail
