"""QuickBooks items as the Web Connector reports them, and the pending queue they feed.

Recording a page of items and queueing their quantities happen in the caller's transaction, so a
crash can never leave an item read but not queued (or queued but its watermark not moved).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiosqlite

from .db import chunked, utcnow
from .skus import store_skus_for

# `[inventory] match` -> the QuickBooks element in an item Ret, and the items-table column holding it.
SKU_FIELD = {"name": "Name", "full_name": "FullName", "manufacturer_part_number": "ManufacturerPartNumber"}
SKU_COLUMN = {"name": "name", "full_name": "full_name", "manufacturer_part_number": "mpn"}


@dataclass(frozen=True)
class ItemsRecorded:
    count: int
    queued: int
    max_time_modified: str | None


def qb_time_key(value: str) -> datetime:
    """Order QuickBooks timestamps by their local wall time; QuickBooks' offsets are unreliable."""
    return datetime.fromisoformat(value[:19]) if len(value) >= 19 else datetime.fromisoformat(value)


def _decimal(text: Any) -> Decimal:
    try:
        return Decimal(str(text))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _fmt(quantity: Decimal) -> str:
    """Quantities as plain text without exponent or trailing zeros ("15", "2.5")."""
    text = format(quantity.normalize(), "f")
    return text if text != "-0" else "0"


async def unposted_units(conn: aiosqlite.Connection, skus: Sequence[str]) -> dict[str, Decimal]:
    """Per lower-cased store SKU, the units QuickBooks does not know about yet: sold in imported
    orders not yet posted (negative) and put back on the shelf by refunds whose credit memo is not
    posted yet (positive)."""
    if not skus:
        return {}
    totals: dict[str, Decimal] = {}
    for part in chunked([s.lower() for s in skus]):
        sql = (
            "SELECT lower(l.sku) AS sku, l.quantity, o.qb_kind FROM order_lines l JOIN orders o ON o.id = l.order_id"
            f" WHERE o.qb_state IN ('new', 'sent') AND lower(l.sku) IN ({','.join('?' * len(part))})"
        )
        async with conn.execute(sql, part) as cur:
            async for row in cur:
                sign = 1 if row[2] == "credit_memo" else -1
                totals[row[0]] = totals.get(row[0], Decimal(0)) + sign * _decimal(row[1])
    return totals


async def store_quantities(
    conn: aiosqlite.Connection, qb_quantities: dict[str, Decimal], *, quantity_mode: str
) -> dict[str, Decimal]:
    """QuickBooks value -> quantity on hand, turned into store SKU -> the quantity to show."""
    store_skus = await store_skus_for(conn, list(qb_quantities))
    wanted = {store_skus[value.lower()]: qty for value, qty in qb_quantities.items()}
    if quantity_mode == "available":
        pending = await unposted_units(conn, list(wanted))
        wanted = {sku: qty + pending.get(sku.lower(), Decimal(0)) for sku, qty in wanted.items()}
    return {sku: max(qty, Decimal(0)) for sku, qty in wanted.items()}


