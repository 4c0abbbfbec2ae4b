"""The engine's side of the store model contract for restocks, with a store that reports whatever
the test says (below the level this test is about) and the real SQLite file:

restocks reach the engine as `StoreRefund` entries with a stable, unique `refund_id` and only the
units put back; QuickBooks gets each unit once, so (sale posted) - (credit memo units) = what the
order took from the shelf, however the store attributes units to refunds and however often it is
read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

import pytest

from connex_tui.engine.db import Database
from connex_tui.engine.order_import import OrderImporter
from connex_tui.storefronts.base import StoreLine, StoreOrder, StoreRefund

from .conftest import make_config


class ScriptedStore:
    platform = "scripted"
    batch_limit = 100

    def __init__(self) -> None:
        self.orders: list[StoreOrder] = []

    async def list_orders(self, modified_since: datetime | None) -> list[StoreOrder]:
        return list(self.orders)


def order(*refunds: StoreRefund, status: str = "paid", cancelled: bool = False, problem: str = "") -> StoreOrder:
    return StoreOrder(
        store_id="9001",
        number="1001",
        status=status,
        modified_at="2025-06-01T12:00:00+00:00",
        lines=(StoreLine("MUG", Decimal(5), Decimal("8.00")),),
        cancelled=cancelled,
        refunds=refunds,
        problem=problem,
    )


def restock(refund_id: str, units: int, sku: str = "MUG") -> StoreRefund:
    return StoreRefund(refund_id, (StoreLine(sku, Decimal(units), Decimal("8.00")),) if units else ())


@pytest.fixture
async def rig(tmp_path) -> AsyncIterator[tuple[Database, ScriptedStore, OrderImporter]]:
    config = make_config(tmp_path, orders={"statuses": ["paid"]})
    db = await Database.open(config.database.path)
    store = ScriptedStore()
    yield db, store, OrderImporter(db, store, config)  # type: ignore[arg-type]
    await db.close()


async def memos(db: Database) -> list[tuple[str, str]]:
    rows = await db.fetchall(
        "SELECT o.store_id, l.quantity FROM orders o JOIN order_lines l ON l.order_id = o.id"
        " WHERE o.qb_kind = 'credit_memo' AND o.qb_state != 'skipped' ORDER BY o.id"
    )
    return [(r[0], r[1]) for r in rows]


async def post_everything(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute("UPDATE orders SET qb_state = 'posted' WHERE qb_state = 'new'")


async def test_one_memo_per_refund_once_however_often_read(rig) -> None:
    db, store, importer = rig
    store.orders = [order()]
    await importer.run()
    await post_everything(db)
    store.orders = [order(restock("A", 1), restock("B", 2))]  # two refunds between two reads
    for _ in range(3):
        await importer.run()
    assert await memos(db) == [("9001/refund/A", "1"), ("9001/refund/B", "2")]


async def test_a_moved_attribution_never_gives_a_unit_twice(rig) -> None:
    db, store, importer = rig
    store.orders = [order(restock("A", 1))]
    await importer.run()
    store.orders = [order(restock("A", 0), restock("B", 1))]  # same total, now put against B
    await importer.run()
    assert await memos(db) == [("9001/refund/A", "1")]
    store.orders = [order(restock("A", 0), restock("B", 3))]  # the total grew by 2
    await importer.run()
    assert await memos(db) == [("9001/refund/A", "1"), ("9001/refund/B", "2")]
    store.orders = [order(restock("A", 2), restock("B", 2))]  # grew again, reported against A
    await importer.run()
    assert await memos(db) == [("9001/refund/A", "1"), ("9001/refund/B", "2"), ("9001/refund/A+2", "1")]


async def test_cancelled_after_posting_and_before(rig) -> None:
    db, store, importer = rig
    store.orders = [order()]
    await importer.run()
    await post_everything(db)
    store.orders = [order(restock("A", 2), restock("cancel", 3), status="cancelled", cancelled=True)]
    await importer.run()
    await importer.run()
    assert await memos(db) == [("9001/refund/A", "2"), ("9001/refund/cancel", "3")]
    assert await db.fetchval("SELECT number FROM orders WHERE store_id = '9001/refund/cancel'") == "1001-C"


async def test_an_unreadable_known_order_changes_nothing(rig) -> None:
    db, store, importer = rig
    store.orders = [order()]
    await importer.run()
    store.orders = [order(restock("A", 2), problem="WooCommerce order 1001: line 1 (MUG): quantity is NaN")]
    await importer.run()
    assert await memos(db) == []
    assert await db.fetchval("SELECT qb_state FROM orders WHERE store_id = '9001'") == "new"
