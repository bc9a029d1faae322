"""Publish messages to JetStream in order, pipelined, and say how many were acknowledged.

`publish_in_order` sends a batch back to back on one connection (the server stores them in the
order sent), then waits for every acknowledgement. It returns the length of the acknowledged
prefix: the caller releases those (acks its source) and sends the rest again, in order, later.
A message stored whose acknowledgement was lost is sent again and stored once (`Nats-Msg-Id`,
within the stream's duplicate window).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from nats.errors import ConnectionClosedError, NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from .messages import Outgoing
from .metrics import DUPLICATES, ERRORS, SENT

log = logging.getLogger(__name__)

KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (NatsTimeout, "timeout"),
    (asyncio.TimeoutError, "timeout"),
    (NoRespondersError, "no_responders"),
    (NoStreamResponseError, "no_responders"),  # the stream is electing a leader
    (APIError, "refused"),
    (ConnectionClosedError, "disconnected"),
    (OutboundBufferLimitError, "disconnected"),
)


def error_kind(error: BaseException) -> str:
    for cls, kind in KINDS:
        if isinstance(error, cls):
            return kind
    return "other"


async def publish_in_order(
    js: JetStreamContext, batch: Sequence[Outgoing], *, ack_timeout: float, stage: str
) -> int:
    """Publish `batch`; the number of leading messages JetStream acknowledged."""
    if not batch:
        return 0
    results = await asyncio.gather(
        *(
            js.publish(m.subject, m.payload, timeout=ack_timeout, headers=m.headers())
            for m in batch
        ),
        return_exceptions=True,
    )
    done = 0
    for result in results:
        if isinstance(result, BaseException):
            if isinstance(result, asyncio.CancelledError):
                raise result
            kind = error_kind(result)
            ERRORS.labels(stage, kind).inc()
            log.warning(
                "%s did not acknowledge %s (%s: %s); %d of %d acknowledged, the rest is sent "
                "again",
                stage, batch[done].subject, kind, result or type(result).__name__, done,
                len(batch),
            )  # fmt: skip
            break
        if result.duplicate:
            DUPLICATES.labels(stage).inc()
        done += 1
    SENT.labels(stage).inc(done)
    return done
