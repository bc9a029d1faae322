"""A Docker engine of the test's own, and compose.yaml run on it as a user runs it.

`Engine` starts `dockerd` (root only) on a socket of its own with its data under
`/var/cache/hanport-test-docker` (override: HANPORT_TEST_DOCKER_ROOT), so the stand-in base
images (deploy/images/build.sh) and the build cache survive between runs; it never talks to a
Docker daemon the machine already runs, and never re-tags that daemon's images. The daemon has
no default bridge and no iptables rules: compose's own network carries service-name DNS, and
published ports reach the host through Docker's userland proxy, on 127.0.0.1 only.

`Project` is `docker compose` (v2) on compose.yaml, unchanged, with the settings of one test in
an env file (`--env-file`, never the developer's `.env`) and, where a test needs one, an
override file of its own as a user's `compose.override.yaml` would be.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stack.compose import COMPOSE, ROOT

CACHE = Path(os.environ.get("HANPORT_TEST_DOCKER_ROOT", "/var/cache/hanport-test-docker"))
BUILD_STANDINS = ROOT / "deploy" / "images" / "build.sh"
IMAGE = "hanport:latest"
BUILD_STAGE = "hanport-test/build-stage:latest"


def missing_tools() -> list[str]:
    """What this machine lacks to run the Docker tests (.ci/run installs all of it)."""
    missing = [tool for tool in ("dockerd", "docker", "debootstrap") if not shutil.which(tool)]
    if "docker" not in missing:
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode != 0:
            missing.append("docker compose (Compose v2 CLI plugin)")
    if os.geteuid() != 0:
        missing.append("root (dockerd)")
    return missing


@dataclass
class Engine:
    """One dockerd of the test run's own; `docker(...)` runs the CLI against it."""

    data_root: Path = CACHE / "data"
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hp-docker-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def pidfile(self) -> Path:
        # beside the data, so a run that was killed leaves a daemon the next run can find
        return CACHE / "dockerd.pid"

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
        return {**base, "DOCKER_HOST": f"unix://{self.socket}"}

    @property
    def log_path(self) -> Path:
        return self.run_dir / "dockerd.log"

    def start(self, timeout: float = 60.0) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(self.data_root),
                "--exec-root",
                str(self.run_dir / "exec"),
                "--host",
                f"unix://{self.socket}",
                "--pidfile",
                str(self.pidfile),
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockerd exited at start:\n{self.log_tail()}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"dockerd did not answer within {timeout} s:\n{self.log_tail()}")

    def _stop_stale(self) -> None:
        """A daemon on our data root that an interrupted run left behind."""
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if cmdline[0].endswith(b"dockerd") and str(self.data_root).encode() in cmdline:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 60
                while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.2)

    def start_afresh(self) -> None:
        """Stop, delete every image and cache in the data root, start again: for a data root
        damaged by an interrupted run (a build then fails on files missing under it)."""
        self.stop()
        shutil.rmtree(self.data_root)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # dockerd leaves its network namespace mounted under the exec root
        for mount_point in sorted(mounts_under(self.run_dir), reverse=True):
            subprocess.run(["umount", "--lazy", mount_point], check=False, timeout=30)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args],
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        return result

    def inspect(self, container: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.docker("inspect", container).stdout)
        return data[0]

    def build_standins(self) -> None:
        """The stand-in base images (deploy/images/build.sh; cached in the data root)."""
        result = subprocess.run(
            ["bash", str(BUILD_STANDINS)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, f"deploy/images/build.sh failed:\n{result.stderr[-4000:]}"

    def build_image(self, tag: str = IMAGE, *, buildkit: bool = False) -> None:
        """hanport's image from the Dockerfile, as `docker build -t hanport .` (host network:
        this daemon has no default bridge)."""
        cli = "docker"
        if buildkit and shutil.which("docker-buildx") is None:
            # a CLI with BuildKit built in (Debian's docker.io); newer CLIs need buildx
            cli = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
        builds = [["-t", tag]]
        if not buildkit:
            # the build stage tagged too, so that pruning dangling images keeps its cache
            builds.insert(0, ["--target", "build", "-t", BUILD_STAGE])
        for args in builds:
            result = subprocess.run(
                [cli, "build", "--network", "host", *args, "."],
                env={**self.env, "DOCKER_BUILDKIT": "1" if buildkit else "0"},
                capture_output=True,
                text=True,
                timeout=900,
                cwd=ROOT,
            )
            assert result.returncode == 0, f"docker build failed:\n{result.stderr[-4000:]}"

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def mounts_under(folder: Path) -> list[str]:
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return [point for point in points if point.startswith(f"{folder}/")]


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One run at a time on the shared data root (a second `make test` waits)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass
class Project:
    """`docker compose -p NAME --env-file FILE -f compose.yaml [-f override]` on an Engine."""

    engine: Engine
    name: str
    env_file: Path
    overrides: Sequence[Path] = ()

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        files: list[str] = ["-f", str(COMPOSE)]
        for override in self.overrides:
            files += ["-f", str(override)]
        command = [
            "compose", "-p", self.name, "--project-directory", str(ROOT),
            "--env-file", str(self.env_file), *files, *args,
        ]  # fmt: skip
        return self.engine.docker(*command, check=check, timeout=timeout)

    def up(self, *args: str, profiles: Sequence[str] = (), wait: float = 120) -> float:
        """`up -d --wait`: returns the seconds until every container was running and healthy."""
        flags = [f"--profile={profile}" for profile in profiles]
        started = time.monotonic()
        result = self.compose(
            *flags, "up", "-d", "--no-build", "--wait", "--wait-timeout", str(int(wait)), *args,
            check=False, timeout=wait + 60,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(
                f"docker compose up failed:\n{result.stderr[-3000:]}\n{self.logs()}"
            )
        return time.monotonic() - started

    def down(self, *args: str) -> None:
        self.compose("--profile=broker", "--profile=monitoring", "down", "--remove-orphans", *args)

    def containers(self, service: str | None = None) -> list[str]:
        """Names of the running containers (of one service)."""
        args = ["ps", "--format", "{{.Name}}"]
        if service is not None:
            args.append(service)
        return sorted(self.compose(*args).stdout.split())

    def logs(self, tail: int = 20) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), check=False).stdout
