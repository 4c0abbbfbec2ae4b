"""The store's SKU index: which store ids to update for a SKU, and the store's last known stock.

Every store product or variation claiming a SKU is kept. A SKU is looked up under the one SKU rule
(`skus_rule`): the entries equal to it after trimming, else those equal after case folding, the
latter only when no other QuickBooks value folds to it too. More than one entry, or a folded match
that could be meant for another QuickBooks item, is a reason not to push, never a guess."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..storefronts.base import CatalogEntry, Storefront
from .db import Database, chunked
from .numbers import BadNumber, whole_number
from .skus import SKU_COLUMN, ambiguity, mapped_store_skus
from .skus_rule import matches, sku_key

REFRESHED_KEY = "catalog.refreshed_at"


class CatalogIndex:
    """One refresh of the index at a time. The catalog task, the pusher (a SKU it does not know)
    and reconcile all ask for one, at start-up typically together; a caller that had to wait for
    another's refresh takes that one instead of reading the whole store again (on Shopify, 10,000
    variants cost minutes of throttle)."""

    def __init__(self, db: Database, store: Storefront) -> None:
        self.db = db
        self.store = store
        self._lock = asyncio.Lock()

    async def refresh(self, *, unless_newer_than: str | None = None) -> int | None:
        """Refresh and return the SKU count; None when the index was refreshed after
        `unless_newer_than` (an ISO time) already."""
        async with self._lock:
            if unless_newer_than is not None:
                last = await self.db.get_meta(REFRESHED_KEY)
                if last is not None and last >= unless_newer_than:
                    return None
            return await refresh_catalog(self.db, self.store)


def _row(entry: Any, now: str) -> tuple[Any, ...] | None:
    """The index row for one entry, its numbers checked at the engine's boundary: a stock that
    is no count (Infinity, NaN, 10**30) the client let through fails that SKU only (pushes to it
    fail with the reason), and the rest of the catalog is stored as usual."""
    if not isinstance(entry, CatalogEntry) or not isinstance(entry.sku, str) or not entry.sku.strip():
        return None
    quantity, problem = None, str(entry.problem or "")
    if entry.quantity is not None:
        try:
            quantity = whole_number(entry.quantity, f"the store's stock of {entry.sku[:80]}")
        except BadNumber as exc:
            problem = problem or f"{exc}: the store's answer for this SKU is unusable"
    parent = None if entry.parent_id is None else str(entry.parent_id)
    return (
        sku_key(entry.sku),
        entry.sku,
        str(entry.item_id),
        parent,
        quantity,
        1 if entry.managed else 0,
        problem,
        now,
    )


async def refresh_catalog(db: Database, store: Storefront) -> int:
    """Replace the index with what the store lists now (one transaction); returns the SKU count."""
    entries = await store.catalog()
    now = db.clock.stamp()
    rows = [row for row in (_row(e, now) for e in entries) if row is not None]
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM catalog")
        await conn.executemany(
            "INSERT INTO catalog(sku_key, sku, item_id, parent_id, quantity, managed, problem, refreshed_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )
        await db.set_meta(conn, REFRESHED_KEY, now)
    return len(entries)


async def lookup(db: Database, skus: Sequence[str], *, match: str = "name") -> dict[str, CatalogEntry | str]:
    """SKU (as given) -> its one store entry, or the reason it cannot be pushed to; SKUs the
    index does not have are left out."""
    if not skus:
        return {}
    rows = []
    for part in chunked(sorted({sku_key(s) for s in skus})):
        rows += await db.fetchall(
            "SELECT sku_key, sku, item_id, parent_id, quantity, managed, problem FROM catalog"
            f" WHERE sku_key IN ({','.join('?' * len(part))}) ORDER BY id",
            list(part),
        )
    found: dict[str, CatalogEntry | str] = {}
    # A SKU several QuickBooks items answer to has no one quantity (a retried failed row would
    # push whatever it holds): unless a mapping names one item for it, it is pushed to no product.
    mapped = await mapped_store_skus(db.conn, skus)
    qb_ambiguous = await ambiguity(db.conn, [s for s in skus if s not in mapped], match)
    for sku in skus:
        if sku in qb_ambiguous:
            found[sku] = qb_ambiguous[sku]
            continue
        hits, exact = matches(sku, [r for r in rows if r["sku_key"] == sku_key(sku)], lambda r: str(r["sku"]))
        if not hits:
            continue
        if len(hits) > 1:
            ids = ", ".join(_product_id(r) for r in hits)
            found[sku] = (
                f"SKU {sku.strip()} is on {len(hits)} store products: {ids}; give each its own SKU"
                " (a variation without one shows its parent's)"
            )
        elif hits[0]["problem"]:
            found[sku] = str(hits[0]["problem"])
        elif not exact and (other := await _other_qb_value(db, sku, match)):
            found[sku] = (
                f"SKU {sku.strip()} matches store SKU {hits[0]['sku']} only when case is ignored, and"
                f" QuickBooks item {other} could be meant too: make the SKUs agree exactly or map it"
                " with `connex-tui map`"
            )
        else:
            row = hits[0]
            found[sku] = CatalogEntry(
                sku=row["sku"],
                item_id=row["item_id"],
                parent_id=row["parent_id"],
                quantity=row["quantity"],
                managed=bool(row["managed"]),
            )
    return found


def _product_id(row: Any) -> str:
    return f"{row['item_id']} (a variation of {row['parent_id']})" if row["parent_id"] else str(row["item_id"])


async def _other_qb_value(db: Database, sku: str, match: str) -> str | None:
    """Another active QuickBooks item whose `match` value folds to this SKU's key but is not it."""
    column = SKU_COLUMN[match]
    rows = await db.fetchall(
        f"SELECT {column}, full_name FROM items WHERE is_active = 1 AND {column}_key = ?", (sku_key(sku),)
    )
    return next((str(r[1]) for r in rows if str(r[0]).strip() != sku.strip()), None)
