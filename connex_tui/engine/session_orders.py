"""What a session writes about an order: posted, failed. Used by planning (an order that cannot be
turned into qbXML fails before it is sent) and by recording (QuickBooks' answers)."""

from __future__ import annotations

import aiosqlite
import structlog

from .events import OrderFailed, OrderPosted
from .session_tickets import Session, SessionContext

log = structlog.get_logger("connex.session")


async def set_order_state(conn: aiosqlite.Connection, update: str, params: tuple[object, ...]) -> str:
    """Run an UPDATE of one order and return its number for the log, in one statement."""
    async with conn.execute(update + " RETURNING number", params) as cur:
        row = await cur.fetchone()
    return "" if row is None else str(row[0])


async def post_order(
    ctx: SessionContext, conn: aiosqlite.Connection, session: Session, order_id: int, txn_id: str
) -> None:
    number = await set_order_state(
        conn,
        "UPDATE orders SET qb_state = 'posted', txn_id = ?, error = NULL, updated_at = ? WHERE id = ?",
        (txn_id, ctx.stamp(), order_id),
    )
    session.state.posted += 1
    log.info("order_posted", session=session.id, order=number, txn_id=txn_id)
    session.events.append(OrderPosted(order_id, number, txn_id))


async def fail_orders(
    ctx: SessionContext, conn: aiosqlite.Connection, session: Session, order_ids: list[int], reason: str
) -> None:
    for order_id in order_ids:
        number = await set_order_state(
            conn,
            "UPDATE orders SET qb_state = 'failed', error = ?, updated_at = ? WHERE id = ?",
            (reason, ctx.stamp(), order_id),
        )
        log.warning("order_failed", order=number, reason=reason[:300])
        session.events.append(OrderFailed(order_id, number, reason))
