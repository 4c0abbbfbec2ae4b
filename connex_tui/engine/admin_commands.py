"""Admin commands: what a person can make the engine do, as database writes.

The interface (through `Backend`), the admin CLI and a `monitor` in another process all steer the
engine with these functions, so they steer it the same way. The engine notices within a second (the
scheduler polls the tasks table; the pusher reads the pending queue and the pause flag).

Two levels:

* the commands a person gives: `retry`, `retry_all_failed`, `drop`, `requeue_order`,
  `run_task_now`, `set_paused` / `toggle_paused` (a retry also makes the next push look at the
  store's SKUs again and wakes the inventory task);
* the plain queue writes under them: `retry_skus`, `retry_failed_skus` (due now, attempts reset,
  nothing else touched).
"""

from __future__ import annotations

from collections.abc import Sequence

from .catalog import REFRESHED_KEY
from .db import Database
from .numbers import BadNumber, line_quantity

PAUSE_KEY = "inventory.paused"


# ---------------------------------------------------------------------- the pending queue


async def retry_skus(db: Database, skus: Sequence[str]) -> int:
    """Failed (or waiting) SKUs become due now with a fresh count of attempts; returns how many."""
    if not skus:
        return 0
    now = db.clock.stamp()
    async with db.transaction() as conn:
        cur = await conn.executemany(
            "UPDATE pending SET state = 'pending', attempts = 0, next_attempt = ?, last_error = NULL, updated_at = ?"
            " WHERE sku = ? AND state != 'in_flight'",
            [(now, now, sku) for sku in skus],
        )
        return cur.rowcount


async def retry_failed_skus(db: Database) -> int:
    """Every failed SKU becomes due now with a fresh count of attempts; returns how many."""
    now = db.clock.stamp()
    async with db.transaction() as conn:
        cur = await conn.execute(
            "UPDATE pending SET state = 'pending', attempts = 0, next_attempt = ?, last_error = NULL, updated_at = ?"
            " WHERE state = 'failed'",
            (now, now),
        )
        return cur.rowcount


async def retry(db: Database, skus: Sequence[str]) -> int:
    """A person retries these SKUs: due now, the store's SKUs looked at again, the pusher woken."""
    count = await retry_skus(db, skus)
    await _look_at_the_store_again(db)
    await _nudge_inventory(db)
    return count


async def retry_all_failed(db: Database) -> int:
    """A person retries every failed SKU (as `retry`)."""
    count = await retry_failed_skus(db)
    await _look_at_the_store_again(db)
    await _nudge_inventory(db)
    return count


async def drop(db: Database, skus: Sequence[str]) -> int:
    """These SKUs leave the queue (not one being sent right now); returns how many."""
    if not skus:
        return 0
    async with db.transaction() as conn:
        cur = await conn.executemany("DELETE FROM pending WHERE sku = ? AND state != 'in_flight'", [(s,) for s in skus])
        return cur.rowcount


# ---------------------------------------------------------------------- orders


async def requeue_order(db: Database, order_id: int) -> bool:
    """A failed order goes back to `new`, to be posted at the next Web Connector session; not one
    whose lines hold a quantity that is no number (NaN, Infinity, a million units): it waits as
    failed, with its reason, for a person to enter it by hand."""
    async with db.transaction() as conn:
        async with conn.execute("SELECT quantity FROM order_lines WHERE order_id = ?", (order_id,)) as lines:
            for (quantity,) in await lines.fetchall():
                try:
                    line_quantity(quantity, "quantity")
                except BadNumber:
                    return False
        cur = await conn.execute(
            "UPDATE orders SET qb_state = 'new', error = NULL, sent_session = NULL, updated_at = ?"
            " WHERE id = ? AND qb_state = 'failed'",
            (db.clock.stamp(), order_id),
        )
        return cur.rowcount > 0


# ---------------------------------------------------------------------- tasks and the pause flag


async def run_task_now(db: Database, name: str) -> None:
    """The task runs at the scheduler's next look; `KeyError` naming the known tasks if unknown."""
    known = await db.fetchval("SELECT count(*) FROM tasks WHERE name = ?", (name,))
    if not known:
        names = ", ".join(r[0] for r in await db.fetchall("SELECT name FROM tasks ORDER BY name")) or "none yet"
        raise KeyError(f"unknown task {name!r} (known: {names})")
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE tasks SET next_run = ? WHERE name = ?",
            (db.clock.stamp(), name),
        )


async def set_paused(db: Database, paused: bool) -> None:
    """Stop or restart stock pushes (orders keep flowing); resuming wakes the inventory task."""
    async with db.transaction() as conn:
        await db.set_meta(conn, PAUSE_KEY, "1" if paused else "0")
    if not paused:
        await _nudge_inventory(db)


async def toggle_paused(db: Database) -> bool:
    """Flip the pause flag; returns the new state."""
    paused = not await is_paused(db)
    await set_paused(db, paused)
    return paused


async def is_paused(db: Database) -> bool:
    return await db.get_meta(PAUSE_KEY) == "1"


async def _nudge_inventory(db: Database) -> None:
    if await db.fetchval("SELECT count(*) FROM tasks WHERE name = 'inventory'"):
        await run_task_now(db, "inventory")


async def _look_at_the_store_again(db: Database) -> None:
    """A person retrying says something changed, most often a SKU added to the store: the next
    push of a SKU the index does not know refreshes the index at once (not after its usual wait)."""
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM meta WHERE key = ?", (REFRESHED_KEY,))
