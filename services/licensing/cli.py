"""`hanport license ...`: the vendor's license tools.

    hanport license keygen --out DIR
    hanport license issue --key PRIVATE_KEY --serial S --use consumer|commercial
                          --kind activation|trial|full --features rest,mqtt,modbus
                          [--meter-id M] [--meters A,B] [--days N] [--licensee NAME] --out FILE
    hanport license trial --key PRIVATE_KEY --serial S [--licensee NAME] --out FILE
    hanport license verify --public-key FILE_OR_DIR [--serial S] [--use U] [--meter-id M] LICENSE
    hanport license show LICENSE
    hanport license self-activate [--dir HANPORT_LICENSE_DIR]     (on the box itself)

Consumes key files and license files; produces them (and a readable description). `verify`
exits 0 when the license is valid now, 1 with the reason otherwise.

`self-activate` is for a box someone built themselves: it makes the box's own key pair (once,
in `HANPORT_LICENSE_DIR/local-keys`) and signs a consumer activation of every feature but REST
(`SELF_ACTIVATED`: MQTT, Modbus, the emulations, the export) for this box's serial into the
license folder, where the licensing service picks it up within 5 s. A key made there is trusted
for nothing more (`shared.license.LOCAL_KEY_FEATURES`): commercial use needs a license from the
vendor.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import msgspec

from shared.identity import read_serial_file
from shared.license import (
    ALL_FEATURES,
    LOCAL_KEYS_DIR,
    FeatureName,
    KeyFileError,
    Kind,
    License,
    LicenseError,
    Use,
    check,
    describe,
    load_public_keys,
    now_ms,
    read_signed,
)
from shared.settings import CommonSettings, load_settings

from .signing import TRIAL_DAYS, generate_keys, load_private_key, new_license
from .store import LicenseStore

# what `self-activate` switches on: every feature a box-local key may sign
SELF_ACTIVATED: tuple[FeatureName, ...] = (
    "mqtt", "modbus", "shelly", "homewizard", "sma", "export"
)  # fmt: skip


def features(text: str) -> list[FeatureName]:
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    bad = [f for f in wanted if f not in ALL_FEATURES]
    if bad or not wanted:
        raise argparse.ArgumentTypeError(
            f"features are a comma-separated list of {', '.join(ALL_FEATURES)}; got {text!r}"
        )
    return cast(list[FeatureName], wanted)


def meter_list(text: str) -> list[str]:
    """`main,heatpump` -> the meters a license serves (at least one)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one meter, e.g. main,heatpump")
    return names


def keygen(args: argparse.Namespace) -> int:
    private, public = generate_keys(Path(args.out))
    print(f"private key: {private}  (keep it secret; never commit it)")
    print(f"public key:  {public}  (ship it: HANPORT_LICENSE_PUBLIC_KEYS)")
    return 0


def _write(out: str, text: bytes) -> None:
    Path(out).write_bytes(text)


def issue(args: argparse.Namespace) -> int:
    text = new_license(
        load_private_key(Path(args.key)),
        serial=args.serial,
        use=cast(Use, args.use),
        kind=cast(Kind, args.kind),
        features=args.features,
        licensee=args.licensee,
        meter_id=args.meter_id,
        meters=args.meters,
        days=args.days,
    )
    _write(args.out, text)
    print(f"wrote {args.out}")
    return 0


def trial(args: argparse.Namespace) -> int:
    text = new_license(
        load_private_key(Path(args.key)),
        serial=args.serial,
        use="commercial",
        kind="trial",
        features=ALL_FEATURES,
        licensee=args.licensee,
        days=TRIAL_DAYS,
    )
    _write(args.out, text)
    print(f"wrote {args.out} (all features, {TRIAL_DAYS} days)")
    return 0


def verify(args: argparse.Namespace) -> int:
    try:
        keys = load_public_keys(args.public_key)
        text = Path(args.license).read_bytes()
        signed = read_signed(text, keys)
        check(
            signed.license,
            serial=args.serial,
            use=cast(Use, args.use),
            now=now_ms(),
            meter_id=args.meter_id,
        )
    except (LicenseError, KeyFileError, OSError) as error:
        print(f"invalid: {error}", file=sys.stderr)
        return 1
    print(
        f"valid: license {signed.id} ({signed.license.use} {signed.license.kind}, "
        f"{', '.join(signed.license.features)}; expires {signed.license.expires or 'never'})"
    )
    return 0


