"""Venvs of their own for other people's client code (Home Assistant, openWB's pymodbus), cached
outside the repository so only the first run pays for the install.

`CLIENTS` names each venv: the Python it needs and the exact requirements. `provision(client)`
returns the venv's python, creating it under `cache_root()/<name>` when it is missing or was made
for other requirements (a marker file holds what it was made for; a lock keeps two test processes
from building the same venv at once). `python -m tests.clients.venvs` provisions them all and
prints how long each took (`make clients`, run by `make test`).

    HANPORT_TEST_CLIENTS_CACHE   where the venvs live (default ~/.cache/hanport-test-clients)
    HANPORT_TEST_PYTHON313       a Python 3.13 interpreter, when `python3.13` is not on PATH
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = ".hanport-client.json"


class ClientSetupError(RuntimeError):
    """A client venv cannot be made: no suitable Python, or the install failed."""


@dataclass(frozen=True)
class Client:
    """A venv for one client release: `python` is `3.13` or `this` (the Python running us).
    `requirements` are installed with their dependencies; `bare` without, and then those of
    its own pinned dependencies that are not in `skip`, at its pins."""

    name: str
    python: str
    requirements: tuple[str, ...] = ()
    bare: str | None = None
    skip: tuple[str, ...] = ()


# Home Assistant's dependencies that its MQTT sensor platform and discovery never import (audio,
# images, Bluetooth, the database, voice, its installer): installing homeassistant with all of
# them was still backtracking through Bluetooth sdists after more than 4 minutes when stopped
HOME_ASSISTANT_UNUSED = (
    "numpy", "pillow", "pyturbojpeg", "pymicro-vad", "pyspeex-noise", "ha-ffmpeg", "mutagen",
    "home-assistant-intents", "hassil", "home-assistant-bluetooth", "uv", "zeroconf",
    "sqlalchemy", "audioop-lts", "standard-aifc", "standard-telnetlib", "aiohasupervisor",
    "securetar",
)  # fmt: skip


def home_assistant(version: str) -> Client:
    """Home Assistant `version` (it needs Python 3.13) with what its MQTT integration imports:
    its own pins, plus the MQTT client its mqtt manifest names."""
    return Client(f"homeassistant-{version}", "3.13", bare=f"homeassistant=={version}",
                  skip=HOME_ASSISTANT_UNUSED)  # fmt: skip


# the oldest Home Assistant hanport's discovery is claimed to work with, and the newest release
# on the package index
HOME_ASSISTANT_OLDEST = home_assistant("2025.1.4")
HOME_ASSISTANT_NEWEST = home_assistant("2025.4.4")
# openWB 2.x pins pymodbus==2.5.3 (openWB/core requirements.txt)
OPENWB_PYMODBUS = Client("pymodbus-2.5.3", "this", ("pymodbus==2.5.3",))

# run by the venv's python after the bare install: the bare package's pins not skipped, and the
# requirements of Home Assistant's mqtt manifest when there is one
_PINS = """
import json, re, sys
from importlib import metadata
name, skip = sys.argv[1], set(sys.argv[2:])
pins = [r for r in metadata.requires(name) or []
        if re.split(r"[<>=!~; \\[]", r)[0].lower().replace("_", "-") not in skip]
if name == "homeassistant":
    manifest = metadata.distribution(name).locate_file("homeassistant/components/mqtt/manifest.json")
    pins += json.loads(manifest.read_text())["requirements"]
print("\\n".join(pins))
"""

CLIENTS = (HOME_ASSISTANT_OLDEST, HOME_ASSISTANT_NEWEST, OPENWB_PYMODBUS)


def cache_root() -> Path:
    default = Path.home() / ".cache" / "hanport-test-clients"
    return Path(os.environ.get("HANPORT_TEST_CLIENTS_CACHE", default))


def find_python(version: str) -> str:
    """An interpreter of `version` (`this`: the one running us; `3.13`: from
    HANPORT_TEST_PYTHON313, `python3.13` on PATH or a pyenv install), else ClientSetupError."""
    if version == "this":
        return getattr(sys, "_base_executable", sys.executable)
    wanted = os.environ.get(f"HANPORT_TEST_PYTHON{version.replace('.', '')}")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        wanted,
        shutil.which(f"python{version}"),
        *sorted(glob.glob(str(pyenv / "versions" / f"{version}.*" / "bin" / "python3"))),
    ]
    for candidate in candidates:
        if candidate and _version_of(candidate) == version:
            return candidate
    raise ClientSetupError(
        f"no Python {version} found (tried HANPORT_TEST_PYTHON{version.replace('.', '')}, "
        f"python{version} on PATH, {pyenv}/versions/{version}.*): the client tests need it; "
        f"install it (Debian 13: apt-get install python{version}-venv; or pyenv install {version}) or "
        f"point HANPORT_TEST_PYTHON{version.replace('.', '')} at one"
    )


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def venv_python(client: Client) -> Path:
    return cache_root() / client.name / "bin" / "python"


def _made_for(client: Client) -> dict[str, object]:
    return {"python": client.python, "requirements": list(client.requirements),
            "bare": client.bare, "skip": list(client.skip)}  # fmt: skip


def provision(client: Client) -> Path:
    """The python of `client`'s venv, made (or remade) when needed."""
    home = cache_root() / client.name
    marker = home / MARKER
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f".{client.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and json.loads(marker.read_text()) == _made_for(client):
            return venv_python(client)
        python = find_python(client.python)
        shutil.rmtree(home, ignore_errors=True)
        _run(client, [python, "-m", "venv", str(home)])
        pip = [str(venv_python(client)), "-m", "pip", "install", "-q",
               "--disable-pip-version-check"]  # fmt: skip
        if client.requirements:
            _run(client, [*pip, *client.requirements])
        if client.bare:
            _run(client, [*pip, "--no-deps", client.bare])
            bare = client.bare.split("==")[0]
            pins = _run(client, [str(venv_python(client)), "-c", _PINS, bare, *client.skip])
            _run(client, [*pip, *pins.splitlines()])
        marker.write_text(json.dumps(_made_for(client)))
    return venv_python(client)


def _run(client: Client, step: list[str]) -> str:
    done = subprocess.run(step, capture_output=True, text=True)
    if done.returncode != 0:
        raise ClientSetupError(
            f"making the {client.name} venv in {cache_root() / client.name} failed "
            f"({' '.join(step)}):\n{done.stderr[-3000:]}"
        )
    return done.stdout


def main() -> int:
    """Provision every client; one that cannot be made is reported, not fatal: its tests fail
    with the same message, and the others still run."""
    for client in CLIENTS:
        start = time.monotonic()
        try:
            python = provision(client)
        except ClientSetupError as error:
            print(f"{client.name}: not made, its tests will fail: {error}", file=sys.stderr)
            continue
        print(f"{client.name}: {python} ({time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
