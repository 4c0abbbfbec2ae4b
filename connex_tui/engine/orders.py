"""Store orders in the database, and how an order becomes a QuickBooks transaction document.

An order is the store layer's `StoreOrder` (`storefronts.base`), the one model the store clients
read and the engine keeps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiosqlite

from ..soap.qbxml import TxnDoc, TxnLine, memo_for, ref_number_for
from ..storefronts.base import StoreOrder
from .clock import stamp
from .db import Database
from .skus import qb_targets, sku_key


# What is kept of a store order's own document: its identity, dates, status, money and lines; no
# names, emails, addresses, phone numbers, notes or IP addresses (the customer column keeps the
# one name the interface shows). Nothing in the sync reads `raw`; it is there for a person
# looking into one order, and the cleanup task empties it after [orders] raw_retention_days.
RAW_KEYS = frozenset(
    {
        # WooCommerce REST v3 order (woocommerce/woocommerce: includes/rest-api/Controllers/Version3/
        # class-wc-rest-orders-controller.php, get_item_schema) and its line_items/refunds.
        "id",
        "parent_id",
        "number",
        "status",
        "currency",
        "date_created_gmt",
        "date_modified_gmt",
        "date_paid_gmt",
        "date_completed_gmt",
        "total",
        "total_tax",
        "shipping_total",
        "discount_total",
        "payment_method",
        "line_items",
        "refunds",
        "product_id",
        "variation_id",
        "sku",
        "name",
        "quantity",
        "price",
        "subtotal",
        # Shopify Admin GraphQL Order (as our client asks for it) and its line items.
        "legacyResourceId",
        "createdAt",
        "updatedAt",
        "processedAt",
        "cancelledAt",
        "displayFinancialStatus",
        "displayFulfillmentStatus",
        "currencyCode",
        "lineItems",
        "edges",
        "node",
        "nodes",
        "variant",
        "currentQuantity",
        "totalPriceSet",
        "shopMoney",
        "amount",
        "originalUnitPriceSet",
        "connex_truncated_refunds",
        # A credit memo's own record of which refund it carries (order_import reads it back).
        "refund_of",
        "refund_id",
    }
)
RAW_MAX_CHARS = 65_536  # a bigger document is cut to its identity


def kept_raw(raw: Any, depth: int = 0) -> Any:
    """`raw` with only RAW_KEYS kept, at every level (a customer's address never has a kept key
    under a dropped one)."""
    if depth > 8:
        return None
    if isinstance(raw, dict):
        return {k: kept_raw(v, depth + 1) for k, v in raw.items() if k in RAW_KEYS}
    if isinstance(raw, list):
        return [kept_raw(v, depth + 1) for v in raw[:500]]
    if isinstance(raw, (str, int, float, bool)) or raw is None:
        return raw[:500] if isinstance(raw, str) else raw
    return str(raw)[:500]


def _raw_text(raw: dict[str, Any]) -> str:
    text = json.dumps(kept_raw(raw), default=str)
    if len(text) > RAW_MAX_CHARS:
        text = json.dumps(
            {k: raw[k] for k in ("id", "number", "legacyResourceId") if isinstance(raw.get(k), (str, int))}
        )
    return text


def _customer(name: str) -> str:
    """The customer's name as shown in the interface; an email address (what some stores give
    when there is no name) is not kept."""
    return "" if "@" in name else name[:200]


def _line_quantity(text: str) -> Decimal:
    """A stored quantity; a bad one reads as NaN, which the qbXML builder refuses with a reason
    (the order fails at its session instead of breaking the session's plan)."""
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError):
        return Decimal("NaN")


