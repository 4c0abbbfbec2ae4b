"""Bad numbers from a store fail the one item that carried them, never a batch or a task.

The store's answers are real HTTP from the emulators, rewritten by their fault hook
(`Fault.rewrite`) the way a plugin or a proxy on a real store can rewrite them: NaN, Infinity,
fractions, words and absurd sizes where a count belongs. The real clients parse them; whatever
they return or raise, the engine must record the item at fault as failed with the reason, record
the rest normally, and leave no row in flight.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connex_tui.engine.db import Database
from connex_tui.engine.items import queue_stock
from connex_tui.engine.numbers import (
    BadNumber,
    line_quantity,
    stock_level,
    whole_number,
)
from connex_tui.engine.pusher import InventoryPusher
from connex_tui.engine.admin_commands import drop, retry_skus
from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.woocommerce import WooCommerceClient

KEY, SECRET = "ck_3f9a2b7c1d", "cs_9e8d7c6b5a4f3e2d1c"
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, timeout=5.0)
BATCH = "POST /wp-json/wc/v3/products/batch"
HYPOTHESIS = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# What a count must never be: non-finite, fractional, a word, absurdly large, the wrong type.
NOT_A_COUNT = st.one_of(
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            1e300,
            -1e300,
            2.5,
            10**30,
            -(10**30),
            "NaN",
            "Infinity",
            "12abc",
            "",
            True,
            [],
            {},
            {"value": 1},
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not (math.isfinite(f) and f == int(f))),
    st.text(max_size=12).filter(lambda t: not t.strip().lstrip("-").isdigit()),
)


def run(coro_factory: Callable[[Path], Any]) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(coro_factory(Path(folder)))


class Shop:
    """The WooCommerce emulator, a real client to it, and a real SQLite file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.emu = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET)

    async def __aenter__(self) -> Shop:
        await self.emu.start()
        self.client = WooCommerceClient(self.emu.base_url, KEY, SECRET, policy=FAST)
        self.db = await Database.open(self.folder / "connex.db")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.db.close()
        await self.client.close()
        await self.emu.stop()

    async def queue(self, **quantities: int | str) -> None:
        async with self.db.transaction() as conn:
            await queue_stock(conn, {sku: Decimal(q) for sku, q in quantities.items()}, self.db.clock.stamp())

    async def pending(self) -> dict[str, tuple[str, str | None]]:
        rows = await self.db.fetchall("SELECT sku, state, last_error FROM pending ORDER BY sku")
        return {row[0]: (row[1], row[2]) for row in rows}


def answer_with(product_id: int, value: Any) -> Callable[[Any], Any]:
    """Rewrite a batch answer: the entry for `product_id` says its stock is `value`."""

    def rewrite(data: Any) -> Any:
        for entry in data.get("update", []):
            if entry.get("id") == product_id:
                entry["stock_quantity"] = value
        return data

    return rewrite


# ------------------------------------------------------------------ the validation helper


@given(value=NOT_A_COUNT)
@HYPOTHESIS
def test_whole_number_refuses_what_is_not_a_count(value: Any) -> None:
    try:
        whole_number(value, "stock")
    except BadNumber as exc:
        assert str(exc).startswith("stock is ")
    else:
        raise AssertionError(f"{value!r} was taken for a count")


@given(value=st.integers(min_value=-2_147_483_647, max_value=2_147_483_647))
@HYPOTHESIS
def test_whole_number_takes_every_count_in_bounds(value: int) -> None:
    assert whole_number(value, "stock") == value
    assert whole_number(str(value), "stock") == value
    assert whole_number(float(value), "stock") == value


def test_stock_level_and_line_quantity_limits() -> None:
    assert stock_level("12.7", "q") == 12 and stock_level("-3", "q") == 0
    for bad in ("NaN", "Infinity", "-Infinity", "1e30", "sNaN", "x"):
        for check in (stock_level, line_quantity):
            try:
                check(bad, "q")
            except BadNumber:
                continue
            raise AssertionError(f"{check.__name__} took {bad!r}")
    assert line_quantity("2.5", "q") == Decimal("2.5")
    try:
        line_quantity("0.000001", "q")
    except BadNumber as exc:
        assert "decimal places" in str(exc)
    else:
        raise AssertionError("a quantity finer than QuickBooks keeps was taken")


# ------------------------------------------------------------------ stock batch answers


