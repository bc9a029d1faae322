"""Whether an interface may serve now: the one place every interface asks.

Consumes the per-feature records the licensing service writes to Redis (`RECORD_PREFIX` +
feature, a JSON `Record`) and its change notifications (pub/sub channel `CHANNEL`); produces a
`Decision` per feature. Each record carries the signed license it rests on, and `Entitlements`
verifies that license itself with the trusted public keys (`HANPORT_LICENSE_PUBLIC_KEYS`): its
signature, the reader serial, the declared use, the validity window and the meter. A record
written into Redis by hand grants nothing.

The serial licenses are checked against is this process's own: `HANPORT_SERIAL`, or the one the
licensing service established (`shared.identity`), learned once and kept for the life of the
process. Changing `hanport:serial` in Redis afterwards changes nothing here (it is logged).
Licenses signed with the box's own key (`hanport license self-activate`, public key in
`HANPORT_LICENSE_DIR/local-keys`) are trusted for consumer activations of
`shared.license.LOCAL_KEY_FEATURES` only (every feature but REST).

When the licensing service or Redis is away, the last verified licenses keep granting until
their own expiry and never beyond: `decide` checks the window on every call, and a timer wakes
waiters at each expiry boundary. Time is the larger of the system clock and the newest meter
time seen on the readings streams (every meter's), so turning the system clock back revives
nothing.

Interfaces use it like this:

    entitlements = Entitlements(redis, settings)
    asyncio.create_task(entitlements.run())
    decision = entitlements.decide("mqtt")          # Decision(granted, reason, until, license_id)
    await entitlements.wait_until("mqtt", granted=True)

A license may name the meters it serves (`meters`): then `Decision.meters` holds them, and an
interface serves a meter's data only when `MeterFilter.serves` says so (a meter is named by its
name on the box or its equipment id).

In consumer use REST is granted without a license; the other features (MQTT, Modbus, the
emulations, the export) need an activation. In commercial use every feature needs a commercial license (trial or full).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .backoff import Backoff
from .cancellation import raise_if_cancelling, stop
from .identity import SERIAL_KEY, reader_serial, wait_for_serial
from .license import (
    MAX_LICENSE_BYTES,
    KeyFileError,
    LicenseError,
    Signed,
    check,
    decode_bounded,
    load_local_keys,
    load_public_keys,
    now_ms,
    read_signed,
    serves_meter,
)
from .meter_streams import MeterStreams
from .settings import CommonSettings
from .stream import REDIS_DOWN, ReadingStream

log = logging.getLogger(__name__)

Feature = Literal["rest", "mqtt", "modbus", "shelly", "homewizard", "sma", "export"]
FEATURES: tuple[Feature, ...] = (
    "rest", "mqtt", "modbus", "shelly", "homewizard", "sma", "export"
)  # fmt: skip

RECORD_PREFIX = "hanport:license:feature:"
CHANNEL = "hanport:license:changed"
MAX_WAIT_S = 60.0  # re-check at least this often, in case the system clock jumps
MAX_OTHER_SERIALS_LOGGED = 16  # distinct foreign values of hanport:serial logged, then quiet
# a record carries a license file as a JSON string (escaping can grow it) and a few short fields
MAX_RECORD_BYTES = 4 * MAX_LICENSE_BYTES

ENTITLEMENT_REFUSED = Counter(
    "hanport_entitlement_refused_total",
    "Entitlement records in Redis this process refused, by reason.",
    ["reason"],
)
METER_REFUSED = Counter(
    "hanport_entitlement_meter_refused_total",
    "Readings (MQTT, the export) or requests (Modbus) of a meter the feature's license does not "
    "name, not served, by feature and meter.",
    ["feature", "meter"],
)
ENTITLEMENT_GRANTED = Gauge(
    "hanport_entitlement_granted", "1 while this process may serve the feature.", ["feature"]
)


class Record(msgspec.Struct, kw_only=True):
    """What the licensing service writes per feature (JSON string at RECORD_PREFIX+feature)."""

    feature: str
    granted: bool
    reason: str
    until: int | None = None  # ms since the epoch; None: no expiry
    license_id: str | None = None
    license: str | None = None  # the signed license file text the grant rests on
    updated: int = 0  # ms, when the service wrote it


def record_key(feature: str) -> str:
    return RECORD_PREFIX + feature


def encode_record(record: Record) -> bytes:
    return msgspec.json.encode(record)


def decode_record(data: bytes | str) -> Record:
    """Raises LicenseError (too_large, too_deep, malformed_json, malformed) for anything else."""
    return decode_bounded(
        data.encode() if isinstance(data, str) else data, Record, MAX_RECORD_BYTES
    )


@dataclass(frozen=True)
class Decision:
    granted: bool
    reason: str
    until: int | None = None  # ms since the epoch; None: no expiry
    license_id: str | None = None
    meters: frozenset[str] | None = None  # the only meters served (license `meters`); None: all


class MeterFilter:
    """Which meters a feature may serve under its license (a license's `meters`): one per
    interface. `serves` says so for a meter; the first refusal of a meter (and the first
    serve after it) is logged, every refusal counted in `hanport_entitlement_meter_refused_total`.
    """

    def __init__(self, feature: Feature) -> None:
        self.feature = feature
        self.refused: set[str] = set()

    def serves(
        self, decision: Decision, name: str, meter_id: str | None = None, count: int = 1
    ) -> bool:
        """Whether the license serves the meter; a refusal counts `count` items of its data
        (a batch's readings at once; 0: none counted, as for the export's intervals,
        offered again every round)."""
        if serves_meter(decision.meters, name, meter_id):
            if name in self.refused:
                self.refused.discard(name)
                log.info("%s: meter %s is served again (%s)", self.feature, name, decision.reason)
            return True
        if count:
            METER_REFUSED.labels(self.feature, name).inc(count)
        if name not in self.refused:
            self.refused.add(name)
            log.warning(
                "%s: license %s serves only the meters %s, not meter %s%s: its data is not "
                "served on %s; install a license that names it",
                self.feature,
                decision.license_id,
                ", ".join(sorted(decision.meters or ())),
                name,
                f" (equipment id {meter_id})" if meter_id and meter_id != name else "",
                self.feature,
            )
        return False


class EntitlementSource(Protocol):
    """What an interface asks about its license: `Entitlements`, or a stand-in in tests."""

    def decide(self, feature: Feature) -> Decision: ...

    async def wait_until(self, feature: Feature, granted: bool) -> Decision: ...


class Entitlements:
    """Follows the verified entitlements for this reader; see the module docstring.

    `clock` returns ms since the epoch (tests pass their own); `keys` overrides the trusted
    public keys loaded from `settings.license_public_keys`."""

    def __init__(
        self,
        redis: Redis,
        settings: CommonSettings,
        *,
        clock: Callable[[], int] | None = None,
        keys: dict[str, Ed25519PublicKey] | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.clock = clock or now_ms
        self.serial: str | None = settings.serial  # pinned once known; see the docstring
        self.folder = settings.license_dir
        self.local_keys: dict[str, Ed25519PublicKey] = {}
        self._other_serials: set[str] = set()
        self._changed = asyncio.Event()  # replaced by a fresh one at each change
        self._wake = asyncio.Event()
        self._held: dict[str, Signed] = {}
        self._reasons: dict[str, str] = {}
        self._seen: dict[str, tuple[bytes, str | None, frozenset[str]]] = {}
        self._meter_ts = 0
        self._meter_id: str | None = None
        self._key_problem = ""
        if keys is None:
            try:
                keys = load_public_keys(settings.license_public_keys)
            except KeyFileError as error:
                self._key_problem = f" ({error}; fix HANPORT_LICENSE_PUBLIC_KEYS)"
                log.error("no trusted license keys: %s", error)
                keys = {}
        self.keys = keys

    # ------------------------------------------------------------ the answers

    def now(self) -> int:
        """The time licenses are judged by: system clock or meter time, whichever is later."""
        return max(self.clock(), self._meter_ts)

    def decide(self, feature: Feature) -> Decision:
        if feature == "rest" and self.settings.use == "consumer":
            return Decision(True, "REST is free in consumer use")
        signed = self._held.get(feature)
        if signed is None:
            reason = self._reasons.get(feature) or (
                f"no {self.settings.use} license grants '{feature}' to reader "
                f"{self.serial or '(serial not known yet)'}{self._key_problem}"
            )
            return Decision(False, reason)
        license, now = signed.license, self.now()
        expires = license.expires_ms
        if now < license.not_before_ms:
            return Decision(False, f"license {license.id} is not valid before {license.not_before}")
        if expires is not None and now >= expires:
            return Decision(
                False, f"license {license.id} for '{feature}' expired at {license.expires}"
            )
        return Decision(
            True,
            f"license {license.id} ({license.use} {license.kind}) grants '{feature}'",
            until=expires,
            license_id=license.id,
            meters=None if license.meters is None else frozenset(license.meters),
        )

    async def wait_until(self, feature: Feature, granted: bool) -> Decision:
        """Return once `decide(feature).granted == granted` (safe to cancel, e.g. by a timeout)."""
        await self.wait_for(lambda: self.decide(feature).granted == granted)
        return self.decide(feature)

    async def wait_for(self, predicate: Callable[[], object]) -> None:
        """Return once `predicate()` is true, checking after every change and expiry boundary."""
        while not predicate():
            await self._changed.wait()

    # ------------------------------------------------------------ following Redis

    async def run(self) -> None:
        """Keep decisions current until cancelled: follow change notifications, re-read records
        after every (re)connect, wake waiters at each expiry boundary. Survives Redis outages."""
        timer = asyncio.create_task(self._timer())
        backoff = Backoff()
        try:
            while True:
                try:
                    await self._follow(backoff)
                except REDIS_DOWN as error:
                    raise_if_cancelling(error)
                    if backoff.attempts == 0:
                        log.warning(
                            "lost Redis (%s); keeping the last verified entitlements", error
                        )
                    await asyncio.sleep(backoff.next_delay())
        finally:
            await stop(timer)

    async def _follow(self, backoff: Backoff) -> None:
        if self.serial is None:
            self._pin(await wait_for_serial(None, self.folder, self.redis))
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            await self.refresh()
            backoff.reset()
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=MAX_WAIT_S / 2
                )
                # a notification, or a quiet spell: either way read the records again
                del message
                raise_if_cancelling()  # a cancel the read swallowed
                await self.refresh()
        finally:
            await pubsub.aclose()

    async def refresh(self) -> None:
        """Read the records (and the newest meter reading) from Redis and verify them."""
        if self.serial is None:  # e.g. refresh() called before run(): one look, no waiting
            found = await reader_serial(None, self.folder, self.redis)
            if found is not None:
                self._pin(found)
        *raw, stored_serial = await self.redis.mget([*map(record_key, FEATURES), SERIAL_KEY])
        self._note_serial(stored_serial)
        self._load_local_keys()
        try:
            latest = await ReadingStream(self.redis, self.settings.stream).latest()
        except ResponseError as error:  # e.g. WRONGTYPE: judge by the system clock alone
            log.warning("cannot read the meter time from %s: %s", self.settings.stream, error)
            latest = None
        if latest is not None:
            self._meter_ts = max(self._meter_ts, latest[1].ts)
            self._meter_id = latest[1].meter_id or self._meter_id
        try:  # every other meter's time is a clock floor too (the classic one binds licenses)
            for _entry_id, reading in await MeterStreams(self.redis, self.settings.stream).newest(
                {self.settings.stream: ""}
            ):
                self._meter_ts = max(self._meter_ts, reading.ts)
        except ResponseError as error:
            log.warning("cannot read the meters' times: %s", error)
        for feature, data in zip(FEATURES, raw, strict=True):
            if data is None:
                continue  # nothing published (yet, or Redis was emptied): keep what we hold
            self._take(feature, data)
        self._notify()

    def _pin(self, serial: str) -> None:
        """Keep `serial` for the life of this process."""
        self.serial = serial
        self._seen.clear()

    def _note_serial(self, stored: bytes | str | None) -> None:
        """Log (once per value) a serial in Redis that is not this process's: it is ignored."""
        if stored is None or self.serial is None:
            return
        serial = stored.decode() if isinstance(stored, bytes) else stored
        if (
            serial != self.serial
            and serial not in self._other_serials
            and len(self._other_serials) < MAX_OTHER_SERIALS_LOGGED
        ):
            self._other_serials.add(serial)
            ENTITLEMENT_REFUSED.labels("serial_changed").inc()
            log.warning(
                "%s in Redis says %s, but this process's reader serial is %s (from %s); "
                "licenses are still checked against %s. Restart the service if the serial "
                "really changed",
                SERIAL_KEY,
                serial,
                self.serial,
                "HANPORT_SERIAL" if self.settings.serial else "the licensing service",
                self.serial,
            )

    def _load_local_keys(self) -> None:
        try:
            self.local_keys = load_local_keys(self.folder)
        except KeyFileError as error:
            log.warning("ignoring the box's own license key: %s", error)
            self.local_keys = {}

    def _take(self, feature: str, data: bytes | str) -> None:
        data = data.encode() if isinstance(data, str) else data
        seen = (data, self._meter_id, frozenset(self.local_keys))
        if self._seen.get(feature) == seen:
            return
        self._seen[feature] = seen
        self._held.pop(feature, None)
        try:
            record = decode_record(data)
        except LicenseError as error:
            self._refuse(feature, error.reason, f"record is not valid ({error})")
            return
        if not record.granted:
            self._reasons[feature] = record.reason
            return
        if record.license is None and feature == "rest" and self.settings.use == "consumer":
            return  # REST is free in consumer use: nothing to verify
        if record.license is None:
            self._refuse(feature, "malformed", "record carries no signed license")
            return
        if self.serial is None:  # no serial to bind the license to: nothing is granted yet
            self._seen.pop(feature, None)
            self._reasons[feature] = "the reader serial is not known yet"
            return
        try:
            signed = read_signed(record.license.encode(), self.keys, self.local_keys)
            # a license that starts later is held (decide() waits for its start); an expired
            # one is refused now
            check(
                signed.license,
                serial=self.serial,
                use=self.settings.use,
                now=max(self.now(), signed.license.not_before_ms),
                meter_id=self._meter_id,
            )
        except LicenseError as error:
            self._refuse(feature, error.reason, str(error))
            return
        if feature not in signed.license.features:
            self._refuse(feature, "wrong_feature", f"license {signed.id} does not grant it")
            return
        self._held[feature] = signed
        self._reasons.pop(feature, None)

    def _refuse(self, feature: str, reason: str, text: str) -> None:
        ENTITLEMENT_REFUSED.labels(reason).inc()
        log.warning("ignoring the '%s' entitlement record in Redis: %s", feature, text)
        self._reasons[feature] = f"entitlement record for '{feature}' refused: {text}"

    # ------------------------------------------------------------ waking waiters

    def _notify(self) -> None:
        for feature in FEATURES:
            ENTITLEMENT_GRANTED.labels(feature).set(int(self.decide(feature).granted))
        self._wake.set()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _next_boundary_s(self) -> float:
        now = self.now()
        moments = []
        for signed in self._held.values():
            moments.append(signed.license.not_before_ms)
            if signed.license.expires_ms is not None:
                moments.append(signed.license.expires_ms)
        future = [m - now for m in moments if m > now]
        return min([MAX_WAIT_S, *(ms / 1000 for ms in future)])

    async def _timer(self) -> None:
        """Wake waiters at each validity boundary of the licenses held (or after MAX_WAIT_S)."""
        while True:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._next_boundary_s() + 0.005)
            except TimeoutError:
                self._notify()
            # Python 3.11's wait_for returns normally when the cancel lands as the wake-up does
            raise_if_cancelling()
