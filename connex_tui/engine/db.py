"""The engine's SQLite database: one aiosqlite connection, WAL, foreign keys, migrations.

Writes go through `transaction()`, which serialises writers inside the process with an asyncio
lock and uses BEGIN IMMEDIATE so another process (the monitor, an admin command) waits on the
busy timeout instead of failing half-way through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from .clock import SYSTEM_CLOCK, Clock
from .private_files import create_private, database_warnings
from .schema import MIGRATIONS
from .skus_rule import sql_sku_key

BUSY_TIMEOUT_MS = 10_000


class Database:
    def __init__(self, conn: aiosqlite.Connection, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        self.conn = conn
        self.path = path
        # The engine's one clock: whatever reads or writes this database's times asks it.
        self.clock = clock
        self._write_lock = asyncio.Lock()
        self.permission_warnings: list[str] = []  # files others can read; the engine logs them

    @classmethod
    async def open(cls, path: Path | str, clock: Clock = SYSTEM_CLOCK) -> Database:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private(path)  # before SQLite: its -wal/-shm/-journal files take this file's mode
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        conn.row_factory = aiosqlite.Row
        db = cls(conn, path, clock)
        db.permission_warnings = database_warnings(path)
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        # The SKU key (trimmed, Unicode case-folded) for the migrations that fill stored key
        # columns; queries compare those columns, never lower().
        await conn.create_function("sku_key", 1, sql_sku_key, deterministic=True)
        await db.migrate()
        return db

    async def close(self) -> None:
        async with self._write_lock:
            await self.conn.close()

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def migrate(self) -> int:
        """Apply the migrations this file has not had; returns the resulting version."""
        version = await self.schema_version()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with self.transaction() as conn:
                # executescript would COMMIT first; run the statements one by one inside ours.
                for statement in _split_sql(script):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number}")
        return await self.schema_version()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def get_meta(self, key: str) -> str | None:
        value = await self.fetchval("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    async def set_meta_now(self, key: str, value: str) -> None:
        """In a transaction of its own; skipped when the value is already there."""
        if await self.get_meta(key) == value:
            return
        async with self.transaction() as conn:
            await self.set_meta(conn, key, value)

    async def set_meta(self, conn: aiosqlite.Connection, key: str, value: str) -> None:
        """Inside a transaction the caller holds."""
        await conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def chunked(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    """Pieces small enough for one `IN (...)` list on any SQLite build (the usual limit is 32,766)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _split_sql(script: str) -> Iterable[str]:
    # Our migrations hold no triggers or string literals with ';', so a plain split is exact.
    for statement in script.split(";"):
        if statement.strip():
            yield statement
