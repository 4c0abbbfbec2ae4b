"""Reading WooCommerce's answers: the parser on fixtures in the shapes real stores answer with
(tests/fixtures/woocommerce/README.md), and bad numbers failing one item, never the page, over
real HTTP against the emulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.storefronts import woo_parse
from connex_tui.storefronts.base import CatalogEntry, StockUpdate
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.woocommerce import WooCommerceClient

from .store_fixtures import StepClock, clock  # noqa: F401 - fixture
from .test_sync_e2e import Sync, start_sync

FIXTURES = Path(__file__).parent / "fixtures" / "woocommerce"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(), **woo_parse.JSON_HOOKS)


# ---------------------------------------------------------------------- fixtures


def test_recorded_order_shape() -> None:
    (raw,) = load("order_processing.json")
    order = woo_parse.order(raw, [])
    assert order.problem == "" and order.store_id == "432" and order.customer == "Ada Okafor"
    assert [(l.sku, l.quantity, l.price) for l in order.lines] == [
        ("BATH-HW", 3, Decimal("42.5")),
        ("Machine", 2, Decimal(80)),
        ("", 1, Decimal(0)),
    ]
    assert order.refunds == () and order.modified_at == "2024-01-31T15:32:10+00:00"


def test_restock_running_total_goes_to_the_refund_of_that_line() -> None:
    (raw,) = load("order_refunded_restocked.json")
    order = woo_parse.order(raw, load("refunds_restocked.json"))
    assert [(r.refund_id, [(l.sku, l.quantity, l.price) for l in r.lines]) for r in order.refunds] == [
        ("440", []),  # the sewing machine refund put nothing back (no _restock_refunded_items on line 61)
        ("441", [("BATH-HW", Decimal(2), Decimal("42.5"))]),
    ]
    assert order.refunds[1].created_at == "2024-02-02T09:00:04+00:00"


def test_cancel_reports_what_wc_increase_stock_levels_put_back() -> None:
    (raw,) = load("order_cancelled.json")
    order = woo_parse.order(raw, load("refunds_restocked.json"))
    cancel = {r.refund_id: r for r in order.refunds}["cancel"]
    # BATH-HW: 3 sold, 2 restocked by the refund, the cancel put back the last 1. The machine
    # never had _reduced_stock (not stock-managed): QuickBooks gets its 2 back as well, so the
    # sale less the credit memos is what the order took from the shelf: nothing.
    assert [(l.sku, l.quantity) for l in cancel.lines] == [("BATH-HW", Decimal(1)), ("Machine", Decimal(2))]


def test_variations_of_a_parent_that_keeps_the_stock() -> None:
    data = load("variations_parent_stock.json")
    parent = woo_parse.product_entry(data["parent"])
    entries = [woo_parse.variation_entry(v, data["parent"]) for v in data["variations"]]
    assert parent == CatalogEntry("TEE", "811", None, 14, True)
    assert entries[0] is None  # shows the parent's SKU and stock: the parent's entry covers it
    assert entries[1] == CatalogEntry("TEE-XL", "813", "811", 3, True)
    kept_by_parent = woo_parse.variation_entry({**data["variations"][1], "manage_stock": "parent"}, data["parent"])
    assert kept_by_parent == CatalogEntry("TEE-XL", "811", None, 3, True)  # pushed to the parent


@pytest.mark.parametrize(
    "value, ok",
    [
        (3, True),
        ("3", True),
        (3.0, True),
        (2.5, False),
        ("2.5", False),
        ("three", False),
        (True, False),
        (None, False),
        (10**12, False),
        ("٣", False),
        (float("nan"), False),
        (float("inf"), False),
    ],
)
def test_counts(value: Any, ok: bool) -> None:
    if ok:
        assert woo_parse.count(value, "quantity") == 3
    else:
        with pytest.raises(woo_parse.BadValue, match="quantity is"):
            woo_parse.count(value, "quantity")


def test_json_hooks_keep_a_page_readable() -> None:
    page = json.loads(
        '[{"q": NaN}, {"q": Infinity}, {"q": 1e999}, {"q": ' + "9" * 5000 + '}, {"q": 2}]', **woo_parse.JSON_HOOKS
    )
    assert [isinstance(row["q"], woo_parse.BadNumber) for row in page] == [True, True, True, True, False]


# ---------------------------------------------------------------------- over HTTP

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, timeout=5.0)


@pytest.fixture
async def emu(clock: StepClock) -> AsyncIterator[WooCommerceEmulator]:  # noqa: F811 - the fixture
    emulator = WooCommerceEmulator(clock=clock)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def client(emu: WooCommerceEmulator) -> AsyncIterator[WooCommerceClient]:
    made = WooCommerceClient(emu.base_url, emu.consumer_key, emu.consumer_secret, policy=FAST)
    yield made
    await made.close()


def corrupt(target_id: int, kind: str, change: Any) -> Any:
    def mangle(what: str, data: Any) -> Any:
        if what == kind and isinstance(data, dict) and data.get("id") == target_id:
            change(data)
        return data

    return mangle


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda o: o["line_items"][0].update(quantity=float("nan")), "line 1 (A): quantity is NaN"),
        (lambda o: o["line_items"][0].update(quantity=10**40), "line 1 (A): quantity is 10000000000000000000…"),
        (lambda o: o["line_items"][0].update(price="Infinity"), "line 1 (A): price is 'Infinity'"),
        (lambda o: o["line_items"][0].update(quantity=1.5), "line 1 (A): quantity is 1.5"),
        (
            lambda o: o["line_items"][0]["meta_data"].append(
                {"id": 9, "key": "_restock_refunded_items", "value": "lots"}
            ),
            "_restock_refunded_items is 'lots'",
        ),
    ],
)
async def test_a_bad_number_fails_that_order_only(
    emu: WooCommerceEmulator, client: WooCommerceClient, change: Any, reason: str
) -> None:
    emu.add_product("A", 10)
    bad = emu.place_order([("A", 1)])
    good = emu.place_order([("A", 2)])
    emu.mangle = corrupt(bad, "order", change)
    orders = {o.store_id: o for o in await client.list_orders(None)}
    assert reason in orders[str(bad)].problem and orders[str(bad)].lines == ()
    assert orders[str(good)].problem == "" and orders[str(good)].lines[0].quantity == 2


async def test_a_bad_refund_line_fails_that_order_only(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    emu.add_product("A", 10)
    oid = emu.place_order([("A", 3)])
    refund = emu.refund(oid, [("A", 1)], restock=True)
    emu.mangle = corrupt(refund, "refund", lambda r: r["line_items"][0].update(quantity="-x"))
    (order,) = await client.list_orders(None)
    assert f"refund {refund} line 1: quantity is '-x'" in order.problem


async def test_bad_catalog_values_fail_their_entry_only(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    bad = emu.add_product("BAD", 5)
    emu.add_product("GOOD", 5)
    emu.mangle = corrupt(bad, "product", lambda p: p.update(stock_quantity=float("inf")))
    entries = {e.sku: e for e in await client.catalog()}
    assert entries["GOOD"] == CatalogEntry("GOOD", str(entries["GOOD"].item_id), None, 5, True)
    assert "BAD: stock_quantity is Infinity" in entries["BAD"].problem


async def test_a_bad_batch_answer_fails_that_sku_only(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    a, b = emu.add_product("A", 1), emu.add_product("B", 1)

    def mangle(what: str, data: Any) -> Any:
        if what == "batch":
            for row in data["update"]:
                if row.get("id") == a:
                    row["stock_quantity"] = float("nan")
        return data

    emu.mangle = mangle
    results = await client.set_stock(
        [
            StockUpdate("A", 7, CatalogEntry("A", str(a), None, 1, True)),
            StockUpdate("B", 8, CatalogEntry("B", str(b), None, 1, True)),
        ]
    )
    assert [r.ok for r in results] == [False, True]
    assert "stock_quantity is NaN" in results[0].reason


@pytest.fixture
async def woo(tmp_path, http) -> AsyncIterator[Sync]:
    harness = await start_sync(tmp_path, "woocommerce", http)
    yield harness
    await harness.stop()


async def test_an_unreadable_order_waits_as_failed_and_the_others_post(woo: Sync) -> None:
    emu = woo.store.emulator
    bad = emu.place_order([("redwine", 1)])
    emu.place_order([("redwine", 2)])
    emu.mangle = corrupt(bad, "order", lambda o: o["line_items"][0].update(quantity=float("nan")))
    assert "2 new" in await woo.import_orders()
    await woo.session()
    assert woo.qb.item("redwine").quantity_on_hand == 18
    row = await woo.db.fetchone("SELECT qb_state, error FROM orders WHERE store_id = ?", (str(bad),))
    assert row["qb_state"] == "failed" and "quantity is NaN" in row["error"]
