"""Concurrent, adaptive pushes against the store emulators over real HTTP, with the real pusher,
its SQLite file and the dispatcher (connex_tui.engine.dispatch); the emulators answer with
injected latency, per-item cost and bounded workers (connex_tui.sim.capacity)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connex_tui.engine import views
from connex_tui.engine.db import Database
from connex_tui.engine.dispatch import BatchDispatcher
from connex_tui.engine.items import queue_stock
from connex_tui.engine.pusher import InventoryPusher, PushOutcome
from connex_tui.engine.throughput import THROUGHPUT_KEY, Throughput
from connex_tui.sim.shopify import ShopifyEmulator
from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.storefronts.base import (
    CatalogEntry,
    CredentialsError,
    RequestStats,
    StockResult,
)
from connex_tui.storefronts.limiter import StoreGate
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.shopify import ShopifyClient
from connex_tui.storefronts.woocommerce import WooCommerceClient

from .store_fixtures import make_shop  # noqa: F401 - fixture

KEY, SECRET = "ck_3f9a2b7c1d", "cs_9e8d7c6b5a4f3e2d1c"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode(), "X-Forwarded-Proto": "https"}
FAST = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05, timeout=10.0)


class Probe:
    """Server side: when each request arrived and how many were being served at once."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.serving = 0
        self.peak = 0

    def attach(self, emulator: Any) -> None:
        make_app = emulator.app

        @web.middleware
        async def probe(request: web.Request, handler: Any) -> web.StreamResponse:
            self.arrivals.append((time.monotonic(), f"{request.method} {request.path}"))
            self.serving += 1
            self.peak = max(self.peak, self.serving)
            try:
                return await handler(request)
            finally:
                self.serving -= 1

        def app() -> web.Application:
            application = make_app()
            application.middlewares.insert(0, probe)  # outermost: sees 429s too
            return application

        emulator.app = app


@pytest.fixture
async def woo() -> AsyncIterator[tuple[WooCommerceEmulator, Probe]]:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET)
    probe = Probe()
    probe.attach(emulator)
    await emulator.start()
    yield emulator, probe
    await emulator.stop()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "connex.sqlite")
    yield database
    await database.close()


@pytest.fixture
async def woo_client(woo: tuple[WooCommerceEmulator, Probe]) -> AsyncIterator[WooCommerceClient]:
    client = WooCommerceClient(woo[0].base_url, KEY, SECRET, policy=FAST)
    yield client
    await client.close()


async def queue(db: Database, quantities: dict[str, int]) -> None:
    async with db.transaction() as conn:
        await queue_stock(conn, {sku: Decimal(q) for sku, q in quantities.items()}, db.clock.stamp())


async def drain_all(dispatcher: BatchDispatcher, **kwargs: Any) -> PushOutcome:
    total = PushOutcome()
    while True:
        outcome = await dispatcher.drain(**kwargs)
        total.taken += outcome.taken
        total.pushed += outcome.pushed
        if not await dispatcher.db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'"):
            return total
        await asyncio.sleep(0.01)


def applied_log(emulator: WooCommerceEmulator) -> list[tuple[int, int]]:
    """(product id, stock) in the order the store applied them (WooCommerce's save)."""
    log: list[tuple[int, int]] = []
    apply = emulator._apply

    def logged(product: Any, item: dict[str, Any]) -> None:
        apply(product, item)
        if "stock_quantity" in item:
            log.append((product.id, int(item["stock_quantity"])))

    emulator._apply = logged  # type: ignore[method-assign]
    return log


# ---------------------------------------------------------------------- the emulator's knobs


