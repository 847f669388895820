"""The `postgres` workload client: each key a row of one table, written by an upsert, read back by SELECT.

Autocommit, so a write is acknowledged when its INSERT's commit returned: with `synchronous_commit` as the
connection has it (the server's setting, or the client's `synchronous_commit` option), which is what a
failover drill puts to the test. A connection is reached through libpq's conninfo, so a multi-host
`dsn` with `target_session_attrs=read-write` follows whichever member is primary.

Outcomes: no connection (nothing sent) fails; an error the server answered for the statement (read-only,
constraint, ...) fails; a connection lost or a timeout after sending, or the server shutting down, leaves a
write unknown (its commit may have happened). A connection that saw any error is closed, not reused.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from orchestrator.model.operations import Operation
from orchestrator.model.workload_clients import PostgresOptions
from orchestrator.workloads.base import ClientContext, Result

if TYPE_CHECKING:
    import psycopg

UNSURE_CLASSES = ("08", "57", "58", "XX")
"""SQLSTATE classes after which a write may have committed: connection, operator intervention (a shutdown
while the commit waited for a standby), system and internal errors."""
CLOSE_TIMEOUT = 1.0
"""Longest wait to close a connection that failed: a dead server must not hold the workload."""


class PostgresClient:
    def __init__(self, options: PostgresOptions, context: ClientContext) -> None:
        import psycopg  # noqa: F401 - when the client is built, not at its first operation (holds the loop)

        self._options = options
        self._timeout = context.timeout
        self._slots = asyncio.Semaphore(min(options.connections, context.max_in_flight))
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._table_ready = False
        self._table_lock = asyncio.Lock()

    async def invoke(self, operation: Operation) -> Result:
        import psycopg

        write = operation.kind == "write"
        sent = False
        connection: psycopg.AsyncConnection[Any] | None = None
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                connection = self._idle.pop() if self._idle else await self._connect()
                sent = True
                result = await self._perform(connection, operation)
                self._idle.append(connection)
                connection = None
                return result
        except TimeoutError:
            return Result("unknown" if write and sent else "fail", error=f"timeout after {self._timeout:g}s")
        except psycopg.Error as e:
            state = e.sqlstate or ""
            unsure = sent and (not state or state.startswith(UNSURE_CLASSES))
            return Result("unknown" if write and unsure else "fail", error=f"{type(e).__name__}: {e}".strip())
        finally:
            if connection is not None:
                await _close(connection)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        connection = await psycopg.AsyncConnection.connect(self._options.dsn, autocommit=True)
        try:
            if self._options.synchronous_commit is not None:
                await connection.execute(f"SET synchronous_commit = {self._options.synchronous_commit}")
            if not self._table_ready:
                async with self._table_lock:
                    if not self._table_ready:
                        await connection.execute(
                            f"CREATE TABLE IF NOT EXISTS {self._options.table} (key text PRIMARY KEY, value text)"
                        )
                        self._table_ready = True
        except BaseException:
            await _close(connection)
            raise
        return connection

    async def _perform(self, connection: psycopg.AsyncConnection[Any], operation: Operation) -> Result:
        table = self._options.table
        if operation.kind == "write":
            await connection.execute(
                f"INSERT INTO {table} (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (operation.key, operation.value or ""),
            )
            return Result("ok")
        cursor = await connection.execute(f"SELECT value FROM {table} WHERE key = %s", (operation.key,))
        rows = await cursor.fetchall()
        return Result("ok", tuple(str(row[0]) for row in rows))

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_close(c) for c in idle))


async def _close(connection: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await connection.close()


class PostgresClientType:
    options = PostgresOptions

    def build(self, options: Any, context: ClientContext) -> PostgresClient:
        return PostgresClient(options, context)


CLIENT = PostgresClientType()
