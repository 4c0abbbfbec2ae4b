"""The Shopify client against answers as Shopify really gives them: the version it serves, search
warnings, idempotency failures, the 60-day order window, and numbers that make no sense."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connex_tui.engine.db import Database
from connex_tui.engine.order_import import OrderImporter
from connex_tui.engine.sync_tasks import SyncTasks
from connex_tui.sim.shopify import ShopifyEmulator
from connex_tui.storefronts.base import CatalogEntry, StockUpdate, StorefrontError
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.shopify import ShopifyClient

from .clocks import VirtualTime
from .conftest import make_config
from .store_fixtures import Wall, make_shop, shopify_schemas  # noqa: F401 - fixtures

TOKEN = "shpat_test"
LOCATION = "gid://shopify/Location/1"
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=5.0)
FIXTURES = Path(__file__).with_name("fixtures") / "shopify"


def client_for(shop: ShopifyEmulator, http: aiohttp.ClientSession, **kwargs: Any) -> ShopifyClient:
    assert shop.url is not None
    return ShopifyClient(shop.url, TOKEN, LOCATION, session=http, policy=FAST, **kwargs)


async def push(
    client: ShopifyClient, items: dict[str, str], wanted: dict[str, int], known: dict[str, int]
) -> list[Any]:
    updates = [StockUpdate(s, q, CatalogEntry(sku=s, item_id=items[s], quantity=known[s])) for s, q in wanted.items()]
    return await client.set_stock(updates)


# ------------------------------------------------------------------------------ versions


async def test_a_retired_version_is_served_by_another_and_its_mutation_shape_is_used(
    make_shop: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # Shopify no longer supports 2025-07: it answers with the oldest supported version, 2026-04,
    # which rejects the 2025-07 mutation shape (no @idempotent, ignoreCompareQuantity).
    shop = await make_shop(versions=("2026-04", "2026-07", "2026-10"))
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 3})
    client = client_for(shop, http, api_version="2025-07")
    results = await push(client, items, {"RED": 9, "WHITE": 1}, {"RED": 5, "WHITE": 3})
    assert [(r.sku, r.ok, r.before, r.after) for r in results] == [("RED", True, 5, 9), ("WHITE", True, 3, 1)]
    assert (shop.available("RED"), shop.available("WHITE")) == (9, 1)
    assert client.served_version == "2026-04" and client.idempotent
    assert shop.served["2025-07->2026-04"] == 2  # the probe, then the mutation
    assert client.stats.notice == (
        "Shopify serves API version 2026-04, not the configured 2025-07 (retired or unknown);"
        " set api_version to 2026-04 or newer"
    )
    # the dashboard's store line is the last task result: the notice rides on it
    db = await Database.open(tmp_path / "connex.db")
    try:
        result = await SyncTasks(db, client, make_config(tmp_path)).orders()
        assert result.summary.endswith("; " + client.stats.notice)
    finally:
        await db.close()


async def test_a_shop_that_serves_2025_10_gets_the_old_shape(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop(api_version="2025-10", versions=("2025-10",))
    items = shop.add_product("Wine", {"RED": 5})
    client = client_for(shop, http, api_version="2025-10")
    [result] = await push(client, items, {"RED": 7}, {"RED": 5})
    assert result.ok and shop.available("RED") == 7
    assert not client.idempotent and client.stats.notice == ""


async def test_a_failed_attempt_is_sent_again_with_a_new_idempotency_key(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()
    items = shop.add_product("Wine", {"RED": 5})
    client = client_for(shop, http)
    shop.fail_mutations(1)  # fails inside Shopify after taking the key, answered 503
    [result] = await push(client, items, {"RED": 2}, {"RED": 5})
    assert result.ok and shop.available("RED") == 2
    # the 503's retry reused the key (IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED), then a new key went through
    assert shop.operations["mutation:inventorySetQuantities"] == 3
    assert client.stats.retries == 1


# ------------------------------------------------------------------------------ searches


async def test_orders_are_searched_with_documented_filters_only(make_shop: Any, http: aiohttp.ClientSession) -> None:
    wall = Wall()
    shop = await make_shop(now=wall)
    shop.add_product("Wine", {"RED": 50})
    kept = shop.place_order([("RED", 1)])
    cancelled = shop.place_order([("RED", 1)])
    shop.cancel_order(cancelled)
    client = client_for(shop, http)
    orders = await client.list_orders(wall.moment - timedelta(hours=1))
    assert {o.store_id for o in orders} == {kept, cancelled}  # cancelled ones too, without `status:any`


async def test_a_search_warning_is_an_error_with_shopifys_message(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    shop.add_product("Wine", {"RED": 50})
    shop.place_order([("RED", 1)])
    # what Shopify answers for `status:any` (the emulator's own search check, then the client's)
    body = shop.execute_document('{ orders(first: 5, query: "status:any") { nodes { id } } }')
    assert body["extensions"]["search"] == [
        {
            "path": ["orders"],
            "query": "status:any",
            "parsed": {"field": "status", "match_all": "any"},
            "warnings": [
                {"field": "status", "message": "Input `any` is not an accepted value.", "code": "invalid_value"}
            ],
        }
    ]
    # an unknown field is dropped from the AND and the rest still applies (live capture, see the emulator)
    dropped = shop.execute_document('{ orders(first: 5, query: "staff_member:Kat sku:RED") { nodes { id } } }')
    assert len(dropped["data"]["orders"]["nodes"]) == 1
    assert dropped["extensions"]["search"][0]["warnings"] == [
        {"field": "staff_member", "message": "Invalid search field for this query.", "code": "invalid_field"}
    ]
    shop.rewrite = lambda answer: (
        answer | {"extensions": answer["extensions"] | {"search": body["extensions"]["search"]}}
    )
    client = client_for(shop, http)
    with pytest.raises(
        StorefrontError, match="the search was not understood: status: Input `any` is not an accepted value."
    ):
        await client.list_orders(None)


# ------------------------------------------------------------------------------ 60 days


async def test_without_read_all_orders_the_client_says_so_once(make_shop: Any, http: aiohttp.ClientSession) -> None:
    wall = Wall()
    shop = await make_shop(now=wall, read_all_orders=False)
    shop.add_product("Wine", {"RED": 50})
    old = shop.place_order([("RED", 2)], created_at=wall.moment - timedelta(days=70))
    shop.refund(old, [("RED", 1)])  # a refund on an order Shopify will not show us
    recent = shop.place_order([("RED", 1)])
    client = client_for(shop, http)
    assert [o.store_id for o in await client.list_orders(None)] == [recent]
    await client.list_orders(None)
    assert client.read_all_orders is False
    assert client.notices == [
        "this app may read only the last 60 days of Shopify orders: refunds and cancellations of older"
        " orders cannot reach QuickBooks until it is given read_all_orders"
    ]


# ------------------------------------------------------------------------------ bad numbers


def _tamper_line(order_number: str, field: str, value: Any) -> Any:
    def rewrite(body: dict[str, Any]) -> dict[str, Any]:
        for node in ((body.get("data") or {}).get("orders") or {}).get("nodes") or []:
            if node["name"] == order_number:
                node["lineItems"]["nodes"][0][field] = value
        return body

    return rewrite


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (math.nan, "quantity is nan"),
        (math.inf, "quantity is inf"),
        (2.5, "quantity is 2.5, not a whole number"),
        ("3", "quantity is '3', not a number"),
        (10**12, "quantity is 1000000000000, beyond any real count"),
        (-1, "quantity is -1, below zero"),
    ],
)
async def test_a_bad_line_quantity_fails_that_order_only(
    make_shop: Any, http: aiohttp.ClientSession, tmp_path: Path, value: Any, reason: str
) -> None:
    wall = Wall()
    shop = await make_shop(now=wall)
    shop.add_product("Wine", {"RED": 50})
    for _ in range(3):
        shop.place_order([("RED", 1)])
        wall.moment += timedelta(minutes=1)
    shop.rewrite = _tamper_line("#1002", "quantity", value)
    client = client_for(shop, http)
    db = await Database.open(tmp_path / "connex.db")
    try:
        outcome = await OrderImporter(db, client, make_config(tmp_path)).run()
        assert outcome.imported == 3
        rows = await db.fetchall("SELECT number, qb_state, error FROM orders ORDER BY number")
    finally:
        await db.close()
    assert [(r[0], r[1]) for r in rows] == [("1001", "new"), ("1002", "failed"), ("1003", "new")]
    assert rows[1][2] == f"Shopify order 1002: line 1 (RED) {reason}"


async def test_a_bad_price_or_refund_quantity_fails_that_order(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    shop.add_product("Wine", {"RED": 50})
    priced = shop.place_order([("RED", 1)])
    refunded = shop.place_order([("RED", 3)])
    shop.refund(refunded, [("RED", 1)])

    def rewrite(body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data") or {}
        for node in (data.get("orders") or {}).get("nodes") or []:
            if node["id"] == priced:
                node["lineItems"]["nodes"][0]["discountedUnitPriceAfterAllDiscountsSet"]["shopMoney"]["amount"] = "NaN"
        for node in (data.get("orders") or {}).get("nodes") or []:
            for refund in node.get("refunds") or []:
                refund["refundLineItems"]["nodes"][0]["quantity"] = "1"
        return body

    shop.rewrite = rewrite
    orders = {o.store_id: o for o in await client_for(shop, http).list_orders(None)}
    assert orders[priced].problem == "Shopify order 1001: line 1 (RED) unit price is 'NaN'"
    assert orders[refunded].problem.startswith("Shopify order 1002: refund gid://shopify/Refund/")
    assert orders[refunded].problem.endswith("quantity of RED is '1', not a number")


async def test_bad_stock_numbers_in_the_catalog_leave_that_stock_unknown(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()
    shop.add_product("Wine", {"A": 1, "B": 2, "C": 3, "D": 4})
    bad = {"A": math.nan, "B": "7", "C": 1.5}

    def rewrite(body: dict[str, Any]) -> dict[str, Any]:
        for node in ((body.get("data") or {}).get("productVariants") or {}).get("nodes") or []:
            if node["sku"] in bad:
                node["inventoryItem"]["inventoryLevel"]["quantities"][0]["quantity"] = bad[node["sku"]]
        return body

    shop.rewrite = rewrite
    catalog = {e.sku: e.quantity for e in await client_for(shop, http).catalog()}
    assert catalog == {"A": None, "B": None, "C": None, "D": 4}


async def test_bad_numbers_in_a_mutation_answer_do_not_fail_the_batch(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 3})

    def rewrite(body: dict[str, Any]) -> dict[str, Any]:
        payload = (body.get("data") or {}).get("inventorySetQuantities")
        if payload and payload.get("inventoryAdjustmentGroup"):
            payload["inventoryAdjustmentGroup"]["changes"][0]["delta"] = math.inf
            body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] = math.nan
        return body

    shop.rewrite = rewrite
    client = client_for(shop, http)
    results = await push(client, items, {"RED": 9, "WHITE": 1}, {"RED": 5, "WHITE": 3})
    assert [(r.sku, r.ok, r.before, r.after) for r in results] == [("RED", True, 5, 9), ("WHITE", True, 3, 1)]
    assert client.budget.known and math.isfinite(client.budget.available)


# ------------------------------------------------------------------------------ recorded answers


@pytest.mark.parametrize("name", ["access_denied", "throttled", "max_cost_exceeded"])
async def test_recorded_error_answers_are_plain_errors(make_shop: Any, http: aiohttp.ClientSession, name: str) -> None:
    """Bodies as recorded from real shops (see tests/fixtures/shopify/README.md for their sources)."""
    recorded = json.loads((FIXTURES / f"{name}.json").read_text())
    clock = VirtualTime(5000.0)
    shop = await make_shop(clock=clock)
    shop.add_product("Wine", {"RED": 5})
    client = client_for(shop, http, clock=clock, sleep=clock.sleep)
    await client.catalog()  # the probe first, untouched
    shop.rewrite = lambda body: recorded["body"]
    with pytest.raises(StorefrontError, match=recorded["client_says"]):
        await client.catalog()