def show(args: argparse.Namespace) -> int:
    try:
        document = msgspec.json.decode(Path(args.license).read_bytes())
        license = msgspec.convert(document["licence"], License)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as error:
        print(f"cannot read {args.license}: {error}", file=sys.stderr)
        return 1
    print(describe(license))
    print(f"{'Signature:':<15}not checked here (hanport license verify --public-key ...)")
    return 0


def self_activate(args: argparse.Namespace) -> int:
    settings = load_settings(CommonSettings)
    folder = Path(args.dir) if args.dir else settings.license_dir
    serial = settings.serial or read_serial_file(folder)
    if serial is None:
        print(
            f"hanport license self-activate: no reader serial in {folder} yet; start the "
            "licensing service once (it establishes the serial there), set HANPORT_SERIAL, or "
            "name the folder with --dir",
            file=sys.stderr,
        )
        return 1
    keys = folder / LOCAL_KEYS_DIR
    existing = sorted(keys.glob("hanport-*.key")) if keys.is_dir() else []
    private = existing[0] if existing else generate_keys(keys)[0]
    text = new_license(
        load_private_key(private),
        serial=serial,
        use="consumer",
        kind="activation",
        features=SELF_ACTIVATED,
        licensee="self-activated",
    )
    signed = read_signed(text, {}, load_public_keys(private.with_suffix(".pub")))
    path = LicenseStore(folder).save(signed.id, text)
    print(f"wrote {path}: consumer activation of {', '.join(SELF_ACTIVATED)} for reader {serial}")
    print(f"signed with this box's own key {private} (trusted for consumer activations only)")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hanport license", description="The vendor's license tools.")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="write a new signing key pair")
    p.add_argument("--out", required=True, help="folder for the key files")
    p.set_defaults(run=keygen)

    p = sub.add_parser("issue", help="issue a signed license")
    p.add_argument("--key", required=True, help="the private key file")
    p.add_argument("--serial", required=True, help="the reader's serial")
    p.add_argument("--use", required=True, choices=["consumer", "commercial"])
    p.add_argument("--kind", required=True, choices=["activation", "trial", "full"])
    p.add_argument("--features", required=True, type=features, help="e.g. mqtt,modbus")
    p.add_argument("--meter-id", help="bind the license to this meter")
    p.add_argument(
        "--meters",
        type=meter_list,
        help="serve only these meters, e.g. main,heatpump (names on the box or equipment ids; "
        "default: every meter)",
    )
    p.add_argument("--days", type=int, help="valid for N days (default: perpetual)")
    p.add_argument("--licensee", default="", help="who the license is for")
    p.add_argument("--out", required=True, help="the license file to write")
    p.set_defaults(run=issue)

    p = sub.add_parser("trial", help=f"issue a {TRIAL_DAYS}-day commercial trial, all features")
    p.add_argument("--key", required=True, help="the private key file")
    p.add_argument("--serial", required=True, help="the reader's serial")
    p.add_argument("--licensee", default="", help="who the trial is for")
    p.add_argument("--out", required=True, help="the license file to write")
    p.set_defaults(run=trial)

    p = sub.add_parser("verify", help="check a license's signature and validity now")
    p.add_argument("--public-key", required=True, help="public key file or folder of them")
    p.add_argument("--serial", help="also require this reader serial")
    p.add_argument("--use", default="consumer", choices=["consumer", "commercial"])
    p.add_argument("--meter-id", help="also require this meter (for meter-bound licenses)")
    p.add_argument("license")
    p.set_defaults(run=verify)

    p = sub.add_parser(
        "self-activate",
        help="on a box you built: activate MQTT, Modbus, the emulations and the export for "
        "consumer use with the box's own key",
    )
    p.add_argument("--dir", help="the license folder (default: HANPORT_LICENSE_DIR)")
    p.set_defaults(run=self_activate)

    p = sub.add_parser("show", help="print a license in readable form")
    p.add_argument("license")
    p.set_defaults(run=show)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run = cast(Callable[[argparse.Namespace], int], args.run)
    try:
        return run(args)
    except (KeyFileError, OSError, ValueError) as error:
        print(f"hanport license {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
