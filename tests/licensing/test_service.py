"""The licensing service in-process (its FastAPI app through httpx's ASGI transport, its
publisher running) against a real redis-server, with a clock the test controls: every refusal
the issue lists, trial expiry, meter binding, clock rollback with meter time ahead."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from services.licensing.api import create_app
from services.licensing.attempts import FailedAttempts
from services.licensing.cli import main as license_cli
from services.licensing.metrics import FEATURE_EXPIRING, REFUSED
from services.licensing.running import run
from services.licensing.service import LicensingService
from services.licensing.settings import LicensingSettings
from services.licensing.signing import generate_keys, load_private_key, new_license
from shared.entitlements import FEATURES, Entitlements, decode_record, record_key
from shared.license import (
    DAY_MS,
    License,
    canonical,
    key_id,
    load_public_keys,
    now_ms,
)
from shared.reading import Reading, encode_reading
from shared.settings import CommonSettings, load_settings
from shared.stream import ReadingStream, connect
from tests.licensing_helpers import issue, make_keys
from tests.servers import RedisServer

SERIAL = "HPTEST0001"
TOKEN = "admin-secret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT = 10.0


class Clock:
    """A system clock the test sets (None: the real one)."""

    def __init__(self, ms: int | None) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return now_ms() if self.ms is None else self.ms


@dataclass
class Harness:
    service: LicensingService
    http: httpx.AsyncClient
    redis: Redis
    clock: Clock
    private: Path
    public: Path
    folder: Path

    async def put(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.put(
            "/license", content=body, headers=AUTH if headers is None else headers
        )

    async def until(self, predicate: Callable[[], bool]) -> None:
        await asyncio.wait_for(self.service.wait_for(predicate), WAIT)

    async def meter(self, ts: int, meter_id: str = "M1") -> None:
        reading = Reading(ts=ts, received=ts, meter_id=meter_id)
        await ReadingStream(self.redis, "hanport:readings").add(reading)
        await self.until(lambda: self.service.meter_ts >= ts and self.service.meter_id == meter_id)

    async def record(self, feature: str) -> dict[str, Any]:
        raw = await self.redis.get(record_key(feature))
        assert raw is not None
        return {
            k: getattr(decode_record(raw), k) for k in ("granted", "reason", "until", "license_id")
        }


Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Start]:
    """Start the service (use, clock, folder chosen by the test); stops it afterwards."""
    tasks: list[asyncio.Task[None]] = []
    clients: list[httpx.AsyncClient] = []
    service_clients: list[Redis] = []
    redis = await connect(redis_server.url)

    async def starter(
        use: str = "consumer", clock_ms: int | None = None, folder: Path | None = None
    ) -> Harness:
        private, public = make_keys(tmp_path)
        folder = folder or tmp_path / "licenses"
        settings = LicensingSettings(
            redis_url=redis_server.url,
            serial=SERIAL,
            use=use,  # type: ignore[arg-type]
            license_public_keys=str(public),
            license_dir=folder,
            HANPORT_ADMIN_TOKEN=TOKEN,
            _env_file=None,  # type: ignore[call-arg]
        )
        clock = Clock(clock_ms)
        service_clients.append(await connect(redis_server.url))
        service = LicensingService(
            settings, service_clients[-1], load_public_keys(public), clock=clock
        )
        app = create_app(service, settings.admin_secret(), run_service=False)
        tasks.append(asyncio.create_task(run(service)))
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://licensing"
        )
        clients.append(http)
        harness = Harness(service, http, redis, clock, private, public, folder)
        await harness.until(lambda: service.evaluations > 0)
        return harness

    yield starter
    for task in tasks:
        task.cancel()
    _done, pending = await asyncio.wait(tasks, timeout=5)
    for task in pending:
        task.print_stack()
    assert not pending, "the service did not stop when cancelled"
    for service_redis in service_clients:
        await service_redis.aclose()
    for client in clients:
        await client.aclose()
    await redis.aclose()


def refused(reason: str) -> float:
    return float(REFUSED.labels(reason)._value.get())


# ---------------------------------------------------------------- installing and refusing


async def test_install_grants_then_delete_removes(start: Start) -> None:
    h = await start()
    assert (await h.record("mqtt"))["granted"] is False
    assert (await h.record("rest"))["granted"] is True  # free in consumer use
    text = issue(h.private, serial=SERIAL, features=["mqtt", "modbus"])
    response = await h.put(text)
    assert response.status_code == 201, response.text
    license_id = response.json()["installed"]["id"]
    assert response.json()["features"]["mqtt"] == {
        "granted": True,
        "until": None,
        "licence_id": license_id,
        "reason": f"license {license_id} (consumer activation)",
    }
    await h.until(lambda: h.service.published["modbus"].granted)
    assert (h.folder / f"{license_id}.lic").read_bytes() == text
    record = await h.record("mqtt")
    assert record["granted"] is True and record["license_id"] == license_id

    state = (await h.http.get("/license")).json()
    assert state["serial"] == SERIAL and state["use"] == "consumer"
    assert [lic["id"] for lic in state["licences"]] == [license_id]

    assert (await h.http.delete(f"/license/{license_id}")).status_code == 401
    response = await h.http.delete(f"/license/{license_id}", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["features"]["mqtt"]["granted"] is False
    await h.until(lambda: not h.service.published["mqtt"].granted)
    assert not (h.folder / f"{license_id}.lic").exists()
    assert (await h.record("mqtt"))["granted"] is False
    response = await h.http.delete(f"/license/{license_id}", headers=AUTH)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_a_license_copied_into_the_folder_by_hand_takes_effect(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the API: a file copied in grants, a bad file is refused and counted, a file
    deleted by hand withdraws; each within the folder poll (5 s; 0.05 s here)."""
    monkeypatch.setattr("services.licensing.running.FOLDER_POLL_S", 0.05)
    h = await start()
    assert (await h.record("modbus"))["granted"] is False
    h.folder.mkdir(parents=True, exist_ok=True)
    copied = h.folder / "from-the-vendor.lic"
    copied.write_bytes(issue(h.private, serial=SERIAL, features=["modbus"]))
    await h.until(lambda: h.service.published["modbus"].granted)
    assert (await h.record("modbus"))["granted"] is True

    before = REFUSED.labels("wrong_serial")._value.get()
    (h.folder / "someone-elses.lic").write_bytes(
        issue(h.private, serial="HPOTHER0002", features=["mqtt"])
    )
    await h.until(lambda: REFUSED.labels("wrong_serial")._value.get() > before)
    assert not h.service.published["mqtt"].granted and h.service.published["modbus"].granted

    copied.unlink()
    await h.until(lambda: not h.service.published["modbus"].granted)
    assert (await h.record("modbus"))["granted"] is False