async def test_emulated_store_serves_a_bounded_number_of_requests_with_latency_and_per_item_cost(
    woo: tuple[WooCommerceEmulator, Probe],
) -> None:
    emulator, _ = woo
    ids = [emulator.add_product(f"S{n}", 1) for n in range(40)]
    emulator.capacity.latency, emulator.capacity.per_item, emulator.capacity.workers = 0.1, 0.01, 2
    async with aiohttp.ClientSession(headers=AUTH) as http:

        async def batch(chunk: list[int]) -> int:
            body = {"update": [{"id": i, "stock_quantity": 5} for i in chunk]}
            async with http.post(f"{emulator.base_url}/wp-json/wc/v3/products/batch", json=body) as resp:
                return resp.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(batch(ids[n : n + 10]) for n in range(0, 40, 10)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * 4
    assert emulator.capacity.peak_serving == 2 and emulator.capacity.peak_waiting == 2
    assert elapsed >= 2 * (0.1 + 10 * 0.01), "two rounds of two workers, each 0.1 s + 10 items x 0.01 s"
    assert all(emulator.stock(f"S{n}") == 5 for n in range(40))
    emulator.capacity.workers, emulator.capacity.queue_timeout = 1, 0.05
    async with aiohttp.ClientSession(headers=AUTH) as http:
        statuses = await asyncio.gather(*(batch(ids[n : n + 10]) for n in range(0, 20, 10)))
    assert sorted(statuses) == [200, 504], "the one left waiting past the proxy's timeout gets 504"


# ---------------------------------------------------------------------- concurrency


async def test_batches_go_side_by_side_up_to_the_maximum(
    woo: tuple[WooCommerceEmulator, Probe], woo_client: WooCommerceClient, db: Database
) -> None:
    emulator, probe = woo
    for n in range(3000):
        emulator.add_product(f"SKU{n:05}", 0)
    await InventoryPusher(db, woo_client).index.refresh()
    emulator.capacity.latency, emulator.capacity.per_item = 0.05, 0.0005
    await queue(db, {f"SKU{n:05}": n % 50 + 1 for n in range(3000)})
    probe.peak = 0
    dispatcher = BatchDispatcher(db, InventoryPusher(db, woo_client), woo_client.gate)
    total = await drain_all(dispatcher)
    assert total.pushed == 3000
    assert all(emulator.stock(f"SKU{n:05}") == n % 50 + 1 for n in range(3000))
    assert woo_client.gate.peak == 8 and probe.peak == 8, "grew from 2 to the maximum, never above"
    assert emulator.capacity.same_item_overlaps == 0
    figures = Throughput.from_json(await db.get_meta(THROUGHPUT_KEY))
    assert figures is not None and figures.concurrency == 8 and figures.maximum == 8
    assert figures.rtt_p95 is not None and figures.rtt_p95 >= 0.05 and figures.updates_per_second
    board = await views.dashboard(db)
    assert board.throughput == figures


async def test_429s_drop_the_concurrency_and_it_recovers(
    woo: tuple[WooCommerceEmulator, Probe], woo_client: WooCommerceClient, db: Database
) -> None:
    emulator, _ = woo
    for n in range(6000):
        emulator.add_product(f"SKU{n:05}", 0)
    await InventoryPusher(db, woo_client).index.refresh()
    emulator.capacity.latency = 0.03
    await queue(db, {f"SKU{n:05}": 7 for n in range(6000)})
    gate = woo_client.gate
    injected_at: list[int] = []

    def on_batch(outcome: PushOutcome) -> None:
        if gate.limit == 8 and not injected_at:
            injected_at.append(len(gate.history))
            emulator.faults.add("POST /wp-json/wc/v3/products/batch", status=429, retry_after="0", times=3)

    await drain_all(BatchDispatcher(db, InventoryPusher(db, woo_client), gate), on_batch=on_batch)
    limits = [limit for _, limit in gate.history]
    after = limits[injected_at[0] :]
    assert emulator.faults.injected["POST /wp-json/wc/v3/products/batch"] == 3
    assert min(after) <= 4, f"the 429s halved the concurrency: {limits}"
    assert after[-1] == 8, f"and it grew back to the maximum: {limits}"
    assert all(emulator.stock(f"SKU{n:05}") == 7 for n in range(6000))


async def test_retry_after_pauses_every_request_to_the_store(
    woo: tuple[WooCommerceEmulator, Probe], woo_client: WooCommerceClient
) -> None:
    emulator, probe = woo
    emulator.add_product("A", 1)
    emulator.faults.add("GET /wp-json/wc/v3/products", status=429, retry_after="1", times=1)
    catalog = asyncio.create_task(woo_client.catalog())
    # Wait on the condition (the client took the 429 and paused), not on how fast a busy machine
    # gets there: the pause's end is read from the client's own monotonic clock.
    while not woo_client.gate.snapshot().paused_for:
        await asyncio.sleep(0.005)
    pause_ends = time.monotonic() + woo_client.gate.snapshot().paused_for
    refused = len(probe.arrivals)  # the request told to wait has arrived; whatever comes next is later
    orders = asyncio.create_task(woo_client.list_orders(None))  # another task, another route
    await asyncio.gather(catalog, orders)
    later = probe.arrivals[refused:]
    assert later and all(at >= pause_ends - 0.005 for at, _ in later), (
        f"nothing reached the store during the pause: {later}"
    )
    assert {what for _, what in later} == {"GET /wp-json/wc/v3/products", "GET /wp-json/wc/v3/orders"}


async def test_order_pages_are_read_side_by_side_within_the_same_limit(
    woo: tuple[WooCommerceEmulator, Probe],
) -> None:
    emulator, probe = woo
    emulator.add_product("WINE", 100_000)
    for n in range(700):
        emulator.place_order([("WINE", 1)], customer=f"Buyer {n}")
    emulator.capacity.latency = 0.05
    for maximum, expected_peak in ((1, 1), (3, 3)):
        client = WooCommerceClient(emulator.base_url, KEY, SECRET, policy=FAST, concurrency=maximum)
        for _ in range(4):  # let the gate grow to its maximum
            probe.peak = 0
            orders = await client.list_orders(None)
        await client.close()
        assert len(orders) == 700
        assert probe.peak == expected_peak


# ---------------------------------------------------------------------- one SKU, in order


async def test_two_updates_of_one_sku_never_overlap_and_the_newer_wins(
    woo: tuple[WooCommerceEmulator, Probe], woo_client: WooCommerceClient, db: Database
) -> None:
    emulator, _ = woo
    product = emulator.add_product("RACE", 0)
    for n in range(300):
        emulator.add_product(f"OTHER{n:03}", 0)
    await InventoryPusher(db, woo_client).index.refresh()
    applied = applied_log(emulator)
    emulator.capacity.latency = 0.2
    await queue(db, {"RACE": 5})
    dispatcher = BatchDispatcher(db, InventoryPusher(db, woo_client), woo_client.gate)
    first = asyncio.create_task(dispatcher.drain())
    while not await db.fetchval("SELECT count(*) FROM pending WHERE state = 'in_flight'"):
        await asyncio.sleep(0.005)
    await queue(db, {"RACE": 7, **{f"OTHER{n:03}": 1 for n in range(300)}})  # newer, while 5 is under way
    second = asyncio.create_task(dispatcher.drain())  # a second drain with free slots races the first
    await asyncio.gather(first, second)
    await drain_all(dispatcher)
    race = [quantity for item, quantity in applied if item == product]
    assert race == [5, 7]
    assert emulator.stock("RACE") == 7
    assert emulator.capacity.same_item_overlaps == 0
    assert await db.fetchval("SELECT quantity FROM catalog WHERE sku_key = 'race'") == 7
    assert await db.fetchval("SELECT count(*) FROM pending") == 0


async def test_racing_updates_of_the_same_skus_are_never_reordered(
    woo: tuple[WooCommerceEmulator, Probe], woo_client: WooCommerceClient, db: Database
) -> None:
    emulator, _ = woo
    skus = [f"HOT{n:02}" for n in range(20)] + [f"COLD{n:04}" for n in range(800)]
    ids = {emulator.add_product(sku, 0): sku for sku in skus}
    await InventoryPusher(db, woo_client).index.refresh()
    applied = applied_log(emulator)
    emulator.capacity.latency, emulator.capacity.per_item = 0.02, 0.0002
    rng = random.Random(12)
    last: dict[str, int] = {}
    dispatcher = BatchDispatcher(db, InventoryPusher(db, woo_client), woo_client.gate)

    async def quickbooks() -> None:
        for version in range(1, 61):  # quantities only grow: an older one is a smaller one
            chosen = rng.sample(skus[:20], 8) + rng.sample(skus[20:], 100)
            await queue(db, {sku: version for sku in chosen})
            last.update({sku: version for sku in chosen})
            await asyncio.sleep(rng.uniform(0, 0.02))

    async def inventory_task() -> None:
        while not writer.done():
            await dispatcher.drain()
            await asyncio.sleep(0.001)

    writer = asyncio.create_task(quickbooks())
    await asyncio.gather(writer, inventory_task(), inventory_task())
    await drain_all(dispatcher)
    per_sku: dict[str, list[int]] = {}
    for item, quantity in applied:
        per_sku.setdefault(ids[item], []).append(quantity)
    reorderings = sum(1 for seq in per_sku.values() for a, b in itertools.pairwise(seq) if b < a)
    assert reorderings == 0
    assert emulator.capacity.same_item_overlaps == 0
    assert {sku: emulator.stock(sku) for sku in last} == last
    assert woo_client.gate.peak > 2, "batches really were side by side"
    assert await db.fetchval("SELECT count(*) FROM pending") == 0


# ---------------------------------------------------------------------- Shopify


async def test_shopify_calls_overlap_only_as_far_as_the_bucket_affords_them(
    make_shop: Callable[..., Any], tmp_path: Path, db: Database
) -> None:
    shop: ShopifyEmulator = await make_shop(bucket=60.0, restore_rate=50.0)
    for n in range(40):
        shop.add_product(f"Product {n}", {f"V{n:02}": 0})
    probe = Probe()
    await shop.stop()
    probe.attach(shop)
    await shop.start()
    shop.faults.add("*", latency=0.2, times=10**6)
    client = ShopifyClient(shop.url, shop.access_token, shop.location_id, policy=FAST)
    try:
        await InventoryPusher(db, client).index.refresh()
        await asyncio.sleep(1.5)  # the catalog read emptied the small bucket; let it fill
        client.batch_limit = 2  # 20 mutations of 10 points through a 60-point bucket
        await queue(db, {f"V{n:02}": n + 1 for n in range(40)})
        probe.peak = 0
        total = await drain_all(BatchDispatcher(db, InventoryPusher(db, client), client.gate))
    finally:
        await client.close()
    assert total.pushed == 40
    assert shop.throttled == 0 and client.throttled_answers == 0
    assert probe.peak > 1, "calls went out side by side"
    assert probe.peak <= 6, "never more under way than the 60-point bucket affords at 10 points a call"
    assert all(shop.available(f"V{n:02}") == n + 1 for n in range(40))


# ---------------------------------------------------------------------- errors


class GatedStore:
    """A store double with a gate: one batch's keys are refused. No call answers until all four
    are under way (a barrier), then the refused one raises at once and the others answer only once
    the refused batch's task is over, so the dispatcher always sees the refusal before any batch
    comes back and starts no fifth: the order is fixed by events, not by how busy the machine is."""

    platform = "gated"
    batch_limit = 10

    def __init__(self) -> None:
        self.stats = RequestStats()
        self.gate = StoreGate(start=4, maximum=4)
        self.calls = 0
        self.all_under_way = asyncio.Barrier(4)
        self.refused: asyncio.Task[Any] | None = None

    async def list_orders(self, modified_since: Any) -> list[Any]:
        return []

    async def catalog(self) -> list[Any]:
        return [CatalogEntry(f"G{n:03}", item_id=str(n), quantity=0) for n in range(100)]

    async def set_stock(self, updates: Any) -> list[Any]:
        self.calls += 1
        call = self.calls
        if call == 2:
            self.refused = asyncio.current_task()
        if call <= 4:  # a fifth call (the bug this test is about) must not hang on the barrier
            await self.all_under_way.wait()
        if call == 2:
            raise CredentialsError("the store refused our credentials; check your credentials")
        assert self.refused is not None
        await asyncio.wait([self.refused])  # the refused batch is put back and its task is over
        return [StockResult(u.sku, ok=True, before=0, after=u.quantity) for u in updates]

    async def close(self) -> None:
        return None


async def test_a_batch_that_raises_lets_the_others_finish_and_leaves_nothing_in_flight(db: Database) -> None:
    store = GatedStore()
    pusher = InventoryPusher(db, store)
    await pusher.index.refresh()
    await queue(db, {f"G{n:03}": 3 for n in range(100)})
    with pytest.raises(CredentialsError):
        await BatchDispatcher(db, pusher, store.gate).drain()
    assert store.calls == 4, "the four batches under way all finished"
    assert await db.fetchval("SELECT count(*) FROM pending WHERE state = 'in_flight'") == 0
    assert await db.fetchval("SELECT count(*) FROM pending") == 70, "three batches pushed, the refused one kept"
