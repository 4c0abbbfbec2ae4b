"""WooCommerce as it really answers, end to end over real HTTP: restocks read from the order lines'
running totals, cancellations after posting, variable products whose parent keeps the stock.

The emulator models WooCommerce's own source (see `connex_tui.sim.woocommerce`); the engine, the
Web Connector endpoint and the SQLite file are the real ones."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .test_sync_e2e import Sync, start_sync


@pytest.fixture
async def woo(tmp_path, http) -> AsyncIterator[Sync]:
    harness = await start_sync(tmp_path, "woocommerce", http)
    yield harness
    await harness.stop()


def memos(sync: Sync) -> list:
    return [t for t in sync.qb.transactions if t.kind == "credit_memo"]


async def test_restocked_refund_posts_exactly_one_credit_memo_across_re_reads(woo: Sync) -> None:
    emu = woo.store.emulator
    order = emu.place_order([("redwine", 5)])
    await woo.sync()
    assert woo.qb.item("redwine").quantity_on_hand == 15

    emu.refund(order, [("redwine", 1)], restock=False)  # money back only: nothing for QuickBooks
    assert "0 credit memos" in await woo.import_orders()
    emu.refund(order, [("redwine", 2)], restock=True)
    assert emu.stock("redwine") == 17
    assert "1 credit memos" in await woo.import_orders()
    for _ in range(3):  # the overlap re-reads the order; nothing is queued twice
        assert "0 credit memos" in await woo.import_orders()
    await woo.session()
    await woo.session()
    assert len(memos(woo)) == 1
    assert [(line.item_full_name, line.quantity) for line in memos(woo)[0].lines] == [("redwine", 2)]
    assert woo.qb.item("redwine").quantity_on_hand == 17
    await woo.drain()
    assert emu.stock("redwine") == 17  # the next push does not take the restocked units off again

    emu.refund(order, [("redwine", 1)], restock=True)  # a second increase: one more memo, once
    assert "1 credit memos" in await woo.import_orders()
    assert "0 credit memos" in await woo.import_orders()
    await woo.session()
    assert len(memos(woo)) == 2 and woo.qb.item("redwine").quantity_on_hand == 18


async def test_each_restock_is_named_after_the_refund_that_made_it(woo: Sync) -> None:
    """WooCommerce does not record which refund restocked a line; read after each refund, every
    increase still lands on the refund that caused it, also with a money-only refund between."""
    emu = woo.store.emulator
    order = emu.place_order([("redwine", 5)])
    await woo.sync()
    first = emu.refund(order, [("redwine", 1)], restock=True)
    await woo.import_orders()
    emu.refund(order, [("redwine", 1)], restock=False)
    await woo.import_orders()
    third = emu.refund(order, [("redwine", 1)], restock=True)
    await woo.import_orders()
    await woo.import_orders()
    rows = await woo.db.fetchall("SELECT store_id, number FROM orders WHERE qb_kind = 'credit_memo' ORDER BY id")
    assert [r["store_id"] for r in rows] == [f"{order}/refund/{first}", f"{order}/refund/{third}"]
    await woo.session()
    assert woo.qb.item("redwine").quantity_on_hand == 17


async def test_cancelled_after_posting_gives_quickbooks_the_units_back_once(woo: Sync) -> None:
    emu = woo.store.emulator
    order = emu.place_order([("redwine", 5)])
    await woo.sync()
    emu.refund(order, [("redwine", 2)], restock=True)
    await woo.import_orders()
    await woo.session()
    assert woo.qb.item("redwine").quantity_on_hand == 17

    emu.set_order_status(order, "cancelled")  # wc_increase_stock_levels: the other 3 come back
    assert emu.stock("redwine") == 20
    assert "1 credit memos" in await woo.import_orders()
    assert "0 credit memos" in await woo.import_orders()
    await woo.session()
    await woo.session()
    assert woo.qb.item("redwine").quantity_on_hand == 20
    assert sorted(sum(line.quantity for line in m.lines) for m in memos(woo)) == [2, 3]
    # sale posted - units in credit memos = what the order took off the shelf (nothing, now)
    await woo.drain()
    assert emu.stock("redwine") == 20


async def test_cancelled_before_posting_skips_its_waiting_credit_memo(woo: Sync) -> None:
    emu = woo.store.emulator
    order = emu.place_order([("redwine", 5)])
    await woo.import_orders()
    emu.refund(order, [("redwine", 1)], restock=True)
    await woo.import_orders()
    emu.set_order_status(order, "cancelled")
    await woo.import_orders()
    await woo.session()
    assert woo.qb.transactions == []
    states = await woo.db.fetchall("SELECT qb_kind, qb_state FROM orders ORDER BY id")
    assert [tuple(r) for r in states] == [("sales_receipt", "skipped"), ("credit_memo", "skipped")]
    assert woo.qb.item("redwine").quantity_on_hand == 20


async def test_parent_managed_variations_push_to_the_parent(woo: Sync) -> None:
    emu = woo.store.emulator
    parent, ids = emu.add_variable_product("Shirt", [("", None), ("", None)], sku="SHIRT", stock=10)
    woo.qb.add_item("SHIRT", 7)
    await woo.engine.scheduler.run_and_wait("catalog")
    await woo.sync()
    assert emu.stock_of(parent) == 7
    assert [emu.manage_stock_of(v) for v in ids.values()] == ["parent", "parent"]  # never switched
    assert await woo.db.fetchval("SELECT count(*) FROM sku_log WHERE sku = 'SHIRT' AND ok = 1") == 1

    emu.place_order([(ids["#1"], 2)])  # the line shows the parent's SKU; the parent's stock moves
    await woo.sync()
    assert woo.qb.item("SHIRT").quantity_on_hand == 5 and emu.stock_of(parent) == 5
