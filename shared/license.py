"""The license document: what it says, how its signature is checked, and whether it holds for this
reader. (Signing is the vendor's: `services.licensing.signing`, used only by the vendor CLI.)

Consumes license files (JSON text) and Ed25519 key files (PEM); produces verified `License`
values or a `LicenseError` whose `reason` is one short code (also the metric label) and whose
message says what is wrong and what to do.

A license file, readable by a person:

    {
      "licence": {"id": ..., "serial": ..., "meter_id": null, "licensee": ..., "use": "consumer",
                  "kind": "activation", "features": ["mqtt"], "issued_at": "2026-11-26T12:00:00Z",
                  "not_before": "2026-11-26T12:00:00Z", "expires": null, "key_id": "...",
                  "meters": ["main", "heatpump"]},
      "signature": "<base64 Ed25519 signature over the canonical encoding of 'licence'>"
    }

(The keys `licence` here and `licence_id`/`licences` in `GET /license` keep the spelling of
0.1.0, so that files already issued and their clients keep working; everything else says
"license".) `meters` is optional: when present, the license's features serve only the meters it
names (a meter's name on the box or its equipment id, `serves_meter`); absent, every meter. The canonical encoding is the `licence` object as UTF-8 JSON with sorted keys and no spaces. The
key id is the first 16 hex digits of the SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .meters import equipment_name

Use = Literal["consumer", "commercial"]
Kind = Literal["activation", "trial", "full"]
FeatureName = Literal["rest", "mqtt", "modbus", "shelly", "homewizard", "sma", "export"]
T = TypeVar("T")
ALL_FEATURES: tuple[FeatureName, ...] = (
    "rest", "mqtt", "modbus", "shelly", "homewizard", "sma", "export"
)  # fmt: skip
DAY_MS = 86_400_000
MAX_LICENSE_BYTES = 16_384
# A license file nests 3 deep (document, license, features); anything deeper is refused before
# it is parsed (a parser recursing through thousands of brackets raises RecursionError).
MAX_DEPTH = 8
# What a box-local key (`hanport license self-activate`) may sign: a consumer activation of
# these features for this box's serial, nothing commercial.
LOCAL_KEY_FEATURES: frozenset[str] = frozenset(
    {"mqtt", "modbus", "shelly", "homewizard", "sma", "export"}
)

# reason code -> what it means and what to do (one table, walked by `LicenseError`)
REASONS: dict[str, str] = {
    "too_large": "the license is larger than {limit} bytes; upload the license file itself",
    "malformed_json": "the license is not valid JSON ({detail}); upload the file as issued",
    "too_deep": "the license nests deeper than {limit} levels ({detail}); upload the file as "
    "issued",
    "malformed_base64": "the signature is not valid base64 ({detail}); upload the file as issued",
    "malformed": "the license is missing or has bad fields ({detail}); ask the vendor for a new one",
    "unknown_key": "license is signed with key {detail}, which this deployment does not trust; "
    "add the vendor's public key to HANPORT_LICENSE_PUBLIC_KEYS",
    "bad_signature": "the signature does not match the license ({detail}): it was modified or "
    "not signed by the key it names; use the file exactly as issued",
    "expired": "the license expired at {detail}; ask the vendor for a renewal",
    "not_yet_valid": "the license is not valid before {detail}; install it then",
    "wrong_serial": "the license is for reader {detail}; ask for one for this reader's serial",
    "wrong_meter": "the license is bound to meter {detail}; ask for one for this meter",
    "local_key_scope": "license {detail} is signed with this box's own key, which may only sign "
    "a consumer activation of mqtt/modbus/shelly/homewizard/sma/export; a commercial license "
    "comes from the vendor",
    "consumer_in_commercial": "license {detail} is for consumer use and this deployment declares "
    "commercial use (HANPORT_USE); a commercial license or trial is needed",
    "unauthorized": "installing or removing a license needs the admin token ({detail})",
    "too_many_attempts": "too many wrong admin tokens from this address ({detail}); wait and "
    "try again with the right one",
    "not_found": "no installed license has id {detail}",
    "storage": "cannot store the license ({detail}); make HANPORT_LICENSE_DIR a writable volume",
}


class LicenseError(Exception):
    """A license refused: `reason` is a code from REASONS, `str(error)` the full explanation."""

    def __init__(self, reason: str, detail: Any = "", **extra: Any) -> None:
        self.reason = reason
        self.detail = str(detail)
        text = REASONS[reason].format(detail=detail, **extra)
        super().__init__(f"{reason}: {text}")


class License(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The signed part of a license file. Times are ISO 8601 UTC strings (`...Z`)."""

    id: str
    serial: str
    licensee: str
    use: Use
    kind: Kind
    features: list[FeatureName]
    issued_at: str
    not_before: str
    key_id: str
    expires: str | None = None
    meter_id: str | None = None
    # the meters (names on the box, or equipment ids) its features serve; None: every meter.
    # Left out of the file when None, so licenses without it read as before everywhere.
    meters: list[str] | None = None

    @property
    def not_before_ms(self) -> int:
        return parse_time(self.not_before)

    @property
    def expires_ms(self) -> int | None:
        return None if self.expires is None else parse_time(self.expires)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        if out.get("meters") is None:  # every meter: said by leaving it out, as files do
            out.pop("meters", None)
        return out


