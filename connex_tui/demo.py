"""`connex-tui demo`: the whole sync, live, on this machine, with nothing to configure.

It starts the real engine (database, Web Connector endpoint, storefront tasks) against simulated
parts on free local ports: a store emulator (WooCommerce or Shopify) reached over real HTTP, a
QuickBooks company file, and the Web Connector calling the endpoint every couple of seconds. It
seeds a catalog (redwine at 20 among a few hundred items, plus one SKU that exists only in
QuickBooks), then plays a merchant's day: store orders, an inventory adjustment and a credit memo
in QuickBooks, a refund with restock on the store. It ends when the store and QuickBooks agree
on every matched SKU, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import aiohttp

from .engine.config import Config, parse_config
from .engine.runtime import Engine
from .sim.quickbooks import QuickBooksSim
from .sim.stores import EmulatedStore
from .sim.webconnector import WebConnectorSim
from .soap.qbxml import TxnDoc, TxnLine, message_set, txn_add_rq

CATALOG_SIZE = 300
QB_ONLY_SKU = "QB-ONLY-1"
WC_INTERVAL = 1.5  # seconds between Web Connector runs in the demo


def demo_config(folder: Path, password: str, storefront: dict[str, str]) -> Config:
    data = {
        "database": {"path": str(folder / "demo.db")},
        "qbwc": {"host": "127.0.0.1", "port": 0, "password": password, "read_min_interval_seconds": 0},
        "storefront": storefront,
        "orders": {"poll_seconds": 1},
    }
    return parse_config(data, folder / "demo.toml", {})


def seed_catalog(qb: QuickBooksSim, store: EmulatedStore, rng: random.Random) -> None:
    qb.add_item("redwine", 20, price=Decimal("12.50"))
    store_skus = {"redwine": 20}
    for n in range(1, CATALOG_SIZE):
        sku = f"SKU-{n:04d}"
        qb.add_item(sku, 5 + n % 40, price=Decimal("9.99"))
        store_skus[sku] = rng.randint(0, 60)  # the store starts out of date
    qb.add_item(QB_ONLY_SKU, 7)
    store.seed(store_skus)


def credit_memo_request(item: str, quantity: int) -> str:
    doc = TxnDoc(
        ref_number="CM-1",
        memo="Returned by a walk-in customer",
        customer="Web Store",
        lines=(TxnLine(item, Decimal(quantity)),),
    )
    return message_set([txn_add_rq("credit_memo", doc, "cm-1")])


@dataclass
class Agreement:
    matched: int
    differing: list[tuple[str, int | None, Decimal]]


def compare(qb: QuickBooksSim, store: EmulatedStore) -> Agreement:
    differing = []
    matched = 0
    for full_name, item in qb.items.items():
        on_store = store.stock(full_name) if full_name != QB_ONLY_SKU else None
        if full_name == QB_ONLY_SKU:
            continue
        matched += 1
        if on_store is None or Decimal(on_store) != item.quantity_on_hand:
            differing.append((full_name, on_store, item.quantity_on_hand))
    return Agreement(matched, differing)


class Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.started:5.1f}s] {text}\n")
        self.out.flush()


async def _settle(engine: Engine, qb: QuickBooksSim, store: EmulatedStore, deadline: float) -> Agreement:
    """Wait until nothing is pending and the two sides agree (or the deadline passes)."""
    assert engine.db is not None
    agreement = compare(qb, store)
    while time.monotonic() < deadline:
        waiting = await engine.db.fetchval(
            "SELECT count(*) FROM pending WHERE state != 'failed'"
        ) + await engine.db.fetchval("SELECT count(*) FROM orders WHERE qb_state IN ('new', 'sent')")
        agreement = compare(qb, store)
        if waiting == 0 and not agreement.differing:
            break
        await asyncio.sleep(0.2)
    return agreement


class DemoWorld:
    """Everything the demo runs: the store emulator, QuickBooks, the engine and the Web Connector
    calling it every WC_INTERVAL seconds. An async context manager; `folder` holds the database."""

    def __init__(self, platform: str, folder: Path, *, seed: int = 20261127) -> None:
        self.platform = platform
        self.folder = folder
        self.rng = random.Random(seed)
        self.store = EmulatedStore(platform)
        self.qb = QuickBooksSim()
        seed_catalog(self.qb, self.store, self.rng)
        self.password = secrets.token_urlsafe(16)
        self._stop = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> DemoWorld:
        await self.store.start()
        self._stack.push_async_callback(self.store.stop)
        self.config = demo_config(self.folder, self.password, self.store.storefront_config())
        self.engine = await self._stack.enter_async_context(Engine(self.config))
        http = await self._stack.enter_async_context(aiohttp.ClientSession())
        self.wc = WebConnectorSim(self.engine.url, self.config.qbwc.username, self.password, self.qb, http=http)
        connector = asyncio.create_task(self.wc.run_every(WC_INTERVAL, self._stop))
        self._stack.push_async_callback(self._stop_connector, connector)
        return self

    async def _stop_connector(self, connector: asyncio.Task[None]) -> None:
        self._stop.set()
        await connector

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


async def run_demo(*, platform: str = "woocommerce", seconds: float = 60.0, out: TextIO | None = None) -> int:
    """The headless demo: tells the story on stdout and exits 0 when both sides agree."""
    from .engine.logs import configure_logging

    out = out or sys.stdout
    # The demo tells its story on stdout; only the engine's errors go to stderr.
    configure_logging(level="error", json=False)
    say = Narrator(out).say
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="connex-demo-") as tmp:
        async with DemoWorld(platform, Path(tmp)) as world:
            say(f"store emulator ({platform}) at {world.store.url}; Web Connector endpoint at {world.engine.url}")
            say(
                f"QuickBooks: {len(world.qb.items)} items, redwine {world.qb.item('redwine').quantity_on_hand}; "
                f"store: redwine {world.store.stock('redwine')}, {QB_ONLY_SKU} only in QuickBooks"
            )
            await _play_the_day(world.engine, world.qb, world.store, say, world.rng)
            agreement = await _settle(world.engine, world.qb, world.store, deadline)
            await _report(world.engine, world.qb, world.store, world.wc, agreement, say)
            return 0 if not agreement.differing else 1


async def run_demo_tui(*, platform: str = "woocommerce", mouse: bool = True) -> int:
    """The full-screen demo: the interface on the live demo world; the day goes on until `q`."""
    from .app import ConnexApp, run_app
    from .backend import Backend
    from .engine.logs import configure_logging

    with (
        tempfile.TemporaryDirectory(prefix="connex-demo-") as tmp,
        (Path(tmp) / "demo.log").open("a", encoding="utf-8") as log_stream,
    ):
        # From the first line on (the simulators speak while they are built), the log goes to the
        # file: nothing is written over the terminal the interface is about to take.
        configure_logging(level="info", stream=log_stream)
        async with DemoWorld(platform, Path(tmp)) as world:
            app = ConnexApp(Backend.attached(world.engine), title_suffix=f"demo · {platform}")
            day = asyncio.create_task(_keep_the_day_going(world))
            try:
                # Log lines go to a file while the interface owns the terminal.
                await run_app(app, mouse=mouse, log_file=log_stream)
            finally:
                day.cancel()
                await asyncio.gather(day, return_exceptions=True)
    return 0


async def _keep_the_day_going(world: DemoWorld) -> None:
    """The scripted day, then a store order or a QuickBooks adjustment every few seconds."""
    await _play_the_day(world.engine, world.qb, world.store, lambda text: None, world.rng)
    while True:
        await asyncio.sleep(world.rng.uniform(2, 5))
        sku = f"SKU-{world.rng.randint(1, CATALOG_SIZE - 1):04d}"
        if world.rng.random() < 0.7:
            if (world.store.stock(sku) or 0) > 0:
                world.store.order([(sku, 1)])
        else:
            world.qb.adjust_quantity(sku, world.rng.randint(1, 12))


async def _play_the_day(engine: Engine, qb: QuickBooksSim, store: EmulatedStore, say, rng: random.Random) -> None:
    await asyncio.sleep(2 * WC_INTERVAL)
    order = store.order([("redwine", 5)])
    say("store: order for 5 x redwine placed")
    await _wait_for(lambda: qb.item("redwine").quantity_on_hand == 15, 20)
    say(f"QuickBooks: order posted, redwine {qb.item('redwine').quantity_on_hand}")
    for _ in range(5):
        store.order([(f"SKU-{rng.randint(1, CATALOG_SIZE - 1):04d}", 1), ("redwine", 1)])
    say("store: 5 more orders placed")
    qb.adjust_quantity("SKU-0007", 10)
    say("QuickBooks: inventory adjustment +10 SKU-0007")
    # Typed in QuickBooks by a person: no Web Connector session involved.
    qb.process(credit_memo_request("redwine", 3))
    say("QuickBooks: credit memo for 3 x redwine (stock goes up)")
    store.refund(order, [("redwine", 2)])
    say("store: 2 x redwine of the first order refunded and restocked")


async def _wait_for(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def _report(
    engine: Engine, qb: QuickBooksSim, store: EmulatedStore, wc: WebConnectorSim, agreement: Agreement, say
) -> None:
    assert engine.db is not None
    db = engine.db
    posted = await db.fetchval("SELECT count(*) FROM orders WHERE qb_state = 'posted' AND qb_kind != 'credit_memo'")
    memos = await db.fetchval("SELECT count(*) FROM orders WHERE qb_state = 'posted' AND qb_kind = 'credit_memo'")
    ok_lines = await db.fetchval("SELECT count(*) FROM sku_log WHERE ok = 1")
    failed = await db.fetchall("SELECT sku, reason FROM sku_log WHERE ok = 0 ORDER BY id")
    say(
        f"Web Connector sessions: {len(wc.runs)}; orders posted once each: {posted}; credit memos from refunds: {memos}"
    )
    say(
        f"stock updates pushed to the store: {ok_lines}; requests to the store: {engine.store.stats.requests if engine.store else 0}"
    )
    for row in failed[:3]:
        say(f"failed: {row['sku']}: {row['reason']}")
    say(f"redwine: QuickBooks {qb.item('redwine').quantity_on_hand}, store {store.stock('redwine')}")
    if agreement.differing:
        say(
            f"NOT in agreement: {len(agreement.differing)} of {agreement.matched} SKUs differ, e.g. {agreement.differing[:3]}"
        )
    else:
        say(f"store and QuickBooks agree on all {agreement.matched} matched SKUs")
