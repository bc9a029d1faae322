"""A NATS connection that is established, whatever it takes, and then kept.

`connect_nats` waits (with backoff, one line per attempt) until the server answers, then lets
nats-py reconnect forever after any loss: a box's link may be down for days. TLS from `tls://`
URLs or a CA file; credentials from a `.creds` file (operator mode: the box's JWT and seed) or an
nkey seed file; secrets are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling
from shared.log import redact_url

from .metrics import CONNECTED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect."""

    urls: list[str]
    creds_file: Path | None = None
    nkey_file: Path | None = None
    ca_file: Path | None = None
    inbox_prefix: str = "_INBOX"
    name: str = "hanport-uplink"
    stage: str = "hub"

    def tls(self) -> ssl.SSLContext | None:
        if self.ca_file is None and not any(u.startswith("tls://") for u in self.urls):
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        return context

    def shown(self) -> str:
        return ", ".join(redact_url(u) for u in self.urls)


async def connect_nats(endpoint: Endpoint, backoff: Backoff | None = None) -> Client:
    backoff = backoff or Backoff()
    stage = endpoint.stage

    told: set[str] = set()  # errors logged since the last (re)connect: one line each per outage

    async def disconnected() -> None:
        CONNECTED.labels(stage).set(0)
        log.warning("lost the %s at %s; reconnecting", stage, endpoint.shown())

    async def reconnected() -> None:
        told.clear()
        CONNECTED.labels(stage).set(1)
        log.info("reconnected to the %s at %s", stage, endpoint.shown())

    async def error(e: Exception) -> None:
        text = f"{type(e).__name__}: {e}"
        if text not in told:
            told.add(text)
            log.warning("%s connection at %s: %s (said once until reconnected)", stage,
                        endpoint.shown(), text)  # fmt: skip

    while True:
        try:
            client = await nats.connect(
                endpoint.urls,
                name=endpoint.name,
                tls=endpoint.tls(),
                user_credentials=str(endpoint.creds_file) if endpoint.creds_file else None,
                nkeys_seed=str(endpoint.nkey_file) if endpoint.nkey_file else None,
                inbox_prefix=endpoint.inbox_prefix,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                connect_timeout=3,
                ping_interval=20,
                max_outstanding_pings=3,
                error_cb=error,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
            )
        except (TimeoutError, OSError, nats.errors.Error) as e:
            raise_if_cancelling(e)
            CONNECTED.labels(stage).set(0)
            delay = backoff.next_delay()
            log.warning(
                "cannot reach the %s at %s (%s: %s); retrying in %.1f s (attempt %d). Check "
                "HANPORT_UPLINK_URL / HANPORT_UPLINK_SPOOL_URL, the credentials and the network",
                stage, endpoint.shown(), type(e).__name__, e, delay, backoff.attempts,
            )  # fmt: skip
            await asyncio.sleep(delay)
            continue
        CONNECTED.labels(stage).set(1)
        log.info("connected to the %s at %s", stage, endpoint.shown())
        return client
