"""The WooCommerce client (connex_tui.storefronts.woocommerce) against the emulator, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import random
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web

from connex_tui.sim.woocommerce import WooCommerceEmulator

from .store_fixtures import T0, StepClock, clock  # noqa: F401 - fixture
from connex_tui.storefronts.base import (
    CatalogEntry,
    CredentialsError,
    StockUpdate,
    StorefrontError,
    StoreUnavailable,
)
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.woocommerce import WooCommerceClient

KEY, SECRET = "ck_3f9a2b7c1d", "cs_9e8d7c6b5a4f3e2d1c"
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=5.0)
ORDERS = "GET /wp-json/wc/v3/orders"
PRODUCTS_BATCH = "POST /wp-json/wc/v3/products/batch"
VARIATIONS_BATCH = "POST /wp-json/wc/v3/products/{id}/variations/batch"


@pytest.fixture
async def emu(clock: StepClock) -> AsyncIterator[WooCommerceEmulator]:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., WooCommerceClient]]:
    made: list[WooCommerceClient] = []

    def make(url: str, key: str = KEY, secret: str = SECRET, **kwargs: Any) -> WooCommerceClient:
        kwargs.setdefault("policy", FAST)
        client = WooCommerceClient(url, key, secret, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def client(emu: WooCommerceEmulator, make_client: Callable[..., WooCommerceClient]) -> WooCommerceClient:
    return make_client(emu.base_url)


# ---------------------------------------------------------------------- orders


async def test_list_orders_pages_and_modified_since(
    emu: WooCommerceEmulator, client: WooCommerceClient, clock: StepClock
) -> None:
    emu.add_product("WINE", 10_000, price="12.50")
    ids = []
    for n in range(250):
        ids.append(emu.place_order([("WINE", 1 + n % 3)], customer=f"Buyer {n}"))
        clock.tick(1)
    orders = await client.list_orders(None)
    assert [o.store_id for o in orders] == [str(i) for i in ids]
    assert emu.counters[ORDERS] == 3  # 100 + 100 + 50
    first = orders[0]
    assert first.number == str(ids[0]) and first.status == "processing" and not first.cancelled
    assert first.modified_at == "2025-06-01T12:00:00+00:00" and first.created_at == first.modified_at
    assert first.customer == "Buyer 0"
    assert first.lines[0].sku == "WINE" and first.lines[0].quantity == Decimal(1)
    assert first.lines[0].price == Decimal("12.5")

    # Orders modified at or after 12:01:40 (order #100 onwards): WooCommerce's filter is exclusive,
    # the client still includes the boundary second, and microseconds do not lose it.
    since = T0 + timedelta(seconds=100, microseconds=250_000)
    emu.counters.clear()
    recent = await client.list_orders(since)
    assert [o.store_id for o in recent] == [str(i) for i in ids[100:]]
    assert emu.counters[ORDERS] == 2

    emu.set_order_status(ids[5], "cancelled")  # an old order changes: it comes back
    changed = await client.list_orders(clock.now)
    assert [(o.store_id, o.cancelled, o.status) for o in changed] == [(str(ids[5]), True, "cancelled")]


async def test_list_orders_naive_since_is_utc_and_empty_result(
    emu: WooCommerceEmulator, client: WooCommerceClient
) -> None:
    assert await client.list_orders(None) == []
    emu.add_product("A", 5)
    emu.place_order([("A", 1)])
    assert len(await client.list_orders(T0.replace(tzinfo=None))) == 1
    assert await client.list_orders(T0 + timedelta(seconds=1)) == []


async def test_refunds_keep_only_restocked_lines(
    emu: WooCommerceEmulator, client: WooCommerceClient, clock: StepClock
) -> None:
    emu.add_product("A", 10, price="5.00")
    emu.add_product("B", 10)
    oid = emu.place_order([("A", 3), ("B", 2)])
    clock.tick(10)
    restocked = emu.refund(oid, [("A", 2)], restock=True)
    clock.tick(10)
    not_restocked = emu.refund(oid, [("B", 1)], restock=False)
    plain = emu.place_order([("A", 1)])
    (order, other) = await client.list_orders(None)
    assert order.store_id == str(oid) and other.store_id == str(plain) and other.refunds == ()
    assert [r.refund_id for r in order.refunds] == [str(restocked), str(not_restocked)]
    first, second = order.refunds
    assert [(l.sku, l.quantity, l.price) for l in first.lines] == [("A", Decimal(2), Decimal(5))]
    assert first.created_at == "2025-06-01T12:00:10+00:00"
    assert second.lines == ()
    assert emu.counters["GET /wp-json/wc/v3/orders/{id}/refunds"] == 1  # only orders with refunds


async def test_restock_totals_go_to_the_newest_refunds_of_the_line(
    emu: WooCommerceEmulator, client: WooCommerceClient, clock: StepClock
) -> None:
    """WooCommerce keeps one running total per order line, not which refund restocked: the total
    goes to the line's refunds newest first (an increase lands on the refund that caused it when
    read soon after), never more than each refunded, and adds up to what went back on the shelf."""
    emu.add_product("A", 10)
    oid = emu.place_order([("A", 4)])
    clock.tick(1)
    first = emu.refund(oid, [("A", 1)], restock=False)
    clock.tick(1)
    second = emu.refund(oid, [("A", 2)], restock=True)
    (order,) = await client.list_orders(None)
    assert [(r.refund_id, [(l.sku, l.quantity) for l in r.lines]) for r in order.refunds] == [
        (str(first), []),
        (str(second), [("A", Decimal(2))]),
    ]
    assert emu.stock("A") == 8


async def test_cancelled_order_reports_the_units_the_cancel_put_back(
    emu: WooCommerceEmulator, client: WooCommerceClient
) -> None:
    emu.add_product("A", 10, price="4.00")
    emu.add_product("LOOSE", None)
    oid = emu.place_order([("A", 5), ("LOOSE", 1)])
    restock = emu.refund(oid, [("A", 2)], restock=True)
    (before,) = await client.list_orders(None)
    assert [r.refund_id for r in before.refunds] == [str(restock)]  # not cancelled: no "cancel"
    emu.set_order_status(oid, "cancelled")
    (order,) = await client.list_orders(None)
    assert order.cancelled
    by_id = {r.refund_id: [(l.sku, l.quantity, l.price) for l in r.lines] for r in order.refunds}
    # the cancel put back 5 - 2; the untracked line never had _reduced_stock and counts as back too
    assert by_id == {
        str(restock): [("A", Decimal(2), Decimal(4))],
        "cancel": [("A", Decimal(3), Decimal(4)), ("LOOSE", Decimal(1), Decimal(10))],
    }
    assert emu.stock("A") == 10


async def test_line_without_sku_keeps_an_empty_sku(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    wrapping = emu.add_product("", None, name="Gift wrapping")
    emu.add_product("A", 3)
    emu.place_order([(wrapping, 1), ("A", 1)])
    (order,) = await client.list_orders(None)
    assert [(l.sku, l.name) for l in order.lines] == [("", "Gift wrapping"), ("A", "Product A")]


# ---------------------------------------------------------------------- catalog


async def test_catalog_simple_and_variable_over_several_pages(
    emu: WooCommerceEmulator, client: WooCommerceClient
) -> None:
    simple = {f"S-{n:03}": emu.add_product(f"S-{n:03}", n) for n in range(130)}
    emu.add_product("LOOSE", None)
    emu.add_product("", 4)  # no SKU: skipped
    big, big_vars = emu.add_variable_product("Shirt", {f"SHIRT-{n:03}": n % 5 for n in range(150)})
    small, small_vars = emu.add_variable_product("Hat", {"HAT-1": 2, "HAT-2": None})
    empty, _ = emu.add_variable_product("Nothing yet", {})

    entries = await client.catalog()
    by_sku = {e.sku: e for e in entries}
    assert len(entries) == 130 + 1 + 150 + 2
    assert by_sku["S-007"] == CatalogEntry("S-007", str(simple["S-007"]), None, 7, True)
    assert by_sku["LOOSE"].managed is False and by_sku["LOOSE"].quantity is None
    assert by_sku["SHIRT-149"] == CatalogEntry("SHIRT-149", str(big_vars["SHIRT-149"]), str(big), 4, True)
    assert by_sku["HAT-2"] == CatalogEntry("HAT-2", str(small_vars["HAT-2"]), str(small), None, False)
    assert "" not in by_sku
    assert emu.counters["GET /wp-json/wc/v3/products"] == 2  # 135 products
    assert emu.counters["GET /wp-json/wc/v3/products/{id}/variations"] == 3  # 2 pages + 1; none for `empty`


async def test_variation_fetches_are_bounded(
    emu: WooCommerceEmulator, make_client: Callable[..., WooCommerceClient]
) -> None:
    for n in range(6):
        emu.add_variable_product(f"P{n}", {f"P{n}-A": 1})
    emu.faults.add("GET /wp-json/wc/v3/products/{id}/variations", latency=0.15, times=6)
    client = make_client(emu.base_url, concurrency=2)
    started = time.monotonic()
    entries = await client.catalog()
    assert len(entries) == 6
    assert time.monotonic() - started >= 0.4  # 6 slow calls, 2 at a time


# ---------------------------------------------------------------------- set_stock


async def test_set_stock_100_updates_in_three_requests(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    for n in range(60):
        emu.add_product(f"S-{n}", 1)
    emu.add_variable_product("Shirt", {f"SH-{n}": 2 for n in range(20)})
    emu.add_variable_product("Hat", {f"HA-{n}": None for n in range(20)})  # not managed yet
    entries = await client.catalog()
    assert len(entries) == 100
    rng = random.Random(7)
    rng.shuffle(entries)
    updates = [StockUpdate(e.sku, 40 + i, e) for i, e in enumerate(entries)]
    emu.counters.clear()

    results = await client.set_stock(updates)

    assert emu.counters[PRODUCTS_BATCH] == 1
    assert emu.counters[VARIATIONS_BATCH] == 2
    assert sum(emu.counters.values()) == 3
    assert [r.sku for r in results] == [u.sku for u in updates]
    for update, result in zip(updates, results):
        assert result.ok, result
        assert result.before == update.entry.quantity and result.after == update.quantity
        assert emu.stock(update.sku) == update.quantity
    assert client.stats.requests == 3 + 3  # the catalog took 3


async def test_unknown_id_fails_that_sku_only(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    emu.add_product("KEEP", 1)
    gone = emu.add_product("GONE", 1)
    parent, variations = emu.add_variable_product("Shirt", {"V-1": 1})
    entries = {e.sku: e for e in await client.catalog()}
    updates = [
        StockUpdate("KEEP", 5, entries["KEEP"]),
        StockUpdate("GONE", 5, entries["GONE"]),
        StockUpdate("V-1", 5, entries["V-1"]),
        StockUpdate("MOVED", 5, CatalogEntry("MOVED", str(variations["V-1"]), None, 1)),  # a variation sent as simple
    ]
    emu_http_delete = WooCommerceClient(emu.base_url, KEY, SECRET, policy=FAST)
    try:
        await emu_http_delete._call("POST", "products/batch", body={"delete": [gone]})
    finally:
        await emu_http_delete.close()

    keep, gone_result, variation, moved = await client.set_stock(updates)
    assert keep.ok and keep.after == 5 and variation.ok
    assert not gone_result.ok and gone_result.permanent
    assert "woocommerce_rest_product_invalid_id" in gone_result.reason and "Invalid ID." in gone_result.reason
    assert str(gone) in gone_result.reason and "refresh the catalog" in gone_result.reason
    assert not moved.ok and moved.permanent
    assert emu.stock("KEEP") == 5 and emu.stock("V-1") == 5


async def test_more_than_100_updates_is_refused(client: WooCommerceClient) -> None:
    entry = CatalogEntry("A", "1")
    with pytest.raises(ValueError):
        await client.set_stock([StockUpdate("A", 1, entry)] * 101)


async def test_a_failed_group_fails_only_its_skus(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    emu.add_product("A", 1)
    emu.add_variable_product("Shirt", {"V-1": 1, "V-2": 1})
    entries = {e.sku: e for e in await client.catalog()}
    emu.faults.add(VARIATIONS_BATCH, status=503, times=FAST.attempts)
    results = await client.set_stock([StockUpdate(s, 9, entries[s]) for s in ("V-1", "A", "V-2")])
    v1, a, v2 = results
    assert a.ok and emu.stock("A") == 9
    for failed in (v1, v2):
        assert not failed.ok and not failed.permanent
        assert "unavailable" in failed.reason and "HTTP 503" in failed.reason
    assert emu.stock("V-1") == 1


async def test_a_batch_over_the_store_limit_fails_permanently(
    clock: StepClock, make_client: Callable[..., WooCommerceClient]
) -> None:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock, batch_limit=2)
    await emulator.start()
    try:
        for n in range(3):
            emulator.add_product(f"S{n}", 1)
        client = make_client(emulator.base_url)
        entries = await client.catalog()
        results = await client.set_stock([StockUpdate(e.sku, 5, e) for e in entries])
        assert all(not r.ok and r.permanent for r in results)
        assert "HTTP 413" in results[0].reason and "woocommerce_rest_request_entity_too_large" in results[0].reason
        assert emulator.stock("S0") == 1
    finally:
        await emulator.stop()


# ---------------------------------------------------------------------- retries


async def test_429_retry_after_is_obeyed(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    emu.add_product("A", 1)
    emu.faults.add(ORDERS, status=429, retry_after="1")
    started = time.monotonic()
    assert await client.list_orders(None) == []
    elapsed = time.monotonic() - started
    assert elapsed >= 0.9
    assert client.stats.throttled == 1 and client.stats.retries == 1
    assert emu.counters[ORDERS] == 2


async def test_500_twice_then_success(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    emu.add_product("A", 1)
    emu.faults.add("GET /wp-json/wc/v3/products", status=500, times=2)
    entries = await client.catalog()
    assert [e.sku for e in entries] == ["A"]
    assert client.stats.retries == 2 and emu.counters["GET /wp-json/wc/v3/products"] == 3


async def test_dropped_connection_then_success(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    emu.add_product("A", 1)
    entries = await client.catalog()
    emu.faults.add(PRODUCTS_BATCH, drop=True)  # a POST: aiohttp does not resend it by itself
    (result,) = await client.set_stock([StockUpdate("A", 3, entries[0])])
    assert result.ok and emu.stock("A") == 3
    assert client.stats.retries == 1 and emu.counters[PRODUCTS_BATCH] == 2


async def test_dropped_get_twice_then_success(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    emu.add_product("A", 1)
    emu.place_order([("A", 1)])
    emu.faults.add(ORDERS, drop=True, times=2)  # aiohttp resends a GET once; then our retry signs afresh
    assert len(await client.list_orders(None)) == 1
    assert client.stats.retries == 1


async def test_every_request_that_goes_out_is_signed_afresh(
    emu: WooCommerceEmulator, make_client: Callable[..., WooCommerceClient]
) -> None:
    """The signing middleware runs for aiohttp's own resend of a dropped GET and for each retry of
    ours; a session's own middleware still runs after it and sees the signed request."""
    sent: list[dict[str, str]] = []

    async def record(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        sent.append(dict(parse_qsl(request.url.query_string)))
        return await handler(request)

    emu.add_product("A", 1)
    emu.place_order([("A", 1)])
    emu.faults.add(ORDERS, drop=True, times=2)  # aiohttp resends the GET once, then one retry of ours
    async with aiohttp.ClientSession(middlewares=(record,)) as session:
        client = make_client(emu.base_url, session=session)
        assert len(await client.list_orders(None)) == 1
    assert client.stats.retries == 1 and len(sent) == 3
    assert all(params["oauth_consumer_key"] == KEY and params["oauth_signature"] for params in sent)
    assert len({params["oauth_nonce"] for params in sent}) == 3


async def test_a_reused_nonce_is_signed_again(emu: WooCommerceEmulator, client: WooCommerceClient) -> None:
    body = b'{"code":"woocommerce_rest_authentication_error","message":"Invalid nonce - nonce has already been used.","data":{"status":401}}'
    emu.faults.add(ORDERS, status=401, body=body)
    assert await client.list_orders(None) == []
    assert emu.counters[ORDERS] == 2


async def test_store_down_is_unavailable_without_secrets(make_client: Callable[..., WooCommerceClient]) -> None:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET)
    url = await emulator.start()
    await emulator.stop()
    client = make_client(url, policy=RetryPolicy(attempts=2, base_delay=0.01, timeout=2.0))
    with pytest.raises(StoreUnavailable) as caught:
        await client.catalog()
    message = str(caught.value)
    assert "WooCommerce GET /products" in message and "after 2 tries" in message
    for secret in (SECRET, KEY, "oauth_"):
        assert secret not in message


