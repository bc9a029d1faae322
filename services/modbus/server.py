"""The Modbus TCP server: pymodbus's TCP server with a stricter front door.

Consumes Modbus TCP frames from clients; produces answers from a `RegisterStore`. Each frame is
screened before pymodbus decodes it:
- a malformed MBAP header (protocol id not 0, length outside 2..254) closes that connection only;
- functions other than 03 (read holding) and 04 (read input) answer 0x01 illegal function, so
  every write is refused and nothing can change the server's state;
- a read count outside 1..125, or a read PDU of the wrong length, answers 0x03 illegal data value.
Every complete frame in a packet is answered, in order. Answers are counted by function and
result, exceptions by code, and connected clients are a gauge.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from typing import Any

from prometheus_client import Counter
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from .metrics import CLIENTS, EXCEPTIONS, MALFORMED, REQUESTS
from .store import RegisterStore

log = logging.getLogger(__name__)

MBAP = struct.Struct(">HHHBB")  # transaction id, protocol id, length, unit id, function code
READ = struct.Struct(">HH")  # address, count
# function code -> (name, largest count); any other function is refused with 0x01
READS = {3: ("read_holding_registers", 125), 4: ("read_input_registers", 125)}
READ_LENGTH = 6  # MBAP length of a read request: unit, function, address, count
MAX_LENGTH = 254  # MBAP length of the largest Modbus TCP frame (260 bytes)
BUFFER = 1 << 20  # pymodbus drops (silently) anything beyond its buffer; we screen it instead


@functools.cache
def _requests(function: int, result: str) -> Counter:
    """The request counter's child for a function and result (labels() is slow per call)."""
    name = READS[function][0] if function in READS else f"0x{function:02X}"
    return REQUESTS.labels(name, result)


class Connection(ServerRequestHandler):
    """One client's connection."""

    server: HanportModbusServer

    def __init__(self, owner: HanportModbusServer) -> None:
        super().__init__(owner, None, None, None)
        self.max_buffer_size = BUFFER
        self.tasks: set[asyncio.Task[None]] = set()
        self.counted = False

    def callback_connected(self) -> None:
        super().callback_connected()
        self.counted = True
        CLIENTS.inc()

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        self._gone()

    def close(self, reconnect: bool = False) -> None:
        # A connection closed from this side never hears `connection_lost`.
        self._gone()
        super().close(reconnect)

    def _gone(self) -> None:
        if self.counted:
            self.counted = False
            CLIENTS.dec()

    def send(self, data: bytes, addr: tuple[Any, ...] | None = None) -> None:
        # pymodbus clears the receive buffer on every send (right for a client waiting for one
        # answer); a server must keep the start of a pipelined request that is still arriving.
        pending = self.recv_buffer
        super().send(data, addr)
        self.recv_buffer = pending

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        """Answer every complete frame in `data`; returns the bytes used."""
        used = 0
        while len(data) - used >= MBAP.size:
            tid, protocol, length, unit, function = MBAP.unpack_from(data, used)
            if protocol != 0 or not 2 <= length <= MAX_LENGTH:
                self._malformed(protocol, length)
                return len(data)
            size = 6 + length
            if len(data) - used < size:
                break
            try:
                self._request(data[used : used + size], tid, unit, function, length)
            except Exception:  # a bug must cost this connection at most, never the server
                log.exception(
                    "closing the Modbus connection: cannot handle frame %s",
                    data[used : used + size].hex(),
                )
                self.close()
                return len(data)
            used += size
        return used

    def _malformed(self, protocol: int, length: int) -> None:
        MALFORMED.inc()
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.warning(
            "closing the Modbus connection from %s: malformed MBAP header (protocol id %d, "
            "length %d); Modbus TCP needs protocol id 0 and a length of 2..254",
            peer,
            protocol,
            length,
        )
        self.close()

    def _request(self, frame: bytes, tid: int, unit: int, function: int, length: int) -> None:
        if function not in READS:
            self._refuse(tid, unit, function, ExcCodes.ILLEGAL_FUNCTION)
            return
        if length != READ_LENGTH:
            self._refuse(tid, unit, function, ExcCodes.ILLEGAL_VALUE)
            return
        _address, count = READ.unpack_from(frame, MBAP.size)
        if not 1 <= count <= READS[function][1]:
            self._refuse(tid, unit, function, ExcCodes.ILLEGAL_VALUE)
            return
        _used, pdu = self.framer.handleFrame(frame, 0, 0)
        if pdu is None:  # cannot happen for a screened read; answer rather than hang
            self._refuse(tid, unit, function, ExcCodes.ILLEGAL_VALUE)
            return
        task = self.loop.create_task(self._answer(pdu))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, request: ModbusPDU) -> None:
        try:
            # pymodbus types the datastore as its context class; it calls SimCore's interface
            store: Any = self.server.context
            response = await request.datastore_update(store, request.dev_id)
        except Exception:  # the store never raises; if it did, answer and keep serving
            log.exception("answering %s failed", request)
            response = ExceptionResponse(request.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id = request.transaction_id
        response.dev_id = request.dev_id
        self.server_send(response, None)

    def _refuse(self, tid: int, unit: int, function: int, code: ExcCodes) -> None:
        self.server_send(ExceptionResponse(function, code, device_id=unit, transaction=tid), None)

    def server_send(self, pdu: ModbusPDU | None, addr: tuple[Any, ...] | None) -> None:
        if pdu is None or not self.transport or self.is_closing:
            return
        function = pdu.function_code & 0x7F
        if isinstance(pdu, ExceptionResponse):
            code = pdu.exception_code
            result = ExcCodes(code).name.lower() if code in ExcCodes else f"0x{code:02X}"
            EXCEPTIONS.labels(f"0x{code:02X}").inc()
        else:
            result = "ok"
        _requests(function, result).inc()
        super().server_send(pdu, addr)


class HanportModbusServer(ModbusTcpServer):
    """pymodbus's TCP server answering from `store`, with `Connection` as the front door."""

    context: RegisterStore

    def __init__(self, store: RegisterStore, host: str, port: int) -> None:
        # pymodbus builds a datastore from a SimDevice; ours replaces it (same interface).
        placeholder = SimDevice(0, simdata=SimData(0, datatype=DataType.REGISTERS))
        super().__init__(placeholder, address=(host, port))
        self.context = store

    def callback_new_connection(self) -> Connection:
        return Connection(self)

    @property
    def clients(self) -> int:
        return len(self.active_connections)

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be bound."""
        if not await self.listen():
            raise OSError(f"cannot listen on {self.comm_params.source_address}")

    async def stop(self) -> None:
        """Stop listening and close every client connection."""
        for connection in list(self.active_connections.values()):
            connection.close()
        await self.shutdown()
