"""The licensing service's folder (`HANPORT_LICENSE_DIR`): installed license files, the reader's
serial and the highest meter time seen.

Consumes and produces files: `<license id>.lic` (the license exactly as issued), `serial` (one
line), `meter-time` (ms since the epoch, a floor that survives restarts, so turning the system
clock back while the meter is silent revives nothing). Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from shared.identity import SERIAL_FILE, read_serial_file

SUFFIX = ".lic"
METER_TIME_FILE = "meter-time"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class LicenseStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def ensure(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix == SUFFIX and p.is_file())

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Name, modification time (ns) and size of every license file: what changes when a file
        is copied in, edited or removed by hand."""
        marks = []
        for path in self.files():
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed between the listing and the stat
                continue
            marks.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(marks)

    def path_for(self, license_id: str) -> Path:
        if not _SAFE_ID.match(license_id):
            raise ValueError(f"license id {license_id!r} is not a safe file name")
        return self.folder / f"{license_id}{SUFFIX}"

    def save(self, license_id: str, text: bytes) -> Path:
        path = self.path_for(license_id)
        self._write(path, text)
        return path

    def delete(self, license_id: str) -> bool:
        try:
            self.path_for(license_id).unlink()
        except (FileNotFoundError, ValueError):
            return False
        return True

    def read_serial(self) -> str | None:
        return read_serial_file(self.folder)

    def write_serial(self, serial: str) -> None:
        self._write(self.folder / SERIAL_FILE, f"{serial}\n".encode())

    def read_meter_time(self) -> int:
        try:
            return int((self.folder / METER_TIME_FILE).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def write_meter_time(self, ms: int) -> None:
        self._write(self.folder / METER_TIME_FILE, f"{ms}\n".encode())

    def _write(self, path: Path, data: bytes) -> None:
        self.ensure()
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