async def insert_order(conn: aiosqlite.Connection, order: StoreOrder, qb_kind: str, now: str) -> int | None:
    """Keep a new store order once, `now` (stored text) its import time; returns its row id, or
    None when it was already known. `cancelled`, `refunds` and `problem` are the importer's to
    read and are not stored; an empty `created_at` is stored as no placing time."""
    cur = await conn.execute(
        "INSERT INTO orders(store_id, number, status, customer, placed_at, modified_at, raw, qb_kind,"
        " ref_number, imported_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(store_id) DO NOTHING",
        (
            order.store_id,
            order.number,
            order.status,
            _customer(order.customer),
            order.created_at or None,
            order.modified_at,
            _raw_text(order.raw),
            qb_kind,
            ref_number_for(order.number, order.store_id),
            now,
            now,
        ),
    )
    if cur.rowcount == 0:
        return None
    order_id = cur.lastrowid
    await conn.executemany(
        "INSERT INTO order_lines(order_id, line_no, sku, name, quantity, price, sku_key) VALUES (?,?,?,?,?,?,?)",
        [
            (
                order_id,
                n,
                line.sku,
                line.name,
                str(line.quantity),
                None if line.price is None else str(line.price),
                sku_key(line.sku),
            )
            for n, line in enumerate(order.lines, start=1)
        ],
    )
    return order_id


async def drop_raw_orders(db: Database, before: datetime) -> int:
    """Forget the store's own data of orders imported before `before` (the cleanup task); the
    order, its lines and its QuickBooks state stay. A credit memo's raw is only which refund it
    carries (no private data, and the restock accounting reads it back): it stays."""
    async with db.transaction() as conn:
        cur = await conn.execute(
            "UPDATE orders SET raw = '{}' WHERE raw != '{}' AND qb_kind != 'credit_memo' AND imported_at < ?",
            (stamp(before),),
        )
        return cur.rowcount


async def add_order(db: Database, order: StoreOrder, qb_kind: str = "sales_receipt") -> int | None:
    async with db.transaction() as conn:
        return await insert_order(conn, order, qb_kind, db.clock.stamp())


class TxnDocs(dict[int, TxnDoc]):
    """The documents that could be built, by order id; asking for another order raises ValueError
    with the reason it cannot be sent (its caller fails that order with it)."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: dict[int, str] = {}

    def __missing__(self, order_id: int) -> TxnDoc:
        raise ValueError(self.problems.get(order_id, f"no document for order {order_id}"))


async def txn_docs(db: Database, order_ids: Sequence[int], *, customer: str, match: str) -> TxnDocs:
    """The QuickBooks documents for these orders, keyed by order id.

    Each line names the item its SKU refers to (`skus.qb_targets`). A SKU that matches no known
    QuickBooks item is sent as it is: if QuickBooks does not have it either, it answers 3140 and
    the order fails with that reason. An order with a SKU that several QuickBooks items answer to,
    or that QuickBooks could only store as another name, gets no document: `docs[id]` raises
    ValueError with the reason.
    """
    docs = TxnDocs()
    if not order_ids:
        return docs
    marks = ",".join("?" * len(order_ids))
    orders = await db.fetchall(f"SELECT id, store_id, number FROM orders WHERE id IN ({marks})", list(order_ids))
    lines = await db.fetchall(
        f"SELECT order_id, sku, name, quantity, price FROM order_lines WHERE order_id IN ({marks})"
        " ORDER BY order_id, line_no",
        list(order_ids),
    )
    targets = await qb_targets(db.conn, sorted({line["sku"] for line in lines}), match)
    by_order: dict[int, list[TxnLine]] = {}
    for line in lines:
        target = targets[line["sku"]]
        if target.problem:
            docs.problems.setdefault(line["order_id"], target.problem)
            continue
        by_order.setdefault(line["order_id"], []).append(
            TxnLine(
                item=target.full_name,
                quantity=_line_quantity(line["quantity"]),
                rate=None if line["price"] is None else _line_quantity(line["price"]),
                desc=line["name"] or None,
            )
        )
    for row in orders:
        if row["id"] in docs.problems:
            continue
        docs[row["id"]] = TxnDoc(
            ref_number=ref_number_for(row["number"], row["store_id"]),
            memo=memo_for(row["number"], row["store_id"]),
            customer=customer,
            lines=tuple(by_order.get(row["id"], ())),
        )
    return docs
