"""The Modbus TCP server: pymodbus's TCP server with a stricter front door.

Consumes Modbus TCP frames from clients; produces answers from a `RegisterStore`. Each frame is
screened before pymodbus decodes it:
- a malformed MBAP header (protocol id not 0, length outside 2..254) closes that connection only;
- functions other than 03 (read holding) and 04 (read input) answer 0x01 illegal function, so
  every write is refused and nothing can change the server's state;
- a read count outside 1..125, or a read PDU of the wrong length, answers 0x03 illegal data value.
Every complete frame is answered, in order, one at a time per connection.

What one client can cost is bounded (`Limits`): a connection's answers wait in its write buffer
only up to a high-water mark, past which the server stops reading from it (asyncio's
`pause_writing` -> `pause_reading`) until the client reads; received bytes wait in an inbox that
stops reading when full. A connection that sends no complete request for `idle_timeout` seconds
(silent, trickling a frame, or not reading its answers) is dropped, and connections beyond
`max_clients` are refused at once. Refusals and timeouts are counted and logged at most once a
minute. Answers are counted by function and result, exceptions by code, and connected clients
are a gauge.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import Counter
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from .metrics import CLIENTS, EXCEPTIONS, MALFORMED, REFUSED, REQUESTS, TIMED_OUT
from .settings import ModbusSettings
from .store import RegisterStore
from .units import Units

log = logging.getLogger(__name__)

MBAP = struct.Struct(">HHHBB")  # transaction id, protocol id, length, unit id, function code
READ = struct.Struct(">HH")  # address, count
# function code -> (name, largest count); any other function is refused with 0x01
READS = {3: ("read_holding_registers", 125), 4: ("read_input_registers", 125)}
READ_LENGTH = 6  # MBAP length of a read request: unit, function, address, count
MAX_LENGTH = 254  # MBAP length of the largest Modbus TCP frame (260 bytes)
FAIR_SHARE = 32  # frames one connection answers before the other connections get a turn
LOG_EVERY_S = 60.0  # a refusal or timeout warning is logged at most this often


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server."""

    max_clients: int = 128  # connections at once; more are refused
    idle_timeout: float = 60.0  # seconds without a complete request before a drop
    write_buffer: int = 16 * 1024  # answers waiting for a client before reading it pauses
    inbox: int = 4 * 1024  # received bytes waiting to be answered before reading pauses

    @classmethod
    def of(cls, settings: ModbusSettings) -> Limits:
        return cls(
            max_clients=settings.modbus_max_clients, idle_timeout=settings.modbus_idle_timeout
        )


