"""Real, signed licenses and entitlements for tests of any interface (REST, MQTT, Modbus).

Nothing here is a mock: `make_keys` makes a real Ed25519 key pair, `issue` signs a real license
file, and `grant` writes exactly the Redis records the licensing service writes (through its own
`services.licensing.publish`), including the notification, so `shared.entitlements.Entitlements`
in the service under test verifies the signature and grants the feature. `revoke` writes "not
granted" records and notifies, as the service does when a license is removed or expires.

How an interface test uses it (MQTT shown; Modbus and REST are the same):

    from tests.licensing_helpers import grant, revoke

    async def test_mqtt_waits_for_activation(redis_server, mosquitto_server, tmp_path):
        env = await grant(redis_server.url, tmp_path, serial="HPTEST0001", features=["mqtt"])
        # env == {"HANPORT_REDIS_URL": ..., "HANPORT_SERIAL": "HPTEST0001",
        #         "HANPORT_LICENSE_PUBLIC_KEYS": "<tmp_path>/license-keys/hanport-<kid>.pub",
        #         "HANPORT_USE": "consumer"}
        # subprocess: Popen([...], env={**os.environ, **env, ...})
        # in-process: monkeypatch.setenv for each item, then load your settings class
        ...                                    # the service starts publishing
        await revoke(redis_server.url, ["mqtt"])   # it stops within 5 s, no restart

- Start the service under test with that env (or grant after it started: both must work, the
  record change is notified on `shared.entitlements.CHANNEL`).
- Commercial use: `grant(..., use="commercial", features=["rest"])` issues a commercial full
  license and returns `HANPORT_USE=commercial`; without any grant REST answers 403.
- A license that runs out on its own: `grant(..., expires_in_s=3)`; the service must stop within
  5 s of that, with nothing else happening (Entitlements has a timer at each expiry).
- Call `grant` again with the same `tmp_path` to add features: the same keys are reused.
- `issue(private, serial=..., features=[...], ...)` gives license bytes for tests that install
  licenses through the licensing service's HTTP API (`PUT /license`) instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from redis.asyncio import Redis

from services.licensing.publish import publish
from services.licensing.signing import generate_keys, load_private_key, new_license
from shared.entitlements import FEATURES, Record
from shared.license import (
    FeatureName,
    Kind,
    Use,
    load_public_keys,
    now_ms,
    read_signed,
)

KEYS_DIR = "license-keys"


def make_keys(tmp_path: Path) -> tuple[Path, Path]:
    """A key pair under `tmp_path/license-keys` (made once per tmp_path): (private, public)."""
    folder = tmp_path / KEYS_DIR
    existing = sorted(folder.glob("hanport-*.key")) if folder.is_dir() else []
    if existing:
        private = existing[0]
        return private, private.with_suffix(".pub")
    return generate_keys(folder)


def issue(
    private: Path,
    *,
    serial: str,
    features: Iterable[FeatureName],
    use: Use = "consumer",
    kind: Kind | None = None,
    days: int | None = None,
    meter_id: str | None = None,
    meters: Iterable[str] | None = None,
    expires_ms: int | None = None,
    not_before_ms: int | None = None,
    now: int | None = None,
) -> bytes:
    """A signed license file. Default kind: `activation` for consumer use, `full` for commercial.
    No `days`/`expires_ms`: perpetual (trials: 21 days)."""
    if kind is None:
        kind = "activation" if use == "consumer" else "full"
    return new_license(
        load_private_key(private),
        serial=serial,
        use=use,
        kind=kind,
        features=features,
        licensee="hanport tests",
        meter_id=meter_id,
        meters=meters,
        days=days,
        now=now,
        not_before=not_before_ms,
        expires=expires_ms,
    )


def env_for(redis_url: str, public: Path, serial: str, use: Use) -> dict[str, str]:
    return {
        "HANPORT_REDIS_URL": redis_url,
        "HANPORT_SERIAL": serial,
        "HANPORT_LICENSE_PUBLIC_KEYS": str(public),
        "HANPORT_USE": use,
    }


async def grant(
    redis_url: str,
    tmp_path: Path,
    serial: str,
    features: Iterable[FeatureName],
    *,
    use: Use = "consumer",
    kind: Kind | None = None,
    days: int | None = None,
    expires_in_s: float | None = None,
    meters: Iterable[str] | None = None,
) -> dict[str, str]:
    """Sign a license for `features` (for `meters` only, when given) and publish it as the licensing service would; returns the
    env vars the service under test needs (see the module docstring)."""
    private, public = make_keys(tmp_path)
    expires = None if expires_in_s is None else now_ms() + int(expires_in_s * 1000)
    text = issue(
        private,
        serial=serial,
        features=features,
        use=use,
        kind=kind,
        days=days,
        expires_ms=expires,
        meters=meters,
    )
    await publish_license(redis_url, text, public)
    return env_for(redis_url, public, serial, use)


async def publish_license(redis_url: str, text: bytes, public: Path) -> None:
    """Publish an already issued license file as granting each of its features."""
    license = read_signed(text, load_public_keys(public)).license
    records: dict[str, Record] = {
        feature: Record(
            feature=feature,
            granted=True,
            reason=f"license {license.id} ({license.use} {license.kind})",
            until=license.expires_ms,
            license_id=license.id,
            license=text.decode(),
            updated=now_ms(),
        )
        for feature in license.features
    }
    redis = Redis.from_url(redis_url)
    try:
        await publish(redis, records)
    finally:
        await redis.aclose()


async def revoke(redis_url: str, features: Iterable[str] = FEATURES) -> None:
    """Publish "not granted" for `features`, as the service does when a license goes away."""
    records: dict[str, Record] = {
        feature: Record(
            feature=feature,
            granted=False,
            reason=f"no license grants '{feature}' (revoked by the test)",
            updated=now_ms(),
        )
        for feature in features
    }
    redis = Redis.from_url(redis_url)
    try:
        await publish(redis, records)
    finally:
        await redis.aclose()
