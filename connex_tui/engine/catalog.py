"""The store's SKU index: which store ids to update for a SKU, and the store's last known stock."""

from __future__ import annotations

from collections.abc import Sequence


from ..storefronts.base import CatalogEntry, Storefront
from .db import Database, utcnow


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
        await db.set_meta(conn, "catalog.refreshed_at", now)
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
