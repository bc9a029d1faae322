"""The licensing service's running state: licenses in, entitlement records out.

Consumes the license folder, uploads (`install`/`remove`), the readings stream (meter id and
meter time) and a clock; produces the per-feature records and change notifications in Redis
(`services.licensing.publish`), metrics, and expiry warnings in the log. Re-evaluates when a
license is installed or removed, when the meter changes, and at every validity boundary (a
timer, capped at `MAX_WAIT_S` in case the system clock jumps). The loops that drive it are in
`services.licensing.running`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from shared.identity import choose_serial
from shared.license import (
    KeyFileError,
    LicenseError,
    Signed,
    check,
    format_time,
    load_local_keys,
    now_ms,
    read_signed,
)
from shared.reading import Reading
from shared.stream import REDIS_DOWN, Entry

from .decide import WARN_BEFORE_MS, FeatureState, evaluate, next_boundary
from .metrics import (
    FEATURE_EXPIRING,
    FEATURE_EXPIRY,
    FEATURE_GRANTED,
    INSTALLED,
    REFUSED,
)
from .publish import TIME_FLOOR_KEY, parse_floor, publish
from .settings import LicensingSettings
from .store import LicenseStore

log = logging.getLogger(__name__)

MAX_WAIT_S = 60.0
WARN_EVERY_MS = 12 * 3_600_000
METER_TIME_SAVE_MS = 60_000


class LicensingService:
    def __init__(
        self,
        settings: LicensingSettings,
        redis: Redis,
        keys: dict[str, Ed25519PublicKey],
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = keys
        self.local_keys: dict[str, Ed25519PublicKey] = {}  # the box's own, from the folder
        self.clock = clock
        self.store = LicenseStore(settings.license_dir)
        self.serial: str | None = settings.serial
        self.licenses: dict[str, Signed] = {}
        self.meter_id: str | None = None
        self.meter_ts = self.store.read_meter_time()
        # the highest time judged by (system clock or meter), kept in the folder and in Redis:
        # deleting one of them does not let a clock turned back revive an expired license
        self.floor = self.meter_ts
        self._floor_restored = False  # the one in Redis is read at the first evaluation
        self._folder_seen: tuple[tuple[str, int, int], ...] = ()  # see folder_changed
        self._saved_meter_ts = self.meter_ts
        self.states: dict[str, FeatureState] = {}
        self.redis_ok = False
        self._published: dict[str, FeatureState] | None = None
        self._warned: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._evaluated = asyncio.Event()  # replaced by a fresh one after each evaluation
        self.loaded = asyncio.Event()  # the serial is known and the license files were read
        self.evaluations = 0

    # ------------------------------------------------------------ time and licenses

    def now(self) -> int:
        """System clock, meter time or the highest time judged by before, whichever is later
        (rollback protection)."""
        return max(self.clock(), self.meter_ts, self.floor)

    def load_local_keys(self) -> None:
        """The box's own public keys (`hanport license self-activate`) from the folder."""
        try:
            self.local_keys = load_local_keys(self.store.folder)
        except KeyFileError as error:
            log.warning("ignoring the box's own license key: %s", error)
            self.local_keys = {}

    def load(self) -> None:
        """(Re)load every license file; files that fail are logged, counted and skipped."""
        self._folder_seen = self.store.fingerprint()
        self.load_local_keys()
        loaded: dict[str, Signed] = {}
        for path in self.store.files():
            try:
                signed = read_signed(path.read_bytes(), self.keys, self.local_keys)
                # serial and use now; the validity window at each evaluation
                start = signed.license.not_before_ms
                check(signed.license, serial=self.serial, use=self.settings.use, now=start)
            except LicenseError as error:
                REFUSED.labels(error.reason).inc()
                log.warning("skipping license file %s: %s", path, error)
                continue
            except OSError as error:
                REFUSED.labels("unreadable").inc()
                log.warning("cannot read license file %s: %s", path, error)
                continue
            loaded[signed.id] = signed
        self.licenses = loaded
        INSTALLED.set(len(loaded))
        log.info("loaded %d license(s) from %s", len(loaded), self.store.folder)

    def install(self, text: bytes) -> Signed:
        """Verify an uploaded license fully (now, for this reader and meter), then keep it.
        Raises LicenseError (counted, logged) and changes nothing when it is refused."""
        try:
            signed = read_signed(text, self.keys, self.local_keys)
            check(
                signed.license,
                serial=self.serial,
                use=self.settings.use,
                now=self.now(),
                meter_id=self.meter_id,
            )
        except LicenseError as error:
            self.refused(error)
            raise
        try:
            self.store.save(signed.id, text)
        except OSError as error:
            failure = LicenseError("storage", error)
            self.refused(failure)
            raise failure from None
        self._folder_seen = self.store.fingerprint()  # our own change: nothing to reload
        self.licenses[signed.id] = signed
        INSTALLED.set(len(self.licenses))
        log.info(
            "installed license %s (%s %s: %s, expires %s)",
            signed.id,
            signed.license.use,
            signed.license.kind,
            ",".join(signed.license.features),
            signed.license.expires or "never",
        )
        self.wake()
        return signed

    def remove(self, license_id: str) -> bool:
        known = self.licenses.pop(license_id, None) is not None
        deleted = self.store.delete(license_id)
        self._folder_seen = self.store.fingerprint()
        if known or deleted:
            INSTALLED.set(len(self.licenses))
            log.info("removed license %s", license_id)
            self.wake()
        return known or deleted

    def refused(self, error: LicenseError) -> None:
        REFUSED.labels(error.reason).inc()
        log.warning("refused a license: %s", error)

    def observe(self, reading: Reading) -> None:
        """A reading from the stream: its meter binds licenses, its time is a clock floor."""
        changed = False
        if reading.meter_id and reading.meter_id != self.meter_id:
            log.info("meter %s seen on the readings stream", reading.meter_id)
            self.meter_id = reading.meter_id
            changed = True
        if self._observe_time(reading.ts) or changed:
            self.wake()

    def _observe_time(self, ts: int) -> bool:
        """A meter time seen: a later one raises the clock floor; whether a validity boundary
        was crossed."""
        if ts <= self.meter_ts:
            return False
        boundary = next_boundary(self.licenses.values(), self.now())
        self.meter_ts = ts
        self.floor = max(self.floor, self.meter_ts)
        if self.floor - self._saved_meter_ts >= METER_TIME_SAVE_MS:
            self._save_meter_time()
        return boundary is not None and self.now() >= boundary

    def observe_meter_times(self, batch: list[Entry]) -> None:
        """A batch from any meter's stream (`shared.meter_streams.MeterStreams`): only its meter
        time counts (a clock floor, as the classic stream's); the meter that binds licenses is
        the classic stream's (`observe_entries`)."""
        if self._observe_time(max(reading.ts for _entry_id, reading in batch)):
            self.wake()
        self._changed()

    def observe_batch(self, readings: Sequence[Reading]) -> None:
        """The readings of one stream read: the newest names the meter, and the latest meter
        time among them is the clock floor (the same as observing each in turn, unless the
        meter id changed and changed back within the batch)."""
        newest = readings[-1]
        latest_ts = max(reading.ts for reading in readings)
        if latest_ts != newest.ts:
            newest = msgspec.structs.replace(newest, ts=latest_ts)
        self.observe(newest)

    def _save_meter_time(self) -> None:
        try:
            self.store.write_meter_time(self.floor)
            self._saved_meter_ts = self.floor
        except OSError as error:
            log.warning("cannot save the meter time floor: %s", error)

    # ------------------------------------------------------------ evaluation

    def wake(self) -> None:
        self._wake.set()

    def preview(self) -> dict[str, FeatureState]:
        """The decision now, without publishing, logging or metrics (for API answers)."""
        return evaluate(
            self.licenses.values(),
            serial=self.serial,
            use=self.settings.use,
            now=self.now(),
            meter_id=self.meter_id,
        )

    @property
    def published(self) -> dict[str, FeatureState]:
        """The decision last written to Redis ({} before the first write)."""
        return self._published or {}

    def _decide(self) -> dict[str, FeatureState]:
        now = self.now()
        states = self.preview()
        for feature, state in states.items():
            FEATURE_GRANTED.labels(feature).set(int(state.granted))
            if not state.granted:
                expiry = 0.0
            else:
                expiry = math.inf if state.until is None else state.until / 1000
            FEATURE_EXPIRY.labels(feature).set(expiry)
            soon = state.granted and state.until is not None and state.until - now <= WARN_BEFORE_MS
            FEATURE_EXPIRING.labels(feature).set(int(soon))
            if soon and state.license is not None and state.until is not None:
                self._warn(feature, state.license, state.until, now)
        if states != self.states:
            for feature, state in states.items():
                if self.states.get(feature) != state:
                    log.info(
                        "'%s' %s: %s",
                        feature,
                        "granted" if state.granted else "not granted",
                        state.reason,
                    )
        self.states = states
        return states

    def _warn(self, feature: str, license: Signed, until: int, now: int) -> None:
        last = self._warned.get(f"{feature}:{license.id}")
        if last is not None and now - last < WARN_EVERY_MS:
            return
        self._warned[f"{feature}:{license.id}"] = now
        log.warning(
            "license %s for '%s' expires at %s (in %.1f days); install a renewal",
            license.id,
            feature,
            format_time(until),
            (until - now) / 86_400_000,
        )

    async def reevaluate(self) -> dict[str, FeatureState]:
        """Evaluate now and write the records (notifying only on change). Raises REDIS_DOWN."""
        try:
            if not self._floor_restored:
                self.floor = max(self.floor, await self._kept_floor())
                self._floor_restored = True
            self.floor = max(self.floor, self.now())
            states = self._decide()
            updated = now_ms()
            records = {f: state.record(f, updated) for f, state in states.items()}
            changed = states != self._published
            await publish(
                self.redis, records, notify=changed, serial=self.serial, time_floor=self.floor
            )
        except (RedisError, *REDIS_DOWN):
            self.publish_failed()
            raise
        if self.floor - self._saved_meter_ts >= METER_TIME_SAVE_MS:
            self._save_meter_time()
        self._published = states
        self.redis_ok = True
        self.evaluations += 1
        self._changed()
        return states

    async def _kept_floor(self) -> int:
        """The time floor kept in Redis (0 when none, or the key holds something else)."""
        try:
            return parse_floor(await self.redis.get(TIME_FLOOR_KEY))
        except ResponseError as error:  # e.g. WRONGTYPE: SET replaces it at the next publish
            log.warning("cannot read the time floor %s in Redis: %s", TIME_FLOOR_KEY, error)
            return 0

    def _changed(self) -> None:
        evaluated, self._evaluated = self._evaluated, asyncio.Event()
        evaluated.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate` holds after an evaluation or a reading (tests)."""
        while not predicate():
            await self._evaluated.wait()

    # ------------------------------------------------------------ running

    def licensed_serials(self) -> list[str]:
        """The serials the license files in the folder name (signature checked, nothing else)."""
        serials = []
        for path in self.store.files():
            try:
                serials.append(read_signed(path.read_bytes(), self.keys, self.local_keys).license)
            except (LicenseError, OSError):
                continue
        return [license.serial for license in serials]

    def establish_serial(self) -> str:
        """The reader's one serial (`shared.identity.choose_serial`: configured, else kept in the
        folder, else named by the installed licenses, else new), kept in the folder. Never
        taken from Redis: anyone who can write Redis could choose it. Published to Redis with
        every evaluation (`reevaluate`)."""
        self.load_local_keys()
        stored = self.store.read_serial()
        licensed = [] if self.settings.serial or stored else self.licensed_serials()
        serial, source = choose_serial(self.settings.serial, stored, licensed)
        log.info("reader serial %s (%s)", serial, source)
        if stored != serial:  # also a configured one: the other services read it here
            try:
                self.store.write_serial(serial)
                log.info("reader serial %s kept in %s", serial, self.store.folder)
            except OSError as error:
                log.error(
                    "cannot keep the reader serial in %s (%s): make HANPORT_LICENSE_DIR a "
                    "writable volume, or set HANPORT_SERIAL",
                    self.store.folder,
                    error,
                )
        self.serial = serial
        return serial

    def observe_entries(self, batch: list[Entry]) -> None:
        """A batch from the readings stream (`shared.follow.Follower`)."""
        self.observe_batch([reading for _entry_id, reading in batch])
        self._changed()

    def folder_changed(self) -> bool:
        """Whether the license folder changed since the service last read or wrote it (by hand:
        a file copied in, edited or deleted). Raises OSError when it cannot be looked at."""
        return self.store.fingerprint() != self._folder_seen

    def publish_failed(self) -> None:
        self._published = None
        self.redis_ok = False

    def take_wake(self) -> None:
        """Forget earlier `wake` calls: only later ones end `until_woken`."""
        self._wake.clear()

    async def until_woken(self, within: float) -> None:
        """Return after a `wake` call (license installed or removed, meter changed) or after
        `within` s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), within)

    def next_evaluation_s(self) -> float:
        """Seconds until the next validity boundary of a license (at most MAX_WAIT_S)."""
        now = self.now()
        boundary = next_boundary(self.licenses.values(), now)
        if boundary is None:
            return MAX_WAIT_S
        return min(MAX_WAIT_S, (boundary - now) / 1000 + 0.005)

    def save_meter_time(self) -> None:
        """Keep the time floor on the volume (if newer than the one kept)."""
        self.floor = max(self.floor, self.meter_ts)
        if self.floor > self._saved_meter_ts:
            self._save_meter_time()
