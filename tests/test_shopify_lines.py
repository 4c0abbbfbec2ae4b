"""Shopify orders as the engine posts them: quantities, prices after discounts, and every unit that
goes back on our shelf as one credit memo, whatever the order of events.

Invariant (the contract with the engine): for each SKU, the units posted on the sale minus the units
in its credit memos equal what the order took from our location's available stock. Each case runs
against the emulator over real HTTP, through the engine's order import, into a real SQLite file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connex_tui.engine.db import Database
from connex_tui.engine.order_import import OrderImporter
from connex_tui.sim.shopify import ShopifyEmulator
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.shopify import ShopifyClient

from .conftest import make_config
from .store_fixtures import Wall, make_shop, shopify_schemas  # noqa: F401 - fixtures

TOKEN = "shpat_test"
LOCATION = "gid://shopify/Location/1"
ELSEWHERE = "gid://shopify/Location/2"
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=5.0)


class Harness:
    def __init__(self, shop: ShopifyEmulator, db: Database, importer: OrderImporter, wall: Wall) -> None:
        self.shop, self.db, self.importer, self.wall = shop, db, importer, wall

    async def run(self) -> str:
        self.wall.moment += timedelta(minutes=10)  # past the importer's overlap window
        return str(await self.importer.run())

    async def posted(self, sku: str) -> tuple[Decimal, Decimal, int]:
        """(units on sales, units on credit memos, credit memos) for `sku`; a sale skipped because it
        was cancelled before it reached QuickBooks posts nothing."""
        rows = await self.db.fetchall(
            "SELECT o.qb_kind, l.quantity FROM orders o JOIN order_lines l ON l.order_id = o.id"
            " WHERE l.sku = ? AND o.qb_state != 'skipped'",
            (sku,),
        )
        sold = sum((Decimal(r[1]) for r in rows if r[0] != "credit_memo"), Decimal(0))
        returned = sum((Decimal(r[1]) for r in rows if r[0] == "credit_memo"), Decimal(0))
        memos = await self.db.fetchval(
            "SELECT count(DISTINCT o.id) FROM orders o JOIN order_lines l ON l.order_id = o.id"
            " WHERE o.qb_kind = 'credit_memo' AND l.sku = ?",
            (sku,),
        )
        return sold, returned, int(memos)


@pytest.fixture
async def harness(make_shop: Any, http: aiohttp.ClientSession, tmp_path: Path) -> Any:
    wall = Wall()
    shop = await make_shop(now=wall)
    shop.add_product("Wine", {"RED": 20, "WHITE": 20})
    client = ShopifyClient(shop.url, TOKEN, LOCATION, session=http, policy=FAST)
    db = await Database.open(tmp_path / "connex.db")
    importer = OrderImporter(db, client, make_config(tmp_path))
    yield Harness(shop, db, importer, wall)
    await db.close()


Step = Callable[[Harness, str], Awaitable[None]]


async def _import(h: Harness, order: str) -> None:
    await h.run()


async def _post(h: Harness, order: str) -> None:
    """What a Web Connector session does to the imported sale: QuickBooks has it now."""
    await h.run()
    await h.db.conn.execute("UPDATE orders SET qb_state = 'posted' WHERE qb_kind != 'credit_memo'")


def _refund(quantity: int, **options: Any) -> Step:
    async def step(h: Harness, order: str) -> None:
        h.wall.moment += timedelta(minutes=1)
        h.shop.refund(order, [("RED", quantity)], **options)

    return step


def _edit(to: int) -> Step:
    async def step(h: Harness, order: str) -> None:
        h.wall.moment += timedelta(minutes=1)
        h.shop.edit_order(order, {"RED": to})

    return step


def _cancel(**options: Any) -> Step:
    async def step(h: Harness, order: str) -> None:
        h.wall.moment += timedelta(minutes=1)
        h.shop.cancel_order(order, **options)

    return step


CASES: dict[str, tuple[list[Step], int]] = {
    # name: (what happens after the order of 5 RED, credit memos expected)
    "refund with restock, imported before it": ([_import, _refund(2)], 1),
    "refund with restock, imported after it": ([_refund(2)], 1),
    "refund without restock": ([_import, _refund(2, restock=False)], 0),
    "refund restocked at another location": ([_import, _refund(2, location=ELSEWHERE)], 0),
    "order edit removing units, imported before it": ([_import, _edit(3)], 1),
    "order edit removing units, imported after it": ([_edit(3)], 1),
    "cancelled with restock after it was posted": ([_post, _cancel()], 1),
    "cancelled without restock after it was posted": ([_post, _cancel(restock=False)], 0),
    "cancelled after it was imported, before it was posted": ([_import, _cancel()], 0),
    "refund, edit and cancellation": ([_post, _refund(1), _edit(2), _import, _cancel()], 3),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_units_posted_minus_units_returned_is_what_left_our_shelf(harness: Harness, case: str) -> None:
    steps, memos = CASES[case]
    order = harness.shop.place_order([("RED", 5), ("WHITE", 1)])
    for step in steps:
        await step(harness, order)
    await harness.run()
    await harness.run()  # reading everything again changes nothing
    sold, returned, memo_count = await harness.posted("RED")
    taken = 20 - harness.shop.available("RED")
    assert sold - returned == taken, (sold, returned, taken)
    assert sold in (0, 5)  # the sale is posted with every unit ordered (or not at all)
    assert memo_count == memos


async def test_cancelled_before_it_was_imported_is_never_posted(harness: Harness) -> None:
    order = harness.shop.place_order([("RED", 5)])
    harness.shop.cancel_order(order)
    await harness.run()
    assert await harness.posted("RED") == (Decimal(0), Decimal(0), 0)
    assert harness.shop.available("RED") == 20


async def test_price_is_the_unit_price_after_all_discounts(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    shop.add_product("Wine", {"RED": 20}, price="12.50")
    order = shop.place_order([("RED", 4, "2.25")])  # 2.25 off each unit (line and order discounts)
    shop.refund(order, [("RED", 1)])
    client = ShopifyClient(shop.url, TOKEN, LOCATION, session=http, policy=FAST)
    [data] = await client.list_orders(None)
    line = data.lines[0]
    assert (line.sku, line.quantity, line.price) == ("RED", Decimal(4), Decimal("10.25"))
    # the credit memo gives back what was paid for the unit, the same price
    assert [(l.sku, l.quantity, l.price) for l in data.refunds[0].lines] == [("RED", Decimal(1), Decimal("10.25"))]


async def test_refund_ids_are_stable_and_edits_are_named_by_their_agreement(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()
    shop.add_product("Wine", {"RED": 20})
    order = shop.place_order([("RED", 5)])
    refund_id = shop.refund(order, [("RED", 1)])
    edit_id = shop.edit_order(order, {"RED": 2})
    client = ShopifyClient(shop.url, TOKEN, LOCATION, session=http, policy=FAST)
    first = (await client.list_orders(None))[0].refunds
    again = (await client.list_orders(None))[0].refunds
    assert [r.refund_id for r in first] == [r.refund_id for r in again] == [refund_id, edit_id]
    assert edit_id.startswith("gid://shopify/OrderEditAgreement/")
    assert [[(l.sku, l.quantity) for l in r.lines] for r in first] == [[("RED", Decimal(1))], [("RED", Decimal(2))]]
