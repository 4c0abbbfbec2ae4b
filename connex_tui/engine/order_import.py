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
from decimal import Decimal
from typing import Any

import aiosqlite
import structlog

from ..soap.qbxml import ref_number_for
from ..storefronts.base import Storefront, StoreLine, StoreOrderData, StoreRefund
from .config import Config
from .db import Database, utcnow
from .numbers import BadNumber, line_quantity, money
from .orders import OrderLine, StoreOrder, insert_order, kept_raw

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


def _lines(lines: tuple[StoreLine, ...], skip_unnamed: bool = False) -> tuple[tuple[OrderLine, ...], list[str]]:
    """The lines worth posting, and what is wrong with the others' numbers. A line whose quantity
    is not a plain number (NaN, Infinity, a word, a million units) is kept with the quantity as it
    came, so the order cannot be posted without it: the order waits as failed with the reason."""
    kept: list[OrderLine] = []
    problems: list[str] = []
    for n, line in enumerate(lines, start=1):
        if skip_unnamed and not line.sku:
            continue
        where = f"line {n} ({str(line.sku)[:40] or 'no SKU'})"
        try:
            quantity = line_quantity(line.quantity, f"{where} quantity")
            price = None if line.price is None else money(line.price, f"{where} price")
        except BadNumber as exc:
            problems.append(str(exc))
            kept.append(OrderLine(str(line.sku), _as_stored(line.quantity), None, str(line.name)))
            continue
        if quantity > 0:
            kept.append(OrderLine(str(line.sku), quantity, price, str(line.name)))
    return tuple(kept), problems


def _as_stored(value: Any) -> Decimal:
    """A bad quantity as it will sit in the database: a Decimal text QuickBooks' builder refuses
    (NaN, Infinity, 1E+30), never a word that would break reading the order back."""
    return value if isinstance(value, Decimal) else Decimal("NaN")


def _to_order(data: StoreOrderData) -> tuple[StoreOrder, list[str]]:
    lines, problems = _lines(data.lines)
    order = StoreOrder(
        store_id=data.store_id,
        number=data.number,
        status=data.status,
        customer=data.customer,
        placed_at=data.created_at or None,
        modified_at=data.modified_at,
        lines=lines,
        raw=kept_raw(data.raw),
    )
    return order, problems


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
        latest, held = watermark, False
        async with self.db.transaction() as conn:
            for data in orders:
                kept = await self._contained(conn, data, outcome)
                stamp = data.modified_at if _is_time(data.modified_at) else None
                if not kept:
                    # Never move the watermark past an order we could not keep: the next poll
                    # reads it again (from its own date, or from where we were).
                    held = True
                    latest = _earliest(latest, stamp) if stamp else watermark
                    continue
                if stamp and not held and (latest is None or _after(stamp, latest)):
                    latest = stamp
            if latest and latest != watermark:
                await self.db.set_meta(conn, WATERMARK_KEY, latest)
        if outcome.imported or outcome.skipped or outcome.credit_memos:
            log.info("orders_imported", seen=outcome.seen, new=outcome.imported, skipped=outcome.skipped,
                     credit_memos=outcome.credit_memos)
        return outcome

    async def _contained(self, conn: aiosqlite.Connection, data: StoreOrderData, outcome: ImportOutcome) -> bool:
        """One order in a savepoint: whatever it holds, a failure is that order's alone. An order
        that could not be imported is kept as failed with the reason; False when not even that
        could be written."""
        await conn.execute("SAVEPOINT one_order")
        try:
            await self._one(conn, data, outcome)
        except Exception as exc:  # noqa: BLE001 - untrusted data: contain it to this order
            await conn.execute("ROLLBACK TO one_order")
            await conn.execute("RELEASE one_order")
            log.warning("order_unreadable", order=str(data.number)[:60], error=repr(exc)[:300])
            return await _keep_as_failed(conn, data, f"the store's order could not be read: {type(exc).__name__}: {exc}")
        await conn.execute("RELEASE one_order")
        return True

    async def _one(self, conn: aiosqlite.Connection, data: StoreOrderData, outcome: ImportOutcome) -> None:
        async with conn.execute("SELECT id, qb_state FROM orders WHERE store_id = ?", (data.store_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            if data.cancelled or data.status.lower() not in self.statuses:
                return  # not (yet) an order to post; a later change brings it back with a new date
            order, problems = _to_order(data)
            if data.lines and not order.lines and not problems:
                problems = ["no line has a quantity above 0 (the store's quantities could not be read as numbers?)"]
            order_id = await insert_order(conn, order, self.config.orders.post_as)
            if order_id is None:
                return
            outcome.imported += 1
            log.info("order_imported", order=data.number, lines=len(data.lines))
            await self._check_lines(conn, order_id, data, problems)
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

    async def _check_lines(
        self, conn: aiosqlite.Connection, order_id: int, data: StoreOrderData, problems: list[str]
    ) -> None:
        """An order QuickBooks cannot take as it is waits as failed, with the reason, for a person."""
        unnamed = [n for n, line in enumerate(data.lines, start=1) if not str(line.sku).strip()]
        if problems:
            reason = "; ".join(problems) + ": correct the order on the store, or enter it in QuickBooks by hand"
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
            memo, problems = _refund_order(data, refund)
            new_id = await insert_order(conn, memo, "credit_memo")
            if new_id is not None:
                await conn.execute("UPDATE orders SET parent_order_id = ? WHERE id = ?", (order_id, new_id))
                outcome.credit_memos += 1
                log.info("credit_memo_queued", order=data.number, refund=refund.refund_id)
                if problems:
                    reason = "; ".join(problems) + ": enter this credit memo in QuickBooks by hand"
                    await conn.execute("UPDATE orders SET qb_state = 'failed', error = ? WHERE id = ?", (reason, new_id))
                    log.warning("order_failed", order=memo.number, reason=reason[:300])


async def _keep_as_failed(conn: aiosqlite.Connection, data: StoreOrderData, reason: str) -> bool:
    """The order's bare identity with the reason, so a person sees it and the watermark can move."""
    try:
        store_id, number = str(data.store_id)[:200], str(data.number)[:200] or str(data.store_id)[:200]
        now = utcnow()
        await conn.execute(
            "INSERT INTO orders(store_id, number, status, qb_state, error, ref_number, imported_at, updated_at)"
            " VALUES (?,?,?,'failed',?,?,?,?) ON CONFLICT(store_id) DO NOTHING",
            (store_id, number, str(data.status)[:60], reason[:1000], ref_number_for(number, store_id), now, now),
        )
        return True
    except Exception as exc:  # noqa: BLE001 - the caller holds the watermark back instead
        log.warning("order_not_kept", error=repr(exc)[:300])
        return False


def _refund_order(data: StoreOrderData, refund: StoreRefund) -> tuple[StoreOrder, list[str]]:
    lines, problems = _lines(refund.lines, skip_unnamed=True)
    memo = StoreOrder(
        store_id=f"{data.store_id}/refund/{refund.refund_id}",
        number=f"{data.number}-R{refund.refund_id.rsplit('/', 1)[-1]}",
        status="refund",
        customer=data.customer,
        placed_at=refund.created_at or None,
        modified_at=data.modified_at,
        lines=lines,
        raw={"refund_of": data.store_id, "refund_id": refund.refund_id},
    )
    return memo, problems


def _is_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _earliest(a: str | None, b: str) -> str:
    return b if a is None or _after(a, b) else a


def _after(a: str, b: str) -> bool:
    try:
        return datetime.fromisoformat(a) > datetime.fromisoformat(b)
    except ValueError:
        return a > b
