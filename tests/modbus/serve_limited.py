"""A Modbus server process for the attack tests: `HanportModbusServer` answering from a store
that holds one fresh reading, built as the service builds it (limits and the metrics address
from the HANPORT_MODBUS_* / HANPORT_METRICS_* settings), under uvloop. No Redis and no license:
the tests aim at the TCP front door only. Prints `listening` once the port is open.

    python -m tests.modbus.serve_limited
"""

from __future__ import annotations

import asyncio

import uvloop

from services.modbus.server import HanportModbusServer, Limits
from services.modbus.service import make_store
from services.modbus.settings import ModbusSettings
from shared.metrics import serve_metrics
from shared.settings import load_settings
from tests.modbus.conftest import SERIAL, import_reading


async def main() -> None:
    settings = load_settings(ModbusSettings)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    store = make_store(settings, SERIAL)
    store.update(import_reading())
    server = HanportModbusServer(
        store, settings.modbus_host, settings.modbus_port, limits=Limits.of(settings)
    )
    await server.start()
    print("listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