class _File(msgspec.Struct):
    # the file's key keeps the spelling of the files issued since 0.1.0
    license: dict[str, Any] = msgspec.field(name="licence")
    signature: str


@dataclass(frozen=True)
class Signed:
    """A license whose signature checked out, with the exact file text it came from."""

    license: License
    text: bytes

    @property
    def id(self) -> str:
        return self.license.id


# ---------------------------------------------------------------- time


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# ---------------------------------------------------------------- keys


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class KeyFileError(Exception):
    """A key file that cannot be used; the message names the file and what to do."""


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise KeyFileError(f"cannot read public key {path}: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 public key")
    return key


def load_public_keys(location: str | Path | None) -> dict[str, Ed25519PublicKey]:
    """Trusted keys by key id from a PEM file or a folder of `*.pub`/`*.pem` files (rotation:
    keep the old and the new key in the folder). None: no trusted keys."""
    if location is None or str(location) == "":
        return {}
    path = Path(location)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".pub", ".pem") and p.is_file())
        if not files:
            raise KeyFileError(f"no *.pub or *.pem public key files in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise KeyFileError(f"public key file or folder {path} does not exist")
    return {key_id(key): key for key in map(load_public_key, files)}


LOCAL_KEYS_DIR = "local-keys"  # in HANPORT_LICENSE_DIR: the box's own key pair


def load_local_keys(license_dir: Path) -> dict[str, Ed25519PublicKey]:
    """The box-local public keys (`hanport license self-activate`) in the license folder, by key
    id; none when the folder has none. They are trusted only for consumer activations."""
    folder = license_dir / LOCAL_KEYS_DIR
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".pub" and p.is_file())
    except OSError:  # no such folder (no self-activation), or not readable here
        return {}
    return {key_id(key): key for key in map(load_public_key, files)}


# ---------------------------------------------------------------- verify


