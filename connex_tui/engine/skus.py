"""Which store SKU is which QuickBooks item, under the one SKU rule (`skus_rule`).

By default the QuickBooks field named by `[inventory] match` equals the store SKU: exactly after
trimming, else after Unicode case folding where only one item could be meant. Explicit mappings
(`connex-tui map STORE_SKU QB_ITEM`) cover the SKUs that differ; QB_ITEM is the value of that same
field, or an item's full name ("Bags 12oz:esp-boss"), which names one item even when several
share a name.

Two QuickBooks items answering to one SKU (sub-items `Bags 12oz:esp-boss` and `Bags 5lb:esp-boss`
under match = "name") is an ambiguity, never a guess: neither is pushed, and orders for the SKU
fail with the reason. A SKU that matches no item is sent to QuickBooks as it is, unless QuickBooks
could not store it as it is (it keeps ISO-8859-1 only): then `TEE–1` (en dash) would arrive as
`TEE-1`, another item's name, so the order fails instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from ..soap.qbxml import ITEM_FULLNAME_MAX, qb_text
from .db import Database, chunked
from .skus_rule import matches, sku_key

__all__ = [
    "QBItemRef",
    "QBTarget",
    "ambiguity",
    "list_mappings",
    "mapped_store_skus",
    "qb_targets",
    "remove_mapping",
    "set_mapping",
    "sku_key",
    "store_skus_for",
]

# `[inventory] match` -> the items-table column holding that QuickBooks field, and its key column.
SKU_COLUMN = {"name": "name", "full_name": "full_name", "manufacturer_part_number": "mpn"}


@dataclass(frozen=True)
class QBItemRef:
    """A QuickBooks item as the SKU rule sees it: the value `match` compares, and its FullName."""

    value: str
    full_name: str


@dataclass(frozen=True)
class QBTarget:
    """What a store SKU refers to in QuickBooks: an item's FullName to send, or a problem."""

    full_name: str = ""
    problem: str = ""


async def _rows(conn: aiosqlite.Connection, sql: str, params: Sequence[str]) -> list[aiosqlite.Row]:
    async with conn.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def _mappings_by_store_sku(conn: aiosqlite.Connection, store_skus: Sequence[str]) -> dict[str, str]:
    """Store SKU (as given) -> the QB_ITEM its mapping names, for the mapped ones."""
    if not store_skus or not await _any_mappings(conn):
        return {}
    rows: list[aiosqlite.Row] = []
    for part in chunked(sorted({sku_key(s) for s in store_skus})):
        rows += await _rows(
            conn, f"SELECT store_sku, qb_item FROM mappings WHERE store_sku_key IN ({','.join('?' * len(part))})", part
        )
    found = {}
    for sku in store_skus:
        hits, _ = matches(sku, rows, lambda r: str(r[0]))
        if len(hits) == 1:
            found[sku] = str(hits[0][1])
    return found


async def mapped_store_skus(conn: aiosqlite.Connection, store_skus: Sequence[str]) -> set[str]:
    """The store SKUs a mapping covers."""
    return set(await _mappings_by_store_sku(conn, store_skus))


async def _any_mappings(conn: aiosqlite.Connection) -> bool:
    """Most stores have none: then no lookup is needed at all."""
    return bool(await _rows(conn, "SELECT 1 FROM mappings LIMIT 1", ()))


async def store_skus_for(conn: aiosqlite.Connection, items: Sequence[QBItemRef]) -> list[str]:
    """For each QuickBooks item, the store SKU its quantity goes to: the SKU of a mapping that names
    its full name, else of one that names its value, else the value itself."""
    if not items or not await _any_mappings(conn):
        return [item.value for item in items]
    rows = await _rows(conn, "SELECT store_sku, qb_item FROM mappings", ())
    by_full_name: dict[str, str] = {}
    by_value: dict[str, str] = {}
    for store_sku, qb_item in rows:
        by_full_name.setdefault(qb_item.strip(), store_sku)
        by_value.setdefault(sku_key(qb_item), store_sku)
    return [by_full_name.get(i.full_name.strip()) or by_value.get(sku_key(i.value)) or i.value for i in items]


async def mapped_by_full_name(conn: aiosqlite.Connection, items: Sequence[QBItemRef]) -> set[str]:
    """The full names of these items that a mapping names exactly (those are never ambiguous)."""
    if not items or not await _any_mappings(conn):
        return set()
    rows = await _rows(conn, "SELECT qb_item FROM mappings", ())
    named = {str(r[0]).strip() for r in rows}
    return {i.full_name for i in items if i.full_name.strip() in named}


