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

from .db import chunked
from .skus import (
    SKU_COLUMN,
    QBItemRef,
    ambiguity,
    mapped_by_full_name,
    sku_key,
    store_skus_for,
)

__all__ = ["SKU_COLUMN", "SKU_FIELD", "ItemsRecorded", "queue_stock", "record_items", "store_quantities"]

# `[inventory] match` -> the QuickBooks element in an item Ret (the items-table column: SKU_COLUMN).
SKU_FIELD = {"name": "Name", "full_name": "FullName", "manufacturer_part_number": "ManufacturerPartNumber"}


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
    """Per SKU key (`sku_key`), the units QuickBooks does not know about yet: sold in imported
    orders not yet posted (negative) and put back on the shelf by refunds whose credit memo is not
    posted yet (positive)."""
    if not skus:
        return {}
    totals: dict[str, Decimal] = {}
    for part in chunked(sorted({sku_key(s) for s in skus})):
        sql = (
            "SELECT l.sku_key AS sku, l.quantity, o.qb_kind FROM order_lines l JOIN orders o ON o.id = l.order_id"
            f" WHERE o.qb_state IN ('new', 'sent') AND l.sku_key IN ({','.join('?' * len(part))})"
        )
        async with conn.execute(sql, part) as cur:
            async for row in cur:
                sign = 1 if row[2] == "credit_memo" else -1
                totals[row[0]] = totals.get(row[0], Decimal(0)) + sign * _decimal(row[1])
    return totals


async def store_quantities(
    conn: aiosqlite.Connection, on_hand: Sequence[tuple[QBItemRef, Decimal]], *, match: str, quantity_mode: str
) -> tuple[dict[str, Decimal], dict[str, str]]:
    """QuickBooks items and their quantity on hand, turned into (store SKU -> the quantity to show,
    store SKU -> why nothing can be pushed to it). A SKU that several active QuickBooks items
    answer to (sub-items sharing a name) gets the reason and no quantity: pushing either one's
    would be a guess."""
    refs = [ref for ref, _ in on_hand]
    store_skus = await store_skus_for(conn, refs)
    by_full_name = await mapped_by_full_name(conn, refs)
    ambiguous = await ambiguity(conn, [r.value for r in refs if r.full_name not in by_full_name], match)
    wanted: dict[str, Decimal] = {}
    failed: dict[str, str] = {}
    claimed: dict[str, list[str]] = {}
    for sku, (ref, qty) in zip(store_skus, on_hand):
        if ref.full_name not in by_full_name and ref.value in ambiguous:
            failed[sku] = ambiguous[ref.value]
            continue
        wanted[sku] = qty
        claimed.setdefault(sku, []).append(ref.full_name)
    for sku, names in claimed.items():
        if len(set(names)) > 1:  # two items (mapped) to one store SKU in the same read
            failed[sku] = f"{len(set(names))} QuickBooks items go to store SKU {sku}: {', '.join(sorted(set(names)))}"
            wanted.pop(sku, None)
    if quantity_mode == "available":
        pending = await unposted_units(conn, list(wanted))
        wanted = {sku: qty + pending.get(sku_key(sku), Decimal(0)) for sku, qty in wanted.items()}
    return {sku: max(qty, Decimal(0)) for sku, qty in wanted.items()}, failed


async def record_items(
    conn: aiosqlite.Connection,
    kind: str,
    rets: Sequence[dict[str, Any]],
    *,
    match: str,
    quantity_mode: str,
    now: str,
) -> ItemsRecorded:
    """Upsert a page of ItemInventoryRet/ItemInventoryAssemblyRet and queue their quantities;
    `now` (stored text) stamps the rows."""
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
        " is_active, seen_at, name_key, full_name_key, mpn_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(list_id) DO UPDATE SET"
        " kind=excluded.kind, name=excluded.name, full_name=excluded.full_name, mpn=excluded.mpn,"
        " quantity_on_hand=excluded.quantity_on_hand, time_modified=excluded.time_modified,"
        " edit_sequence=excluded.edit_sequence, is_active=excluded.is_active, seen_at=excluded.seen_at,"
        " name_key=excluded.name_key, full_name_key=excluded.full_name_key, mpn_key=excluded.mpn_key",
        [_item_row(r, kind, now) for r in rows],
    )
    queued = await _queue_quantities(conn, changed, match=match, quantity_mode=quantity_mode, now=now)
    return ItemsRecorded(count=len(rows), queued=queued, max_time_modified=latest)


def _item_row(r: dict[str, Any], kind: str, now: str) -> tuple[Any, ...]:
    name = r.get("Name") or r.get("FullName", "")
    full_name = r.get("FullName") or r.get("Name", "")
    mpn = r.get("ManufacturerPartNumber")
    return (
        r["ListID"],
        kind,
        name,
        full_name,
        mpn,
        _fmt(_decimal(r.get("QuantityOnHand", "0"))),
        r["TimeModified"],
        r.get("EditSequence"),
        0 if str(r.get("IsActive", "true")).lower() == "false" else 1,
        now,
        sku_key(name),
        sku_key(full_name),
        None if mpn is None else sku_key(mpn),
    )


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
        r
        for r in rets
        if known.get(r["ListID"])
        != (r["TimeModified"], r.get("EditSequence"), _fmt(_decimal(r.get("QuantityOnHand", "0"))))
    ]


async def _queue_quantities(
    conn: aiosqlite.Connection, rets: Sequence[dict[str, Any]], *, match: str, quantity_mode: str, now: str
) -> int:
    field = SKU_FIELD[match]
    on_hand: list[tuple[QBItemRef, Decimal]] = []
    for ret in rets:
        value = ret.get(field)
        if not value or str(ret.get("IsActive", "true")).lower() == "false" or not ret.get("QuantityOnHand"):
            continue  # no SKU to match, an inactive item, or no quantity given: nothing to push
        full_name = str(ret.get("FullName") or ret.get("Name") or value)
        on_hand.append((QBItemRef(str(value), full_name), _decimal(ret.get("QuantityOnHand", "0"))))
    wanted, failed = await store_quantities(conn, on_hand, match=match, quantity_mode=quantity_mode)
    await queue_stock(conn, wanted, now)
    await fail_stock(conn, failed, now)
    return len(wanted)


async def fail_stock(conn: aiosqlite.Connection, reasons: dict[str, str], now: str) -> None:
    """SKUs nothing can be pushed to for now: a failed pending row with the reason (shown, retried
    by hand once fixed) and a failure in the SKU log."""
    if not reasons:
        return
    await conn.executemany(
        "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, last_error, updated_at)"
        " VALUES (?, '0', 'failed', 0, ?, ?, ?) ON CONFLICT(sku) DO UPDATE SET state='failed',"
        " last_error=excluded.last_error, updated_at=excluded.updated_at",
        [(sku, now, reason, now) for sku, reason in reasons.items()],
    )
    await conn.executemany(
        "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,NULL,NULL,0,?)",
        [(now, sku, reason) for sku, reason in reasons.items()],
    )


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
