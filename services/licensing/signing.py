"""Issuing licenses: key pairs and signatures, for the vendor's command line only
(`services/licensing/cli.py`). Gateways only verify (`shared.license`) and never hold a private
key.

Consumes a private key file (PEM, Ed25519) and what the license says; produces the license file
text (`shared.license` describes the format and its canonical encoding).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.license import (
    ALL_FEATURES,
    DAY_MS,
    FeatureName,
    KeyFileError,
    Kind,
    License,
    Use,
    canonical,
    format_time,
    key_id,
    now_ms,
)

TRIAL_DAYS = 21


def generate_keys(out: Path) -> tuple[Path, Path]:
    """Write a new key pair into `out` (private key mode 0600); returns (private, public)."""
    out.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    kid = key_id(private.public_key())
    private_path = out / f"hanport-{kid}.key"
    public_path = out / f"hanport-{kid}.pub"
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.touch(mode=0o600)
    private_path.write_bytes(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise KeyFileError(f"cannot read private key {path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key


def sign(license: License, private: Ed25519PrivateKey) -> bytes:
    """The license file text for `license`, signed with `private` (its key id must match)."""
    if license.key_id != key_id(private.public_key()):
        raise ValueError("license.key_id does not name the signing key")
    body = license.summary()  # without `meters` when it serves every meter: reads as before
    signature = private.sign(canonical(body))
    document = {"licence": body, "signature": base64.b64encode(signature).decode()}
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def new_license(
    private: Ed25519PrivateKey,
    *,
    serial: str,
    use: Use,
    kind: Kind,
    features: Iterable[FeatureName],
    licensee: str = "",
    meter_id: str | None = None,
    meters: Iterable[str] | None = None,
    days: int | None = None,
    now: int | None = None,
    not_before: int | None = None,
    expires: int | None = None,
) -> bytes:
    """Issue a signed license file. `days` (or an explicit `expires` in ms) ends it; neither: it
    never expires. `meters`: the features serve only these meters (names or equipment ids). A
    trial always lasts `TRIAL_DAYS` unless `expires` or `days` says otherwise."""
    issued = now if now is not None else now_ms()
    issued -= issued % 1000
    start = issued if not_before is None else not_before
    if kind == "trial" and days is None and expires is None:
        days = TRIAL_DAYS
    if expires is None and days is not None:
        expires = start + days * DAY_MS
    wanted = list(dict.fromkeys(features))
    unknown = [f for f in wanted if f not in ALL_FEATURES]
    if unknown or not wanted:
        raise ValueError(f"features must be some of {', '.join(ALL_FEATURES)}, got {wanted}")
    license = License(
        id=f"L-{secrets.token_hex(6)}",
        serial=serial,
        meter_id=meter_id,
        meters=None if meters is None else list(dict.fromkeys(meters)),
        licensee=licensee,
        use=use,
        kind=kind,
        features=sorted(wanted, key=ALL_FEATURES.index),
        issued_at=format_time(issued),
        not_before=format_time(start),
        expires=None if expires is None else format_time(expires),
        key_id=key_id(private.public_key()),
    )
    return sign(license, private)
