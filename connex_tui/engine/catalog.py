"""The store's SKU index: which store ids to update for a SKU, and the store's last known stock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..storefronts.base import CatalogEntry, Storefront
from .db import Database, utcnow
from .numbers import BadNumber, whole_number

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


def _row(entry: Any, now: str) -> tuple[tuple[Any, ...] | None, str | None]:
    """The index row for one entry, and what was wrong with its stock (or None). A stock that is
    no count (Infinity, NaN, 10**30) is kept as unknown: the SKU can still be pushed (stock sets
    are absolute) and the bad value is logged against it; the rest of the catalog is untouched."""
    if not isinstance(entry, CatalogEntry) or not isinstance(entry.sku, str) or not entry.sku:
        return None, None
    problem = None
    quantity = None
    if entry.quantity is not None:
        try:
            quantity = whole_number(entry.quantity, f"the store's stock of {entry.sku[:80]}")
        except BadNumber as exc:
            problem = f"{exc}; kept as unknown until the store reports a count"
    row = (entry.sku.lower(), entry.sku, str(entry.item_id), None if entry.parent_id is None else str(entry.parent_id),
           quantity, 1 if entry.managed else 0, now)
    return row, problem


async def refresh_catalog(db: Database, store: Storefront) -> int:
    """Replace the index with what the store lists now (one transaction); returns the SKU count.
    A SKU whose stock is no count gets a failed line in the SKU log (no logger here: the admin
    CLI imports this module and must stay free of structlog's console renderer)."""
    entries = await store.catalog()
    now = utcnow()
    rows, problems = [], []
    for entry in entries:
        row, problem = _row(entry, now)
        if row is not None:
            rows.append(row)
        if row is not None and problem is not None:
            problems.append((now, row[1], None, None, problem))
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM catalog")
        await conn.executemany(
            "INSERT OR REPLACE INTO catalog(sku_key, sku, item_id, parent_id, quantity, managed, refreshed_at)"
            " VALUES (?,?,?,?,?,?,?)",
            rows,
        )
        await conn.executemany("INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,0,?)", problems)
        await db.set_meta(conn, REFRESHED_KEY, now)
    return len(entries)


async def lookup(db: Database, skus: Sequence[str]) -> dict[str, CatalogEntry]:
    """Lower-cased SKU -> entry, for the SKUs the index has."""
    if not skus:
        return {}
    marks = ",".join("?" * len(skus))
    rows = await db.fetchall(
        f"SELECT sku_key, sku, item_id, parent_id, quantity, managed FROM catalog WHERE sku_key IN ({marks})",
        [s.lower() for s in skus],
    )
    return {
        row["sku_key"]: CatalogEntry(
            sku=row["sku"],
            item_id=row["item_id"],
            parent_id=row["parent_id"],
            quantity=row["quantity"],
            managed=bool(row["managed"]),
        )
        for row in rows
    }
