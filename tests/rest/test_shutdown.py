"""A stopping REST process ends its open streams quietly: the real process, SSE clients (live
ones, ones replaying a long backlog, one that stopped reading) and a WebSocket client, then
SIGTERM: every stream ends, the process exits 0 at once and its log holds no error and no
traceback (before, each stream was cancelled after the graceful timeout with a traceback, and
the process died of the re-raised signal, status 143)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import websockets

from tests.rest.process import fill_stream, rest_process
from tests.servers import RedisServer

TIMEOUT = 10.0


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def sse_client(port: int, resume: str | None) -> Connection:
    """An /events connection that has received its first bytes (keep the writer: dropping it
    closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    header = f"Last-Event-ID: {resume}\r\n" if resume else ""
    writer.write(f"GET /events HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(TIMEOUT):
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"retry: 2000\n\n")
    return reader, writer


async def read_to_end(connection: Connection) -> bytes:
    """Everything up to the end of the connection (the stream ended by the server)."""
    async with asyncio.timeout(TIMEOUT):
        return await connection[0].read()


async def test_sigterm_ends_streams_quietly_and_exits_0(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ids = fill_stream(redis_server, 3000)
    log = tmp_path / "rest.log"
    with rest_process(redis_server, log) as rest:
        port = int(rest.url.rsplit(":", 1)[1])
        live = [await sse_client(port, None) for _ in range(5)]
        replaying = [await sse_client(port, "0-1") for _ in range(5)]
        stalled = await sse_client(port, "0-1")  # never read again: its writes block
        socket = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
        snapshot = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        assert snapshot["type"] == "HAN_METER_MESSAGE"

        rest.proc.send_signal(signal.SIGTERM)
        ends = await asyncio.gather(*(read_to_end(r) for r in live + replaying))
        # Each chunked body ended properly (its last, empty chunk), not cut off.
        assert [end[-40:] for end in ends if not end.endswith(b"0\r\n\r\n")] == []
        assert any(ids[-1].encode() in end for end in ends)  # live clients had the newest
        async with asyncio.timeout(TIMEOUT):
            await socket.wait_closed()
        # 1001 when the app closes it first, 1012 when uvicorn's shutdown does: both "reconnect".
        assert socket.close_code in (1001, 1012)
        assert await asyncio.to_thread(rest.proc.wait, TIMEOUT) == 0
        del stalled

    text = log.read_text()
    assert "Application shutdown complete" in text
    assert "Traceback" not in text
    assert '"level":"error"' not in text, text