def _edit(text: bytes, pattern: bytes, replacement: bytes) -> bytes:
    edited = re.sub(pattern, replacement, text, count=1)
    assert edited != text
    return edited


def _signed_by(private: Ed25519PrivateKey, claimed_key_id: str, license: License) -> bytes:
    body = {**license.summary(), "key_id": claimed_key_id}
    signature = base64.b64encode(private.sign(canonical(body))).decode()
    return json.dumps({"licence": body, "signature": signature}).encode()


def _cases(h: Harness, tmp_path: Path) -> dict[str, tuple[bytes, dict[str, str], int]]:
    """refusal reason -> (upload, headers, HTTP status)"""
    now = h.clock()
    good = issue(h.private, serial=SERIAL, features=["mqtt"], now=now)
    other_private, _ = generate_keys(tmp_path / "other-keys")
    trusted_id = key_id(load_private_key(h.private).public_key())
    license = json.loads(good)["licence"]
    forged = _signed_by(load_private_key(other_private), trusted_id, License(**license))
    return {
        "bad_signature": (
            _edit(good, rb'"serial": "HPTEST0001"', b'"serial": "HPTEST0009"'),
            AUTH,
            422,
        ),
        "bad_signature/wrong key": (forged, AUTH, 422),
        "unknown_key": (issue(other_private, serial=SERIAL, features=["mqtt"], now=now), AUTH, 422),
        "expired": (
            issue(
                h.private,
                serial=SERIAL,
                features=["mqtt"],
                not_before_ms=now - 10 * DAY_MS,
                expires_ms=now - DAY_MS,
            ),
            AUTH,
            422,
        ),
        "not_yet_valid": (
            issue(h.private, serial=SERIAL, features=["mqtt"], not_before_ms=now + DAY_MS),
            AUTH,
            422,
        ),
        "wrong_serial": (
            issue(h.private, serial="HPOTHER0002", features=["mqtt"], now=now),
            AUTH,
            422,
        ),
        "wrong_meter": (
            issue(h.private, serial=SERIAL, features=["mqtt"], meter_id="M2", now=now),
            AUTH,
            422,
        ),
        "consumer_in_commercial": (good, AUTH, 422),
        "malformed_json": (good[:-20], AUTH, 400),
        "malformed_base64": (_edit(good, rb'"signature": "', b'"signature": "***'), AUTH, 400),
        "malformed": (b'{"licence": {"key_id": 7}, "signature": ""}', AUTH, 400),
        "too_large": (good + b" " * 20_000, AUTH, 413),
        "unauthorized": (good, {}, 401),
        "unauthorized/wrong token": (good, {"Authorization": "Bearer not-the-token"}, 401),
    }


