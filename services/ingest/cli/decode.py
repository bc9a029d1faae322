"""`hanport decode FILE... [--hex] [--no-crc] [--timezone TZ] [--protocol P] [--key K]
[--auth-key K]`: decode meter captures offline (P1 telegrams, HDLC/M-Bus/DLMS frames, encrypted
ones with the meter's keys).

Consumes capture files (raw bytes as the meter sent them, or hex dumps with `--hex`; `-` is
standard input); a capture ends where its last telegram ends, so a decrypted P1 telegram without
`!` line is decoded (`crc: absent`) rather than reported cut off. Produces one
JSON reading per decoded telegram on stdout, in the readings stream's JSON form
(`shared.reading.encode_reading`), and one line per bad frame on stderr: file, byte offset, why.
Exit status: 0 when every frame decoded, 1 when some did not (or a file held none), 2 on usage
errors (bad options, unreadable files).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.reading import encode_reading as encode

from ..codec.decoded import Decoded, Decoder
from ..codec.factory import DecoderOptions, finish, make_decoder
from ..codec.p1.clock import DEFAULT_TIMEZONE
from ..meter_keys import load_keys

_KEY_OPTIONS = (  # the settings `meter_keys.load_keys` names, as this command's options
    ("HANPORT_METER_AUTH_KEY_FILE", "--auth-key-file"),
    ("HANPORT_METER_AUTH_KEY", "--auth-key"),
    ("HANPORT_METER_KEY_FILE", "--key-file"),
    ("HANPORT_METER_KEY", "--key"),
)
PIECE = 256 * 1024  # bytes of a capture decoded and written at a time
_HEX_NOISE = re.compile(rb"#[^\n]*|0x|[\s:,-]")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hanport decode",
        description="Decode meter captures to JSON readings (one per line on stdout).",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="capture files to decode (- for standard input)"
    )
    p.add_argument("--hex", action="store_true", help="files are hex dumps (# comments allowed)")
    p.add_argument("--no-crc", action="store_true", help="do not check P1 CRCs")
    p.add_argument(
        "--timezone",
        default=DEFAULT_TIMEZONE,
        help=f"IANA zone of the meter clock (default {DEFAULT_TIMEZONE})",
    )
    p.add_argument(
        "--protocol",
        choices=("auto", "p1", "hdlc", "mbus", "dlms"),
        default="auto",
        help="what the capture holds (default: found from the first valid frame)",
    )
    p.add_argument("--key", help="encrypted meters: the encryption key, 32 hex digits")
    p.add_argument("--auth-key", help="encrypted meters: the authentication key, 32 hex digits")
    p.add_argument("--key-file", help="a file holding the encryption key instead")
    p.add_argument("--auth-key-file", help="a file holding the authentication key instead")
    return p


def decoder_for(args: argparse.Namespace) -> Decoder:
    """The one place `hanport decode` chooses how to read a capture (binary meters: add their
    options to the parser and to `DecoderOptions`)."""
    keys = load_keys(args.key, args.key_file, args.auth_key, args.auth_key_file)
    return make_decoder(
        DecoderOptions(
            protocol=args.protocol, keys=keys, check_crc=not args.no_crc, timezone=args.timezone
        )
    )


def from_hex(text: bytes) -> bytes:
    """A hex dump to bytes; raises ValueError when it is not one."""
    return bytes.fromhex(_HEX_NOISE.sub(b"", text).decode("ascii", "replace"))


def looks_like_hex(data: bytes) -> bool:
    try:
        return bool(from_hex(data))
    except ValueError:
        return False


def option_names(message: str) -> str:
    """A message naming the key settings (HANPORT_METER_KEY ...) in this command's terms."""
    for setting, option in _KEY_OPTIONS:
        message = message.replace(setting, option)
    return message


def read_capture(name: str) -> bytes:
    """A capture's bytes; `-` is standard input. Raises OSError."""
    return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()


def decode_file(name: str, data: bytes, decoder: Decoder) -> tuple[int, int]:
    """Print the readings of one capture; returns (decoded, failed). Each frame is decoded once;
    the capture goes to the decoder a piece at a time and each piece's readings are written in
    one batch, so a long capture never holds all its readings in memory."""
    received = int(time.time() * 1000)
    decoded = failed = 0
    for start in range(0, len(data) + 1, PIECE):
        last = start + PIECE > len(data)
        items = decoder.feed(data[start : start + PIECE], received)
        if last:
            items += finish(decoder, received, ends_telegram=True)
        lines = [encode(item.reading) for item in items if isinstance(item, Decoded)]
        decoded += len(lines)
        failed += len(items) - len(lines)
        if lines:
            lines.append(b"")
            sys.stdout.buffer.write(b"\n".join(lines))
        for item in items:
            if not isinstance(item, Decoded):
                message = option_names(str(item))
                print(f"{name}: byte {item.offset}: {item.reason}: {message}", file=sys.stderr)
    sys.stdout.buffer.flush()
    if decoded == 0 and failed == 0:
        hint = " (it looks like a hex dump: add --hex)" if looks_like_hex(data) else ""
        print(f"{name}: byte 0: no telegram or frame found{hint}", file=sys.stderr)
        failed = 1
    return decoded, failed


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"hanport decode: unknown time zone {args.timezone!r}", file=sys.stderr)
        return 2
    try:
        decoder_for(args)  # the keys are checked before any file is read
    except ValueError as error:
        print(f"hanport decode: {option_names(str(error))}", file=sys.stderr)
        return 2
    captures: list[tuple[str, bytes]] = []
    for name in args.files:
        try:
            data = read_capture(name)
        except OSError as error:
            print(f"hanport decode: cannot read {name}: {error.strerror}", file=sys.stderr)
            return 2
        if args.hex:
            try:
                data = from_hex(data)
            except ValueError:
                print(f"{name}: byte 0: not a hex dump (drop --hex for raw bytes)", file=sys.stderr)
                return 1
        captures.append(("stdin" if name == "-" else name, data))
    failures = 0
    for name, data in captures:
        _decoded, failed = decode_file(name, data, decoder_for(args))
        failures += failed
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
