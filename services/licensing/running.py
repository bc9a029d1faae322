"""The licensing service's loops, each under `shared.supervise`: publish the entitlements (again
at every change and validity boundary), follow the readings stream (meter id and meter time,
`shared.follow.Follower`) and every meter's (meter time), and watch the license folder for changes made by hand. The state they
drive is `services.licensing.service.LicensingService`.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling
from shared.follow import BACKGROUND, Follower
from shared.meter_streams import MeterStreams
from shared.stream import REDIS_DOWN, ReadingStream
from shared.supervise import run_supervised

from .metrics import PUBLISH_FAILURES
from .service import LicensingService

log = logging.getLogger(__name__)

# How often the license folder is looked at for files copied in, edited or removed by hand (the
# API installs and removes at once; a hand-made change takes effect within this long).
FOLDER_POLL_S = 5.0


async def run(service: LicensingService) -> None:
    """Until cancelled: establish the serial, load the licenses, then publish the entitlements
    (and the serial), follow the meter and watch the folder."""
    try:
        service.store.ensure()
    except OSError as error:
        log.error("cannot create the license folder %s: %s", service.store.folder, error)
    service.establish_serial()
    service.load()
    service.loaded.set()
    stream = ReadingStream(service.redis, service.settings.stream)
    follower = Follower(stream, service.observe_entries, BACKGROUND)
    # the meter time of every meter of the box (named meters have streams of their own)
    every_meter = Follower(
        MeterStreams(service.redis, service.settings.stream),
        service.observe_meter_times,
        BACKGROUND,
    )
    try:
        await run_supervised(
            {
                "entitlement publisher": lambda: publish_entitlements(service),
                "stream follower": follower.run,
                "meter times": every_meter.run,
                "license folder": lambda: watch_folder(service),
            }
        )
    finally:
        service.save_meter_time()


async def publish_entitlements(service: LicensingService) -> None:
    """Evaluate and write the records, again when woken or at the next validity boundary;
    through Redis outages (with backoff)."""
    backoff = Backoff()
    while True:
        service.take_wake()
        try:
            await service.reevaluate()
            raise_if_cancelling()
            backoff.reset()
            delay = service.next_evaluation_s()
        except (RedisError, *REDIS_DOWN) as error:
            raise_if_cancelling(error)
            PUBLISH_FAILURES.inc()
            service.publish_failed()
            delay = backoff.next_delay()
            log.warning(
                "cannot publish entitlements to Redis (%s); retrying in %.1f s", error, delay
            )
        await service.until_woken(delay)


async def watch_folder(service: LicensingService) -> None:
    """Reload the licenses when their folder changed by hand (a file copied in over SSH or by
    configuration management, edited or deleted), within FOLDER_POLL_S."""
    folder = service.store.folder
    while True:
        await asyncio.sleep(FOLDER_POLL_S)
        try:
            if not service.folder_changed():
                continue
            log.info("the license folder %s changed; reloading", folder)
            service.load()
        except OSError as error:  # e.g. the folder's volume went away: try again later
            log.warning("cannot look at the license folder %s: %s", folder, error)
            continue
        service.wake()
