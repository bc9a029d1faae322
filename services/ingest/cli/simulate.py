"""`hanport simulate`: write the built-in meter's P1 telegrams somewhere a source can read them.

    hanport simulate [--interval S] [--count N] [--output -|FILE|tcp://HOST:PORT|pty] [--seed N]

Consumes nothing; produces telegrams (valid CRC) every `--interval` seconds (0: as fast as
possible; the meter clock then advances one second per telegram) to stdout, a file, every client
of a TCP port (from the first client on), or a new pseudo-terminal whose path is printed on
stderr (point `HANPORT_SOURCE` at it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import tty
from collections.abc import Callable
from urllib.parse import urlsplit

from ..codec.p1.clock import DEFAULT_TIMEZONE
from ..sources.simulated_meter import MeterSimulator

Sink = Callable[[bytes], None]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hanport simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--interval", type=float, default=1.0, help="seconds between telegrams")
    p.add_argument("--count", type=int, default=0, help="stop after N telegrams (0: never)")
    p.add_argument(
        "--output", default="-", help="- (stdout), a file, tcp://HOST:PORT (listen) or pty"
    )
    p.add_argument("--seed", type=int, default=1, help="random seed of the simulated household")
    p.add_argument("--timezone", default=DEFAULT_TIMEZONE, help="IANA zone of the meter clock")
    return p


async def emit(args: argparse.Namespace, sink: Sink) -> None:
    simulator = MeterSimulator(seed=args.seed, tz=args.timezone)
    step_ms = int(args.interval * 1000) if args.interval > 0 else 1000
    clock = int(time.time()) * 1000
    started = time.monotonic()
    sent = 0
    while not args.count or sent < args.count:
        sink(simulator.telegram(clock + sent * step_ms))
        sent += 1
        if args.interval > 0:
            await asyncio.sleep(max(0.0, started + sent * args.interval - time.monotonic()))
        elif sent % 100 == 0:
            await asyncio.sleep(0)  # let TCP clients be served


async def to_tcp(args: argparse.Namespace, host: str, port: int) -> None:
    clients: set[asyncio.StreamWriter] = set()
    first = asyncio.Event()

    async def connected(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clients.add(writer)
        first.set()

    def send(telegram: bytes) -> None:
        for writer in list(clients):
            if writer.is_closing():
                clients.discard(writer)
            else:
                writer.write(telegram)

    server = await asyncio.start_server(connected, host, port)
    bound = server.sockets[0].getsockname()
    print(f"hanport simulate: serving telegrams on tcp://{bound[0]}:{bound[1]}", file=sys.stderr)
    async with server:
        await first.wait()
        await emit(args, send)
        for writer in clients:
            await writer.drain()
            writer.close()


def pty_sink() -> tuple[Sink, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    print(f"hanport simulate: writing telegrams to {os.ttyname(slave)}", file=sys.stderr)
    os.set_blocking(master, False)

    def write(telegram: bytes) -> None:
        # nobody reads the port: the telegram is lost, as on a real serial line
        with contextlib.suppress(BlockingIOError):
            os.write(master, telegram)

    return write, slave  # the slave stays open so the terminal survives readers coming and going


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.interval < 0 or args.count < 0:
        print("hanport simulate: --interval and --count must not be negative", file=sys.stderr)
        return 2
    output: str = args.output
    try:
        if output.startswith("tcp://"):
            parts = urlsplit(output)
            if not parts.port:
                print("hanport simulate: expected --output tcp://HOST:PORT", file=sys.stderr)
                return 2
            asyncio.run(to_tcp(args, parts.hostname or "0.0.0.0", parts.port))
        elif output == "pty":
            write, _slave = pty_sink()
            asyncio.run(emit(args, write))
        elif output == "-":
            out = sys.stdout.buffer

            def to_stdout(telegram: bytes) -> None:
                out.write(telegram)
                out.flush()

            asyncio.run(emit(args, to_stdout))
        else:
            with open(output, "wb") as file:

                def to_file(telegram: bytes) -> None:
                    file.write(telegram)
                    file.flush()

                asyncio.run(emit(args, to_file))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
    except OSError as error:
        print(f"hanport simulate: {output}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
