"""shared.entitlements.Entitlements against a real redis-server: records written by the test
helper (= by the licensing service's publish code) grant; hand-written ones do not; expiry,
clock rollback and Redis outages behave as the issue says."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.cancellation import stop
from shared.entitlements import (
    CHANNEL,
    ENTITLEMENT_REFUSED,
    Entitlements,
    Record,
    encode_record,
    record_key,
)
from shared.license import load_public_keys, now_ms
from shared.reading import Reading
from shared.settings import CommonSettings
from shared.stream import ReadingStream, connect
from tests.licensing_helpers import env_for, grant, issue, make_keys, publish_license, revoke
from tests.servers import RedisServer

SERIAL = "HPTEST0001"
WAIT = 10.0  # generous bound for a wait that must end within 5 s


def settings(env: dict[str, str]) -> CommonSettings:
    return CommonSettings(
        redis_url=env["HANPORT_REDIS_URL"],
        serial=env["HANPORT_SERIAL"],
        license_public_keys=env["HANPORT_LICENSE_PUBLIC_KEYS"],
        use=env["HANPORT_USE"],  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


@contextlib.asynccontextmanager
async def following(
    redis: Redis,
    config: dict[str, str] | CommonSettings,
    clock: Callable[[], int] | None = None,
) -> AsyncIterator[Entitlements]:
    """Entitlements following Redis (its `run()` as a task) for the body's length."""
    common = config if isinstance(config, CommonSettings) else settings(config)
    entitlements = Entitlements(redis, common, clock=clock)
    task = asyncio.create_task(entitlements.run())
    try:
        yield entitlements
    finally:
        await stop(task)


def refused(reason: str) -> float:
    return float(ENTITLEMENT_REFUSED.labels(reason)._value.get())


