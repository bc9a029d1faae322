"""PostgreSQL writes of many boxes' readings in one transaction.

The export service's `PostgresSink` (services/export/sinks/postgres.py: migrations, monthly
partitions, COPY into a stage table then `INSERT ... ON CONFLICT DO NOTHING`, `bisect` on a
refused row) writes one box's readings; a hub batch holds many boxes. `FleetPostgresWriter` is
that sink with one change: each row's box comes from its entry's message id
(`<box>:<meter>:<entry id>`), not from the sink. Accounting intervals go through the sink's own
`write_intervals` (table `hanport_intervals`, upserted) with the box of their message. Writing a batch twice stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from services.export.sinks import Rejected, SinkDown
from services.export.sinks.entries import Entries
from services.export.sinks.intervals import Interval
from services.export.sinks.postgres import (
    REFUSED_CLASSES,
    PostgresSink,
    _reason,
    copy_statement,
    insert_statement,
)
from services.export.sinks.sql import READINGS, SUBMETERS, reading_row, submeter_row

from .writer import box_of


@dataclass
class FleetPostgresWriter(PostgresSink):
    box: str = "fleet"  # unused: each row's box is its message's
    name: str = "postgres"

    async def write_box_intervals(self, box: str, intervals: list[Interval]) -> None:
        """The export sink's `write_intervals` (table `hanport_intervals`, upsert) under `box`:
        the worker writes one batch at a time, so the sink's box is set for this call only."""
        self.box = box
        try:
            await self.write_intervals(intervals)
        finally:
            self.box = "fleet"

    async def _send(self, batch: Entries) -> None:
        conn = self._conn
        if conn is None:
            raise SinkDown("PostgreSQL: not connected")
        pairs = list(zip(batch.ids, batch.readings, strict=True))
        rows = [reading_row(r, box_of(msg_id)) for msg_id, r in pairs]
        subs = [
            row
            for msg_id, r in pairs
            for s in r.submeters
            if (row := submeter_row(s, r, box_of(msg_id))) is not None
        ]
        try:
            async with conn.transaction(), conn.cursor() as cursor:
                for table, table_rows in ((READINGS, rows), (SUBMETERS, subs)):
                    if not table_rows:
                        continue
                    async with cursor.copy(copy_statement(table, staged=True)) as copy:
                        for row in table_rows:
                            await copy.write_row(row)
                    await cursor.execute(insert_statement(table))
        except psycopg.Error as error:
            if error.sqlstate and error.sqlstate[:2] in REFUSED_CLASSES:
                raise Rejected(_reason(error)) from None
            await self._drop()
            raise SinkDown(f"PostgreSQL: {_reason(error)}") from None
