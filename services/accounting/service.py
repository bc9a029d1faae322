"""The accounting service's loop: every meter's readings through a consumer group into per-meter
accounts, stored in Redis; the live tariff state recomputed every few seconds.

- `consume(stream)`: one task per meter's readings stream (`shared.meter_streams
  .each_meter_stream`): first the entries any consumer left pending (a crash; a container
  recreated under another host name), then new ones.
  Each batch is counted, then its intervals and state are stored and its entries acknowledged in
  one transaction (`store.save`). An entry already counted (its id is not after the last one
  the meter's state recorded for that stream) is acknowledged without counting it again. A batch
  that could not be stored is forgotten in memory (the meter's account is reloaded from Redis)
  and counted again once Redis answers: memory never runs ahead of what is stored.
- `refresh()`: every `HANPORT_ACCOUNTING_TARIFF_INTERVAL` s, the live tariff answer of each
  meter that counted readings since (value, step, headroom), its gauges, and once an hour the
  retention trim.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.backoff import Backoff
from shared.meter_streams import each_meter_stream
from shared.meters import meter_of
from shared.stream import REDIS_DOWN, Entry, GroupReader, ReadingStream, wait_for_redis
from shared.supervise import run_supervised

from . import metrics, store
from .account import RESOLUTIONS, MeterAccount
from .intervals import REGISTERS, Event, from_ms, interval_start, to_ms
from .settings import AccountingSettings

log = logging.getLogger("services.accounting")

BATCH = 500
TRIM_EVERY_S = 3600.0
REGISTER_NAMES = dict(
    zip(REGISTERS, ("import", "export", "reactive_import", "reactive_export"), strict=True)
)


class Accounting:
    """Every meter's account, the consumers that feed them and the refresher."""

    def __init__(self, settings: AccountingSettings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.zone = settings.zone()
        self.tariff = settings.rule()
        self.accounts: dict[str, MeterAccount] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.dirty: set[str] = set()
        self.trimmed: dict[str, float] = {}
        self.keep_days = {
            "15m": settings.accounting_keep_15m_days,
            "1h": settings.accounting_keep_1h_days,
        }

    async def run(self) -> None:
        await run_supervised(
            {
                "meter streams": lambda: each_meter_stream(
                    self.redis, self.settings.stream, self.consume
                ),
                "tariff refresh": self.refresh_forever,
            }
        )

    async def account(self, meter: str) -> MeterAccount:
        account = self.accounts.get(meter)
        if account is None:
            account = await store.load(self.redis, meter, self.zone, self.tariff)
            self.accounts[meter] = account
            log.info("meter %s: accounting with rule %s in %s", meter, self.tariff.name, self.zone)
        return account

    async def consume(self, stream: str) -> None:
        """Count every entry of `stream` through the consumer group, forever."""
        settings = self.settings
        group = GroupReader(
            ReadingStream(self.redis, stream),
            settings.accounting_group,
            settings.accounting_consumer,
        )
        backoff = Backoff()
        while True:
            try:
                await group.ensure_group("0")  # a new group counts the whole stream
                # first what an earlier consumer name left pending (a container recreated under
                # another host name; one replica runs, so none of them is alive), then this
                # consumer's own pending entries, then new ones
                while entries := await group.claim_idle(0, BATCH):
                    await self.handle(stream, group.group, entries)
                pending = True
                while True:
                    entries = await (group.pending_mine(BATCH) if pending else group.new(BATCH))
                    if pending and not entries:
                        pending = False
                        continue
                    if entries:
                        await self.handle(stream, group.group, entries)
                    if backoff.attempts:
                        backoff.reset()
            except REDIS_DOWN as error:
                await wait_for_redis(error, backoff)
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                log.warning("stream %s: the consumer group is gone; creating it again", stream)

    async def handle(self, stream: str, group: str, entries: list[Entry]) -> None:
        """Count a batch, store it and acknowledge it (see the module docstring)."""
        touched: dict[str, MeterAccount] = {}
        ids = []
        for entry_id, reading in entries:
            ids.append(entry_id)
            meter = meter_of(reading)
            account = await self.account(meter)
            if account.seen(stream, entry_id):
                continue
            for event in account.add(reading, stream, entry_id):
                self.report(meter, event)
            metrics.READINGS.labels(meter).inc()
            touched[meter] = account
        try:
            await store.save(self.redis, list(touched.values()), {}, store.Ack(stream, group, ids))
        except BaseException:
            metrics.STORE_ERRORS.inc()
            for meter in touched:  # reloaded from what is stored; the batch is counted again
                self.accounts.pop(meter, None)
            raise
        self.dirty.update(touched)

    def report(self, meter: str, event: Event) -> None:
        metrics.EVENTS.labels(meter, event.kind).inc()
        when = from_ms(event.after.ts_ms, self.zone).isoformat()
        if event.kind == "reset":
            log.warning(
                "meter %s: register %s went down from %.3f to %.3f at %s (meter replaced or "
                "reset): a new baseline, nothing counted for that gap",
                meter,
                event.register,
                event.before.value,
                event.after.value,
                when,
            )
        else:
            log.info(
                "meter %s: register %s sample at %s is not after the last one; left out",
                meter,
                event.register,
                when,
            )

    async def refresh_forever(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self.refresh()
                backoff.reset()
            except REDIS_DOWN as error:
                await wait_for_redis(error, backoff)
                continue
            await asyncio.sleep(self.settings.accounting_tariff_interval)

    async def refresh(self) -> None:
        """Store the live tariff answer of every meter that counted readings since the last
        refresh; set its gauges; trim old intervals once an hour."""
        for meter in sorted(self.dirty):
            self.dirty.discard(meter)
            account = self.accounts.get(meter)
            if account is None or account.last_ts is None:
                continue
            answer = account.tariff_state()
            answer["formed_ms"] = int(time.time() * 1000)
            try:
                await self.redis.set(store.tariff_key(meter), _json(answer))
            except BaseException:
                self.dirty.add(meter)
                raise
            self.gauges(account, answer)
            if time.monotonic() - self.trimmed.get(meter, -TRIM_EVERY_S) >= TRIM_EVERY_S:
                self.trimmed[meter] = time.monotonic()
                await store.trim(self.redis, meter, account.last_ts, self.keep_days)
                horizon = account.horizon_ms()
                if horizon is not None:
                    account.forget_before(horizon)

    def gauges(self, account: MeterAccount, answer: dict[str, Any]) -> None:
        meter = account.meter
        metrics.MONTH_VALUE.labels(meter).set(answer["value_kw"])
        metrics.BILLED.labels(meter).set(answer["billed_kw"])
        metrics.STEP.labels(meter).set(answer["step"]["index"])
        metrics.WINDOW_KWH.labels(meter).set(answer["window_energy_kwh"])
        metrics.PROJECTED.labels(meter).set(answer["projected_kw"])
        room = answer["headroom_w"]
        metrics.HEADROOM.labels(meter).set(float("inf") if room is None else room)
        if account.last_ts is None:
            return
        now = from_ms(account.last_ts, self.zone)
        for period, resolution in RESOLUTIONS.items():
            start = to_ms(interval_start(now, period, self.zone))
            for register, name in REGISTER_NAMES.items():
                total = account.ledger.totals.get(register, {}).get(period, {}).get(start)
                metrics.ENERGY.labels(meter, resolution, name).set(total.kwh if total else 0.0)


def _json(answer: dict[str, Any]) -> str:
    return json.dumps(answer)


async def run_service(settings: AccountingSettings, redis: Redis) -> None:
    await Accounting(settings, redis).run()