@given(value=NOT_A_COUNT)
@HYPOTHESIS
def test_a_bad_number_in_a_batch_answer_fails_that_sku_only(value: Any) -> None:
    async def scenario(folder: Path) -> None:
        async with Shop(folder) as shop:
            for n in range(5):
                shop.emu.add_product(f"SKU-{n}", 1)
            bad = shop.emu.product_id("SKU-2")
            shop.emu.faults.add(BATCH, rewrite=answer_with(bad, value), times=100)
            await shop.queue(**{f"SKU-{n}": 10 + n for n in range(5)})
            pusher = InventoryPusher(shop.db, shop.client)
            outcome = await pusher.push_once()
            left = await shop.pending()
            # The SKU at fault waits with the reason: failed, or (when the client calls its
            # answer a passing fault) due again after a backoff; never in flight.
            assert outcome.pushed == 4 and outcome.failed + outcome.retrying == 1, (value, outcome, left)
            assert list(left) == ["SKU-2"] and left["SKU-2"][0] in ("failed", "pending"), left
            assert "SKU-2" in (left["SKU-2"][1] or ""), left
            assert await shop.db.fetchval("SELECT count(*) FROM pending WHERE state = 'in_flight'") == 0
            assert [shop.emu.stock(f"SKU-{n}") for n in (0, 1, 3, 4)] == [10, 11, 13, 14]
            logged = await shop.db.fetchall("SELECT sku, ok FROM sku_log ORDER BY sku")
            assert [r[0] for r in logged if r[1]] == ["SKU-0", "SKU-1", "SKU-3", "SKU-4"]
            assert [r[0] for r in logged if not r[1]] == (["SKU-2"] if left["SKU-2"][0] == "failed" else [])
            # Retry and drop work on what is left.
            shop.emu.faults.clear()
            assert await retry_skus(shop.db, ["SKU-2"]) == 1
            assert (await pusher.push_once()).pushed == 1 and await shop.pending() == {}
            await shop.queue(**{"SKU-2": 7})
            shop.emu.faults.add(BATCH, rewrite=answer_with(bad, value), times=100)
            await pusher.push_once()
            assert (await shop.pending())["SKU-2"][0] in ("failed", "pending")
            assert await drop(shop.db, ["SKU-2"]) == 1 and await shop.pending() == {}

    run(scenario)


def test_a_nan_quantity_from_quickbooks_is_never_pushed_as_zero(tmp_path: Path) -> None:
    async def scenario(folder: Path) -> None:
        async with Shop(folder) as shop:
            shop.emu.add_product("GOOD", 1)
            shop.emu.add_product("ODD", 5)
            async with shop.db.transaction() as conn:
                await queue_stock(conn, {"GOOD": Decimal(3), "ODD": Decimal("NaN")}, shop.db.clock.stamp())
            outcome = await InventoryPusher(shop.db, shop.client).push_once()
            left = await shop.pending()
            assert outcome.pushed == 1 and left["ODD"][0] == "failed" and "not a finite number" in left["ODD"][1]
            assert shop.emu.stock("ODD") == 5 and shop.emu.stock("GOOD") == 3

    run(scenario)


def test_a_failing_catalog_refresh_leaves_nothing_in_flight(tmp_path: Path) -> None:
    async def scenario(folder: Path) -> None:
        async with Shop(folder) as shop:
            shop.emu.faults.add("GET /wp-json/wc/v3/products", status=500, times=10)
            await shop.queue(NEW=4)
            pusher = InventoryPusher(shop.db, shop.client)
            try:
                await pusher.push_once()
            except Exception:  # noqa: BLE001 - the task reports it; what matters is the queue
                pass
            assert await shop.pending() == {"NEW": ("pending", None)}

    run(scenario)


# ------------------------------------------------------------------ orders, refunds


ORDERS = "GET /wp-json/wc/v3/orders"
REFUNDS = "GET /wp-json/wc/v3/orders/{id}/refunds"
# Quantities the client passes on as numbers and the engine must refuse: non-finite, absurd,
# finer than QuickBooks keeps. (Words are the client's to reject: its parsers are being hardened
# separately; whatever they hand over as a number is checked here.)
NOT_A_LINE_QUANTITY = st.one_of(
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            "NaN",
            "Infinity",
            "-Infinity",
            "sNaN",
            1e300,
            "1e30",
            10**7,
            "0.0000001",
            10**40,
        ]
    ),
    st.floats(min_value=1e6 + 1, allow_infinity=True),
    st.integers(min_value=10**6 + 1, max_value=10**40),
)