class Throttled:
    """A warning logged the first time, then at most once per `LOG_EVERY_S` with the count of
    occurrences since (a flood of refusals must not become a flood of log lines)."""

    def __init__(self, message: str) -> None:
        self.message = message  # with one %d: how many times since the last line
        self.count = 0
        self.next_at = 0.0

    def __call__(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self.next_at:
            log.warning(self.message, self.count)
            self.count = 0
            self.next_at = now + LOG_EVERY_S


@functools.cache
def _requests(function: int, result: str) -> Counter:
    """The request counter's child for a function and result (labels() is slow per call)."""
    name = READS[function][0] if function in READS else f"0x{function:02X}"
    return REQUESTS.labels(name, result)


class Refused(asyncio.Protocol):
    """A connection over the limit: closed as soon as it is accepted."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


class Connection(ServerRequestHandler):
    """One client's connection: an inbox of received bytes that one task answers in order."""

    server: HanportModbusServer

    def __init__(self, owner: HanportModbusServer) -> None:
        super().__init__(owner, None, None, None)
        self.limits = owner.limits
        self.inbox = bytearray()
        self.arrived = asyncio.Event()  # bytes (or the end of the stream) arrived
        self.writable = asyncio.Event()  # the client takes its answers
        self.writable.set()
        self.reading = True
        self.eof = False
        self.worker: asyncio.Task[None] | None = None
        self.last_request = self.loop.time()  # when the last complete request was answered
        self.idle_timer: asyncio.TimerHandle | None = None
        self.counted = False

    # ------------------------------------------------------------ asyncio's protocol

    def callback_connected(self) -> None:
        super().callback_connected()
        self.counted = True
        CLIENTS.inc()
        self._transport.set_write_buffer_limits(high=self.limits.write_buffer)
        self.worker = self.loop.create_task(self._serve())
        self.last_request = self.loop.time()
        self.idle_timer = self.loop.call_at(
            self.last_request + self.limits.idle_timeout, self._check_idle
        )

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        self._gone()

    def close(self, reconnect: bool = False) -> None:
        # A connection closed from this side never hears `connection_lost`.
        self._gone()
        super().close(reconnect)

    def data_received(self, data: bytes) -> None:
        # Replaces pymodbus's receive buffer, which drops (silently) what exceeds its size and
        # is cleared on every send: the inbox is bounded by pausing the socket instead.
        self.inbox += data
        self.arrived.set()
        self._flow()

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio's protocol says bool
        # The client sent its last request: answer what is in the inbox, then close.
        self.eof = True
        self.arrived.set()
        return True

    def pause_writing(self) -> None:
        self.writable.clear()
        self._flow()

    def resume_writing(self) -> None:
        self.writable.set()
        self._flow()

    @property
    def _transport(self) -> asyncio.Transport:
        return cast(asyncio.Transport, self.transport)

    def _flow(self) -> None:
        """Read from the socket only while the client takes its answers and the inbox has room."""
        wanted = self.writable.is_set() and len(self.inbox) < self.limits.inbox
        if wanted != self.reading and self.transport and not self.is_closing:
            self.reading = wanted
            if wanted:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()

    def _gone(self) -> None:
        if self.counted:
            self.counted = False
            CLIENTS.dec()
        if self.worker is not None and self.worker is not asyncio.current_task():
            self.worker.cancel()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _finish(self) -> None:
        """Close after the answers already written, but never wait for them longer than the
        idle timeout (a client that does not read would keep the socket open for ever)."""
        transport = self._transport
        self.close()
        if transport:
            self.loop.call_later(self.limits.idle_timeout, transport.abort)

    # ------------------------------------------------------------ the frames, one at a time

    async def _serve(self) -> None:
        """Answer the inbox's frames in order until the connection ends."""
        answered = 0
        while not self.is_closing:
            frame = self._next_frame()
            if frame is None:
                if self.is_closing:
                    return
                if self.eof:
                    self._finish()
                    return
                self.arrived.clear()
                self._flow()
                await self.arrived.wait()
                continue
            await self._handle(frame)
            self.last_request = self.loop.time()
            answered += 1
            if not self.writable.is_set():
                await self.writable.wait()
            elif answered % FAIR_SHARE == 0:
                await asyncio.sleep(0)

    def _check_idle(self) -> None:
        """Drop the connection once it has gone `idle_timeout` without a complete request (one
        timer per timeout period, moved on lazily: none is set per request)."""
        due = self.last_request + self.limits.idle_timeout
        if self.loop.time() < due:
            self.idle_timer = self.loop.call_at(due, self._check_idle)
            return
        self.idle_timer = None
        TIMED_OUT.inc()
        self.server.timeouts()
        transport = self._transport
        self.close()
        if transport:
            transport.abort()

    def _next_frame(self) -> bytes | None:
        """The inbox's first complete frame, taken out of it; None while it is incomplete (or
        malformed: the connection is then closed)."""
        if len(self.inbox) < MBAP.size:
            return None
        _tid, protocol, length, _unit, _function = MBAP.unpack_from(self.inbox)
        if protocol != 0 or not 2 <= length <= MAX_LENGTH:
            self._malformed(protocol, length)
            return None
        size = 6 + length
        if len(self.inbox) < size:
            return None
        frame = bytes(self.inbox[:size])
        del self.inbox[:size]
        return frame

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
        self.inbox.clear()
        self._finish()

    async def _handle(self, frame: bytes) -> None:
        tid, _protocol, length, unit, function = MBAP.unpack_from(frame)
        try:
            await self._request(frame, tid, unit, function, length)
        except Exception:  # a bug must cost this connection at most, never the server
            log.exception("closing the Modbus connection: cannot handle frame %s", frame.hex())
            self.inbox.clear()
            self._finish()

    async def _request(self, frame: bytes, tid: int, unit: int, function: int, length: int) -> None:
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
        await self._answer(pdu)

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

    context: RegisterStore | Units

    def __init__(
        self, store: RegisterStore | Units, host: str, port: int, limits: Limits | None = None
    ) -> None:
        # pymodbus builds a datastore from a SimDevice; ours replaces it (same interface).
        self.limits = limits or Limits()
        placeholder = SimDevice(0, simdata=SimData(0, datatype=DataType.REGISTERS))
        super().__init__(placeholder, address=(host, port))
        self.context = store
        self.refusals = Throttled(
            f"refused %d Modbus connection(s): {self.limits.max_clients} clients are connected "
            "(HANPORT_MODBUS_MAX_CLIENTS)"
        )
        self.timeouts = Throttled(
            f"dropped %d Modbus connection(s) that sent no complete request for "
            f"{self.limits.idle_timeout:g} s (HANPORT_MODBUS_IDLE_TIMEOUT)"
        )

    def handle_new_connection(self) -> Any:  # asyncio's protocol factory for the listener
        if len(self.active_connections) >= self.limits.max_clients:
            REFUSED.inc()
            self.refusals()
            return Refused()
        return super().handle_new_connection()

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
