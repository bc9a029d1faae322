"""HDLC decoding speed: hanport's `DlmsDecoder` against amshan on the same frames.

The HDLC section of `bench/parse.py` (run it with `python -m bench parse`, or this module alone
with `python -m bench.hdlc`). Consumes the HDLC captures in tests/fixtures/hdlc (Aidon, Kaifa,
Kamstrup); prints frames per second and the ratio (goal: hanport at least 20x amshan). Both read
the same stream: the corpus frames (lists of several shapes) in turn, ten times, every meter
clock moving a second each time (FCS recomputed). Both do the whole job: find frames in a byte
stream, check HCS/FCS, decode the notification to values (tests/dlms/test_amshan.py checks that
the values agree).

Two hanport figures: a meter's stream (one decoder for the whole run, as in the service: each
list shape is compiled on its first frame and replayed after), and cold (a new decoder for every
frame: always the full A-XDR decode and layout walk).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from fastcrc import crc16

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hdlc"


def frames() -> list[bytes]:
    return [bytes.fromhex(p.read_text().strip()) for p in sorted(FIXTURES.glob("*.hex"))]


# A COSEM date-time (12 bytes: year, month, day, weekday, hour, minute, second, ...), tagged
# (`09 0C`) in a notification body or untagged (`0C`) as a notification's own time.
_CLOCK = re.compile(rb"(?:\x09\x0c|\x0c)(\x07[\xe0-\xef].{10})", re.S)


def clock_moved(frame: bytes, step: int) -> bytes:
    """`frame` with every meter clock in it `step` seconds on (within its hour) and its FCS
    recomputed: the stream a meter sends, list after list, its clock moving."""
    data = bytearray(frame)
    for match in _CLOCK.finditer(frame):
        at = match.start(1)
        data[at + 6] = (frame[at + 6] + step // 60) % 60  # minute
        data[at + 7] = (frame[at + 7] + step) % 60  # second
    fcs = crc16.ibm_sdlc(bytes(data[1:-3]))
    data[-3:-1] = fcs.to_bytes(2, "little")
    return bytes(data)


def stream(corpus: list[bytes], rounds: int) -> bytes:
    """The corpus frames (lists of several shapes) in turn, `rounds` times, clocks moving."""
    return b"".join(clock_moved(frame, step) for step in range(rounds) for frame in corpus)


def sample(run: Callable[[], int], repeat: int = 1) -> float:
    """Frames per second of `repeat` calls of `run` (each answers the frames it decoded)."""
    done = 0
    start = time.perf_counter()
    for _ in range(repeat):
        done += run()
    return done / (time.perf_counter() - start)


def run() -> None:
    from han import autodecoder, hdlc

    from services.ingest.codec.decoded import Decoded
    from services.ingest.codec.dlms.decoder import DlmsDecoder

    corpus = frames()
    data = stream(corpus, 10)

    service = DlmsDecoder("hdlc", tz="Europe/Oslo")  # the service keeps one for its lifetime

    def ours() -> int:
        out = service.feed(data, 0)
        assert len(out) == 10 * len(corpus) and all(isinstance(o, Decoded) for o in out)
        return len(out)

    def ours_cold() -> int:
        for one in corpus:
            (out,) = DlmsDecoder("hdlc", tz="Europe/Oslo").feed(one, 0)
            assert isinstance(out, Decoded)
        return len(corpus)

    def amshan() -> int:
        decoder = autodecoder.AutoDecoder()
        decoded = 0
        for frame in hdlc.HdlcFrameReader(False).read(data):
            payload = frame.payload
            ok = frame.is_good_ffc and payload is not None
            if ok and decoder.decode_message_payload(payload) is not None:  # type: ignore[arg-type]
                decoded += 1
        assert decoded == 10 * len(corpus)
        return decoded

    # Short samples taking turns, best of each: on a shared machine the fastest sample is the
    # one nothing else disturbed.
    best_ours = best_cold = best_amshan = 0.0
    deadline = time.monotonic() + 20
    rounds = 0
    while rounds < 200 and time.monotonic() < deadline:
        best_ours = max(best_ours, sample(ours))
        best_cold = max(best_cold, sample(ours_cold))
        best_amshan = max(best_amshan, sample(amshan))
        rounds += 1
    print(f"HDLC: {len(corpus)} corpus frames (Aidon, Kaifa, Kamstrup)")
    print(f"  (best of {rounds} alternating short samples each; {_load()})")
    print(f"  hanport DlmsDecoder    : {best_ours:10.0f} frames/s (a meter's stream)")
    print(f"  hanport, cold          : {best_cold:10.0f} frames/s (new decoder per frame)")
    print(f"  amshan                 : {best_amshan:10.0f} frames/s")
    print(f"  ratio hanport/amshan   : {best_ours / best_amshan:10.1f}x (goal >= 20x)")
    print(f"  ratio cold/amshan      : {best_cold / best_amshan:10.1f}x")


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


if __name__ == "__main__":
    run()
