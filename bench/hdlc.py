"""HDLC decoding speed: hanport's `DlmsDecoder` against amshan on the same frames.

Consumes the HDLC captures in tests/fixtures/hdlc (Aidon, Kaifa, Kamstrup); prints frames per
second for each and the ratio (goal: hanport at least 20x amshan). Both do the whole job: find
frames in a byte stream, check HCS/FCS, decode the notification into values.
"""

from __future__ import annotations

import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hdlc"


def frames() -> list[bytes]:
    return [bytes.fromhex(p.read_text().strip()) for p in sorted(FIXTURES.glob("*.hex"))]


def rate(run: object, stream: bytes, count: int, seconds: float = 3.0) -> float:
    """Frames per second of `run(stream)` (which decodes `count` frames), best of repeats."""
    assert callable(run)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        decoded = run(stream)
        elapsed = time.perf_counter() - start
        assert decoded == count, (decoded, count)
        best = max(best, count / elapsed)
    return best


def hanport(stream: bytes) -> int:
    from services.ingest.decoder import Decoded
    from services.ingest.dlms import DlmsDecoder

    decoder = DlmsDecoder("hdlc", tz="Europe/Oslo")
    return sum(isinstance(o, Decoded) for o in decoder.feed(stream, 0))


def amshan(stream: bytes) -> int:
    from han import autodecoder, hdlc

    reader = hdlc.HdlcFrameReader(False)
    decoder = autodecoder.AutoDecoder()
    decoded = 0
    for frame in reader.read(stream):
        if frame.is_good_ffc and decoder.decode_message_payload(frame.payload) is not None:
            decoded += 1
    return decoded


def main() -> None:
    corpus = frames()
    repeats = 50
    stream = b"".join(corpus) * repeats
    count = len(corpus) * repeats
    print(f"HDLC: {len(corpus)} captures x {repeats} = {count} frames, {len(stream)} bytes")
    ours = rate(hanport, stream, count)
    print(f"  hanport DlmsDecoder : {ours:10.0f} frames/s")
    try:
        theirs = rate(amshan, stream, count)
    except ImportError:
        print("  amshan not installed: no ratio")
        return
    print(f"  amshan              : {theirs:10.0f} frames/s")
    print(f"  ratio hanport/amshan: {ours / theirs:10.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
