"""The store's SKU index: which store ids to update for a SKU, and the store's last known stock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


from ..storefronts.base import CatalogEntry, Storefront
from .db import Database, utcnow

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


async def refresh_catalog(db: Database, store: Storefront) -> int:
    """Replace the index with what the store lists now (one transaction); returns the SKU count."""
    entries = await store.catalog()
    now = utcnow()
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM catalog")
        await conn.executemany(
            "INSERT OR REPLACE INTO catalog(sku_key, sku, item_id, parent_id, quantity, managed, refreshed_at)"
            " VALUES (?,?,?,?,?,?,?)",
            [
                (e.sku.lower(), e.sku, e.item_id, e.parent_id, e.quantity, 1 if e.managed else 0, now)
                for e in entries
                if e.sku
            ],
        )
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
