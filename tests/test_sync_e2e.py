"""The whole sync over real HTTP, for each store emulator: the store client against the emulator,
the Web Connector simulator against the real endpoint, QuickBooks simulated behind it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import pytest

from connex_tui.engine.config import Config
from connex_tui.engine.db import Database
from connex_tui.engine.admin_commands import retry_skus
from connex_tui.engine.clock import SYSTEM_CLOCK, Clock
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.stores import EmulatedStore
from connex_tui.sim.webconnector import RunResult, WebConnectorSim
from connex_tui.soap.qbxml import TxnDoc, TxnLine, message_set, txn_add_rq

from .clocks import ShiftedClock, VirtualTime
from .conftest import PASSWORD, make_config

PLATFORMS = ["woocommerce", "shopify"]


@dataclass
class Sync:
    store: EmulatedStore
    qb: QuickBooksSim
    engine: Engine
    wc: WebConnectorSim
    config: Config
    clock: VirtualTime

    async def stop(self) -> None:
        store = self.engine.store
        await self.engine.stop()
        if store is not None:
            await store.close()
        await self.store.stop()

    @property
    def db(self):
        return self.engine.db

    async def import_orders(self) -> str:
        return await self.engine.scheduler.run_and_wait("orders")

    async def session(self) -> RunResult:
        run = await self.wc.run_once()
        assert run.status in ("ok", "none"), run
        return run

    async def drain(self, seconds: float = 30.0) -> None:
        """Until nothing is waiting to be pushed (failed rows stay, by design)."""
        deadline = time.monotonic() + seconds
        while await self.db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'"):
            assert time.monotonic() < deadline, "the pending queue did not drain"
            self.engine.scheduler.wake("inventory")
            await asyncio.sleep(0.05)

    async def sync(self) -> None:
        await self.import_orders()
        await self.session()
        await self.drain()

    def credit_memo(self, item: str, quantity: int) -> None:
        doc = TxnDoc("CM-1", "returned at the counter", "Web Store", (TxnLine(item, Decimal(quantity)),))
        response = self.qb.process(message_set([txn_add_rq("credit_memo", doc, "cm")]))
        assert 'statusCode="0"' in response


async def start_sync(
    tmp_path,
    platform: str,
    http: aiohttp.ClientSession,
    *,
    qb: QuickBooksSim | None = None,
    engine_clock: Clock = SYSTEM_CLOCK,
    **store_options,
) -> Sync:
    clock = VirtualTime(1000.0)
    if platform == "shopify":
        store_options.setdefault("clock", clock)
    store = EmulatedStore(platform, **store_options)
    await store.start()
    qb = qb or QuickBooksSim()
    qb.add_item("redwine", 20)
    store.seed({"redwine": 20})
    config = make_config(
        tmp_path,
        storefront=store.storefront_config(),
        orders={"poll_seconds": 3600},
        qbwc={"read_min_interval_seconds": 0},
    )
    client = None
    if platform == "shopify":
        from connex_tui.storefronts.shopify import ShopifyClient

        c = config.storefront
        client = ShopifyClient(c.url, c.access_token.reveal(), c.location_id, clock=clock, sleep=clock.sleep)
    engine = Engine(config, storefront=client, clock=engine_clock)
    await engine.start()
    # The tasks run once at start-up; let those first runs finish so each test sees only its own calls.
    deadline = time.monotonic() + 10
    while await engine.db.fetchval(
        "SELECT count(*) FROM tasks WHERE name IN ('orders', 'catalog', 'inventory', 'cleanup') AND last_run IS NULL"
    ):
        assert time.monotonic() < deadline, "the first task runs did not finish"
        await asyncio.sleep(0.02)
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    return Sync(store, qb, engine, wc, config, clock)


@pytest.fixture(params=PLATFORMS)
async def sync(request, tmp_path, http) -> AsyncIterator[Sync]:
    harness = await start_sync(tmp_path, request.param, http)
    yield harness
    await harness.stop()


async def test_seed_case_order_reaches_quickbooks_and_the_store_shows_15(sync: Sync) -> None:
    sync.store.set_stock("redwine", 20)
    sync.store.order([("redwine", 5)])
    assert "1 new" in await sync.import_orders()
    await sync.session()
    assert sync.qb.item("redwine").quantity_on_hand == 15
    await sync.drain()
    assert sync.store.stock("redwine") == 15
    log = await sync.db.fetchall("SELECT sku, new_qty, ok FROM sku_log")
    assert [tuple(r) for r in log] == [("redwine", "15", 1)]
    # Importing again finds nothing new: the order is kept once.
    assert "0 new" in await sync.import_orders()
    assert await sync.db.fetchval("SELECT count(*) FROM orders") == 1


async def test_credit_memo_in_quickbooks_raises_the_store(sync: Sync) -> None:
    sync.store.order([("redwine", 5)])
    await sync.sync()
    assert sync.store.stock("redwine") == 15
    sync.credit_memo("redwine", 3)
    await sync.session()
    await sync.drain()
    assert sync.qb.item("redwine").quantity_on_hand == 18
    assert sync.store.stock("redwine") == 18


async def test_store_refund_with_restock_posts_one_credit_memo(sync: Sync) -> None:
    order = sync.store.order([("redwine", 5)])
    await sync.sync()
    sync.store.refund(order, [("redwine", 2)])
    assert sync.store.stock("redwine") == 17
    assert "1 credit memos" in await sync.import_orders()
    assert "0 credit memos" in await sync.import_orders()
    await sync.session()
    await sync.session()
    memos = [t for t in sync.qb.transactions if t.kind == "credit_memo"]
    assert len(memos) == 1
    assert sync.qb.item("redwine").quantity_on_hand == 17
    await sync.drain()
    assert sync.store.stock("redwine") == 17


async def test_cancelled_before_posting_is_not_posted(sync: Sync) -> None:
    order = sync.store.order([("redwine", 5)])
    await sync.import_orders()
    if sync.store.platform == "shopify":
        sync.store.emulator.cancel_order(order)
    else:
        sync.store.emulator.set_order_status(order, "cancelled")
    assert "1 cancelled" in await sync.import_orders()
    await sync.session()
    assert sync.qb.transactions == []
    assert await sync.db.fetchval("SELECT qb_state FROM orders") == "skipped"


async def test_sku_only_in_quickbooks_fails_with_a_reason_then_a_retry_succeeds(sync: Sync) -> None:
    sync.qb.add_item("qb-only", 7)
    await sync.sync()
    rows = await sync.db.fetchall("SELECT sku, ok, reason FROM sku_log WHERE ok = 0")
    assert [(r["sku"], r["ok"]) for r in rows] == [("qb-only", 0)]
    assert rows[0]["reason"].startswith("SKU not found on the store")
    assert await sync.db.fetchval("SELECT state FROM pending WHERE sku = 'qb-only'") == "failed"

    sync.store.seed({"qb-only": 0})
    async with sync.db.transaction() as conn:  # let the index be refreshed again at once
        await conn.execute("UPDATE meta SET value = '2000-01-01T00:00:00+00:00' WHERE key = 'catalog.refreshed_at'")
    assert await retry_skus(sync.db, ["qb-only"]) == 1
    await sync.drain()
    assert sync.store.stock("qb-only") == 7
    assert await sync.db.fetchval("SELECT count(*) FROM sku_log WHERE sku = 'qb-only' AND ok = 1") == 1


async def test_stock_edited_by_hand_on_the_store_is_put_back_by_reconcile(sync: Sync) -> None:
    await sync.sync()
    sync.store.set_stock("redwine", 3)
    assert "1 of 1 SKUs differed" in await sync.engine.scheduler.run_and_wait("reconcile")
    for _ in range(100):  # pushed at once: the reconcile wakes the inventory task itself
        if sync.store.stock("redwine") == 20:
            break
        await asyncio.sleep(0.05)
    assert sync.store.stock("redwine") == 20


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_1000_changed_items_in_the_fewest_stock_requests(tmp_path, http, platform: str) -> None:
    sync = await start_sync(tmp_path, platform, http)
    try:
        skus = {f"ITEM-{n:04d}": n % 50 for n in range(1000)}
        for sku, qty in skus.items():
            sync.qb.add_item(sku, qty)
        sync.store.seed(skus)
        await sync.engine.scheduler.run_and_wait("catalog")  # the hourly index refresh sees them
        await sync.sync()  # first read: everything is news once
        before = sync.store.stock_requests()
        for sku in skus:
            sync.qb.adjust_quantity(sku, 3)
        started, virtual_started = time.monotonic(), sync.clock.now
        await sync.session()
        await sync.drain()
        elapsed = time.monotonic() - started
        waited = sync.clock.now - virtual_started  # Shopify: time the throttle made us wait
        limit = sync.engine.store.batch_limit
        assert sync.store.stock_requests() - before == math.ceil(1000 / limit)
        assert sync.store.throttled() == 0
        assert all(sync.store.stock(sku) == qty + 3 for sku, qty in skus.items())
        print(f"{platform}: 1000 items pushed in {elapsed:.2f} s (+{waited:.2f} s throttle wait)")
    finally:
        await sync.stop()


async def test_injected_429_500_and_drops_still_deliver_and_honour_retry_after(sync: Sync) -> None:
    route = "*"
    sync.store.faults.add(route, status=429, retry_after="1")
    sync.store.faults.add(route, status=500)
    sync.store.faults.add(route, drop=True)
    sync.store.faults.add(route, status=503, retry_after="0.5")
    sync.store.order([("redwine", 4)])
    started, virtual_started = time.monotonic(), sync.clock.now
    await sync.sync()
    # Both Retry-After waits were honoured (tasks run side by side, so the waits may overlap).
    assert sync.engine.store.stats.waited_seconds >= 1.5
    if sync.store.platform == "shopify":
        assert sync.clock.now - virtual_started >= 1.5  # its client waits on the virtual clock
    else:
        assert time.monotonic() - started >= 1.0
    assert sync.store.stock("redwine") == 16 and sync.qb.item("redwine").quantity_on_hand == 16
    assert sum(sync.store.faults.injected.values()) == 4


async def test_engine_stopped_mid_batch_loses_nothing(tmp_path, http) -> None:
    sync = await start_sync(tmp_path, "woocommerce", http)
    try:
        skus = {f"ITEM-{n:03d}": 1 for n in range(150)}
        for sku in skus:
            sync.qb.add_item(sku, 9)
        sync.store.seed(skus)
        await sync.engine.scheduler.run_and_wait("catalog")
        sync.store.faults.add("POST /wp-json/wc/v3/products/batch", latency=5.0)
        await sync.session()
        deadline = time.monotonic() + 5
        while not await sync.db.fetchval("SELECT count(*) FROM pending WHERE state = 'in_flight'"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await sync.engine.stop()  # the push is cancelled half-way
        left = await Database.open(sync.config.database.path)
        try:
            assert await left.fetchval("SELECT count(*) FROM pending WHERE state = 'in_flight'") > 0
        finally:
            await left.close()
        clock = ShiftedClock()
        restarted = Engine(sync.config, clock=clock)
        await restarted.start()
        try:
            sync.engine = restarted
            held = await restarted.db.fetchval(
                "SELECT count(*) FROM pending WHERE state = 'pending' AND next_attempt > ?",
                (clock.stamp(after_seconds=50),),
            )
            assert held > 0  # recovered rows wait out the store's request timeout first
            clock.advance(61)  # that minute passes
            await sync.drain()
            assert all(sync.store.stock(sku) == 9 for sku in skus)
            assert sync.store.stock("redwine") == 20
        finally:
            await restarted.stop()
    finally:
        await sync.store.stop()


async def test_an_order_line_without_a_sku_waits_as_failed_with_the_reason(tmp_path, http) -> None:
    sync = await start_sync(tmp_path, "woocommerce", http)
    try:
        unnamed = sync.store.emulator.add_product("", 5, name="Gift wrap")
        sync.store.order([("redwine", 1)])
        sync.store.emulator.place_order([("redwine", 1), (unnamed, 1)])
        await sync.import_orders()
        rows = await sync.db.fetchall("SELECT qb_state, error FROM orders ORDER BY id")
        assert rows[0]["qb_state"] == "new"
        assert rows[1]["qb_state"] == "failed" and "line 2 has no SKU" in rows[1]["error"]
        await sync.session()
        assert len(sync.qb.transactions) == 1
    finally:
        await sync.stop()