async def test_grant_then_revoke_wakes_waiters(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"])
    await revoke(redis_server.url)
    async with following(redis, env) as entitlements:
        assert not entitlements.decide("mqtt").granted
        assert entitlements.decide("rest").granted  # free in consumer use
        await grant(redis_server.url, tmp_path, SERIAL, ["mqtt", "modbus"])
        decision = await asyncio.wait_for(entitlements.wait_until("mqtt", granted=True), WAIT)
        assert decision.granted and decision.license_id is not None
        assert decision.until is None  # an activation is perpetual
        assert entitlements.decide("modbus").granted
        await revoke(redis_server.url, ["mqtt"])
        decision = await asyncio.wait_for(entitlements.wait_until("mqtt", granted=False), WAIT)
        assert "revoked" in decision.reason
        assert entitlements.decide("modbus").granted


async def test_license_expiry_stops_feature_without_any_event(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, SERIAL, ["modbus"], expires_in_s=2)
    async with following(redis, env) as entitlements:
        decision = await asyncio.wait_for(entitlements.wait_until("modbus", granted=True), WAIT)
        assert decision.until is not None
        decision = await asyncio.wait_for(entitlements.wait_until("modbus", granted=False), WAIT)
        assert "expired" in decision.reason
        assert now_ms() >= entitlements._held["modbus"].license.expires_ms  # type: ignore[operator]


async def test_hand_written_record_grants_nothing(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, SERIAL, ["rest"], use="commercial")
    await revoke(redis_server.url)
    async with following(redis, env) as entitlements:
        await asyncio.wait_for(entitlements.wait_until("rest", granted=False), WAIT)
        before = refused("malformed")
        forged = Record(feature="rest", granted=True, reason="trust me", license_id="L-forged")
        await redis.set(record_key("rest"), encode_record(forged))
        await redis.publish(CHANNEL, "rest")
        await asyncio.wait_for(_until(entitlements, lambda: refused("malformed") > before), WAIT)
        decision = entitlements.decide("rest")
        assert not decision.granted
        assert "no signed license" in decision.reason

        # a real license with its expiry edited by hand: the signature no longer matches
        private, _ = make_keys(tmp_path)
        text = issue(private, serial=SERIAL, features=["rest"], use="commercial", days=1)
        edited = re.sub(rb'"expires": "\d{4}', b'"expires": "2099', text)
        assert edited != text
        before = refused("bad_signature")
        forged = Record(feature="rest", granted=True, reason="edited", license=edited.decode())
        await redis.set(record_key("rest"), encode_record(forged))
        await redis.publish(CHANNEL, "rest")
        await asyncio.wait_for(
            _until(entitlements, lambda: refused("bad_signature") > before), WAIT
        )
        assert not entitlements.decide("rest").granted
        assert "bad_signature" in entitlements.decide("rest").reason


async def test_consumer_license_refused_in_commercial_use(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, SERIAL, ["rest", "mqtt"], use="consumer")
    env["HANPORT_USE"] = "commercial"
    before = refused("consumer_in_commercial")
    async with following(redis, env) as entitlements:
        await asyncio.wait_for(
            _until(entitlements, lambda: refused("consumer_in_commercial") > before), WAIT
        )
        assert not entitlements.decide("rest").granted
        assert "consumer" in entitlements.decide("mqtt").reason


async def test_other_readers_license_refused(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, "HPOTHER0002", ["mqtt"])
    env["HANPORT_SERIAL"] = SERIAL
    before = refused("wrong_serial")
    async with following(redis, env) as entitlements:
        await asyncio.wait_for(_until(entitlements, lambda: refused("wrong_serial") > before), WAIT)
        assert "HPOTHER0002" in entitlements.decide("mqtt").reason


async def test_keeps_verified_entitlement_while_redis_is_down_until_expiry(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"], expires_in_s=4)
    async with following(redis, env) as entitlements:
        await asyncio.wait_for(entitlements.wait_until("mqtt", granted=True), WAIT)
        redis_server.kill()
        assert entitlements.decide("mqtt").granted  # still, with Redis gone
        decision = await asyncio.wait_for(entitlements.wait_until("mqtt", granted=False), WAIT)
        assert "expired" in decision.reason


async def test_meter_time_ahead_defeats_clock_rollback(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    private, public = make_keys(tmp_path)
    real = now_ms()
    text = issue(
        private,
        serial=SERIAL,
        features=["mqtt"],
        not_before_ms=real - 10 * 86_400_000,
        expires_ms=real + 3_600_000,
    )
    await publish_license(redis_server.url, text, public)
    env = env_for(redis_server.url, public, SERIAL, "consumer")
    rolled_back = real - 86_400_000  # system clock turned back a day
    async with following(redis, env, clock=lambda: rolled_back) as entitlements:
        await asyncio.wait_for(entitlements.wait_until("mqtt", granted=True), WAIT)
        # the meter says it is two hours later: past the license's expiry
        meter = Reading(ts=real + 2 * 3_600_000, received=rolled_back, meter_id="M1")
        await ReadingStream(redis, "hanport:readings").add(meter)
        await redis.publish(CHANNEL, "")
        decision = await asyncio.wait_for(entitlements.wait_until("mqtt", granted=False), WAIT)
        assert "expired" in decision.reason
        assert entitlements.now() == meter.ts
        assert load_public_keys(public)  # the key the grant used is the trusted one


async def _until(entitlements: Entitlements, predicate: Callable[[], Any]) -> None:
    """Wait for `predicate` to hold after one of the notifications Entitlements sends."""
    await entitlements.wait_for(predicate)


async def test_license_that_starts_later_grants_at_its_start(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    private, public = make_keys(tmp_path)
    start = now_ms() + 1500
    start -= start % 1000  # license times have whole seconds
    start += 1000
    text = issue(private, serial=SERIAL, features=["mqtt"], not_before_ms=start)
    await publish_license(redis_server.url, text, public)
    async with following(
        redis, env_for(redis_server.url, public, SERIAL, "consumer")
    ) as entitlements:
        await entitlements.refresh()
        decision = entitlements.decide("mqtt")
        assert not decision.granted and "not valid before" in decision.reason
        decision = await asyncio.wait_for(entitlements.wait_until("mqtt", granted=True), WAIT)
        assert now_ms() >= start


async def test_a_deeply_nested_record_is_refused_and_the_rest_keeps_serving(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    """A 3 KB nested JSON record (a RecursionError in the parser ended the entitlement task):
    refused and counted; the features licensed for real stay granted and the task goes on."""
    env = await grant(redis_server.url, tmp_path, SERIAL, ["mqtt", "modbus"])
    nested = b'{"feature": ' + b"[" * 1500 + b"]" * 1500 + b"}"
    async with following(redis, env) as entitlements:
        await asyncio.wait_for(entitlements.wait_until("mqtt", granted=True), WAIT)
        before = refused("too_deep")
        await redis.set(record_key("mqtt"), nested)
        await redis.publish(CHANNEL, "mqtt")
        await asyncio.wait_for(entitlements.wait_until("mqtt", granted=False), WAIT)
        assert refused("too_deep") == before + 1
        assert entitlements.decide("modbus").granted
        # still following: the real license, published again, grants again
        await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"])
        await asyncio.wait_for(entitlements.wait_until("mqtt", granted=True), WAIT)
