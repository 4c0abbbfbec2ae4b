"""The orders task: store orders into the database, once each, ready for the Web Connector.

The store is asked for orders modified since the watermark minus an overlap (clocks and
eventually-consistent listings can hide an order for a moment); orders already known are matched
by store id, so re-reading is harmless. A new paid order is kept with its lines for the next
Web Connector session; one cancelled before it reached QuickBooks is skipped; a refund whose lines
went back on the shelf becomes one credit memo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosqlite
import structlog

from ..storefronts.base import StoreOrderData, StoreRefund, Storefront
from .config import Config
from .db import Database, utcnow
from .orders import OrderLine, StoreOrder, insert_order

log = structlog.get_logger("connex.orders")

WATERMARK_KEY = "orders.watermark"
OVERLAP = timedelta(minutes=5)


@dataclass
class ImportOutcome:
    seen: int = 0
    imported: int = 0
    skipped: int = 0
    credit_memos: int = 0

    def __str__(self) -> str:
        return f"{self.seen} seen, {self.imported} new, {self.skipped} cancelled, {self.credit_memos} credit memos"


def _to_order(data: StoreOrderData) -> StoreOrder:
    return StoreOrder(
        store_id=data.store_id,
        number=data.number,
        status=data.status,
        customer=data.customer,
        placed_at=data.created_at or None,
        modified_at=data.modified_at,
        lines=tuple(OrderLine(l.sku, l.quantity, l.price, l.name) for l in data.lines if l.quantity > 0),
        raw=data.raw,
    )


class OrderImporter:
    def __init__(self, db: Database, store: Storefront, config: Config) -> None:
        self.db = db
        self.store = store
        self.config = config
        self.statuses = {s.lower() for s in config.orders.statuses}

    async def run(self) -> ImportOutcome:
        watermark = await self.db.get_meta(WATERMARK_KEY)
        since = datetime.fromisoformat(watermark) - OVERLAP if watermark else None
        orders = await self.store.list_orders(since)
        outcome = ImportOutcome(seen=len(orders))
        latest = watermark
        async with self.db.transaction() as conn:
            for data in orders:
                await self._one(conn, data, outcome)
                if data.modified_at and (latest is None or _after(data.modified_at, latest)):
                    latest = data.modified_at
            if latest and latest != watermark:
                await self.db.set_meta(conn, WATERMARK_KEY, latest)
        if outcome.imported or outcome.skipped or outcome.credit_memos:
            log.info("orders_imported", seen=outcome.seen, new=outcome.imported, skipped=outcome.skipped,
                     credit_memos=outcome.credit_memos)
        return outcome

    async def _one(self, conn: aiosqlite.Connection, data: StoreOrderData, outcome: ImportOutcome) -> None:
        async with conn.execute("SELECT id, qb_state FROM orders WHERE store_id = ?", (data.store_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            if data.cancelled or data.status.lower() not in self.statuses:
                return  # not (yet) an order to post; a later change brings it back with a new date
            order_id = await insert_order(conn, _to_order(data), self.config.orders.post_as)
            if order_id is None:
                return
            outcome.imported += 1
            log.info("order_imported", order=data.number, lines=len(data.lines))
            await self._check_lines(conn, order_id, data)
            await self._credit_memos(conn, order_id, data, outcome)
            return
        order_id, state = row[0], row[1]
        await conn.execute(
            "UPDATE orders SET status = ?, modified_at = ?, updated_at = ? WHERE id = ?",
            (data.status, data.modified_at, utcnow(), order_id),
        )
        if data.cancelled and state == "new":
            await conn.execute(
                "UPDATE orders SET qb_state = 'skipped', error = ? WHERE id = ?",
                ("cancelled on the store before it reached QuickBooks", order_id),
            )
            outcome.skipped += 1
            log.info("order_skipped", order=data.number, reason="cancelled before posting")
            return
        if state != "skipped":
            await self._credit_memos(conn, order_id, data, outcome)

    async def _check_lines(self, conn: aiosqlite.Connection, order_id: int, data: StoreOrderData) -> None:
        """An order QuickBooks cannot take as it is waits as failed, with the reason, for a person."""
        unnamed = [n for n, line in enumerate(data.lines, start=1) if not line.sku.strip()]
        if data.error:
            reason = data.error  # the store's data could not be read as it came
        elif not data.lines:
            reason = "the order has no lines"
        elif unnamed:
            reason = (f"line {', '.join(map(str, unnamed))} has no SKU on the store, so it matches no QuickBooks"
                      " item: give the product a SKU (or map it), then re-queue the order")
        else:
            return
        await conn.execute("UPDATE orders SET qb_state = 'failed', error = ? WHERE id = ?", (reason, order_id))
        log.warning("order_failed", order=data.number, reason=reason)

    async def _credit_memos(
        self, conn: aiosqlite.Connection, order_id: int, data: StoreOrderData, outcome: ImportOutcome
    ) -> None:
        for refund in data.refunds:
            if not refund.lines:
                continue  # money back only: no stock moved, nothing for QuickBooks' quantities
            memo = _refund_order(data, refund)
            new_id = await insert_order(conn, memo, "credit_memo")
            if new_id is not None:
                await conn.execute("UPDATE orders SET parent_order_id = ? WHERE id = ?", (order_id, new_id))
                outcome.credit_memos += 1
                log.info("credit_memo_queued", order=data.number, refund=refund.refund_id)


def _refund_order(data: StoreOrderData, refund: StoreRefund) -> StoreOrder:
    return StoreOrder(
        store_id=f"{data.store_id}/refund/{refund.refund_id}",
        number=f"{data.number}-R{refund.refund_id.rsplit('/', 1)[-1]}",
        status="refund",
        customer=data.customer,
        placed_at=refund.created_at or None,
        modified_at=data.modified_at,
        lines=tuple(OrderLine(l.sku, l.quantity, l.price, l.name) for l in refund.lines if l.sku and l.quantity > 0),
        raw={"refund_of": data.store_id, "refund_id": refund.refund_id},
    )


def _after(a: str, b: str) -> bool:
    try:
        return datetime.fromisoformat(a) > datetime.fromisoformat(b)
    except ValueError:
        return a > b
