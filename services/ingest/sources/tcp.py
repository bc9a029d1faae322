"""A TCP byte stream (`tcp://host:port`: ser2net, network P1 dongles); reconnects with backoff,
and also when nothing arrives for a while (a silently dead connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling

from .reconnect import lost, opened
from .spec import SourceSpec
from .status import SourceStatus

READ_SIZE = 65536


@dataclass
class TcpSource:
    """A TCP byte stream (ser2net, network P1 dongles); reconnects with backoff, and also when
    nothing arrives for `idle_timeout` seconds (a silently dead connection)."""

    spec: SourceSpec
    idle_timeout: float = 60.0
    connect_timeout: float = 10.0
    status: SourceStatus = field(default_factory=SourceStatus)

    async def chunks(self) -> AsyncIterator[bytes]:
        backoff = Backoff()
        first = True
        what = f"tcp source {self.spec.host}:{self.spec.port}"
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.spec.host, self.spec.port),
                    self.connect_timeout,
                )
            except (OSError, TimeoutError) as error:
                await asyncio.sleep(lost(what, error, backoff, self.status))
                continue
            opened(self.spec, self.status, reopened=not first)
            first = False
            try:
                while True:
                    try:
                        data = await asyncio.wait_for(reader.read(READ_SIZE), self.idle_timeout)
                    except TimeoutError:
                        raise ConnectionError(
                            f"nothing received for {self.idle_timeout:g} s"
                        ) from None
                    raise_if_cancelling()  # wait_for (3.11) can drop a cancel that meets data
                    if not data:
                        raise ConnectionError("closed by the other end")
                    backoff.reset()
                    yield data
            except (OSError, ConnectionError) as error:
                await asyncio.sleep(lost(what, error, backoff, self.status))
            finally:
                writer.close()