def test_messages_are_scrubbed_of_signed_urls() -> None:
    client = WooCommerceClient("http://shop.test", KEY, SECRET)
    text = (
        "Connection timeout to host http://shop.test/wp-json/wc/v3/orders?page=1&oauth_consumer_key="
        f"{KEY}&oauth_signature=abc%2B"
    )
    scrubbed = client._scrub(text)
    assert scrubbed == "Connection timeout to host http://shop.test/wp-json/wc/v3/orders"
    assert client._scrub(f"echo {SECRET}") == "echo ***"


# ---------------------------------------------------------------------- credentials


async def test_wrong_secret_is_a_credentials_error(
    emu: WooCommerceEmulator, make_client: Callable[..., WooCommerceClient]
) -> None:
    client = make_client(emu.base_url, secret="cs_wrong_wrong_wrong")
    with pytest.raises(CredentialsError) as caught:
        await client.list_orders(None)
    message = str(caught.value)
    assert "check your credentials" in message
    assert "cs_wrong_wrong_wrong" not in message and "oauth_" not in message
    assert "consumer secret does not match" in message
    assert client.stats.requests == 1  # no retries on 401


async def test_wrong_key_is_a_credentials_error(
    emu: WooCommerceEmulator, make_client: Callable[..., WooCommerceClient]
) -> None:
    client = make_client(emu.base_url, key="ck_unknown")
    with pytest.raises(CredentialsError) as caught:
        await client.catalog()
    assert "does not know this consumer key" in str(caught.value) and "check your credentials" in str(caught.value)