def line_quantity_of(order_id: int, value: Any) -> Callable[[Any], Any]:
    def rewrite(data: Any) -> Any:
        for order in data:
            if order.get("id") == order_id:
                order["line_items"][0]["quantity"] = value
        return data

    return rewrite


async def import_orders(shop: Shop) -> Any:
    from connex_tui.engine.order_import import OrderImporter

    from .conftest import make_config

    return await OrderImporter(shop.db, shop.client, make_config(shop.folder)).run()


async def orders_by_number(shop: Shop) -> dict[str, tuple[str, str | None]]:
    rows = await shop.db.fetchall("SELECT number, qb_state, error FROM orders ORDER BY id")
    return {row[0]: (row[1], row[2]) for row in rows}


@given(value=NOT_A_LINE_QUANTITY)
@HYPOTHESIS
def test_an_order_with_a_bad_line_fails_alone_and_the_orders_behind_it_come_in(value: Any) -> None:
    async def scenario(folder: Path) -> None:
        async with Shop(folder) as shop:
            shop.emu.add_product("WINE", 100)
            first = shop.emu.place_order([("WINE", 1)], number="A1")
            bad = shop.emu.place_order([("WINE", 2)], number="A2")
            shop.emu.place_order([("WINE", 3)], number="A3")
            shop.emu.faults.add(ORDERS, rewrite=line_quantity_of(bad, value), times=100)
            outcome = await import_orders(shop)
            orders = await orders_by_number(shop)
            assert outcome.imported == 3, (value, orders)
            assert orders["A1"] == ("new", None) and orders["A3"] == ("new", None), orders
            assert orders["A2"][0] == "failed" and "line 1 (WINE)" in orders["A2"][1], orders
            assert "quantity" in orders["A2"][1], orders
            assert await shop.db.get_meta("orders.watermark") is not None
            # Polling again is quiet: nothing fails, nothing is imported twice.
            assert (await import_orders(shop)).imported == 0
            # It cannot be re-queued as it is (it would post without the line, or with a million
            # units); a good failed order can.
            from connex_tui.engine.admin_commands import requeue_order

            bad_id = await shop.db.fetchval("SELECT id FROM orders WHERE number = 'A2'")
            if await shop.db.fetchval("SELECT count(*) FROM order_lines WHERE order_id = ?", (bad_id,)):
                # The engine caught it (the client passed the number on): the line is kept as it
                # came, and re-queueing is refused. (The client catching it keeps no lines.)
                assert not await requeue_order(shop.db, bad_id)
                assert (await orders_by_number(shop))["A2"][0] == "failed"
            good_id = await shop.db.fetchval("SELECT id FROM orders WHERE store_id = ?", (str(first),))
            async with shop.db.transaction() as conn:
                await conn.execute("UPDATE orders SET qb_state = 'failed' WHERE id = ?", (good_id,))
            assert await requeue_order(shop.db, good_id)

    run(scenario)


def test_restock_meta_of_absurd_size_fails_that_order_s_restock_only(tmp_path: Path) -> None:
    """WooCommerce keeps restocked units as a running total in the order's line meta
    (`_restock_refunded_items`, see the emulator). One order's total reads "1e30": that order gets
    no credit memo of 10**30 units, the other order's restock becomes its credit memo as usual."""

    def huge_restock(data: Any) -> Any:
        for order in data:
            if order.get("number") == "B1":
                for line in order["line_items"]:
                    for meta in line["meta_data"]:
                        if meta["key"] == "_restock_refunded_items":
                            meta["value"] = "1e30"
        return data

    async def scenario(folder: Path) -> None:
        async with Shop(folder) as shop:
            shop.emu.add_product("WINE", 100)
            order = shop.emu.place_order([("WINE", 3)], number="B1")
            other = shop.emu.place_order([("WINE", 2)], number="B2")
            shop.emu.refund(order, [("WINE", 1)])
            shop.emu.refund(other, [("WINE", 1)])
            shop.emu.faults.add(ORDERS, rewrite=huge_restock, times=1000)
            await import_orders(shop)
            await import_orders(shop)  # read again: nothing new, nothing fails
            rows = await shop.db.fetchall(
                "SELECT o.number, o.qb_state, o.qb_kind, coalesce(sum(l.quantity), 0) FROM orders o"
                " LEFT JOIN order_lines l ON l.order_id = o.id GROUP BY o.id ORDER BY o.number"
            )
            got = {r[0]: (r[1], r[2], str(r[3])) for r in rows}
            memos = {n: v for n, v in got.items() if v[1] == "credit_memo"}
            assert got["B2"][0] == "new" and [v for n, v in memos.items() if n.startswith("B2")] == [
                ("new", "credit_memo", "1")
            ], got
            assert not any(v[0] == "new" and n.startswith("B1") for n, v in memos.items()), got
            assert all(float(v[2]) < 1000 for v in got.values()), got

    run(scenario)


