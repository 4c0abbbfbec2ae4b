"""Admin commands on the pending queue and the orders: retry, drop (the interface and CLI call these)."""

from __future__ import annotations

from collections.abc import Sequence

from .db import Database, utcnow
from .numbers import BadNumber, line_quantity


async def retry_skus(db: Database, skus: Sequence[str]) -> int:
    """Failed (or waiting) SKUs become due now with a fresh count of attempts."""
    if not skus:
        return 0
    async with db.transaction() as conn:
        cur = await conn.executemany(
            "UPDATE pending SET state = 'pending', attempts = 0, next_attempt = ?, last_error = NULL, updated_at = ?"
            " WHERE sku = ? AND state != 'in_flight'",
            [(utcnow(), utcnow(), sku) for sku in skus],
        )
        return cur.rowcount


async def retry_all_failed(db: Database) -> int:
    async with db.transaction() as conn:
        cur = await conn.execute(
            "UPDATE pending SET state = 'pending', attempts = 0, next_attempt = ?, last_error = NULL, updated_at = ?"
            " WHERE state = 'failed'",
            (utcnow(), utcnow()),
        )
        return cur.rowcount


async def drop_skus(db: Database, skus: Sequence[str]) -> int:
    if not skus:
        return 0
    async with db.transaction() as conn:
        cur = await conn.executemany("DELETE FROM pending WHERE sku = ? AND state != 'in_flight'", [(s,) for s in skus])
        return cur.rowcount


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
            (utcnow(), order_id),
        )
        return cur.rowcount > 0
