"""The PostgreSQL sink (psycopg 3): creates and migrates its tables (`sql.MIGRATIONS`), makes the
monthly partitions a batch needs, and writes each batch in one transaction with COPY straight
into the partitioned tables. A batch written again (after a crash, a lost COMMIT answer) breaks
the primary key: that transaction is rolled back and the batch goes through a temporary table
and `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, so it stores nothing twice. The readings
go as one COPY text per batch (`sql.readings_copy_text`), the sub-meters row by row.
On TimescaleDB the same statements run (plain declarative partitions, no extension needed), and
the tables stay partitioned tables, not hypertables: tested by hand on TimescaleDB 2.28.3 and
PostgreSQL 15, every test run on PostgreSQL 15 (docs/export.md, TimescaleDB).

How answers map to the `Sink` contract (services/export/sinks/__init__.py):
- COMMIT: stored.
- a data error or a constraint violation (SQLSTATE classes 22 and 23): the transaction is rolled
  back and the batch written again in halves, down to single readings (`bisect`); a single one
  refused is refused for good, with the server's message.
- anything else (no connection, the server shutting down, a missing permission): `SinkDown`;
  the connection is dropped and made again for the next try. Messages never hold the DSN.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql as q
from psycopg.conninfo import conninfo_to_dict

from . import Batch, Prepared, Rejected, SinkDown, WriteResult, bisect, made_ahead, made_to_write
from .entries import AnyReading, Entries
from .intervals import UPSERT, Interval, interval_row
from .sql import (
    MIGRATIONS,
    PARTITIONED,
    READING_COLUMNS,
    READINGS,
    SCHEMA,
    SCHEMA_DDL,
    SUBMETER_COLUMNS,
    SUBMETERS,
    months,
    partition_ddl,
    readings_copy_text,
    submeter_row,
)

LOCK_ID = 0x68616E70  # "hanp": one migration at a time across export services and the hub
REFUSED_CLASSES = ("22", "23")  # data exception, integrity constraint violation
STAGE = {READINGS: "hanport_stage_readings", SUBMETERS: "hanport_stage_submeters"}
COLUMNS = {READINGS: READING_COLUMNS, SUBMETERS: SUBMETER_COLUMNS}


def describe_dsn(dsn: str) -> str:
    """`host:port/dbname` of a DSN (URL or `key=value` form), for log lines: never the password
    nor the user."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(a DSN that does not parse)"
    host = parts.get("host") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def _reason(error: psycopg.Error) -> str:
    diag = error.diag
    text = (diag.message_primary or str(error)).strip()
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    return f"SQLSTATE {error.sqlstate}: {text}{detail}"


@functools.cache  # (composed once, not for every batch)
def insert_statement(table: str) -> q.Composed:
    columns = q.SQL(", ").join(q.Identifier(c) for c in COLUMNS[table])
    return q.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
        q.Identifier(table), columns, columns, q.Identifier(STAGE[table])
    )


@functools.cache
def copy_statement(table: str, *, staged: bool) -> q.Composed:
    columns = q.SQL(", ").join(q.Identifier(c) for c in COLUMNS[table])
    target = STAGE[table] if staged else table
    return q.SQL("COPY {} ({}) FROM STDIN").format(q.Identifier(target), columns)


