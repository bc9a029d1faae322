"""SMA Energy Meter datagrams: hanport's encoder against pysma-plus's decoder.

Consumes made-up readings (a three-phase meter, every value moving, seeded); produces the cost
of one datagram: building it from a reading (services/emulate/sma/speedwire.py `encode`, the
sender's whole work per datagram and destination list) against pysma-plus (Home Assistant's
SMA library) decoding it (`SMAspeedwireEM.datagram_received`), after checking that every value
pysma-plus decodes is the one encoded. The ratio says what one datagram costs the box relative
to what it costs a client to read it; at 1 datagram/s either is negligible.

    python -m bench emulate_sma
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from pysmaplus.device_em import SMAspeedwireEM

from services.emulate.sma.speedwire import channels, encode
from shared.reading import Reading

T = TypeVar("T")
COUNT = 5_000
ROUNDS = 5
SERIAL = 3_912_345_678


def readings(count: int, seed: int = 21) -> list[Reading]:
    rng = random.Random(seed)
    out = []
    ic, ec = 12_345.678, 2_345.678
    for n in range(count):
        phases = [rng.uniform(-4000, 4000) for _ in range(3)]
        ic += max(sum(phases), 0) / 3_600_000
        ec += max(-sum(phases), 0) / 3_600_000
        out.append(
            Reading(
                ts=n * 1000,
                received=n * 1000,
                ic=round(ic, 3),
                ec=round(ec, 3),
                ric=123.456,
                rec=654.321,
                p=[sum(phases), *phases],
                pi=[max(sum(phases), 0.0), *(max(p, 0.0) for p in phases)],
                pe=[max(-sum(phases), 0.0), *(max(-p, 0.0) for p in phases)],
                r=[rng.uniform(-500, 500) for _ in range(4)],
                u=[rng.uniform(225, 240) for _ in range(3)],
                i=[abs(p) / 230 for p in phases],
                frequency=rng.uniform(49.9, 50.1),
            )
        )
    return out


def best_per_item(items: Sequence[T], run: Callable[[T], object]) -> float:
    """Fastest of ROUNDS runs of `run` over every item, in seconds per item."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for item in items:
            run(item)
        best = min(best, time.perf_counter() - started)
    return best / len(items)


async def measure() -> None:
    source = readings(COUNT)
    datagrams = [encode(reading, SERIAL, n) for n, reading in enumerate(source)]
    client = SMAspeedwireEM()
    address = ("192.0.2.10", 9522)

    # the same values on both sides before anything is timed
    for reading, datagram in zip(source[:500], datagrams[:500], strict=True):
        decoded = client.datagram_received(datagram, address)
        expected = {channel.obis: value for channel, value in channels(reading)}
        got = {key: value for key, value in decoded.items() if key.count(":") == 2}
        assert got == expected, (got, expected)

    # pysma-plus skips a datagram with the same sender and ticker as the one before: each
    # has a ticker of its own, as the real meter's
    encode_s = best_per_item(list(enumerate(source)), lambda pair: encode(pair[1], SERIAL, pair[0]))
    decode_s = best_per_item(
        datagrams, lambda datagram: client.datagram_received(datagram, address)
    )
    size = len(datagrams[0])
    print(f"   datagram: {size} bytes, {len(channels(source[0]))} channels + software version")
    print(f"   hanport encode (reading -> datagram):   {encode_s * 1e6:7.1f} us")
    print(f"   pysma-plus decode (datagram -> values): {decode_s * 1e6:7.1f} us")
    print(f"   ratio encode/decode: {encode_s / decode_s:.2f}")


def main() -> None:
    asyncio.run(measure())  # pysma-plus's reader wants an event loop to exist


if __name__ == "__main__":
    main()
