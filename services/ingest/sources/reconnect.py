"""The bookkeeping serial and TCP sources share when their port or connection comes and goes:
the `hanport_ingest_source_connected` gauge, the reconnect counter, the log lines and the
source's `SourceStatus`."""

from __future__ import annotations

import logging

from shared.backoff import Backoff

from ..metrics import SOURCE_CONNECTED, SOURCE_RECONNECTS
from .spec import SourceSpec
from .status import SourceStatus

log = logging.getLogger(__name__)


def lost(what: str, error: BaseException, backoff: Backoff, status: SourceStatus) -> float:
    """Note a lost port or connection (logged once, then quietly); the delay before retrying."""
    SOURCE_CONNECTED.set(0)
    status.failed(error)
    delay = backoff.next_delay()
    if backoff.attempts == 1:
        log.warning("%s: %s; reopening with backoff", what, error or type(error).__name__)
    else:
        log.info("%s still unavailable (%s); next try in %.1f s", what, error, delay)
    return delay


def opened(spec: SourceSpec, status: SourceStatus, *, reopened: bool) -> None:
    """Note a port or connection (re)opened."""
    SOURCE_CONNECTED.set(1)
    status.open()
    if reopened:
        SOURCE_RECONNECTS.inc()
    log.info("reading %s", spec.describe())