class OrdersDouble:
    """A store whose client hands the engine whatever it parsed (mocks below the engine boundary:
    the orders task's own handling is the subject)."""

    platform = "double"
    batch_limit = 10

    def __init__(self, orders: list[Any]) -> None:
        from connex_tui.storefronts.base import RequestStats

        self.orders = orders
        self.stats = RequestStats()

    async def list_orders(self, modified_since: Any) -> list[Any]:
        return self.orders

    async def catalog(self) -> list[Any]:
        return []

    async def set_stock(self, updates: Any) -> list[Any]:
        return []

    async def close(self) -> None:
        pass


def test_an_unreadable_order_or_refund_fails_alone_and_the_watermark_moves_on(tmp_path: Path) -> None:
    from connex_tui.engine.order_import import OrderImporter
    from connex_tui.storefronts.base import StoreLine, StoreOrder, StoreRefund

    from .conftest import make_config

    def order(n: int, status: Any = "processing", refunds: tuple[Any, ...] = ()) -> StoreOrder:
        return StoreOrder(
            store_id=str(n),
            number=f"C{n}",
            status=status,
            modified_at=f"2025-06-01T12:0{n}:00+00:00",
            lines=(StoreLine("WINE", Decimal(1), Decimal("9.50")),),
            refunds=refunds,
        )

    infinite = StoreRefund("r9", (StoreLine("WINE", Decimal("Infinity"), Decimal("9.50")),))
    fine = StoreRefund("r8", (StoreLine("WINE", Decimal(1), Decimal("9.50")),))
    orders = [order(1), order(2, status=None), order(3, refunds=(infinite, fine)), order(4)]

    async def scenario(folder: Path) -> None:
        db = await Database.open(folder / "connex.db")
        try:
            outcome = await OrderImporter(db, OrdersDouble(orders), make_config(tmp_path)).run()
            rows = await db.fetchall("SELECT number, qb_state, error FROM orders ORDER BY number")
            got = {row[0]: (row[1], row[2]) for row in rows}
            assert outcome.imported == 3
            assert got["C1"][0] == got["C3"][0] == got["C4"][0] == "new"
            assert got["C2"][0] == "failed" and "could not be read" in got["C2"][1]
            assert got["C3-Rr9"][0] == "failed" and "not a finite number" in got["C3-Rr9"][1]
            assert got["C3-Rr8"] == ("new", None)
            assert await db.get_meta("orders.watermark") == "2025-06-01T12:04:00+00:00"
        finally:
            await db.close()

    run(scenario)


# ------------------------------------------------------------------ the catalog


def stock_of(sku: str, value: Any) -> Callable[[Any], Any]:
    def rewrite(data: Any) -> Any:
        for product in data:
            if product.get("sku") == sku:
                product["stock_quantity"] = value
        return data

    return rewrite


@given(
    value=st.one_of(
        st.sampled_from([1e300, -1e300, 10**20, -(10**20), 2**63, 3e9]), st.integers(min_value=2**31, max_value=10**40)
    )
)
@HYPOTHESIS
def test_an_absurd_stock_on_the_store_fails_that_sku_and_the_refresh_completes(value: Any) -> None:
    async def scenario(folder: Path) -> None:
        from connex_tui.engine.catalog import lookup, refresh_catalog

        async with Shop(folder) as shop:
            for sku in ("A", "B", "C"):
                shop.emu.add_product(sku, 4)
            shop.emu.faults.add("GET /wp-json/wc/v3/products", rewrite=stock_of("B", value), times=1)
            assert await refresh_catalog(shop.db, shop.client) == 3
            entries = await lookup(shop.db, ["A", "B", "C"])
            assert [getattr(entries[k], "quantity", None) for k in "AC"] == [4, 4]
            assert isinstance(entries["B"], str) and "B" in entries["B"]  # the reason pushes to B fail with
            # Pushes to B fail with that reason; the others go on.
            await shop.queue(A=6, B=6)
            outcome = await InventoryPusher(shop.db, shop.client).push_once()
            assert outcome.pushed == 1 and outcome.failed == 1 and shop.emu.stock("A") == 6
            row = await shop.db.fetchone("SELECT state, last_error FROM pending WHERE sku = 'B'")
            assert row is not None and row[0] == "failed" and "stock" in row[1]

    run(scenario)


