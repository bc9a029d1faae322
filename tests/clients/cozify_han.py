"""Where Cozify's Home Assistant integration (cozify_han, not on the package index) is found for
the tests: its unchanged source at a pinned commit, cached next to the client venvs
(tests/clients/venvs.py) and cloned from GitHub on the first run.

    HANPORT_TEST_COZIFY_HAN   a folder holding custom_components/cozify_han (default: the cache)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.clients.venvs import ClientSetupError, cache_root

REPOSITORY = "https://github.com/cozify/han-home-assistant"
COMMIT = "ac6cd34af1b27bebf984a78ea3bd87093271aba6"  # manifest version 1.0.7
VERSION = "1.0.7"


def integration_root() -> Path:
    """The folder holding `custom_components/cozify_han` at `COMMIT`, cloned when missing."""
    wanted = os.environ.get("HANPORT_TEST_COZIFY_HAN")
    root = Path(wanted) if wanted else cache_root() / f"cozify_han-{VERSION}"
    if (root / "custom_components" / "cozify_han" / "sensor.py").exists():
        return root
    clone = root.with_name(root.name + ".clone")
    shutil.rmtree(clone, ignore_errors=True)
    steps = (
        ["git", "clone", "-q", REPOSITORY, str(clone)],
        ["git", "-C", str(clone), "checkout", "-q", COMMIT],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise ClientSetupError(
                f"cozify_han {VERSION} is not in {root} and cloning it failed "
                f"({' '.join(step)}): {done.stderr.strip()}; put a checkout of {REPOSITORY} at "
                f"{COMMIT} there or point HANPORT_TEST_COZIFY_HAN at one"
            )
    clone.rename(root)
    return root