async def ambiguity(conn: aiosqlite.Connection, values: Sequence[str], match: str) -> dict[str, str]:
    """Value -> the reason it names several active QuickBooks items (exactly, after trimming; or,
    with no exact one, after case folding), for the values that do."""
    column = SKU_COLUMN[match]
    found: dict[str, str] = {}
    wanted = sorted({sku_key(v) for v in values if v.strip()})
    rows: list[aiosqlite.Row] = []
    for part in chunked(wanted):
        rows += await _rows(
            conn,
            f"SELECT {column}, full_name FROM items WHERE is_active = 1 AND {column}_key IN ({','.join('?' * len(part))})",
            part,
        )
    for value in values:
        hits, _ = matches(value, rows, lambda r: str(r[0]))
        if len(hits) > 1:
            found[value] = _ambiguous(value, [str(r[1]) for r in hits])
    return found


def _ambiguous(name: str, full_names: Sequence[str]) -> str:
    return (
        f"{len(full_names)} QuickBooks items are named {name.strip()}: {', '.join(sorted(full_names))};"
        " map the SKU with `connex-tui map`"
    )


async def qb_targets(conn: aiosqlite.Connection, store_skus: Sequence[str], match: str) -> dict[str, QBTarget]:
    """Store SKU (as given) -> the QuickBooks item an order line for it names."""
    mapped = await _mappings_by_store_sku(conn, store_skus)
    names = {sku: mapped.get(sku, sku) for sku in store_skus}
    column = SKU_COLUMN[match]
    keys = sorted({sku_key(n) for n in names.values() if n.strip()})
    rows: list[aiosqlite.Row] = []
    for part in chunked(keys):
        marks = ",".join("?" * len(part))
        rows += await _rows(
            conn,
            f"SELECT {column}, full_name, is_active FROM items WHERE {column}_key IN ({marks})"
            f" OR full_name_key IN ({marks})",
            [*part, *part],
        )
    return {sku: _target(sku, name, rows, sku in mapped) for sku, name in names.items()}


def _target(sku: str, name: str, rows: Sequence[aiosqlite.Row], mapped: bool) -> QBTarget:
    """A mapping may name an item by its full name (unique in QuickBooks); otherwise only the
    `match` field counts, so a SKU that happens to be another item's full name is not that item."""
    active = [r for r in rows if r[2]] or list(rows)
    by_full_name, exact = matches(name, active, lambda r: str(r[1])) if mapped else ([], False)
    if exact:
        return QBTarget(full_name=str(by_full_name[0][1]))
    by_value, _ = matches(name, active, lambda r: str(r[0]))
    candidates = by_value or by_full_name
    if len(candidates) > 1:
        return QBTarget(problem=_ambiguous(name, [str(r[1]) for r in candidates]))
    if candidates:
        return QBTarget(full_name=str(candidates[0][1]))
    sent = qb_text(name.strip(), ITEM_FULLNAME_MAX)
    if sent != name.strip():
        return QBTarget(
            problem=(
                f"SKU {sku.strip()} matches no QuickBooks item, and QuickBooks cannot store that name as it is"
                f" (it would arrive as {sent!r}, which may be another item): create the item under a name QuickBooks"
                " can hold and map the SKU to it with `connex-tui map`"
            )
        )
    return QBTarget(full_name=sent)  # not seen yet: QuickBooks answers 3140 if it has no such item


async def set_mapping(db: Database, store_sku: str, qb_item: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO mappings(store_sku_key, store_sku, qb_item, created_at) VALUES (?,?,?,?)"
            " ON CONFLICT(store_sku_key) DO UPDATE SET store_sku = excluded.store_sku, qb_item = excluded.qb_item",
            (sku_key(store_sku), store_sku.strip(), qb_item.strip(), db.clock.stamp()),
        )


async def remove_mapping(db: Database, store_sku: str) -> bool:
    async with db.transaction() as conn:
        cur = await conn.execute("DELETE FROM mappings WHERE store_sku_key = ?", (sku_key(store_sku),))
        return cur.rowcount > 0


async def list_mappings(db: Database) -> list[tuple[str, str]]:
    rows = await db.fetchall("SELECT store_sku, qb_item FROM mappings ORDER BY store_sku_key")
    return [(row[0], row[1]) for row in rows]