CASES = [
    "bad_signature",
    "bad_signature/wrong key",
    "unknown_key",
    "expired",
    "not_yet_valid",
    "wrong_serial",
    "wrong_meter",
    "consumer_in_commercial",
    "malformed_json",
    "malformed_base64",
    "malformed",
    "too_large",
    "unauthorized",
    "unauthorized/wrong token",
]


@pytest.mark.parametrize("case", CASES)
async def test_refusal_names_reason_changes_nothing_and_is_counted(
    start: Start, tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = await start(use="commercial" if case == "consumer_in_commercial" else "consumer")
    await h.meter(h.clock(), "M1")  # the reader sees meter M1
    upload, headers, status = _cases(h, tmp_path)[case]
    if case == "consumer_in_commercial":
        upload = issue(h.private, serial=SERIAL, features=["mqtt"], use="consumer")
    reason = case.split("/")[0]
    before_state = (await h.http.get("/license")).json()
    before_files = sorted(p.name for p in h.folder.iterdir())
    before = refused(reason)

    with caplog.at_level(logging.WARNING):
        response = await h.put(upload, headers)

    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == reason
    assert body["detail"].startswith(f"{reason}: ")
    assert refused(reason) == before + 1
    assert sorted(p.name for p in h.folder.iterdir()) == before_files
    after_state = (await h.http.get("/license")).json()
    assert after_state["features"] == before_state["features"]
    assert after_state["licences"] == before_state["licences"] == []
    assert TOKEN not in caplog.text  # the admin token is never logged


async def test_upload_without_token_configured_is_refused(start: Start) -> None:
    h = await start()
    app = create_app(h.service, None, run_service=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://x"
    ) as http:
        response = await http.put("/license", content=b"{}", headers=AUTH)
    assert response.status_code == 401
    assert "HANPORT_ADMIN_TOKEN" in response.json()["detail"]


# ---------------------------------------------------------------- time


async def test_trial_expires_under_a_controlled_clock(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    t0 = now_ms() - 30 * DAY_MS  # the test's clock; real time plays no part
    h = await start(use="commercial", clock_ms=t0)
    trial = issue(
        h.private,
        serial=SERIAL,
        features=list(FEATURES),
        use="commercial",
        kind="trial",
        now=t0,
    )
    response = await h.put(trial)
    assert response.status_code == 201, response.text
    until = response.json()["features"]["rest"]["until"]
    assert until == t0 - t0 % 1000 + 21 * DAY_MS
    settings = CommonSettings(
        redis_url="unused",
        serial=SERIAL,
        use="commercial",
        license_public_keys=str(h.public),
        _env_file=None,  # type: ignore[call-arg]
    )
    entitlements = Entitlements(h.redis, settings, clock=h.clock)
    await h.until(lambda: h.service.published["rest"].granted)
    await entitlements.refresh()
    assert all(entitlements.decide(f).granted for f in FEATURES)

    h.clock.ms = until - 2 * DAY_MS  # two days left: a warning, the metric says so
    with caplog.at_level(logging.WARNING):
        await h.service.reevaluate()
    assert "install a renewal" in caplog.text
    assert FEATURE_EXPIRING.labels("mqtt")._value.get() == 1
    assert h.service.states["mqtt"].granted

    h.clock.ms = until  # the 21st day is over
    await h.service.reevaluate()
    for feature in ("rest", "mqtt", "modbus"):
        record = await h.record(feature)
        assert record["granted"] is False and "expired" in record["reason"]
    await entitlements.refresh()
    decision = entitlements.decide("rest")
    assert not decision.granted and "expired" in decision.reason
    state = (await h.http.get("/license")).json()
    assert "expired" in state["features"]["modbus"]["reason"]


async def test_feature_stops_within_5_s_of_expiry_without_restart(start: Start) -> None:
    h = await start()
    expires = now_ms() + 2000
    text = issue(h.private, serial=SERIAL, features=["mqtt"], expires_ms=expires)
    assert (await h.put(text)).status_code == 201
    await h.until(lambda: h.service.published["mqtt"].granted)
    await h.until(lambda: not h.service.published["mqtt"].granted)
    stopped = now_ms()
    assert stopped - (expires - expires % 1000) < 5000
    assert "expired" in (await h.record("mqtt"))["reason"]


async def test_meter_time_ahead_defeats_clock_rollback(start: Start, tmp_path: Path) -> None:
    real = now_ms()
    h = await start(clock_ms=real)
    text = issue(
        h.private,
        serial=SERIAL,
        features=["modbus"],
        not_before_ms=real - DAY_MS,
        expires_ms=real + 3_600_000,
    )
    assert (await h.put(text)).status_code == 201
    h.clock.ms = real - 6 * 3_600_000  # system clock turned back six hours: still "valid"
    await h.service.reevaluate()
    assert h.service.states["modbus"].granted
    await h.meter(real + 2 * 3_600_000)  # the meter says it is two hours later
    await h.until(lambda: not h.service.published["modbus"].granted)
    assert "expired" in h.service.states["modbus"].reason

    # restarted with the clock still turned back and no reading yet: the meter time was kept
    again = await start(clock_ms=real - 6 * 3_600_000, folder=h.folder)
    assert again.service.meter_ts >= real + 2 * 3_600_000
    assert not again.service.states["modbus"].granted


async def test_meter_bound_license_follows_the_meter(start: Start) -> None:
    h = await start()
    text = issue(h.private, serial=SERIAL, features=["mqtt"], meter_id="M1")
    assert (await h.put(text)).status_code == 201  # no meter seen yet: kept, not granted
    await h.until(lambda: "no reading has named a meter yet" in h.service.published["mqtt"].reason)
    await h.meter(h.clock(), "M1")
    await h.until(lambda: h.service.published["mqtt"].granted)
    await h.meter(h.clock() + 1000, "M2")  # the reader now sits on another meter
    await h.until(lambda: not h.service.published["mqtt"].granted)
    assert "wrong_meter" in h.service.states["mqtt"].reason


async def test_licenses_and_serial_survive_a_restart(start: Start, tmp_path: Path) -> None:
    h = await start()
    text = issue(h.private, serial=SERIAL, features=["modbus"])
    assert (await h.put(text)).status_code == 201
    (h.folder / "junk.lic").write_bytes(b"not a license")
    before = refused("malformed_json")
    again = await start(folder=h.folder)
    assert again.service.states["modbus"].granted
    assert refused("malformed_json") == before + 1  # the bad file is skipped, counted


async def test_generated_serial_is_kept_on_the_volume_and_in_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    _private, public = make_keys(tmp_path)
    redis = await connect(redis_server.url)
    try:
        settings = LicensingSettings(
            redis_url=redis_server.url,
            license_dir=tmp_path / "vol",
            license_public_keys=str(public),
            _env_file=None,  # type: ignore[call-arg]
        )
        service = LicensingService(settings, redis, {})
        first = service.establish_serial()
        await service.reevaluate()
        assert (tmp_path / "vol" / "serial").read_text().strip() == first
        assert await redis.get("hanport:serial") == first.encode()
        await redis.flushall()  # Redis lost its data: the volume still knows
        again = LicensingService(settings, redis, {})
        assert again.establish_serial() == first
        await again.reevaluate()
        assert await redis.get("hanport:serial") == first.encode()
    finally:
        await redis.aclose()


def test_admin_token_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("HANPORT_ADMIN_TOKEN", "HANPORT_ADMIN_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HANPORT_LICENSING_ADMIN_TOKEN", "")  # compose passes it empty
    assert load_settings(LicensingSettings).admin_secret() is None
    monkeypatch.setenv("HANPORT_ADMIN_TOKEN", "from-env")
    assert load_settings(LicensingSettings).admin_secret() == "from-env"
    assert "from-env" not in repr(load_settings(LicensingSettings))  # a secret, not printed
    (tmp_path / "token").write_text("from-file\n")
    monkeypatch.setenv("HANPORT_ADMIN_TOKEN_FILE", str(tmp_path / "token"))
    assert load_settings(LicensingSettings).admin_secret() == "from-file"


async def test_a_burst_of_readings_leaves_the_newest_meter_and_the_latest_time(
    start: Start,
) -> None:
    """1,500 readings XADDed in one pipeline (more than one XREAD takes): the service ends on
    the last reading's meter, and the meter time floor is the latest time any of them said, even
    when that one is not the last (the meter clock stepped back)."""
    h = await start()
    base = now_ms()
    latest = base + 10_000_000
    # the service follows the stream once it has taken this first reading as the newest one
    first = Reading(ts=base - 1, received=base - 1, meter_id="M0")
    await h.redis.xadd("hanport:readings", {b"reading": encode_reading(first)})
    await h.until(lambda: h.service.meter_id == "M0")
    pipe = h.redis.pipeline(transaction=False)
    for n in range(1500):
        ts = latest if n == 700 else base + n
        reading = Reading(ts=ts, received=base + n, meter_id="M1" if n < 1499 else "M2")
        pipe.xadd("hanport:readings", {b"reading": encode_reading(reading)})
    await pipe.execute()
    await h.until(lambda: h.service.meter_id == "M2")
    assert h.service.meter_ts == latest


def test_observe_batch_takes_the_newest_meter_and_the_latest_time(tmp_path: Path) -> None:
    settings = LicensingSettings(
        redis_url="redis://127.0.0.1:1/0",
        serial=SERIAL,
        license_dir=tmp_path,
        _env_file=None,  # type: ignore[call-arg]
    )
    service = LicensingService(settings, Redis.from_url(settings.redis_url), {})
    service.observe_batch([Reading(ts=5000, received=1, meter_id="A")])
    assert (service.meter_id, service.meter_ts) == ("A", 5000)
    service.observe_batch(
        [
            Reading(ts=9000, received=2, meter_id="A"),
            Reading(ts=7000, received=3, meter_id="B"),
        ]
    )
    assert (service.meter_id, service.meter_ts) == ("B", 9000)
    service.observe_batch([Reading(ts=6000, received=4, meter_id=None)])  # an older time, no id
    assert (service.meter_id, service.meter_ts) == ("B", 9000)


# ---------------------------------------------------------------- malformed beyond parsing

# 3 KB of nesting: the JSON parser recursed into a RecursionError (a 500, an ended folder
# watch, a broken entitlement task in every interface)
NESTED = b'{"licence": ' + b"[" * 1500 + b"]" * 1500 + b', "signature": "x"}'


async def test_a_deeply_nested_upload_is_a_counted_refusal(start: Start) -> None:
    h = await start()
    before = refused("too_deep")
    response = await h.put(NESTED)
    assert response.status_code == 400
    assert response.json()["error"] == "too_deep"
    assert "nests deeper than 8 levels" in response.json()["detail"]
    assert refused("too_deep") == before + 1
    # the service goes on: a valid license installs
    good = issue(h.private, serial=SERIAL, features=["modbus"])
    assert (await h.put(good)).status_code == 201


async def test_a_deeply_nested_file_is_refused_and_the_folder_watch_goes_on(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.licensing.running.FOLDER_POLL_S", 0.05)
    h = await start()
    h.folder.mkdir(parents=True, exist_ok=True)
    before = refused("too_deep")
    (h.folder / "nested.lic").write_bytes(NESTED)
    await h.until(lambda: refused("too_deep") > before)
    (h.folder / "good.lic").write_bytes(issue(h.private, serial=SERIAL, features=["modbus"]))
    await h.until(
        lambda: (
            h.service.published.get("modbus") is not None and h.service.published["modbus"].granted
        )
    )
    assert (await h.record("modbus"))["granted"] is True


async def test_a_commercial_license_signed_with_the_box_key_is_refused(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hanport license self-activate` made the box's own key; a commercial license signed with
    it (by anyone with a shell on the box) is refused on upload and in the folder."""
    monkeypatch.setattr("services.licensing.running.FOLDER_POLL_S", 0.05)
    h = await start(use="commercial")
    monkeypatch.chdir(h.folder.parent)
    monkeypatch.setenv("HANPORT_LICENSE_DIR", str(h.folder))
    monkeypatch.setenv("HANPORT_SERIAL", SERIAL)
    assert license_cli(["self-activate"]) == 0  # a consumer activation: nothing in commercial use
    await h.until(lambda: bool(h.service.local_keys))
    box_key = load_private_key(next((h.folder / "local-keys").glob("*.key")))
    forged = new_license(
        box_key, serial=SERIAL, use="commercial", kind="full", features=["rest", "mqtt", "modbus"]
    )
    before = refused("local_key_scope")
    response = await h.put(forged)
    assert response.status_code == 422
    assert response.json()["error"] == "local_key_scope"
    assert refused("local_key_scope") == before + 1
    (h.folder / "forged.lic").write_bytes(forged)
    await h.until(lambda: refused("local_key_scope") == before + 2)
    assert not any(state.granted for state in h.service.preview().values())


# ---------------------------------------------------------------- guessing the admin token


async def test_guessing_the_admin_token_is_slowed_and_summarised(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """It could be guessed at 4,471 tries/s, each writing a warning line: now 5 tries per
    minute per client, then 429 (even for the right token), and one summary line."""
    h = await start()
    good = issue(h.private, serial=SERIAL, features=["modbus"])
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    before = (refused("unauthorized"), refused("too_many_attempts"))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        answers = [(await h.put(good, wrong)).status_code for _ in range(50)]
        right = await h.put(good)
    assert answers == [401] * 5 + [429] * 45
    assert right.status_code == 429 and right.json()["error"] == "too_many_attempts"
    assert 1 <= int(right.headers["Retry-After"]) <= 60
    assert (refused("unauthorized"), refused("too_many_attempts")) == (
        before[0] + 5,
        before[1] + 46,
    )
    lines = [r.getMessage() for r in caplog.records if "admin request" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0]
    assert "not-the-token" not in caplog.text


def test_failed_attempts_are_per_client_and_leave_the_window() -> None:
    now = [1000.0]
    attempts = FailedAttempts(limit=3, window_s=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert attempts.wait_s("10.0.0.1") is None
        attempts.failed("10.0.0.1")
    assert attempts.wait_s("10.0.0.1") == 60.0
    assert attempts.wait_s("10.0.0.2") is None  # another client is not held up
    now[0] += 30
    assert attempts.wait_s("10.0.0.1") == 30.0
    now[0] += 30.5
    assert attempts.wait_s("10.0.0.1") is None  # the failures left the window
    attempts.failed("10.0.0.1")
    attempts.succeeded("10.0.0.1")
    assert attempts.wait_s("10.0.0.1") is None


async def test_deleting_the_time_file_does_not_revive_an_expired_trial(start: Start) -> None:
    """No meter clock; the system clock turned back and `meter-time` deleted: the time floor
    kept in Redis still ends the trial (and the file does when Redis lost it); only both gone
    revive it, the documented limit."""
    t0 = now_ms() - 30 * DAY_MS
    h = await start(use="commercial", clock_ms=t0)
    trial = issue(
        h.private, serial=SERIAL, features=["modbus"], use="commercial", kind="trial", now=t0
    )
    assert (await h.put(trial)).status_code == 201
    expired_at = t0 + 22 * DAY_MS
    h.clock.ms = expired_at  # the trial is over, with no reading ever seen
    await h.service.reevaluate()
    assert not h.service.states["modbus"].granted
    h.service.save_meter_time()  # as at a stop
    rolled_back = t0 + DAY_MS

    (h.folder / "meter-time").unlink()
    again = await start(use="commercial", clock_ms=rolled_back, folder=h.folder)
    assert again.service.now() >= expired_at
    assert not again.service.states["modbus"].granted
    assert "expired" in (await again.record("modbus"))["reason"]

    await h.redis.delete("hanport:license:time-floor")  # the other copy, now in the folder again
    again.service.save_meter_time()
    third = await start(use="commercial", clock_ms=rolled_back, folder=h.folder)
    assert third.service.now() >= expired_at
    assert not third.service.states["modbus"].granted