async def migrate(conn: psycopg.AsyncConnection[Any]) -> list[int]:
    """Apply the migrations this database lacks (under an advisory lock); the versions applied."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        await conn.execute(SCHEMA_DDL)
        cursor = await conn.execute(f"SELECT version FROM {SCHEMA}")
        have = {row[0] for row in await cursor.fetchall()}
        for version, statements in MIGRATIONS:
            if version in have:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(f"INSERT INTO {SCHEMA} (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied


# (table, its rows) of one batch: rows as tuples (psycopg's `write_row`), or already in COPY's
# text format (`sql.readings_copy_text`)
Tables = list[tuple[str, list[tuple[Any, ...]] | bytes]]


def join_rows(parts: list[Any]) -> list[tuple[Any, ...]] | bytes:
    """The rows of one table made in parts (`made_in_chunks`): texts joined, lists chained."""
    if all(isinstance(part, bytes) for part in parts):
        return b"".join(parts)
    return [row for part in parts for row in part]


@dataclass
class PostgresSink:
    """Writes batches of readings to one PostgreSQL (or TimescaleDB) database."""

    dsn: str = field(repr=False)
    box: str
    timeout: float = 10.0
    name: str = "postgres"
    _conn: psycopg.AsyncConnection[Any] | None = field(default=None, init=False, repr=False)
    _partitions: set[tuple[str, int, int]] = field(default_factory=set, init=False)
    _tables: Prepared[Tables] = field(default_factory=Prepared, init=False, repr=False)

    async def prepare(self, batch: Batch) -> None:
        """Make the batch's rows now (the worker calls this while the previous write waits)."""
        made = await made_ahead(batch, self._rows)
        if made is None:
            return
        entries, parts = made
        tables: dict[str, list[Any]] = {}
        for part in parts:
            for table, rows in part:
                tables.setdefault(table, []).append(rows)
        self._tables.put(entries, [(table, join_rows(made)) for table, made in tables.items()])

    def _rows(self, batch: Entries) -> Tables:
        readings = batch.readings
        rows = readings_copy_text(readings, self.box)
        subs = [
            row
            for r in readings
            for s in r.submeters
            if (row := submeter_row(s, r, self.box)) is not None
        ]
        return [(t, r) for t, r in ((READINGS, rows), (SUBMETERS, subs)) if r]

    async def write(self, batch: Batch) -> WriteResult:
        entries = Entries.of(batch)
        try:
            conn = await self._connection()
            await self._ensure_partitions(conn, entries.readings)
        except psycopg.Error as error:
            await self._drop()
            raise SinkDown(f"PostgreSQL: {_reason(error)}") from None
        return await bisect(entries, self._send)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=max(2, int(self.timeout))
            )
            try:
                await migrate(conn)
                for table, stage in STAGE.items():
                    await conn.execute(
                        q.SQL(
                            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
                        ).format(q.Identifier(stage), q.Identifier(table))
                    )
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
            self._partitions.clear()
        return self._conn

    async def _ensure_partitions(
        self, conn: psycopg.AsyncConnection[Any], readings: Sequence[AnyReading]
    ) -> None:
        for year, month in sorted(months(readings)):
            for table in PARTITIONED:
                if (table, year, month) in self._partitions:
                    continue
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
                    await conn.execute(partition_ddl(table, year, month))
                self._partitions.add((table, year, month))

    async def _send(self, batch: Entries) -> None:
        conn = self._conn
        if conn is None:
            raise SinkDown("PostgreSQL: not connected")
        tables = self._tables.take(batch)
        if tables is None:
            tables = made_to_write(batch, self._rows)
        try:
            try:
                await self._copy(conn, tables, staged=False)
            except psycopg.errors.UniqueViolation:
                # (part of) the batch is there already (a replay): skip what is there
                await self._copy(conn, tables, staged=True)
        except psycopg.Error as error:
            if error.sqlstate and error.sqlstate[:2] in REFUSED_CLASSES:
                raise Rejected(_reason(error)) from None
            await self._drop()
            raise SinkDown(f"PostgreSQL: {_reason(error)}") from None

    async def _copy(
        self,
        conn: psycopg.AsyncConnection[Any],
        tables: Tables,
        *,
        staged: bool,
    ) -> None:
        """One transaction: COPY the rows straight into their tables (the usual case, as fast
        as a bare COPY), or, `staged`, into the temporary tables and from there with
        `ON CONFLICT DO NOTHING` (a batch written again). A batch of one table, straight, is one
        COPY, a transaction of its own: two round trips to the server instead of four with
        BEGIN and COMMIT (to a database across the internet, half the time a batch takes)."""
        one_statement = not staged and len(tables) == 1
        transaction = contextlib.nullcontext() if one_statement else conn.transaction()
        async with transaction, conn.cursor() as cursor:
            for table, table_rows in tables:
                statement = copy_statement(table, staged=staged)
                async with cursor.copy(statement) as copy:
                    if isinstance(table_rows, bytes):
                        await copy.write(table_rows)
                    else:
                        for row in table_rows:
                            await copy.write_row(row)
                if staged:
                    await cursor.execute(insert_statement(table))

    async def write_intervals(self, intervals: list[Interval]) -> None:
        if not intervals:
            return
        try:
            conn = await self._connection()
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(UPSERT, [interval_row(i, self.box) for i in intervals])
        except psycopg.Error as error:
            if error.sqlstate and error.sqlstate[:2] in REFUSED_CLASSES:
                raise Rejected(_reason(error)) from None
            await self._drop()
            raise SinkDown(f"PostgreSQL: {_reason(error)}") from None

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def close(self) -> None:
        await self._drop()
