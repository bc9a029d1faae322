"""A serial port (`serial:///dev/ttyUSB0?baud=...`, or a bare device path) through pyserial, read
without blocking the event loop; reopened with backoff when the adapter goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import serial

from shared.backoff import Backoff

from .reconnect import lost, opened
from .spec import PARITIES, SourceSpec
from .status import SourceStatus


@dataclass
class SerialSource:
    """A serial port through pyserial; reopened with backoff when the adapter goes away."""

    spec: SourceSpec
    status: SourceStatus = field(default_factory=SourceStatus)

    def open(self) -> serial.Serial:
        spec = self.spec
        return serial.Serial(
            spec.path,
            baudrate=spec.baud,
            bytesize=spec.bytesize,
            parity=PARITIES[spec.parity],
            stopbits=spec.stopbits,
            timeout=0,  # non-blocking: the event loop says when there is something to read
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        backoff = Backoff()
        first = True
        while True:
            try:
                port = self.open()
            except (serial.SerialException, OSError, ValueError) as error:
                await asyncio.sleep(
                    lost(f"serial port {self.spec.path}", error, backoff, self.status)
                )
                continue
            opened(self.spec, self.status, reopened=not first)
            first = False
            try:
                async for data in self._read(port):
                    backoff.reset()
                    yield data
            except (serial.SerialException, OSError) as error:
                await asyncio.sleep(
                    lost(f"serial port {self.spec.path}", error, backoff, self.status)
                )
            finally:
                port.close()

    async def _read(self, port: serial.Serial) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = port.fileno()
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                data = port.read(max(port.in_waiting, 1))
                if data:
                    yield data
        finally:
            loop.remove_reader(fd)