async def record_items(
    conn: aiosqlite.Connection,
    kind: str,
    rets: Sequence[dict[str, Any]],
    *,
    match: str,
    quantity_mode: str,
) -> ItemsRecorded:
    """Upsert a page of ItemInventoryRet/ItemInventoryAssemblyRet and queue their quantities."""
    now = utcnow()
    rows = []
    latest: str | None = None
    for ret in rets:
        list_id = ret.get("ListID")
        modified = ret.get("TimeModified")
        if not list_id or not modified:
            continue  # a Ret we cannot key or order is skipped, not guessed at
        if latest is None or qb_time_key(modified) > qb_time_key(latest):
            latest = modified
        rows.append(ret)
    changed = await _changed(conn, rows)
    await conn.executemany(
        "INSERT INTO items(list_id, kind, name, full_name, mpn, quantity_on_hand, time_modified, edit_sequence,"
        " is_active, seen_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(list_id) DO UPDATE SET"
        " kind=excluded.kind, name=excluded.name, full_name=excluded.full_name, mpn=excluded.mpn,"
        " quantity_on_hand=excluded.quantity_on_hand, time_modified=excluded.time_modified,"
        " edit_sequence=excluded.edit_sequence, is_active=excluded.is_active, seen_at=excluded.seen_at",
        [
            (
                r["ListID"],
                kind,
                r.get("Name") or r.get("FullName", ""),
                r.get("FullName") or r.get("Name", ""),
                r.get("ManufacturerPartNumber"),
                _fmt(_decimal(r.get("QuantityOnHand", "0"))),
                r["TimeModified"],
                r.get("EditSequence"),
                0 if str(r.get("IsActive", "true")).lower() == "false" else 1,
                now,
            )
            for r in rows
        ],
    )
    queued = await _queue_quantities(conn, changed, match=match, quantity_mode=quantity_mode, now=now)
    return ItemsRecorded(count=len(rows), queued=queued, max_time_modified=latest)


async def _changed(conn: aiosqlite.Connection, rets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Rets that are news: the inclusive FromModifiedDate re-reads the newest items of the last
    read, and an item whose TimeModified, EditSequence and quantity we already hold has not changed.
    The quantity counts on its own: QuickBooks may move it (a transaction) without a new
    TimeModified, and an item read by ListID for that reason must still be queued."""
    if not rets:
        return []
    marks = ",".join("?" * len(rets))
    async with conn.execute(
        f"SELECT list_id, time_modified, edit_sequence, quantity_on_hand FROM items WHERE list_id IN ({marks})",
        [r["ListID"] for r in rets],
    ) as cur:
        known = {row[0]: (row[1], row[2], row[3]) for row in await cur.fetchall()}
    return [
        r for r in rets
        if known.get(r["ListID"]) != (r["TimeModified"], r.get("EditSequence"), _fmt(_decimal(r.get("QuantityOnHand", "0"))))
    ]


async def _queue_quantities(
    conn: aiosqlite.Connection, rets: Sequence[dict[str, Any]], *, match: str, quantity_mode: str, now: str
) -> int:
    field = SKU_FIELD[match]
    on_hand: dict[str, Decimal] = {}
    for ret in rets:
        value = ret.get(field)
        if not value or str(ret.get("IsActive", "true")).lower() == "false" or not ret.get("QuantityOnHand"):
            continue  # no SKU to match, an inactive item, or no quantity given: nothing to push
        on_hand[value] = _decimal(ret.get("QuantityOnHand", "0"))
    wanted = await store_quantities(conn, on_hand, quantity_mode=quantity_mode)
    await queue_stock(conn, wanted, now)
    return len(wanted)


async def queue_stock(conn: aiosqlite.Connection, wanted: dict[str, Decimal], now: str) -> None:
    """One row per SKU, newest quantity wins. A row being pushed keeps its state: the pusher sees
    that the quantity changed under it and pushes the new one instead of deleting the row."""
    await conn.executemany(
        "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, updated_at)"
        " VALUES (?, ?, 'pending', 0, ?, ?) ON CONFLICT(sku) DO UPDATE SET quantity=excluded.quantity,"
        " state=CASE WHEN pending.state='in_flight' THEN 'in_flight' ELSE 'pending' END,"
        " attempts=CASE WHEN pending.state='failed' THEN 0 ELSE pending.attempts END,"
        " next_attempt=CASE WHEN pending.state='pending' AND pending.attempts > 0"
        " THEN pending.next_attempt ELSE excluded.next_attempt END,"
        " last_error=CASE WHEN pending.state='failed' THEN NULL ELSE pending.last_error END,"
        " updated_at=excluded.updated_at",
        [(sku, _fmt(qty), now, now) for sku, qty in wanted.items()],
    )
