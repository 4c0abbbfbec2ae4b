"""Which store SKU is which QuickBooks item.

By default the QuickBooks field named by `[inventory] match` equals the store SKU, compared without
regard to case. Explicit mappings (`connex-tui map STORE_SKU QB_ITEM`) cover the SKUs that differ;
QB_ITEM is the value of that same QuickBooks field.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from .db import Database, chunked, utcnow


def sku_key(sku: str) -> str:
    """What two SKUs are compared by when case does not count: trimmed and Unicode case-folded
    (``"ÉCLAIR"`` and ``"éclair"`` agree; the Kelvin sign folds to "k"). Never transliterated: an
    en dash or a fullwidth letter stays what it is. SQLite's lower() folds ASCII only, so keys
    are computed here and stored, never derived in SQL."""
    return sku.strip().casefold()


async def _rows(conn: aiosqlite.Connection, sql: str, params: Sequence[str]) -> list[aiosqlite.Row]:
    async with conn.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def store_skus_for(conn: aiosqlite.Connection, qb_values: Sequence[str]) -> dict[str, str]:
    """QuickBooks value (lower-cased) -> store SKU, for every value given: mapped ones get their
    store SKU, the rest are their own SKU."""
    result = {value.lower(): value for value in qb_values}
    if not qb_values or not await _any_mappings(conn):
        return result
    for part in chunked([v.lower() for v in qb_values]):
        rows = await _rows(
            conn, f"SELECT lower(qb_item), store_sku FROM mappings WHERE lower(qb_item) IN ({','.join('?' * len(part))})", part
        )
        result.update({row[0]: row[1] for row in rows})
    return result


async def qb_values_for(conn: aiosqlite.Connection, store_skus: Sequence[str]) -> dict[str, str]:
    """Store SKU (lower-cased) -> the QuickBooks value it refers to."""
    result = {sku.lower(): sku for sku in store_skus}
    if not store_skus or not await _any_mappings(conn):
        return result
    for part in chunked([s.lower() for s in store_skus]):
        rows = await _rows(
            conn, f"SELECT store_sku_key, qb_item FROM mappings WHERE store_sku_key IN ({','.join('?' * len(part))})", part
        )
        result.update({row[0]: row[1] for row in rows})
    return result


async def _any_mappings(conn: aiosqlite.Connection) -> bool:
    """Most stores have none: then no lookup is needed at all."""
    return bool(await _rows(conn, "SELECT 1 FROM mappings LIMIT 1", ()))


async def set_mapping(db: Database, store_sku: str, qb_item: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO mappings(store_sku_key, store_sku, qb_item, created_at) VALUES (?,?,?,?)"
            " ON CONFLICT(store_sku_key) DO UPDATE SET store_sku = excluded.store_sku, qb_item = excluded.qb_item",
            (store_sku.lower(), store_sku, qb_item, utcnow()),
        )


async def remove_mapping(db: Database, store_sku: str) -> bool:
    async with db.transaction() as conn:
        cur = await conn.execute("DELETE FROM mappings WHERE store_sku_key = ?", (store_sku.lower(),))
        return cur.rowcount > 0


async def list_mappings(db: Database) -> list[tuple[str, str]]:
    rows = await db.fetchall("SELECT store_sku, qb_item FROM mappings ORDER BY store_sku_key")
    return [(row[0], row[1]) for row in rows]
