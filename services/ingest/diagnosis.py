"""Why data does or does not arrive from the meter, in words, each with the fix to apply.

Consumes what a source knows about its port (`sources.status.SourceStatus`) and a `Tally` of
what the decoder made of the bytes; produces `Finding`s, one per check, in the order a user
would look: the source opened, bytes seen, line settings, frames and protocol, CRCs,
encryption. `verdict` picks the first failing one (or a good one). The ingest service publishes
the verdict to Redis (`status.py`), and `hanport doctor` prints every finding. Pure: no I/O.

The fixes are data: `FIXES`, one row per problem.
"""

from __future__ import annotations

import errno
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from .codec.decoded import Decoded, DecodeError
from .sources.spec import SourceSpec
from .sources.status import SourceStatus

# problem -> what to do about it
FIXES: dict[str, str] = {
    "missing": "plug the adapter in and find its name (`ls /dev/serial/by-id/ /dev/ttyUSB*`); "
    "set HANPORT_SOURCE to that path (with Docker also HANPORT_DEVICE, the same path)",
    "permission": "let this user read the port: `sudo usermod -aG dialout $USER` and log in "
    "again (Docker: HANPORT_DEVICE maps it into the container)",
    "busy": "another program holds the port (a running ingest service, ModemManager, a "
    "terminal program): stop it, or run `hanport doctor` while ingest runs to read its status",
    "serial": "check the adapter (`sudo dmesg | tail`) and the HANPORT_SOURCE path",
    "tcp": "check the dongle's or ser2net's address and port in HANPORT_SOURCE "
    "(tcp://host:port) and that it is switched on and reachable",
    "no_bytes": "check the cable and plug (RJ12/RJ45 in the meter's HAN/P1 port), that the grid "
    "operator has enabled the port (many need it asked for), and the adapter's power",
    "detecting": "wait: trying every line setting takes up to two minutes; set the line in "
    "HANPORT_SOURCE (serial://...?baud=2400&parity=E) once known to start at once",
    "no_line": "the bytes hold no valid frame at any line setting tried: check the adapter "
    "matches the port (P1 needs an inverting adapter, M-Bus HAN an M-Bus adapter)",
    "no_frames": "the bytes hold no valid frame: with a fixed line (serial://...?baud=) set "
    "HANPORT_SOURCE to the bare device path to detect the line settings; check "
    "HANPORT_METER_PROTOCOL (auto finds it)",
    "key_error": "the meter encrypts its data: set HANPORT_METER_KEY (or HANPORT_METER_KEY_FILE) "
    "to the 32-hex-digit key (GUEK) from the grid operator",
    "auth_error": "the key does not fit: check HANPORT_METER_KEY and HANPORT_METER_AUTH_KEY "
    "against what the grid operator sent",
    "crc_error": "frames arrive damaged: check the cable, its length and the line settings; "
    "HANPORT_CRC_CHECK=false only for a meter known to send wrong CRCs",
    "bad_frames": "the frames found do not decode: decode a capture with `hanport decode` and "
    "report it with the meter's make",
    "redis": "start Redis or correct HANPORT_REDIS_URL (`make run` starts its own)",
}
SOURCE_SAYS = {  # problem -> what it means for the source
    "missing": "the device is missing",
    "permission": "no permission to open it",
    "busy": "in use by another program",
    "tcp": "cannot connect",
}
ERRNO_PROBLEMS = {errno.ENOENT: "missing", errno.ENODEV: "missing", errno.ENXIO: "missing"}
ERRNO_PROBLEMS |= {errno.EACCES: "permission", errno.EPERM: "permission", errno.EBUSY: "busy"}


class Finding(NamedTuple):
    check: str  # source, bytes, line, frames, crc, encryption, redis, license
    ok: bool
    says: str
    problem: str = ""  # a key of FIXES when not ok
    fix: str = ""


def finding(check: str, says: str, problem: str = "") -> Finding:
    """A good finding (no problem) or a bad one with its fix."""
    return Finding(check, not problem, says, problem, FIXES.get(problem, ""))


