"""The Shopify client against the Shopify emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from connex_tui.sim.shopify import ShopifyEmulator

from .clocks import VirtualTime
from .store_fixtures import Wall, make_shop, shopify_schemas  # noqa: F401 - fixtures
from connex_tui.storefronts.base import CatalogEntry, CredentialsError, StockUpdate, StorefrontError
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.shopify import ShopifyClient

TOKEN = "shpat_test"
LOCATION = "gid://shopify/Location/1"
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=5.0)


def client_for(shop: ShopifyEmulator, http: aiohttp.ClientSession, **kwargs: Any) -> ShopifyClient:
    assert shop.url is not None
    kwargs.setdefault("policy", FAST)
    kwargs.setdefault("api_version", shop.api_version)
    token = kwargs.pop("token", TOKEN)
    return ShopifyClient(shop.url, token, LOCATION, session=http, **kwargs)


def updates_for(items: dict[str, str], quantities: dict[str, int], known: dict[str, int | None]) -> list[StockUpdate]:
    return [
        StockUpdate(sku, quantity, CatalogEntry(sku=sku, item_id=items[sku], quantity=known[sku]))
        for sku, quantity in quantities.items()
    ]


# ------------------------------------------------------------------------------ orders


async def test_list_orders_across_pages_with_refunds_and_cancellations(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    wall = Wall()
    shop = await make_shop(now=wall)
    shop.add_product("Wine", {"RED": 1000, "WHITE": 1000})
    big = shop.add_product("Case", {f"C{i}": 100 for i in range(13)})
    ids = []
    for index in range(27):
        ids.append(shop.place_order([("RED", 1 + index % 3), ("WHITE", 1)]))
        wall.moment += timedelta(minutes=1)
    many_lines = shop.place_order([(sku, 1) for sku in big])  # 13 lines: more than the page's 5
    wall.moment += timedelta(minutes=1)
    multi = shop.place_order([("RED", 3), ("WHITE", 2)])
    wall.moment += timedelta(minutes=1)
    shop.refund(multi, [("RED", 1)], restock=True)
    shop.refund(multi, [("WHITE", 1)], restock=False)
    shop.refund(multi, [("RED", 1), ("WHITE", 1)], restock=True)
    shop.cancel_order(ids[1])
    client = client_for(shop, http)

    orders = await client.list_orders(None)
    assert len(orders) == 29
    # one page: 2 + 29 x (3 + 5 lines x 3) = 524 points requested, under the 1000 a query may cost;
    # then one more `orders` query: the refunds of the two orders that have some, by id
    assert shop.operations["query:orders"] == 2
    assert [o.modified_at for o in orders] == sorted(o.modified_at for o in orders)
    by_id = {order.store_id: order for order in orders}
    first = by_id[ids[0]]
    assert first.number == "1001" and first.status == "paid" and not first.cancelled and not first.refunds
    assert (
        first.lines[0].sku == "RED"
        and first.lines[0].quantity == Decimal(1)
        and first.lines[0].price == Decimal("10.00")
    )
    assert first.modified_at == "2025-06-01T12:00:00Z" and first.customer == "customer@example.com"
    refunded = by_id[multi]
    assert refunded.status == "partially_refunded"
    assert [[(line.sku, line.quantity) for line in refund.lines] for refund in refunded.refunds] == [
        [("RED", Decimal(1))],
        [],  # NO_RESTOCK: no stock came back
        [("RED", Decimal(1)), ("WHITE", Decimal(1))],
    ]
    cancelled = by_id[ids[1]]
    assert cancelled.cancelled and cancelled.modified_at == "2025-06-01T12:29:00Z"
    # the cancellation put both lines back on the shelf: a refund of restockType CANCEL
    assert [[(line.sku, line.quantity) for line in refund.lines] for refund in cancelled.refunds] == [
        [("RED", Decimal(2)), ("WHITE", Decimal(1))]
    ]
    assert len(by_id[many_lines].lines) == 13
    # the 13-line order's lines; and the order with three refunds, more than a batch reads of each
    assert shop.operations["query:order"] == 2
    assert client.throttled_answers == 0

    since = await client.list_orders(datetime(2025, 6, 1, 12, 27, tzinfo=UTC))
    assert {o.store_id for o in since} == {many_lines, multi, ids[1]}
    naive = await client.list_orders(datetime(2025, 6, 1, 12, 29))  # naive means UTC
    assert {o.store_id for o in naive} == {multi, ids[1]}


# ------------------------------------------------------------------------------ catalog


async def test_catalog_of_600_variants_in_3_pages_waits_instead_of_being_throttled(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    clock = VirtualTime(5000.0)
    shop = await make_shop(clock=clock)  # standard plan: 2000 points, 100/s
    for product in range(6):
        shop.add_product(f"P{product}", {f"SKU-{product}-{i:03}": i for i in range(100)}, tracked=product != 5)
    client = client_for(shop, http, clock=clock, sleep=clock.sleep)
    catalog = await client.catalog()
    assert len(catalog) == 600
    assert shop.operations["query:productVariants"] == 3  # 249 + 249 + 102
    assert shop.requested_costs[1:] == [998, 998, 998]
    assert shop.throttled == 0 and client.throttled_answers == 0
    # the third page had to wait for 998 - (2000 - 3 - 998 - 998) points at 100/s (the probe costs 3)
    assert clock.slept == [pytest.approx(9.97, abs=0.01)]
    entry = next(e for e in catalog if e.sku == "SKU-2-042")
    assert entry.quantity == 42 and entry.managed and entry.item_id.startswith("gid://shopify/InventoryItem/")
    assert not next(e for e in catalog if e.sku == "SKU-5-000").managed


# ------------------------------------------------------------------------------ stock


async def test_set_stock_of_1000_skus_in_4_calls_on_the_standard_plan(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()  # real clock, 2000/100
    items: dict[str, str] = {}
    for product in range(10):
        items |= shop.add_product(f"P{product}", {f"S{product}-{i:03}": 5 for i in range(100)})
    client = client_for(shop, http)
    wanted = {sku: index % 37 for index, sku in enumerate(items)}
    started = time.perf_counter()
    results = await client.set_stock(updates_for(items, wanted, {sku: 5 for sku in items}))
    elapsed = time.perf_counter() - started
    assert shop.operations["mutation:inventorySetQuantities"] == 4
    assert shop.throttled == 0 and client.throttled_answers == 0
    assert client.stats.waited_seconds == 0
    assert [r.sku for r in results] == list(wanted)
    assert all(r.ok for r in results)
    assert all(shop.available(sku) == quantity for sku, quantity in wanted.items())
    assert results[1].before == 5 and results[1].after == 1
    assert elapsed < 5.0
    print(f"1000-SKU set_stock: {elapsed:.3f}s, {shop.operations['mutation:inventorySetQuantities']} calls")


async def test_small_bucket_client_waits_and_is_never_throttled(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop(bucket=100, restore_rate=50)  # real monotonic clock
    items = shop.add_product("Wine", {f"W{i:02}": i for i in range(40)})
    client = client_for(shop, http)
    started = time.monotonic()
    catalog = await client.catalog()  # pages of 24 (98 points): 99 after the probe, then a wait
    assert len(catalog) == 40
    # 40 updates in batches of 10 (a caller may send fewer than batch_limit at a time): 4 x 10 points
    for start in range(0, 40, 10):
        results = await client.set_stock([StockUpdate(e.sku, 3, e) for e in catalog[start : start + 10]])
        assert all(r.ok for r in results)
    elapsed = time.monotonic() - started
    assert all(shop.available(sku) == 3 for sku in items)
    assert shop.throttled == 0 and client.throttled_answers == 0
    assert client.stats.waited_seconds > 1.5  # the second page waited for (98 - 3) / 50 s
    assert elapsed < 5.0
    assert shop.requested_costs == [3, 98, 98, 14, 14, 14, 14]


async def test_a_throttled_answer_is_retried_after_the_wait_it_implies(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    clock = VirtualTime(5000.0)
    shop = await make_shop(bucket=100, restore_rate=50, clock=clock)
    shop.add_product("Wine", {f"W{i:02}": i for i in range(30)})
    client = client_for(shop, http, clock=clock, sleep=clock.sleep)
    # a wrong, optimistic start: the client believes it is on a standard-plan bucket
    client.budget.seed(maximum=2000, available=2000, restore_rate=100, now=clock())
    catalog = await client.catalog()
    assert len(catalog) == 30
    assert shop.throttled == 1 and client.throttled_answers == 1 and client.stats.throttled == 1
    # the THROTTLED answer taught it the bucket: pages of 24 fit in 100 points
    assert shop.requested_costs == [98, 98]
    # another app drains the bucket; the client's estimate says it is full
    shop.execute_document("{ productVariants(first: 24) { nodes { id } } }")
    shop.execute_document("{ productVariants(first: 24) { nodes { id } } }")
    shop.execute_document("{ productVariants(first: 24) { nodes { id } } }")
    left = shop.throttle_status()["currentlyAvailable"]
    assert left < 98
    throttled_before = shop.throttled
    client.budget.seed(maximum=100, available=100, restore_rate=50, now=clock())
    clock.slept.clear()
    again = await client.catalog()
    assert len(again) == 30
    assert client.throttled_answers == 2 and shop.throttled == throttled_before + 1
    # it waited what the answer implied, (98 - currentlyAvailable) / 50, then the second page its own wait
    assert clock.slept[0] == pytest.approx((98 - left) / 50, abs=0.005)
    assert clock.slept[1] == pytest.approx(98 / 50, abs=0.005)


async def test_unknown_inventory_item_fails_only_that_sku(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 5, "ROSE": 5})
    items["GONE"] = "gid://shopify/InventoryItem/987654"
    client = client_for(shop, http)
    wanted = {"RED": 1, "GONE": 2, "WHITE": 3, "ROSE": 4}
    results = await client.set_stock(updates_for(items, wanted, dict.fromkeys(items, None)))
    assert [(r.sku, r.ok, r.permanent) for r in results] == [
        ("RED", True, False),
        ("GONE", False, True),
        ("WHITE", True, False),
        ("ROSE", True, False),
    ]
    assert "no such inventory item" in results[1].reason
    assert (shop.available("RED"), shop.available("WHITE"), shop.available("ROSE")) == (1, 3, 4)
    assert shop.operations["mutation:inventorySetQuantities"] == 2  # all or nothing: sent again without it


async def test_429_with_retry_after_and_500_are_retried(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    items = shop.add_product("Wine", {"RED": 5})
    client = client_for(shop, http)
    await client.catalog()  # the probe and one page
    shop.faults.add(shop.route, status=429, retry_after="0.05")
    shop.faults.add(shop.route, status=500)
    results = await client.set_stock(updates_for(items, {"RED": 9}, {"RED": 5}))
    assert results[0].ok and shop.available("RED") == 9
    assert shop.faults.injected[shop.route] == 2
    assert client.stats.retries == 2
    assert client.throttled_answers == 1  # the 429
    assert shop.operations["mutation:inventorySetQuantities"] == 1


async def test_wrong_token_raises_credentials_error_without_the_token(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()
    client = client_for(shop, http, token="shpat_secret_wrong_token")
    with pytest.raises(CredentialsError) as caught:
        await client.catalog()
    assert "check your credentials" in str(caught.value)
    assert "shpat_secret_wrong_token" not in str(caught.value)
    assert "shpat_secret_wrong_token" not in repr(client)
    assert client.stats.requests == 1  # 401 is not retried


async def test_a_version_that_never_existed_is_a_plain_error(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop()
    client = client_for(shop, http, api_version="2026-02")
    with pytest.raises(StorefrontError, match=r"404; check the shop address and the API version \(2026-02\)"):
        await client.catalog()


async def test_2026_04_sends_change_from_quantity_and_idempotency_keys(
    make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop(api_version="2026-04")
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 5, "ROSE": 5})
    client = client_for(shop, http)
    assert client.idempotent
    catalog = {entry.sku: entry for entry in await client.catalog()}
    shop.place_order([("RED", 2)])  # the catalog's RED (5) is now stale: 3
    updates = [
        StockUpdate("RED", 10, catalog["RED"]),
        StockUpdate("WHITE", 11, catalog["WHITE"]),
        StockUpdate("ROSE", 12, CatalogEntry("ROSE", items["ROSE"], quantity=None)),  # unknown: null
    ]
    results = await client.set_stock(updates)
    assert all(r.ok for r in results), results
    assert (shop.available("RED"), shop.available("WHITE"), shop.available("ROSE")) == (10, 11, 12)
    assert results[0].before == 3  # re-read after CHANGE_FROM_QUANTITY_STALE
    # the stale call, a re-read, and one retry with fresh changeFromQuantity
    assert shop.operations["mutation:inventorySetQuantities"] == 2
    assert shop.operations["query:productVariants"] == 2


async def test_a_retried_call_reuses_its_idempotency_key(make_shop: Any, http: aiohttp.ClientSession) -> None:
    shop = await make_shop(api_version="2026-01")
    items = shop.add_product("Wine", {"RED": 5})
    client = client_for(shop, http)
    await client.catalog()
    # Shopify applies the first call but the answer is lost; the client sends the same call again
    shop.lose_answers(1)
    shop.set_available("RED", 5)
    results = await client.set_stock(updates_for(items, {"RED": 9}, {"RED": 5}))
    assert results[0].ok and results[0].before == 5
    assert shop.available("RED") == 9
    assert shop.operations["mutation:inventorySetQuantities"] == 2
    assert shop.replays == 1  # the retry was answered from the first call's result, not applied again
    assert client.stats.retries == 1


async def test_stale_twice_is_a_temporary_failure(
    make_shop: Any, http: aiohttp.ClientSession, monkeypatch: Any
) -> None:
    shop = await make_shop(api_version="2026-01")
    items = shop.add_product("Wine", {"RED": 5, "WHITE": 5})
    client = client_for(shop, http)
    original = client._current_levels

    async def reread_then_someone_sells(updates: Any) -> Any:
        levels = await original(updates)
        shop.place_order([("RED", 1)])  # changes again between the re-read and the retry
        return levels

    monkeypatch.setattr(client, "_current_levels", reread_then_someone_sells)
    shop.place_order([("RED", 1)])
    results = await client.set_stock(updates_for(items, {"RED": 1, "WHITE": 2}, {"RED": 5, "WHITE": 5}))
    assert [(r.sku, r.ok, r.permanent) for r in results] == [("RED", False, False), ("WHITE", True, False)]
    assert shop.available("WHITE") == 2 and shop.available("RED") == 3
