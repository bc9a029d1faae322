"""The diagnosis rules (pure): which finding fails, and what the tallies add up to."""

from __future__ import annotations

import errno

from services.ingest.codec.decoded import DecodeError
from services.ingest.diagnosis import FIXES, Tally, crc_finding, source_findings, verdict
from services.ingest.sources.spec import parse_source
from services.ingest.sources.status import SourceStatus


def tally(**results: int) -> Tally:
    counted = Tally(bytes=1000, protocol="p1")
    for reason, n in results.items():
        counted.results[reason] += n
        if reason == "ok":
            counted.crc["ok"] += n
    return counted


def test_a_few_crc_errors_among_good_frames_are_noted_not_failed() -> None:
    assert crc_finding(tally(ok=9, crc_error=1)).ok
    assert crc_finding(tally(ok=9, crc_error=1)).says == "CRC OK (9 ok; 1 with a wrong CRC)"
    bad = crc_finding(tally(ok=1, crc_error=1))
    assert not bad.ok and bad.fix == FIXES["crc_error"]


def test_the_os_error_says_which_problem_the_port_has() -> None:
    spec = parse_source("/dev/ttyUSB0")
    for number, problem in ((errno.ENOENT, "missing"), (errno.EACCES, "permission")):
        status = SourceStatus()
        status.failed(OSError(number, "refused"))
        [found] = source_findings(spec, status, Tally(), 5)
        assert (found.check, found.ok, found.problem) == ("source", False, problem)


def test_bytes_without_frames_point_at_the_line_settings() -> None:
    spec = parse_source("serial:///dev/ttyUSB0?baud=115200")
    status = SourceStatus()
    status.open()
    found = verdict(source_findings(spec, status, Tally(bytes=500), 5))
    assert (found.check, found.problem) == ("frames", "no_frames")
    assert "bare device path" in found.fix


def test_frames_that_only_fail_to_parse_are_a_decode_problem() -> None:
    counted = Tally(bytes=500, protocol="p1")
    counted.count([DecodeError("parse_error", "no header line", offset=0)])
    status = SourceStatus(line="115200 8N1")
    status.open()
    found = verdict(source_findings(parse_source("/dev/ttyUSB0"), status, counted, 5))
    assert (found.check, found.problem) == ("decode", "bad_frames")


def test_tallies_add_up() -> None:
    both = tally(ok=2).add(tally(ok=1, key_error=1))
    assert (both.bytes, both.results["ok"], both.results["key_error"]) == (2000, 3, 1)


def test_a_bare_path_is_detecting_until_every_line_setting_was_tried() -> None:
    spec = parse_source("/dev/ttyUSB0")
    status = SourceStatus()
    status.open()
    found = verdict(source_findings(spec, status, Tally(), 20))
    assert (found.check, found.problem) == ("line", "detecting")
    status.fruitless, status.probed = 1, 4000  # a whole round: bytes, but no frames in them
    found = verdict(source_findings(spec, status, Tally(), 120))
    assert (found.check, found.problem) == ("line", "no_line")
    status.probed = 0  # a whole round of silence
    found = verdict(source_findings(spec, status, Tally(), 120))
    assert (found.check, found.problem) == ("bytes", "no_bytes")
