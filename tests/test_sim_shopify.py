"""The Shopify Admin GraphQL emulator, driven over real HTTP with hand-written documents."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import aiohttp

from connex_tui.sim.shopify import ShopifyEmulator

from .clocks import VirtualTime
from .store_fixtures import Wall, make_shop, shopify_schemas  # noqa: F401 - fixtures

TOKEN = "shpat_test"
LOCATION = "gid://shopify/Location/1"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"

SET_2025 = """
mutation Set($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup {
      id reason
      changes(quantityNames: ["available"]) { name delta quantityAfterChange item { id } location { id } }
    }
    userErrors { code field message }
  }
}
"""

SET_IDEMPOTENT = """
mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id changes(quantityNames: ["available"]) { name delta quantityAfterChange item { id } } }
    userErrors { code field message }
  }
}
"""

SET_NO_KEY = """
mutation Set($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

ORDERS = """
query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    edges { cursor node { id name updatedAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def gql(
    http: aiohttp.ClientSession,
    shop: ShopifyEmulator,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = TOKEN,
    version: str | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"X-Shopify-Access-Token": token} if token is not None else {}
    url = f"{shop.url}/admin/api/{version or shop.api_version}/graphql.json"
    async with http.post(url, json={"query": query, "variables": variables or {}}, headers=headers) as resp:
        return resp.status, json.loads(await resp.read())


def quantities(items: dict[str, str], values: dict[str, int], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"inventoryItemId": items[sku], "locationId": LOCATION, "quantity": quantity, **extra}
        for sku, quantity in values.items()
    ]


# ------------------------------------------------------------------------------ HTTP and auth


async def test_wrong_or_missing_token_gets_401_with_shopifys_body(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    for token in (None, "shpat_wrong"):
        status, body = await gql(http, shop, '{ location(id: "gid://shopify/Location/1") { id } }', token=token)
        assert status == 401
        assert body == {"errors": INVALID_TOKEN}
    assert shop.counters[shop.route] == 2
    assert not shop.operations


async def test_a_retired_version_is_served_by_the_oldest_supported_one(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop(api_version="2026-10", versions=("2026-04", "2026-07", "2026-10"))
    url = f"{shop.url}/admin/api/2025-07/graphql.json"
    query = {"query": '{ location(id: "gid://shopify/Location/1") { id } }'}
    async with http.post(url, json=query, headers={"X-Shopify-Access-Token": TOKEN}) as resp:
        assert resp.status == 200
        assert resp.headers["X-Shopify-API-Version"] == "2026-04"
        assert (await resp.json())["data"] == {"location": {"id": "gid://shopify/Location/1"}}
    async with http.post(
        url.replace("2025-07", "2026-07"), json=query, headers={"X-Shopify-Access-Token": TOKEN}
    ) as resp:
        assert resp.headers["X-Shopify-API-Version"] == "2026-07"
    assert shop.served == {"2025-07->2026-04": 1, "2026-07->2026-07": 1}


async def test_a_version_that_never_existed_is_404(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    for version in ("2026-05", "2099-01", "latest"):
        status, body = await gql(http, shop, '{ location(id: "x") { id } }', version=version)
        assert (status, body) == (404, {"errors": "Not Found"}), version


async def test_request_without_query_is_400(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    async with http.post(
        f"{shop.url}{shop.endpoint}", data=b"not json", headers={"X-Shopify-Access-Token": TOKEN}
    ) as resp:
        assert resp.status == 400
        assert "errors" in json.loads(await resp.read())


# ------------------------------------------------------------------------------ validation


async def test_syntax_error_is_200_with_errors_and_no_data(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    status, body = await gql(http, shop, "{ orders(first: 1) { nodes { id }")
    assert status == 200
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"].startswith("Syntax Error")
    assert error["locations"] == [{"line": 1, "column": 34}]
    assert error["extensions"]["code"]


async def test_unknown_field_is_a_validation_error(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    status, body = await gql(http, shop, "{ productVariants(first: 1) { nodes { id barcodeX } } }")
    assert status == 200
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == "Field 'barcodeX' doesn't exist on type 'ProductVariant'"
    assert error["extensions"] == {"code": "undefinedField", "typeName": "ProductVariant", "fieldName": "barcodeX"}
    assert error["locations"] == [{"line": 1, "column": 42}]
    assert not shop.operations  # nothing ran, nothing charged
    assert shop.throttle_status()["currentlyAvailable"] == 2000


async def test_wrong_variable_type_is_an_error(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    _, body = await gql(http, shop, "query($n: Int!) { orders(first: $n) { nodes { id } } }", {"n": "ten"})
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"


async def test_first_over_250_is_refused(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    _, body = await gql(http, shop, "{ productVariants(first: 251) { nodes { id } } }")
    assert "data" not in body
    [error] = body["errors"]
    assert "first" in error["message"] and "251" in error["message"] and "250" in error["message"]
    _, body = await gql(
        http,
        shop,
        "query($n: Int) { orders(first: 5) { nodes { lineItems(first: $n) { nodes { id } } } } }",
        {"n": 300},
    )
    assert "exceeds the maximum of 250" in body["errors"][0]["message"]
    _, body = await gql(http, shop, "{ orders { nodes { id } } }")
    assert body["errors"][0]["message"] == "you must provide one of first or last"


async def test_input_of_251_quantities_is_refused(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop(api_version="2025-10")  # ignoreCompareQuantity: up to 2026-01
    items = shop.add_product("Many", {f"S{i}": 1 for i in range(251)})
    data = {
        "name": "available",
        "reason": "correction",
        "ignoreCompareQuantity": True,
        "quantities": quantities(items, {sku: 5 for sku in items}),
    }
    _, body = await gql(http, shop, SET_2025, {"input": data})
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == "The input array size of 251 is greater than the maximum allowed of 250."
    assert error["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    assert shop.available("S0") == 1
    assert shop.operations["mutation:inventorySetQuantities"] == 0


async def test_max_cost_exceeded(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    query = """{ productVariants(first: 250) { nodes { id product { id } inventoryItem { id
        inventoryLevel(locationId: "gid://shopify/Location/1") {
          quantities(names: ["available"]) { quantity } } } } } }"""
    _, body = await gql(http, shop, query)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["message"].startswith("Query cost is 1252, which exceeds the single query max cost limit (1000).")
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1252
    assert "data" not in body


# ------------------------------------------------------------------------------ cost and throttling


async def test_cost_extension_charges_requested_and_refunds_to_actual(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    clock = VirtualTime(1000.0)
    shop = await make_shop(api_version="2025-10", clock=clock)
    shop.add_product("Wine", {"RED": 1, "WHITE": 2, "ROSE": 3})
    query = """{ productVariants(first: 10) { nodes { sku inventoryItem { id } }
                 edges { cursor } pageInfo { hasNextPage } } }"""
    _, body = await gql(http, shop, query)
    assert [node["sku"] for node in body["data"]["productVariants"]["nodes"]] == ["RED", "WHITE", "ROSE"]
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 10 * 2  # connection 2 + first x (variant + inventoryItem)
    assert cost["actualQueryCost"] == 2 + 3 * 2
    assert cost["throttleStatus"] == {"maximumAvailable": 2000.0, "currentlyAvailable": 1992, "restoreRate": 100.0}
    # a mutation field costs 10, plus its payload's selection: group 1 + changes 1 x (change, item,
    # location) + userErrors 1 = 15 requested; no userErrors came back: 14 actual
    items = {"RED": shop.add_product("X", {"X1": 0})["X1"]}
    data = {
        "name": "available",
        "reason": "correction",
        "ignoreCompareQuantity": True,
        "quantities": quantities(items, {"RED": 4}),
    }
    _, body = await gql(http, shop, SET_2025, {"input": data})
    assert body["extensions"]["cost"]["requestedQueryCost"] == 15
    assert body["extensions"]["cost"]["actualQueryCost"] == 14
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1992 - 14


async def test_small_bucket_burst_is_throttled_then_restored(make_shop: Any, http: aiohttp.ClientSession) -> None:
    clock = VirtualTime(1000.0)
    shop = await make_shop(bucket=50, restore_rate=10, clock=clock)
    shop.add_product("Wine", {f"W{i}": i for i in range(10)})
    query = "{ productVariants(first: 10) { nodes { id } } }"  # 12 requested, 12 actual
    for expected in (38, 26, 14, 2):
        _, body = await gql(http, shop, query)
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == expected
    _, body = await gql(http, shop, query)
    assert "data" not in body
    assert body["errors"] == [
        {
            "message": "Throttled",
            "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
        }
    ]
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 12,
        "actualQueryCost": None,
        "throttleStatus": {"maximumAvailable": 50.0, "currentlyAvailable": 2, "restoreRate": 10.0},
    }
    assert shop.throttled == 1
    assert shop.operations["query:productVariants"] == 4
    clock.now += 1.0  # 10 points back: 12 available
    _, body = await gql(http, shop, query)
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0
    clock.now += 100.0  # never above the bucket
    assert shop.throttle_status()["currentlyAvailable"] == 50


# ------------------------------------------------------------------------------ inventorySetQuantities


async def test_set_quantities_applies_and_reports_changes(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop(api_version="2025-10")  # ignoreCompareQuantity: up to 2026-01
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 3})
    data = {
        "name": "available",
        "reason": "correction",
        "referenceDocumentUri": "gid://connex-tui/StockPush/1",
        "ignoreCompareQuantity": True,
        "quantities": quantities(items, {"RED": 9, "WHITE": 3}),
    }
    _, body = await gql(http, shop, SET_2025, {"input": data})
    payload = body["data"]["inventorySetQuantities"]
    assert payload["userErrors"] == []
    assert payload["inventoryAdjustmentGroup"]["reason"] == "correction"
    assert payload["inventoryAdjustmentGroup"]["changes"] == [
        {
            "name": "available",
            "delta": 4,
            "quantityAfterChange": 9,
            "item": {"id": items["RED"]},
            "location": {"id": LOCATION},
        }
    ]
    assert shop.available("RED") == 9 and shop.available("WHITE") == 3


async def test_user_errors_name_the_quantity_and_nothing_is_applied(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop(api_version="2025-10")
    items = shop.add_product("Wine", {"RED": 5})
    bad = [
        {"inventoryItemId": items["RED"], "locationId": LOCATION, "quantity": 7},
        {"inventoryItemId": "gid://shopify/InventoryItem/999999", "locationId": LOCATION, "quantity": 1},
        {"inventoryItemId": items["RED"], "locationId": "gid://shopify/Location/2", "quantity": 1},
    ]
    data = {"name": "incoming", "reason": "because", "ignoreCompareQuantity": True, "quantities": bad}
    _, body = await gql(http, shop, SET_2025, {"input": data})
    payload = body["data"]["inventorySetQuantities"]
    assert payload["inventoryAdjustmentGroup"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
        ("INVALID_NAME", ["input", "name"]),
        ("INVALID_REASON", ["input", "reason"]),
        ("INVALID_INVENTORY_ITEM", ["input", "quantities", "1", "inventoryItemId"]),
        ("INVALID_LOCATION", ["input", "quantities", "2", "locationId"]),
    ]
    assert shop.available("RED") == 5


async def test_compare_quantity_rules_before_2026_01(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop(api_version="2025-07")
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 3})
    base = {"name": "available", "reason": "correction"}
    _, body = await gql(http, shop, SET_2025, {"input": {**base, "quantities": quantities(items, {"RED": 1})}})
    assert body["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "COMPARE_QUANTITY_REQUIRED"
    stale = [
        {"inventoryItemId": items["RED"], "locationId": LOCATION, "quantity": 1, "compareQuantity": 5},
        {"inventoryItemId": items["WHITE"], "locationId": LOCATION, "quantity": 1, "compareQuantity": 4},
    ]
    _, body = await gql(http, shop, SET_2025, {"input": {**base, "quantities": stale}})
    [error] = body["data"]["inventorySetQuantities"]["userErrors"]
    assert (error["code"], error["field"]) == (
        "COMPARE_QUANTITY_STALE",
        ["input", "quantities", "1", "compareQuantity"],
    )
    assert shop.available("RED") == 5  # all or nothing
    stale[1]["compareQuantity"] = 3
    _, body = await gql(http, shop, SET_2025, {"input": {**base, "quantities": stale}})
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert shop.available("RED") == 1 and shop.available("WHITE") == 1
    # changeFromQuantity and @idempotent do not exist yet in 2025-07
    _, body = await gql(http, shop, SET_IDEMPOTENT, {"input": {**base, "quantities": []}, "key": "k"})
    assert body["errors"][0]["extensions"]["code"] == "undefinedDirective"


async def test_change_from_quantity_stale_in_2026_01(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop(api_version="2026-01")
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 3})
    data = {
        "name": "available",
        "reason": "correction",
        "quantities": [
            {"inventoryItemId": items["RED"], "locationId": LOCATION, "quantity": 10, "changeFromQuantity": 5},
            {"inventoryItemId": items["WHITE"], "locationId": LOCATION, "quantity": 10, "changeFromQuantity": 2},
        ],
    }
    _, body = await gql(http, shop, SET_NO_KEY, {"input": data})  # idempotency is optional in 2026-01
    [error] = body["data"]["inventorySetQuantities"]["userErrors"]
    assert error["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert error["field"] == ["input", "quantities", "1", "changeFromQuantity"]
    assert (shop.available("RED"), shop.available("WHITE")) == (5, 3)
    data["quantities"][1]["changeFromQuantity"] = None  # null skips the check
    _, body = await gql(http, shop, SET_NO_KEY, {"input": data})
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert (shop.available("RED"), shop.available("WHITE")) == (10, 10)


async def test_idempotent_replay_returns_the_first_answer(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop(api_version="2026-01")
    items = shop.add_product("Wine", {"RED": 5})
    data = {
        "name": "available",
        "reason": "correction",
        "quantities": quantities(items, {"RED": 8}, changeFromQuantity=None),
    }
    _, first = await gql(http, shop, SET_IDEMPOTENT, {"input": data, "key": "key-1"})
    assert shop.available("RED") == 8
    shop.set_available("RED", 2)  # someone edits the stock in the admin
    _, again = await gql(http, shop, SET_IDEMPOTENT, {"input": data, "key": "key-1"})
    assert again["data"] == first["data"]
    assert shop.available("RED") == 2  # the replay applied nothing
    assert shop.replays == 1
    other = {**data, "quantities": quantities(items, {"RED": 9}, changeFromQuantity=None)}
    _, mismatch = await gql(http, shop, SET_IDEMPOTENT, {"input": other, "key": "key-1"})
    assert mismatch["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    assert shop.available("RED") == 2


async def test_2026_04_requires_change_from_quantity_and_idempotency(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop(api_version="2026-04")
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 3})
    base = {"name": "available", "reason": "correction"}
    missing = [
        {"inventoryItemId": items["RED"], "locationId": LOCATION, "quantity": 1, "changeFromQuantity": None},
        {"inventoryItemId": items["WHITE"], "locationId": LOCATION, "quantity": 1},
    ]
    _, body = await gql(http, shop, SET_IDEMPOTENT, {"input": {**base, "quantities": missing}, "key": "a"})
    [error] = body["data"]["inventorySetQuantities"]["userErrors"]
    assert error["field"] == ["input", "quantities", "1", "changeFromQuantity"]
    assert shop.available("RED") == 5
    complete = quantities(items, {"RED": 1, "WHITE": 1}, changeFromQuantity=None)
    _, body = await gql(http, shop, SET_NO_KEY, {"input": {**base, "quantities": complete}})
    assert body["data"] == {"inventorySetQuantities": None}
    assert "@idempotent" in body["errors"][0]["message"]
    assert shop.available("RED") == 5
    # compareQuantity and ignoreCompareQuantity were removed in 2026-04
    legacy = quantities(items, {"RED": 1}, compareQuantity=5)
    _, body = await gql(http, shop, SET_IDEMPOTENT, {"input": {**base, "quantities": legacy}, "key": "b"})
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    _, body = await gql(http, shop, SET_IDEMPOTENT, {"input": {**base, "quantities": complete}, "key": "c"})
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert (shop.available("RED"), shop.available("WHITE")) == (1, 1)


# ------------------------------------------------------------------------------ orders and variants


async def test_orders_filter_by_updated_at_and_paginate(make_shop: Any, http: aiohttp.ClientSession) -> None:
    wall = Wall()
    shop = await make_shop(now=wall)
    shop.add_product("Wine", {"RED": 100})
    ids = []
    for _ in range(5):
        ids.append(shop.place_order([("RED", 1)]))
        wall.moment += timedelta(hours=1)
    # orders 3..5 were updated at or after 14:00
    since = "updated_at:>='2025-06-01T14:00:00Z' status:any"
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        _, body = await gql(http, shop, ORDERS, {"first": 2, "after": after, "query": since})
        connection = body["data"]["orders"]
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        pages += 1
        cursor = connection["edges"][0]["cursor"]
        assert set(json.loads(base64.b64decode(cursor))) == {"last_id", "last_value"}
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == ids[2:]
    assert pages == 2
    _, body = await gql(http, shop, ORDERS, {"first": 10, "query": "updated_at:>'2025-06-01T14:00:00Z'"})
    assert [edge["node"]["id"] for edge in body["data"]["orders"]["edges"]] == ids[3:]
    # an update moves an order to the end of the UPDATED_AT order, and into the window
    shop.refund(ids[0], [("RED", 1)])
    _, body = await gql(http, shop, ORDERS, {"first": 10, "query": since})
    assert [edge["node"]["id"] for edge in body["data"]["orders"]["edges"]] == [*ids[2:], ids[0]]
    _, body = await gql(http, shop, ORDERS, {"first": 10, "after": "not-a-cursor"})
    assert body["data"] is None and "cursor" in body["errors"][0]["message"]


async def test_refunds_and_cancellations_move_stock_and_show_on_the_order(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    wall = Wall()
    shop = await make_shop(now=wall)
    shop.add_product("Wine", {"RED": 10, "WHITE": 10})
    order = shop.place_order([("RED", 3), ("WHITE", 2)])
    assert (shop.available("RED"), shop.committed("RED")) == (7, 3)
    wall.moment += timedelta(minutes=5)
    shop.refund(order, [("RED", 1)], restock=True)
    assert shop.available("RED") == 8
    wall.moment += timedelta(minutes=5)
    shop.refund(order, [("WHITE", 1)], restock=False)
    assert shop.available("WHITE") == 8  # not restocked
    wall.moment += timedelta(minutes=5)
    shop.cancel_order(order)
    assert (shop.available("RED"), shop.available("WHITE")) == (10, 9)
    assert shop.committed("RED") == 0 and shop.committed("WHITE") == 0
    query = """query($id: ID!) { order(id: $id) { name updatedAt cancelledAt displayFinancialStatus
        lineItems(first: 5) { nodes { sku quantity currentQuantity } }
        refunds(first: 5) {
          refundLineItems(first: 5) { nodes { quantity restockType restocked lineItem { sku } } } } } }"""
    _, body = await gql(http, shop, query, {"id": order})
    data = body["data"]["order"]
    assert data["updatedAt"] == data["cancelledAt"] == "2025-06-01T12:15:00Z"
    assert data["displayFinancialStatus"] == "PARTIALLY_REFUNDED"
    assert data["lineItems"]["nodes"] == [
        {"sku": "RED", "quantity": 3, "currentQuantity": 0},
        {"sku": "WHITE", "quantity": 2, "currentQuantity": 0},
    ]
    assert [r["refundLineItems"]["nodes"] for r in data["refunds"]] == [
        [{"quantity": 1, "restockType": "RETURN", "restocked": True, "lineItem": {"sku": "RED"}}],
        [{"quantity": 1, "restockType": "NO_RESTOCK", "restocked": False, "lineItem": {"sku": "WHITE"}}],
        # the cancellation: a refund of what was left, restocked as CANCEL (RefundLineItemRestockType)
        [
            {"quantity": 2, "restockType": "CANCEL", "restocked": True, "lineItem": {"sku": "RED"}},
            {"quantity": 1, "restockType": "CANCEL", "restocked": True, "lineItem": {"sku": "WHITE"}},
        ],
    ]
    _, body = await gql(http, shop, ORDERS, {"first": 5, "query": "status:cancelled"})
    assert len(body["data"]["orders"]["edges"]) == 1


async def test_variants_by_sku_search_and_pages(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    shop.add_product("Wine", {"RED-1": 1, "RED-10": 2, "WHITE": 3})
    shop.add_product("Beer", {f"B{i}": i for i in range(7)}, tracked=False)
    query = """query($q: String, $after: String) { productVariants(first: 3, query: $q, after: $after) {
        nodes { sku inventoryItem { tracked inventoryLevel(locationId: "gid://shopify/Location/1") {
            quantities(names: ["available", "on_hand"]) { name quantity } } } }
        pageInfo { hasNextPage endCursor } } }"""
    _, body = await gql(http, shop, query, {"q": "sku:RED-1 OR sku:WHITE"})
    nodes = body["data"]["productVariants"]["nodes"]
    assert [node["sku"] for node in nodes] == ["RED-1", "WHITE"]  # exact, not RED-10
    assert nodes[1]["inventoryItem"]["inventoryLevel"]["quantities"] == [
        {"name": "available", "quantity": 3},
        {"name": "on_hand", "quantity": 3},
    ]
    skus: list[str] = []
    after = None
    while True:
        _, body = await gql(http, shop, query, {"after": after})
        connection = body["data"]["productVariants"]
        skus += [node["sku"] for node in connection["nodes"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert len(skus) == 10 and len(set(skus)) == 10
    assert shop.operations["query:productVariants"] == 5


# ------------------------------------------------------------------------------ faults


async def test_faults_answer_with_shopify_bodies_and_are_counted(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    shop.faults.add(shop.route, status=429, retry_after="2.0")
    shop.faults.add(shop.route, status=503)
    query = '{ location(id: "gid://shopify/Location/1") { id name } }'
    url = f"{shop.url}{shop.endpoint}"
    headers = {"X-Shopify-Access-Token": TOKEN}
    async with http.post(url, json={"query": query}, headers=headers) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "2.0"
        assert json.loads(await resp.read())["errors"][0]["extensions"]["code"] == "THROTTLED"
    async with http.post(url, json={"query": query}, headers=headers) as resp:
        assert resp.status == 503
        assert json.loads(await resp.read()) == {"errors": "Service Unavailable"}
    _, body = await gql(http, shop, query)
    assert body["data"]["location"]["id"] == LOCATION
    assert shop.counters[shop.route] == 3
    assert shop.faults.injected[shop.route] == 2
    assert shop.operations == {"query:location": 1}
