"""The WooCommerce emulator (connex_tui.sim.woocommerce) on its own, driven by hand-written HTTP.

Requests are signed here with a small OAuth 1.0a signer written from WooCommerce's
``WC_REST_Authentication::check_oauth_signature``, independent of the client under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from connex_tui.sim.woocommerce import WooCommerceEmulator

from .store_fixtures import T0, StepClock, clock  # noqa: F401 - fixture

API = "/wp-json/wc/v3"
KEY, SECRET = "ck_emulated", "cs_emulated"


def enc(value: str) -> str:
    return quote(value, safe="~")  # PHP rawurlencode


def sign(
    method: str,
    url: str,
    params: dict[str, str] | None = None,
    *,
    key: str = KEY,
    secret: str = SECRET,
    nonce: str | None = None,
    timestamp: int | None = None,
    algorithm: str = "HMAC-SHA1",
) -> str:
    """The full URL with WooCommerce-style one-legged OAuth 1.0a query parameters."""
    all_params = dict(params or {})
    all_params.update(
        {
            "oauth_consumer_key": key,
            "oauth_nonce": nonce or secrets.token_hex(8),
            "oauth_signature_method": algorithm,
            "oauth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        }
    )
    pairs = [enc(f"{enc(k)}={enc(v)}") for k, v in sorted(all_params.items())]
    base = f"{method}&{enc(url)}&{'%26'.join(pairs)}"
    digest = hashlib.sha1 if algorithm == "HMAC-SHA1" else hashlib.sha256
    all_params["oauth_signature"] = base64.b64encode(
        hmac.new(f"{secret}&".encode(), base.encode(), digest).digest()
    ).decode()
    return url + "?" + "&".join(f"{enc(k)}={enc(v)}" for k, v in all_params.items())


@pytest.fixture
async def emu(clock: StepClock) -> AsyncIterator[WooCommerceEmulator]:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock)
    await emulator.start()
    yield emulator
    await emulator.stop()


async def call(
    http: aiohttp.ClientSession,
    emu: WooCommerceEmulator,
    method: str,
    path: str,
    params: dict[str, str] | None = None,
    body: Any = None,
    **sign_kw: Any,
) -> tuple[int, Any, Any]:
    url = sign(method, emu.base_url + API + path, params, **sign_kw)
    async with http.request(method, url, json=body) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


def basic(key: str = KEY, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


# ---------------------------------------------------------------------- parameters and limits


async def test_per_page_over_100_is_rest_invalid_param(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, emu, "GET", "/orders", {"per_page": "101"})
    assert status == 400
    assert body["code"] == "rest_invalid_param"
    assert body["message"] == "Invalid parameter(s): per_page"
    assert body["data"]["status"] == 400
    assert body["data"]["params"]["per_page"] == "per_page must be between 1 (inclusive) and 100 (inclusive)"
    status, body, _ = await call(http, emu, "GET", "/products", {"per_page": "0"})
    assert status == 400 and body["data"]["params"]["per_page"].startswith("per_page must be between 1")
    status, body, _ = await call(http, emu, "GET", "/products", {"page": "0"})
    assert status == 400 and body["message"] == "Invalid parameter(s): page"


async def test_parameter_validation_runs_before_the_permission_check(
    emu: WooCommerceEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(emu.base_url + API + "/orders?per_page=500") as resp:
        assert resp.status == 400
    async with http.get(emu.base_url + API + "/orders") as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "woocommerce_rest_cannot_view"


async def test_batch_over_the_limit_is_413(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    ids = [emu.add_product(f"SKU-{n}", 1) for n in range(101)]
    body = {"update": [{"id": i, "stock_quantity": 5} for i in ids]}
    status, answer, _ = await call(http, emu, "POST", "/products/batch", body=body)
    assert status == 413
    assert answer == {
        "code": "woocommerce_rest_request_entity_too_large",
        "message": "Unable to accept more than 100 items for this request.",
        "data": {"status": 413},
    }
    assert all(emu.stock(f"SKU-{n}") == 1 for n in range(101))
    # create + update + delete count together
    mixed = {"create": [{"sku": "NEW"}], "update": body["update"][:99], "delete": [ids[100]]}
    status, answer, _ = await call(http, emu, "POST", "/products/batch", body=mixed)
    assert status == 413
    status, answer, _ = await call(http, emu, "POST", "/products/batch", body={"update": body["update"][:100]})
    assert status == 200 and len(answer["update"]) == 100


async def test_batch_limit_is_configurable(clock: StepClock, http: aiohttp.ClientSession) -> None:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, batch_limit=2, clock=clock)
    await emulator.start()
    try:
        ids = [emulator.add_product(f"S{n}", 1) for n in range(3)]
        status, answer, _ = await call(
            http, emulator, "POST", "/products/batch", body={"update": [{"id": i, "stock_quantity": 2} for i in ids]}
        )
        assert status == 413 and answer["message"] == "Unable to accept more than 2 items for this request."
    finally:
        await emulator.stop()


# ---------------------------------------------------------------------- authentication


async def test_a_correct_signature_passes_and_sha256_too(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    emu.add_product("A", 1)
    status, body, _ = await call(http, emu, "GET", "/products", {"sku": "A", "per_page": "5"})
    assert status == 200 and body[0]["sku"] == "A"
    status, body, _ = await call(http, emu, "GET", "/products", {"sku": "A"}, algorithm="HMAC-SHA256")
    assert status == 200


async def test_signature_covers_every_query_parameter(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    url = sign("GET", emu.base_url + API + "/orders", {"per_page": "5"})
    async with http.get(url.replace("per_page=5", "per_page=6")) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert body == {
        "code": "woocommerce_rest_authentication_error",
        "message": "Invalid signature - provided signature does not match.",
        "data": {"status": 401},
    }


async def test_bad_signature_wrong_secret(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, emu, "GET", "/orders", secret="cs_wrong")
    assert status == 401
    assert body["message"] == "Invalid signature - provided signature does not match."


async def test_signature_method_must_be_hmac(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, emu, "GET", "/orders", algorithm="PLAINTEXT")
    assert status == 401 and body["message"] == "Invalid signature - signature method is invalid."


async def test_wrong_key_is_consumer_key_is_invalid(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, emu, "GET", "/orders", key="ck_nobody")
    assert status == 401
    assert body["code"] == "woocommerce_rest_authentication_error"
    assert body["message"] == "Consumer key is invalid."


async def test_reused_nonce_is_refused(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    now = int(time.time())
    status, _, _ = await call(http, emu, "GET", "/orders", nonce="n-1", timestamp=now)
    assert status == 200
    status, body, _ = await call(http, emu, "GET", "/orders", nonce="n-1", timestamp=now)
    assert status == 401 and body["message"] == "Invalid nonce - nonce has already been used."
    # a failed signature does not use a nonce up
    status, _, _ = await call(http, emu, "GET", "/orders", nonce="n-2", timestamp=now + 1, secret="bad")
    assert status == 401
    status, _, _ = await call(http, emu, "GET", "/orders", nonce="n-2", timestamp=now + 1)
    assert status == 200


async def test_old_or_future_timestamps_are_refused(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, emu, "GET", "/orders", timestamp=int(time.time()) - 16 * 60)
    assert status == 401 and body["message"] == "Invalid timestamp."
    status, body, _ = await call(http, emu, "GET", "/orders", timestamp=int(time.time()) + 16 * 60)
    assert status == 401 and body["message"] == "Invalid timestamp."
    status, _, _ = await call(http, emu, "GET", "/orders", timestamp=int(time.time()) - 14 * 60)
    assert status == 200


async def test_missing_oauth_parameter(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    url = sign("GET", emu.base_url + API + "/orders")
    url = "&".join(p for p in url.split("&") if not p.startswith("oauth_nonce="))
    async with http.get(url) as resp:
        body = await resp.json()
    assert resp.status == 401
    assert body["code"] == "woocommerce_rest_authentication_missing_parameter"
    assert body["message"] == "Missing OAuth parameter oauth_nonce"


async def test_oauth_in_an_authorization_header(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    url = sign("GET", emu.base_url + API + "/orders", {"per_page": "3"})
    base, query = url.split("?", 1)
    params = dict(p.split("=", 1) for p in query.split("&"))
    header = "OAuth " + ", ".join(f'{k}="{v}"' for k, v in params.items() if k.startswith("oauth_"))
    async with http.get(base + "?per_page=3", headers={"Authorization": header}) as resp:
        assert resp.status == 200


async def test_basic_auth_over_plain_http_is_ignored(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get(emu.base_url + API + "/orders", headers=basic()) as resp:
        body = await resp.json()
    assert resp.status == 401
    assert body == {
        "code": "woocommerce_rest_cannot_view",
        "message": "Sorry, you cannot list resources.",
        "data": {"status": 401},
    }
    async with http.get(emu.base_url + API + f"/orders?consumer_key={KEY}&consumer_secret={SECRET}") as resp:
        assert resp.status == 401


async def test_basic_auth_behind_a_tls_proxy(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    tls = {"X-Forwarded-Proto": "https"}
    async with http.get(emu.base_url + API + "/orders", headers={**basic(), **tls}) as resp:
        assert resp.status == 200
    async with http.get(emu.base_url + API + "/orders", headers={**basic(secret="nope"), **tls}) as resp:
        body = await resp.json()
    assert resp.status == 401
    assert body["code"] == "woocommerce_rest_authentication_error" and body["message"] == "Consumer secret is invalid."
    async with http.get(emu.base_url + API + "/orders", headers={**basic(key="ck_other"), **tls}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == "woocommerce_rest_cannot_view"
    url = emu.base_url + API + f"/orders?consumer_key={KEY}&consumer_secret={SECRET}"
    async with http.get(url, headers=tls) as resp:
        assert resp.status == 200


async def test_unauthenticated_answers_depend_on_the_route(
    emu: WooCommerceEmulator, http: aiohttp.ClientSession
) -> None:
    pid = emu.add_product("A", 1)
    async with http.post(emu.base_url + API + "/products/batch", json={"update": []}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == "woocommerce_rest_cannot_batch"
    async with http.get(emu.base_url + API + f"/products/{pid}") as resp:
        assert (await resp.json())["message"] == "Sorry, you cannot view this resource."
    async with http.put(emu.base_url + API + f"/products/{pid}", json={}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == "woocommerce_rest_cannot_edit"


async def test_read_only_key_cannot_write(clock: StepClock, http: aiohttp.ClientSession) -> None:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock, permissions="read")
    await emulator.start()
    try:
        pid = emulator.add_product("A", 1)
        status, _, _ = await call(http, emulator, "GET", "/products")
        assert status == 200
        status, body, _ = await call(
            http, emulator, "POST", "/products/batch", body={"update": [{"id": pid, "stock_quantity": 3}]}
        )
        assert status == 401 and body["message"] == "The API key provided does not have write permissions."
        assert emulator.stock("A") == 1
    finally:
        await emulator.stop()


async def test_unknown_route_and_bad_json(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, emu, "GET", "/nothing-here")
    assert status == 404 and body["code"] == "rest_no_route"
    status, body, _ = await call(http, emu, "DELETE", "/orders")
    assert status == 404 and body["code"] == "rest_no_route"
    url = sign("POST", emu.base_url + API + "/products/batch")
    async with http.post(url, data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == "rest_invalid_json"


# ---------------------------------------------------------------------- orders


async def test_pagination_headers_and_a_page_past_the_end(
    emu: WooCommerceEmulator, http: aiohttp.ClientSession
) -> None:
    emu.add_product("A", None)
    ids = [emu.place_order([("A", 1)]) for _ in range(25)]
    status, body, headers = await call(
        http, emu, "GET", "/orders", {"per_page": "10", "page": "1", "orderby": "id", "order": "asc"}
    )
    assert status == 200 and [o["id"] for o in body] == ids[:10]
    assert headers["X-WP-Total"] == "25" and headers["X-WP-TotalPages"] == "3"
    assert 'rel="next"' in headers["Link"] and "page=2" in headers["Link"] and 'rel="prev"' not in headers["Link"]
    status, body, headers = await call(
        http, emu, "GET", "/orders", {"per_page": "10", "page": "3", "orderby": "id", "order": "asc"}
    )
    assert [o["id"] for o in body] == ids[20:]
    assert 'rel="prev"' in headers["Link"] and 'rel="next"' not in headers["Link"]
    status, body, headers = await call(http, emu, "GET", "/orders", {"per_page": "10", "page": "4"})
    assert status == 200 and body == [] and headers["X-WP-Total"] == "25"
    # default: 10 per page, newest first
    status, body, _ = await call(http, emu, "GET", "/orders")
    assert len(body) == 10 and body[0]["id"] == ids[-1]


async def test_empty_collection_has_zero_pages(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    status, body, headers = await call(http, emu, "GET", "/orders")
    assert status == 200 and body == []
    assert headers["X-WP-Total"] == "0" and headers["X-WP-TotalPages"] == "0" and "Link" not in headers


async def test_modified_after_is_exclusive_and_follows_changes(
    emu: WooCommerceEmulator, http: aiohttp.ClientSession, clock: StepClock
) -> None:
    emu.add_product("A", 50)
    first = emu.place_order([("A", 1)])
    clock.tick(60)
    second = emu.place_order([("A", 1)])
    clock.tick(60)
    emu.set_order_status(first, "completed")  # an edit moves date_modified on
    second_time = (T0 + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S")

    async def ids(**params: str) -> list[int]:
        status, body, _ = await call(http, emu, "GET", "/orders", {"orderby": "id", "order": "asc", **params})
        assert status == 200, body
        return [o["id"] for o in body]

    assert await ids(modified_after=second_time, dates_are_gmt="true") == [first]  # exclusive
    one_before = (T0 + timedelta(seconds=59)).strftime("%Y-%m-%dT%H:%M:%S")
    assert await ids(modified_after=one_before, dates_are_gmt="true") == [first, second]
    assert await ids(modified_after=(T0 + timedelta(seconds=59)).isoformat()) == [first, second]  # +00:00 offset
    assert await ids(modified_before=one_before, dates_are_gmt="true") == []
    assert await ids(after=one_before) == [second]  # created
    status, body, _ = await call(http, emu, "GET", "/orders", {"modified_after": "yesterday"})
    assert status == 400 and body["data"]["params"]["modified_after"] == "Invalid date."
    order = emu.order(first)
    assert order["date_modified_gmt"] == (T0 + timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S")
    assert order["date_created_gmt"] == T0.strftime("%Y-%m-%dT%H:%M:%S")


async def test_status_filter(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    emu.add_product("A", 10)
    processing = emu.place_order([("A", 1)])
    pending = emu.place_order([("A", 1)], status="pending")
    trashed = emu.place_order([("A", 1)], status="trash")

    async def ids(status: str) -> set[int]:
        code, body, _ = await call(http, emu, "GET", "/orders", {"status": status})
        assert code == 200, body
        return {o["id"] for o in body}

    assert await ids("any") == {processing, pending}
    assert await ids("processing,pending") == {processing, pending}
    assert await ids("trash") == {trashed}
    code, body, _ = await call(http, emu, "GET", "/orders", {"status": "paid"})
    assert code == 400 and body["message"] == "Invalid parameter(s): status"


async def test_order_json_shape(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    emu.add_product("MUG", 10, name="Mug", price="6.50")
    parent, variations = emu.add_variable_product("Shirt", {"SHIRT-M": 4})
    oid = emu.place_order([("MUG", 2), ("SHIRT-M", 1)], number="WC-1001", customer="Ann Lee")
    status, order, _ = await call(http, emu, "GET", f"/orders/{oid}")
    assert status == 200
    assert order["number"] == "WC-1001" and order["status"] == "processing" and order["currency"] == "USD"
    assert order["total"] == "23.00"
    assert order["billing"]["first_name"] == "Ann" and order["billing"]["last_name"] == "Lee"
    mug, shirt = order["line_items"]
    assert (mug["sku"], mug["quantity"], mug["price"], mug["total"], mug["variation_id"]) == ("MUG", 2, 6.5, "13.00", 0)
    assert (shirt["product_id"], shirt["variation_id"], shirt["sku"]) == (parent, variations["SHIRT-M"], "SHIRT-M")
    assert order["refunds"] == []
    status, body, _ = await call(http, emu, "GET", "/orders/999999")
    assert status == 404 and body["code"] == "woocommerce_rest_shop_order_invalid_id"


async def test_stock_moves_with_orders_cancel_and_refund(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    emu.add_product("A", 10)
    emu.add_product("UNTRACKED", None)
    oid = emu.place_order([("A", 3), ("UNTRACKED", 2)])
    assert emu.stock("A") == 7 and emu.stock("UNTRACKED") is None
    emu.set_order_status(oid, "cancelled")
    assert emu.stock("A") == 10
    emu.set_order_status(oid, "processing")
    assert emu.stock("A") == 7
    emu.set_order_status(oid, "completed")  # already reduced: no second reduction
    assert emu.stock("A") == 7
    refund_id = emu.refund(oid, [("A", 2)], restock=True, reason="broken")
    assert emu.stock("A") == 9
    emu.set_order_status(oid, "cancelled")  # only what is still reduced comes back
    assert emu.stock("A") == 10

    pending = emu.place_order([("A", 4)], status="pending")
    assert emu.stock("A") == 10  # pending orders do not hold stock
    emu.set_order_status(pending, "on-hold")
    assert emu.stock("A") == 6

    status, order, _ = await call(http, emu, "GET", f"/orders/{oid}")
    assert order["refunds"] == [{"id": refund_id, "reason": "broken", "total": "-20.00"}]
    # The restock is on the order's own line (wc_restock_refunded_items); the cancel deleted
    # _reduced_stock (wc_increase_stock_levels) and left the running total alone.
    line_meta = {m["key"]: m["value"] for m in order["line_items"][0]["meta_data"]}
    assert line_meta == {"_restock_refunded_items": "2"}
    assert {m["key"] for m in order["line_items"][1]["meta_data"]} == set()  # untracked: never reduced
    status, refunds, headers = await call(http, emu, "GET", f"/orders/{oid}/refunds")
    assert status == 200 and headers["X-WP-Total"] == "1"
    (refund,) = refunds
    assert refund["id"] == refund_id and refund["amount"] == "20.00"
    assert "api_restock" not in refund and "api_refund" not in refund  # write-only arguments
    (line,) = refund["line_items"]
    assert line["quantity"] == -2 and line["sku"] == "A" and line["total"] == "-20.00"
    assert [(m["key"], m["value"]) for m in line["meta_data"]] == [
        ("_refunded_item_id", str(order["line_items"][0]["id"]))
    ]


async def test_restock_meta_running_totals(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    emu.add_product("A", 10)
    oid = emu.place_order([("A", 3)])

    async def meta() -> dict[str, str]:
        _, order, _ = await call(http, emu, "GET", f"/orders/{oid}")
        return {m["key"]: m["value"] for m in order["line_items"][0]["meta_data"]}

    assert await meta() == {"_reduced_stock": "3"}
    emu.refund(oid, [("A", 1)], restock=False)
    assert await meta() == {"_reduced_stock": "3"} and emu.stock("A") == 7
    emu.refund(oid, [("A", 1)], restock=True)
    assert await meta() == {"_reduced_stock": "2", "_restock_refunded_items": "1"} and emu.stock("A") == 8
    emu.refund(oid, [("A", 1)], restock=True)
    assert await meta() == {"_reduced_stock": "1", "_restock_refunded_items": "2"} and emu.stock("A") == 9
    emu.set_order_status(oid, "cancelled")
    assert await meta() == {"_restock_refunded_items": "2"} and emu.stock("A") == 10


async def test_refund_without_restock_and_full_refund(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    emu.add_product("A", 10)
    oid = emu.place_order([("A", 2)])
    emu.refund(oid, [("A", 1)], restock=False)
    assert emu.stock("A") == 8
    status, order, _ = await call(http, emu, "GET", f"/orders/{oid}")
    assert {m["key"]: m["value"] for m in order["line_items"][0]["meta_data"]} == {"_reduced_stock": "2"}
    emu.refund(oid, [("A", 1)], restock=True)
    assert emu.stock("A") == 9
    status, order, _ = await call(http, emu, "GET", f"/orders/{oid}")
    assert order["status"] == "refunded" and len(order["refunds"]) == 2
    with pytest.raises(ValueError):
        emu.refund(oid, [("A", 1)])


async def test_variations_inherit_sku_and_parent_stock(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    parent, ids = emu.add_variable_product("Shirt", [("", None), ("", None), ("SHIRT-XL", 4)], sku="SHIRT", stock=10)
    _, rows, _ = await call(
        http, emu, "GET", f"/products/{parent}/variations", params={"orderby": "id", "order": "asc"}
    )
    assert [(r["sku"], r["manage_stock"], r["stock_quantity"]) for r in rows] == [
        ("SHIRT", "parent", 10),
        ("SHIRT", "parent", 10),
        ("SHIRT-XL", True, 4),
    ]
    oid = emu.place_order([(ids["#1"], 2), (ids["SHIRT-XL"], 1)])
    assert emu.stock_of(parent) == 8 and emu.stock_of(ids["#2"]) == 8 and emu.stock("SHIRT-XL") == 3
    _, order, _ = await call(http, emu, "GET", f"/orders/{oid}")
    assert [line["sku"] for line in order["line_items"]] == ["SHIRT", "SHIRT-XL"]
    emu.refund(oid, [(ids["#1"], 1)], restock=True)
    assert emu.stock_of(parent) == 9
    # A stock_quantity sent to a parent-kept variation is stored but hidden (the parent's shows) ...
    _, answer, _ = await call(
        http,
        emu,
        "POST",
        f"/products/{parent}/variations/batch",
        body={"update": [{"id": ids["#2"], "stock_quantity": 50}]},
    )
    assert answer["update"][0]["manage_stock"] == "parent" and answer["update"][0]["stock_quantity"] == 9
    # ... and manage_stock: true switches the variation to a stock of its own.
    _, answer, _ = await call(
        http,
        emu,
        "POST",
        f"/products/{parent}/variations/batch",
        body={"update": [{"id": ids["#2"], "manage_stock": True, "stock_quantity": 5}]},
    )
    assert answer["update"][0]["manage_stock"] is True and emu.manage_stock_of(ids["#2"]) is True
    assert emu.stock_of(ids["#2"]) == 5 and emu.stock_of(parent) == 9


async def test_line_sku_is_looked_up_live(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    pid = emu.add_product("OLD", None)
    oid = emu.place_order([("OLD", 1)])
    status, _, _ = await call(http, emu, "POST", "/products/batch", body={"delete": [pid]})
    assert status == 200
    status, order, _ = await call(http, emu, "GET", f"/orders/{oid}")
    assert order["line_items"][0]["sku"] is None


# ---------------------------------------------------------------------- products


async def test_products_variations_and_sku_filter(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    simple = emu.add_product("SIMPLE", 5)
    parent, variations = emu.add_variable_product("Shirt", {"SHIRT-S": 2, "SHIRT-M": 0, "SHIRT-L": None})
    status, body, headers = await call(http, emu, "GET", "/products", {"orderby": "id", "order": "asc"})
    assert [p["id"] for p in body] == [simple, parent] and headers["X-WP-Total"] == "2"
    variable = body[1]
    assert variable["type"] == "variable" and variable["variations"] == list(variations.values())
    assert variable["stock_status"] == "instock" and variable["manage_stock"] is False
    status, body, _ = await call(http, emu, "GET", "/products", {"type": "variable"})
    assert [p["id"] for p in body] == [parent]
    status, rows, headers = await call(
        http, emu, "GET", f"/products/{parent}/variations", {"per_page": "2", "orderby": "id", "order": "asc"}
    )
    assert [v["sku"] for v in rows] == ["SHIRT-S", "SHIRT-M"] and headers["X-WP-TotalPages"] == "2"
    assert rows[1]["stock_status"] == "outofstock"
    status, rows, _ = await call(
        http,
        emu,
        "GET",
        f"/products/{parent}/variations",
        {"page": "2", "per_page": "2", "orderby": "id", "order": "asc"},
    )
    assert rows[0]["sku"] == "SHIRT-L" and rows[0]["manage_stock"] is False and rows[0]["stock_quantity"] is None
    # the sku filter searches variations too, case-insensitively, comma-separated
    status, body, _ = await call(http, emu, "GET", "/products", {"sku": "shirt-m,SIMPLE"})
    found = {p["sku"]: p for p in body}
    assert set(found) == {"SHIRT-M", "SIMPLE"}
    assert found["SHIRT-M"]["type"] == "variation" and found["SHIRT-M"]["parent_id"] == parent


async def test_batch_update_inline_errors_and_order(
    emu: WooCommerceEmulator, http: aiohttp.ClientSession, clock: StepClock
) -> None:
    a = emu.add_product("A", 1)
    parent, variations = emu.add_variable_product("Shirt", {"S-1": 1})
    b = emu.add_product("B", 1)
    clock.tick(30)
    body = {
        "update": [
            {"id": a, "manage_stock": True, "stock_quantity": 0},
            {"id": 987654, "manage_stock": True, "stock_quantity": 3},
            {"id": variations["S-1"], "manage_stock": True, "stock_quantity": 9},
            {"id": b, "manage_stock": True, "stock_quantity": "12"},
        ]
    }
    status, answer, _ = await call(http, emu, "POST", "/products/batch", body=body)
    assert status == 200
    first, unknown, variation, last = answer["update"]
    assert first["id"] == a and first["stock_quantity"] == 0 and first["stock_status"] == "outofstock"
    assert first["date_modified_gmt"] == (T0 + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")
    assert unknown == {
        "id": 987654,
        "error": {"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 400}},
    }
    assert variation["id"] == variations["S-1"] and variation["error"]["code"] == "woocommerce_rest_product_invalid_id"
    assert last["stock_quantity"] == 12 and last["stock_status"] == "instock"
    assert emu.stock("S-1") == 1 and emu.stock("A") == 0 and emu.stock("B") == 12
    # the variation's own endpoint takes it; another parent's does not
    status, answer, _ = await call(
        http,
        emu,
        "POST",
        f"/products/{parent}/variations/batch",
        body={
            "update": [
                {"id": variations["S-1"], "manage_stock": True, "stock_quantity": 9},
                {"id": a, "stock_quantity": 2},
            ]
        },
    )
    assert status == 200
    assert answer["update"][0]["stock_quantity"] == 9 and answer["update"][0]["parent_id"] == parent
    assert answer["update"][1]["error"]["code"] == "woocommerce_rest_product_variation_invalid_id"
    assert emu.stock("S-1") == 9 and emu.stock("A") == 0


async def test_stock_quantity_is_ignored_without_stock_management(
    emu: WooCommerceEmulator, http: aiohttp.ClientSession
) -> None:
    pid = emu.add_product("LOOSE", None)
    status, answer, _ = await call(
        http, emu, "POST", "/products/batch", body={"update": [{"id": pid, "stock_quantity": 4}]}
    )
    assert (
        status == 200 and answer["update"][0]["stock_quantity"] is None and answer["update"][0]["manage_stock"] is False
    )
    status, product, _ = await call(
        http, emu, "PUT", f"/products/{pid}", body={"manage_stock": True, "stock_quantity": 4}
    )
    assert status == 200 and product["stock_quantity"] == 4 and emu.stock("LOOSE") == 4
    status, body, _ = await call(http, emu, "PUT", "/products/424242", body={"stock_quantity": 4})
    assert status == 400 and body["code"] == "woocommerce_rest_product_invalid_id"


async def test_set_stock_by_hand_bumps_modified(
    emu: WooCommerceEmulator, http: aiohttp.ClientSession, clock: StepClock
) -> None:
    pid = emu.add_product("A", 1)
    clock.tick(90)
    emu.set_stock("A", 40)
    status, product, _ = await call(http, emu, "GET", f"/products/{pid}")
    assert product["stock_quantity"] == 40
    assert product["date_modified_gmt"] == (T0 + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------------- counters and faults


async def test_counters_count_every_request_by_route(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    parent, _ = emu.add_variable_product("Shirt", {"S": 1})
    await call(http, emu, "GET", "/orders")
    await call(http, emu, "GET", "/orders")
    await call(http, emu, "POST", f"/products/{parent}/variations/batch", body={"update": []})
    async with http.get(emu.base_url + API + "/products"):  # unauthenticated still counts
        pass
    assert emu.counters["GET /wp-json/wc/v3/orders"] == 2
    assert emu.counters["POST /wp-json/wc/v3/products/{id}/variations/batch"] == 1
    assert emu.counters["GET /wp-json/wc/v3/products"] == 1


async def test_faults_status_retry_after_drop_latency(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    route = "GET /wp-json/wc/v3/orders"
    emu.faults.add(route, status=429, retry_after="7")
    emu.faults.add(route, status=500)
    emu.faults.add(route, drop=True, times=2)  # aiohttp resends a dropped GET once by itself
    emu.faults.add(route, latency=0.3)

    status, body, headers = await call(http, emu, "GET", "/orders")
    assert status == 429 and headers["Retry-After"] == "7" and body["data"]["status"] == 429
    status, body, _ = await call(http, emu, "GET", "/orders")
    assert status == 500 and body["code"] == "internal_server_error" and "critical error" in body["message"]
    with pytest.raises(aiohttp.ClientError):
        await call(http, emu, "GET", "/orders")
    started = time.monotonic()
    status, _, _ = await call(http, emu, "GET", "/orders")
    assert status == 200 and time.monotonic() - started >= 0.25
    status, _, _ = await call(http, emu, "GET", "/orders")
    assert status == 200
    assert emu.counters[route] == 6 and emu.faults.injected[route] == 5


async def test_optional_rate_limit(clock: StepClock, http: aiohttp.ClientSession) -> None:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock, rate_limit=(3, 10.0))
    await emulator.start()
    try:
        statuses = []
        for _ in range(4):
            status, body, headers = await call(http, emulator, "GET", "/orders")
            statuses.append(status)
        assert statuses == [200, 200, 200, 429]
        assert 1 <= int(headers["Retry-After"]) <= 10
    finally:
        await emulator.stop()


async def test_no_rate_limit_by_default(emu: WooCommerceEmulator, http: aiohttp.ClientSession) -> None:
    results = await asyncio.gather(*(call(http, emu, "GET", "/products") for _ in range(40)))
    assert {status for status, _, _ in results} == {200}


async def test_error_bodies_are_wordpress_json() -> None:
    body = json.loads(WooCommerceEmulator.error_body(503))
    assert body["data"]["status"] == 503 and body["code"]
