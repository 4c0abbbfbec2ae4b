"""What an admin can make the engine do, as database writes: the interface, the CLI and a
`monitor` in another process all steer the engine the same way. The engine notices within a
second (the scheduler polls the tasks table)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from . import queue
from .catalog import REFRESHED_KEY
from .db import Database

PAUSE_KEY = "inventory.paused"


async def run_task_now(db: Database, name: str) -> None:
    known = await db.fetchval("SELECT count(*) FROM tasks WHERE name = ?", (name,))
    if not known:
        names = ", ".join(r[0] for r in await db.fetchall("SELECT name FROM tasks ORDER BY name")) or "none yet"
        raise KeyError(f"unknown task {name!r} (known: {names})")
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE tasks SET next_run = ? WHERE name = ?",
            (datetime.now(timezone.utc).isoformat(timespec="milliseconds"), name),
        )


async def _nudge_inventory(db: Database) -> None:
    if await db.fetchval("SELECT count(*) FROM tasks WHERE name = 'inventory'"):
        await run_task_now(db, "inventory")


async def _look_at_the_store_again(db: Database) -> None:
    """A person retrying says something changed, most often a SKU added to the store: the next
    push of a SKU the index does not know refreshes the index at once (not after its usual wait)."""
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM meta WHERE key = ?", (REFRESHED_KEY,))


async def retry(db: Database, skus: Sequence[str]) -> int:
    count = await queue.retry_skus(db, skus)
    await _look_at_the_store_again(db)
    await _nudge_inventory(db)
    return count


async def retry_all_failed(db: Database) -> int:
    count = await queue.retry_all_failed(db)
    await _look_at_the_store_again(db)
    await _nudge_inventory(db)
    return count


async def drop(db: Database, skus: Sequence[str]) -> int:
    return await queue.drop_skus(db, skus)


async def requeue_order(db: Database, order_id: int) -> bool:
    return await queue.requeue_order(db, order_id)


async def set_paused(db: Database, paused: bool) -> None:
    async with db.transaction() as conn:
        await db.set_meta(conn, PAUSE_KEY, "1" if paused else "0")
    if not paused:
        await _nudge_inventory(db)


async def is_paused(db: Database) -> bool:
    return await db.get_meta(PAUSE_KEY) == "1"