@dataclass
class Tally:
    """What a decoder made of a source's bytes: counted by `count` as the items come."""

    bytes: int = 0
    results: Counter[str] = field(default_factory=Counter)  # "ok" or the error's reason
    crc: Counter[str] = field(default_factory=Counter)  # decoded readings by CRC status
    messages: dict[str, str] = field(default_factory=dict)  # the last message per reason
    protocol: str = ""

    def add(self, other: Tally) -> Tally:
        """This tally and `other` together (a longer window)."""
        return Tally(
            self.bytes + other.bytes,
            self.results + other.results,
            self.crc + other.crc,
            self.messages | other.messages,
            other.protocol or self.protocol,
        )

    def count(self, items: list[Decoded | DecodeError]) -> None:
        for item in items:
            if isinstance(item, DecodeError):
                self.results[item.reason] += 1
                self.messages[item.reason] = str(item)
            else:
                self.results["ok"] += 1
                self.crc[item.reading.crc] += 1


def source_problem(status: SourceStatus, spec: SourceSpec) -> str:
    """Why the source is not open, as a key of FIXES."""
    if spec.kind == "tcp":
        return "tcp"
    return ERRNO_PROBLEMS.get(status.errno or 0, "serial")


def source_findings(
    spec: SourceSpec, status: SourceStatus | None, tally: Tally, seconds: float
) -> list[Finding]:
    """The checks of the meter side, in order; later ones are left out once one fails for a
    reason that hides them (no port: no bytes to look at)."""
    name = spec.describe()
    if status is not None and not status.opened and status.error:
        problem = source_problem(status, spec)
        says = f"{name}: {SOURCE_SAYS.get(problem, 'cannot open it')} ({status.error})"
        return [finding("source", says, problem)]
    if status is not None and not status.ever_opened and not tally.bytes:
        return [finding("source", f"{name}: not opened within {seconds:g} s", "serial")]
    found = [finding("source", f"{name}: open")]
    detects = spec.kind == "serial" and spec.baud == 0 and status is not None
    line, fruitless = (status.line, status.fruitless) if status is not None else ("", 0)
    if detects and not line and not fruitless:
        says = "still detecting the line settings (each is listened to for a few seconds)"
        return [*found, finding("line", says, "detecting")]
    probed = status.probed if status is not None else 0
    if not tally.bytes and not probed:
        return [*found, finding("bytes", f"no bytes in {seconds:g} s", "no_bytes")]
    at_others = f" ({probed} at line settings that gave no frames)" if probed else ""
    found.append(finding("bytes", f"{tally.bytes + probed} bytes in {seconds:g} s{at_others}"))
    if detects and not line:
        return [*found, finding("line", "no line setting gave valid frames", "no_line")]
    if detects:
        found.append(finding("line", f"line settings found: {line}"))
    total = sum(tally.results.values())
    if not total:
        return [*found, finding("frames", "bytes arrive but hold no frame", "no_frames")]
    summary = ", ".join(f"{n} {reason}" for reason, n in tally.results.most_common())
    found.append(finding("frames", f"protocol {tally.protocol or '?'}: {total} frames ({summary})"))
    found.append(crc_finding(tally))
    found.append(encryption_finding(tally))
    if not tally.results["ok"] and all(f.ok for f in found):
        reasons = ", ".join(tally.messages.values())
        found.append(finding("decode", f"no frame decoded: {reasons}", "bad_frames"))
    return found


def crc_finding(tally: Tally) -> Finding:
    """Bad when at least as many frames had a wrong CRC as decoded; a few on a long line are
    noted, not a problem."""
    bad, decoded = tally.results["crc_error"], tally.results["ok"]
    if bad and bad >= decoded:
        return finding("crc", f"{bad} frames with a wrong CRC, {decoded} decoded", "crc_error")
    if not decoded:
        return finding("crc", "no CRC errors")
    good = ", ".join(f"{n} {status}" for status, n in tally.crc.most_common())
    text = "CRC OK" if set(tally.crc) == {"ok"} else "CRC"
    wrong = f"; {bad} with a wrong CRC" if bad else ""
    return finding("crc", f"{text} ({good}{wrong})")


def encryption_finding(tally: Tally) -> Finding:
    if tally.results["key_error"]:
        return finding("encryption", "encrypted frames and no key to open them", "key_error")
    if tally.results["auth_error"]:
        return finding("encryption", tally.messages["auth_error"], "auth_error")
    return finding("encryption", "no key needed, or the key fits")


def verdict(findings: list[Finding]) -> Finding:
    """The first failing finding, else the last one (all is well)."""
    return next((f for f in findings if not f.ok), findings[-1])