async def test_credentials_error_propagates_from_set_stock(
    emu: WooCommerceEmulator, make_client: Callable[..., WooCommerceClient]
) -> None:
    emu.add_product("A", 1)
    client = make_client(emu.base_url, secret="nope")
    with pytest.raises(CredentialsError):
        await client.set_stock([StockUpdate("A", 2, CatalogEntry("A", str(emu.product_id("A"))))])
    assert emu.stock("A") == 1


async def test_read_only_key_says_so(clock: StepClock, make_client: Callable[..., WooCommerceClient]) -> None:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock, permissions="read")
    await emulator.start()
    try:
        emulator.add_product("A", 1)
        client = make_client(emulator.base_url)
        entries = await client.catalog()
        with pytest.raises(CredentialsError) as caught:
            await client.set_stock([StockUpdate("A", 2, entries[0])])
        assert "Read/Write" in str(caught.value)
    finally:
        await emulator.stop()


# ---------------------------------------------------------------------- https: Basic authentication


def test_https_address_uses_basic_and_no_oauth() -> None:
    client = WooCommerceClient("https://Shop.Example.com/", KEY, SECRET)
    url, headers = client._authorize("GET", "https://shop.example.com/wp-json/wc/v3/orders?page=2")
    assert headers == {"Authorization": "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()}
    assert dict(parse_qsl(urlsplit(url).query)) == {"page": "2"}
    http_client = WooCommerceClient("http://shop.example.com/shop", KEY, SECRET)
    url, headers = http_client._authorize("GET", "http://shop.example.com/shop/wp-json/wc/v3/orders?page=2")
    params = dict(parse_qsl(urlsplit(url).query))
    assert headers == {} and params["oauth_consumer_key"] == KEY and SECRET not in url
    assert {"oauth_nonce", "oauth_timestamp", "oauth_signature", "oauth_signature_method"} <= set(params)
    again, _ = http_client._authorize("GET", "http://shop.example.com/shop/wp-json/wc/v3/orders?page=2")
    assert dict(parse_qsl(urlsplit(again).query))["oauth_nonce"] != params["oauth_nonce"]


async def test_basic_auth_through_a_tls_terminating_proxy(
    emu: WooCommerceEmulator, make_client: Callable[..., WooCommerceClient]
) -> None:
    emu.add_product("A", 1)
    async with aiohttp.ClientSession(headers={"X-Forwarded-Proto": "https"}) as session:
        client = make_client(emu.base_url, session=session, auth="basic")
        assert [e.sku for e in await client.catalog()] == ["A"]
        bad = make_client(emu.base_url, secret="cs_not_the_secret", session=session, auth="basic")
        with pytest.raises(CredentialsError) as caught:
            await bad.catalog()
        assert "Consumer secret is invalid" in str(caught.value) and "check your credentials" in str(caught.value)
        assert "cs_not_the_secret" not in str(caught.value)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_basic_auth_over_real_tls(
    tls_files: tuple[Path, Path], clock: StepClock, make_client: Callable[..., WooCommerceClient]
) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock, trust_forwarded_proto=False)
    url = await emulator.start(ssl_context=server_ctx)
    try:
        assert url.startswith("https://")
        emulator.add_product("A", 1)
        client = make_client(url, ssl=ssl.create_default_context(cafile=str(cert)))
        entries = await client.catalog()
        (result,) = await client.set_stock([StockUpdate("A", 6, entries[0])])
        assert result.ok and emulator.stock("A") == 6
    finally:
        await emulator.stop()