def canonical(license: dict[str, Any]) -> bytes:
    return json.dumps(license, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def nesting_depth(text: bytes) -> int:
    """How deep JSON text nests (brackets outside strings), found without parsing it; stops
    counting past MAX_DEPTH."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def decode_bounded(text: bytes, kind: type[T], limit: int = MAX_LICENSE_BYTES) -> T:
    """`msgspec.json.decode(text, type=kind)` for untrusted text: refuses what is larger than
    `limit` bytes or nests deeper than MAX_DEPTH before parsing, and turns anything the parser
    raises into a LicenseError (too_large, too_deep, malformed_json, malformed)."""
    if len(text) > limit:
        raise LicenseError("too_large", len(text), limit=limit)
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise LicenseError("too_deep", f"more than {MAX_DEPTH}", limit=MAX_DEPTH)
    try:
        return msgspec.json.decode(text, type=kind)
    except msgspec.ValidationError as error:
        raise LicenseError("malformed", error) from None
    except (msgspec.DecodeError, RecursionError, ValueError, TypeError) as error:
        raise LicenseError("malformed_json", error) from None


def read_signed(
    text: bytes,
    keys: dict[str, Ed25519PublicKey],
    local_keys: dict[str, Ed25519PublicKey] | None = None,
) -> Signed:
    """Parse a license file and check its signature with the trusted vendor `keys`, or with a
    box-local key from `local_keys` (then the license must be a consumer activation of
    LOCAL_KEY_FEATURES).

    Raises LicenseError: too_large, too_deep, malformed_json, malformed_base64, unknown_key,
    bad_signature, malformed (bad or missing fields), local_key_scope."""
    document = decode_bounded(text, _File)
    try:
        signature = base64.b64decode(document.signature, validate=True)
    except (binascii.Error, ValueError) as error:
        raise LicenseError("malformed_base64", error) from None
    kid = document.license.get("key_id")
    if not isinstance(kid, str):
        raise LicenseError("malformed", "no key_id")
    local = kid not in keys and kid in (local_keys or {})
    public = (local_keys or {}).get(kid) if local else keys.get(kid)
    if public is None:
        raise LicenseError("unknown_key", kid)
    try:
        public.verify(signature, canonical(document.license))
    except InvalidSignature:
        raise LicenseError("bad_signature", f"key {kid}") from None
    except (ValueError, TypeError, RecursionError) as error:  # e.g. a lone surrogate
        raise LicenseError("malformed", error) from None
    try:
        license = msgspec.convert(document.license, License)
        license.not_before_ms, license.expires_ms  # noqa: B018 - the times must parse
    except (msgspec.ValidationError, ValueError, TypeError) as error:
        raise LicenseError("malformed", error) from None
    if local and not (
        license.use == "consumer"
        and license.kind == "activation"
        and set(license.features) <= LOCAL_KEY_FEATURES
    ):
        raise LicenseError("local_key_scope", license.id)
    return Signed(license, text)


def check(
    license: License,
    *,
    serial: str | None,
    use: Use,
    now: int,
    meter_id: str | None = None,
) -> None:
    """Whether a signature-checked license holds for this reader at `now` (ms). Raises
    LicenseError: wrong_serial, consumer_in_commercial, not_yet_valid, expired, wrong_meter.
    `meter_id` is the meter this reader sees (None: none seen yet, not checked here)."""
    if serial is not None and license.serial != serial:
        raise LicenseError("wrong_serial", f"{license.serial}, not {serial}")
    if use == "commercial" and license.use == "consumer":
        raise LicenseError("consumer_in_commercial", license.id)
    if now < license.not_before_ms:
        raise LicenseError("not_yet_valid", license.not_before)
    expires = license.expires_ms
    if expires is not None and now >= expires:
        raise LicenseError("expired", license.expires)
    if license.meter_id is not None and meter_id is not None and license.meter_id != meter_id:
        raise LicenseError("wrong_meter", f"{license.meter_id}, not {meter_id}")


def verify(
    text: bytes,
    keys: dict[str, Ed25519PublicKey],
    *,
    serial: str | None,
    use: Use,
    now: int,
    meter_id: str | None = None,
) -> Signed:
    """`read_signed` then `check`: the whole verdict on one license file."""
    signed = read_signed(text, keys)
    check(signed.license, serial=serial, use=use, now=now, meter_id=meter_id)
    return signed


def serves_meter(meters: list[str] | tuple[str, ...] | frozenset[str] | None, name: str,
                 meter_id: str | None = None) -> bool:  # fmt: skip
    """Whether a license naming `meters` (None: it names none) serves the meter called `name`
    on this box, whose equipment id is `meter_id`: it names either."""
    if meters is None:
        return True
    if name in meters:
        return True
    # as sent, or as its name reads it (DSMR meters send theirs hex-encoded: `4530...` is `E0...`)
    return meter_id is not None and (meter_id in meters or equipment_name(meter_id) in meters)


def describe(license: License) -> str:
    """The license as a person reads it (`hanport license show`)."""
    rows = [
        ("License", license.id),
        ("Reader serial", license.serial),
        ("Meter", license.meter_id or "any"),
        *((("Serves meters", ", ".join(license.meters)),) if license.meters is not None else ()),
        ("Licensee", license.licensee or "-"),
        ("Use", license.use),
        ("Kind", license.kind),
        ("Features", ", ".join(license.features)),
        ("Issued", license.issued_at),
        ("Valid from", license.not_before),
        ("Expires", license.expires or "never"),
        ("Signing key", license.key_id),
    ]
    return "\n".join(f"{name + ':':<15}{value}" for name, value in rows)