def test_a_non_finite_stock_from_a_client_fails_that_sku_only(tmp_path: Path) -> None:
    from connex_tui.engine.catalog import lookup, refresh_catalog
    from connex_tui.storefronts.base import CatalogEntry

    class Catalog(OrdersDouble):
        async def catalog(self) -> list[Any]:
            return [
                CatalogEntry("A", "1", quantity=2),
                CatalogEntry("B", "2", quantity=math.inf),  # type: ignore[arg-type]
                CatalogEntry("C", "3", quantity=math.nan),
                CatalogEntry("D", "4", quantity="7"),
            ]  # type: ignore[arg-type]

    async def scenario(folder: Path) -> None:
        db = await Database.open(folder / "connex.db")
        try:
            assert await refresh_catalog(db, Catalog([])) == 4
            entries = await lookup(db, ["A", "B", "C", "D"])
            assert [getattr(entries[k], "quantity", None) for k in "AD"] == [2, 7]
            assert "not a finite number" in str(entries["B"]) and "not a finite number" in str(entries["C"])
        finally:
            await db.close()

    run(scenario)


# ------------------------------------------------------------------ Shopify


def test_a_nan_in_a_shopify_mutation_answer_leaves_nothing_in_flight(tmp_path: Path) -> None:
    """Shopify's inventorySetQuantities answer with NaN as one item's quantityAfterChange. Shopify
    applied the mutation (all or nothing): every SKU is recorded (W4 at worst waits with the
    reason), none stays in flight, the store holds every value."""
    import aiohttp

    from connex_tui.sim.shopify import ShopifyEmulator
    from connex_tui.storefronts.shopify import ShopifyClient

    async def scenario(folder: Path) -> None:
        shop = ShopifyEmulator()
        await shop.start()
        items = shop.add_product("Wine", {f"W{n}": 1 for n in range(6)})
        bad = items["W4"]

        mutations: list[int] = []

        def nan_for_bad(data: Any) -> Any:
            group = ((data.get("data") or {}).get("inventorySetQuantities") or {}).get("inventoryAdjustmentGroup")
            if group is not None:
                mutations.append(len(group.get("changes") or []))
            for change in (group or {}).get("changes") or []:
                if (change.get("item") or {}).get("id") == bad:
                    change["quantityAfterChange"] = math.nan
            return data

        shop.faults.add(f"POST /admin/api/{shop.api_version}/graphql.json", rewrite=nan_for_bad, times=1000)
        db = await Database.open(folder / "connex.db")
        async with aiohttp.ClientSession() as http:
            client = ShopifyClient(
                shop.url, shop.access_token, shop.location_id, session=http, policy=FAST, api_version=shop.api_version
            )
            try:
                async with db.transaction() as conn:
                    await queue_stock(conn, {f"W{n}": Decimal(10 + n) for n in range(6)}, db.clock.stamp())
                outcome = await InventoryPusher(db, client).push_once()
                rows = await db.fetchall("SELECT sku, state, last_error FROM pending")
                # The client reads the rest of the answer and reports W4's line as unusable, or
                # raises and the engine splits the batch: either way nothing stays in flight.
                assert outcome.taken == 6 and outcome.pushed + outcome.failed + outcome.retrying == 6, outcome
                assert all(r[1] != "in_flight" for r in rows), [tuple(r) for r in rows]
                assert [r[0] for r in rows] in ([], ["W4"]), [tuple(r) for r in rows]
                assert [shop.available(f"W{n}") for n in range(6)] == [10, 11, 12, 13, 14, 15]
                assert mutations and mutations[0] == 6
            finally:
                await db.close()
                await shop.stop()

    run(scenario)