async def test_dropped_authorization_header_falls_back_to_query_keys(
    tls_files: tuple[Path, Path], clock: StepClock, make_client: Callable[..., WooCommerceClient]
) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock)
    url = await emulator.start(ssl_context=server_ctx)

    async def drop_authorization(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        request.headers.pop("Authorization", None)  # what Apache + PHP-CGI do to the header
        return await handler(request)

    try:
        emulator.add_product("A", 1)
        async with aiohttp.ClientSession(middlewares=(drop_authorization,)) as session:
            client = make_client(url, session=session, ssl=ssl.create_default_context(cafile=str(cert)))
            assert [e.sku for e in await client.catalog()] == ["A"]
            assert emulator.counters["GET /wp-json/wc/v3/products"] == 2  # the 401, then with query keys
    finally:
        await emulator.stop()


# ---------------------------------------------------------------------- odd stores


async def test_redirect_to_https_and_missing_rest_api(make_client: Callable[..., WooCommerceClient]) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(f"https://shop.test{request.path_qs}")

    async def html_404(request: web.Request) -> web.Response:
        return web.Response(status=404, text="<html>Not found</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/moved/{tail:.*}", redirect)
    app.router.add_get("/plain/{tail:.*}", html_404)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        with pytest.raises(StorefrontError) as caught:
            await make_client(f"http://{host}:{port}/moved").list_orders(None)
        assert "set the store address to https://shop.test/moved" in str(caught.value)
        assert "oauth" not in str(caught.value)
        with pytest.raises(StorefrontError) as caught:
            await make_client(f"http://{host}:{port}/plain").catalog()
        assert "REST API was not found" in str(caught.value) and "permalinks" in str(caught.value)
    finally:
        await runner.cleanup()


async def test_several_clients_share_a_session(
    emu: WooCommerceEmulator, make_client: Callable[..., WooCommerceClient]
) -> None:
    emu.add_product("A", 1)
    async with aiohttp.ClientSession() as session:
        one, two = make_client(emu.base_url, session=session), make_client(emu.base_url, session=session)
        a, b = await asyncio.gather(one.catalog(), two.catalog())
        assert a == b
        await one.close()
        assert not session.closed  # a session handed in is not ours to close


async def test_oauth_timestamps_come_from_the_engine_clock(emu: WooCommerceEmulator, tmp_path: Path) -> None:
    """Over http the client signs with OAuth 1.0a, whose timestamp WooCommerce holds to within 15
    minutes of its own clock: the store client the engine builds reads the engine's clock for it,
    so a clock 20 minutes off is refused with the hint, and the machine's time is accepted."""
    from datetime import datetime, timedelta, timezone

    from connex_tui.engine.clock import SYSTEM_CLOCK
    from connex_tui.storefronts.factory import make_storefront

    from .clocks import ManualClock
    from .conftest import make_config

    emu.add_product("A", 1)
    woo = {"platform": "woocommerce", "url": emu.base_url, "consumer_key": KEY, "consumer_secret": SECRET}
    config = make_config(tmp_path, storefront=woo).storefront
    off = make_storefront(config, policy=FAST, clock=ManualClock(datetime.now(timezone.utc) + timedelta(minutes=20)))
    right = make_storefront(config, policy=FAST, clock=SYSTEM_CLOCK)
    assert off is not None and right is not None
    try:
        with pytest.raises(CredentialsError) as caught:
            await off.catalog()
        assert "clock is more than 15 minutes off" in str(caught.value)
        assert [e.sku for e in await right.catalog()] == ["A"]
    finally:
        await off.close()
        await right.close()
