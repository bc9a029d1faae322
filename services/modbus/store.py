"""The registers the server answers: the encoded maps of the newest reading (each block encoded
on the first read after a new reading), and the rules of what a read gets.

Consumes readings (`update`) and read requests (`async_getValues`, the datastore interface
pymodbus's server calls); produces register values or a Modbus exception code:
- a unit id other than the configured one: 0x0A gateway path unavailable;
- an address range outside every block, or spanning two: 0x02 illegal data address;
- a range touching measurement registers while the newest reading is stale: 0x0B gateway target
  device failed to respond (status registers such as the native age still answer);
- any write: 0x01 illegal function (the server is read-only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.simulator.simcore import SimCore

from shared.reading import Reading
from shared.stale import age_s, is_stale

from .accounting import AccountingRegisters
from .metrics import ENCODE_ERRORS
from .register_map import Block, Identity, Value, encode, reading_values

log = logging.getLogger(__name__)

# Modbus function code -> register space
SPACES = {3: "holding", 4: "input"}


@dataclass(frozen=True)
class Area:
    """A block with what the store needs to answer reads of it quickly."""

    block: Block
    start: int
    end: int
    measurement: tuple[tuple[int, int], ...]  # [start, end) address ranges
    live: Block | None  # the block's live points, re-encoded at read time
    live_span: tuple[int, int]

    @classmethod
    def of(cls, block: Block) -> Area:
        spans: list[list[int]] = []
        live = []
        for address, point in block.layout():
            end = address + point.type.size
            if point.measurement:
                if spans and spans[-1][1] >= address:
                    spans[-1][1] = end
                else:
                    spans.append([address, end])
            if point.live:
                live.append((address, point))
        measurement = tuple((a, b) for a, b in spans)
        if not live:
            return cls(block, block.start, block.end, measurement, None, (0, 0))
        first, last = live[0][0], live[-1][0] + live[-1][1].type.size
        points = tuple(p for a, p in block.layout() if first <= a < last)
        live_block = Block(block.name, block.space, first, points, block.gap)
        return cls(block, block.start, block.end, measurement, live_block, (first, last))

    def touches_measurement(self, address: int, end: int) -> bool:
        return any(address < hi and lo < end for lo, hi in self.measurement)


class ReadOnlyDevice(SimCore):
    """What pymodbus's server asks a device: reads go to `read`, every write is refused."""

    def read(self, unit: int, function: int, address: int, count: int) -> list[int] | ExcCodes:
        raise NotImplementedError

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        return self.read(device_id, func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_FUNCTION


class RegisterStore(ReadOnlyDevice):
    """The datastore behind the server (pymodbus's `SimCore` interface, our own contents)."""

    def __init__(
        self,
        blocks: Sequence[Block],
        identity: Identity,
        *,
        unit_id: int | None = None,
        stale_after: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # SimCore.__init__ builds simulated devices; this store answers from encoded readings.
        self.identity = identity
        self.unit_id = unit_id
        self.stale_after = stale_after
        self.clock = clock
        self.areas: dict[str, list[Area]] = {"holding": [], "input": []}
        for block in blocks:
            self.areas[block.space].append(Area.of(block))
        for areas in self.areas.values():
            areas.sort(key=lambda area: area.block.start)
        self.reading: Reading | None = None
        self.images: dict[str, list[int]] = {}  # block name -> registers, filled on demand
        self._values: dict[str, Value] | None = None
        self._changed = asyncio.Event()
        self.accounting = AccountingRegisters()  # holding 1200.. (services/modbus/accounting.py)
        self.update(None)

    # ------------------------------------------------------------ readings in

    def update(self, reading: Reading | None) -> None:
        """Make `reading` the newest. Its blocks are encoded when a read first needs them, so a
        reading that the next one supersedes before any client reads costs no encoding."""
        self.reading = reading
        self.images = {}
        self._values = None
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def image(self, block: Block) -> list[int]:
        """The block's registers for the newest reading (encoded once per reading, on demand)."""
        image = self.images.get(block.name)
        if image is None:
            if self._values is None:
                self._values = reading_values(self.reading, self.identity)
            errors: list[str] = []
            image = encode(block, self._values, errors)
            if errors:
                ENCODE_ERRORS.inc(len(errors))
                log.warning(
                    "reading %s: served as not implemented: %s",
                    self.reading.ts if self.reading else None,
                    "; ".join(errors),
                )
            self.images[block.name] = image
        return image

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds, checking after each update (no polling)."""
        while not predicate():
            await self._changed.wait()

    def age(self) -> float | None:
        """Seconds since the gateway received the newest reading (None: no reading yet)."""
        return age_s(self.reading, self.clock())

    def fresh(self) -> bool:
        return not is_stale(self.reading, self.stale_after, self.clock())

    def live_values(self) -> dict[str, Value]:
        age = self.age()
        return {"valid": int(self.fresh()), "age": None if age is None else int(age)}

    # ------------------------------------------------------------ requests in

    def device_ids(self) -> list[int]:
        return [self.unit_id or 0]

    def read(self, unit: int, function: int, address: int, count: int) -> list[int] | ExcCodes:
        """The registers `address`..`address+count-1` of the space `function` reads."""
        if self.unit_id is not None and unit != self.unit_id:
            return ExcCodes.GATEWAY_PATH_UNAVIABLE
        space = SPACES.get(function)
        if space is None:
            return ExcCodes.ILLEGAL_FUNCTION
        end = address + count
        if (words := self.accounting.read(space, address, count)) is not None:
            return words
        for area in self.areas[space]:
            if area.start <= address < area.end:
                break
        else:
            return ExcCodes.ILLEGAL_ADDRESS
        if end > area.end:
            return ExcCodes.ILLEGAL_ADDRESS
        if area.measurement and area.touches_measurement(address, end) and not self.fresh():
            return ExcCodes.GATEWAY_NO_RESPONSE
        image = self.image(area.block)
        words = image[address - area.start : end - area.start]
        if area.live is not None and address < area.live_span[1] and area.live_span[0] < end:
            live = encode(area.live, self.live_values())
            for offset, word in enumerate(live, start=area.live_span[0] - address):
                if 0 <= offset < count:
                    words[offset] = word
        return words
