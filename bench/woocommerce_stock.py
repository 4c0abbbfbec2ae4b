"""WooCommerce stock as WooCommerce really keeps it: the figures issue 10 asks for, measured.

Over real HTTP: the engine with its Web Connector endpoint and SQLite file, the WooCommerce emulator
(modelled on WooCommerce's own source), the QuickBooks and Web Connector simulators.

* credit memos QuickBooks gets for one refund with restock, after the order is read again and again
  (target: exactly 1);
* the stock of a variable product whose parent keeps the stock, after QuickBooks' quantity is
  pushed (target: the parent shows QuickBooks' quantity, its variations still say "parent");
* QuickBooks' quantity after an order that reached it is cancelled on the store (target: back to
  where it was before the sale).

Run: `python -m bench.woocommerce_stock [--rereads N] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from connex_tui.engine.logs import configure_logging
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.stores import EmulatedStore
from connex_tui.sim.webconnector import WebConnectorSim

from .common import bench_config, finish, format_table


class Rig:
    def __init__(self, engine: Engine, wc: WebConnectorSim, qb: QuickBooksSim, store: EmulatedStore) -> None:
        self.engine, self.wc, self.qb, self.store = engine, wc, qb, store

    async def task(self, name: str) -> str:
        return await self.engine.scheduler.run_and_wait(name)

    async def session(self) -> None:
        run = await self.wc.run_once()
        if run.status not in ("ok", "none"):
            raise RuntimeError(f"a Web Connector session ended {run.status!r}: {run.last_error}")

    async def drain(self) -> None:
        db = self.engine.db
        assert db is not None
        deadline = time.monotonic() + 30
        while await db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'"):
            if time.monotonic() > deadline:
                raise RuntimeError("the pending queue did not drain")
            self.engine.scheduler.wake("inventory")
            await asyncio.sleep(0.05)

    async def sync(self) -> None:
        await self.task("orders")
        await self.session()
        await self.drain()

    def memos(self) -> int:
        return sum(1 for t in self.qb.transactions if t.kind == "credit_memo")


async def with_rig(scenario: Callable[[Rig], Any]) -> Any:
    store = EmulatedStore("woocommerce")
    qb = QuickBooksSim()
    qb.add_item("redwine", 20)
    store.seed({"redwine": 20})
    password = secrets.token_urlsafe(16)
    await store.start()
    try:
        with tempfile.TemporaryDirectory(prefix="connex-bench-") as tmp:
            config = bench_config(
                Path(tmp), password, storefront=store.storefront_config(), orders={"poll_seconds": 3600}
            )
            engine = Engine(config)
            async with aiohttp.ClientSession() as http:
                await engine.start()
                try:
                    wc = WebConnectorSim(engine.url, config.qbwc.username, password, qb, http=http)
                    return await scenario(Rig(engine, wc, qb, store))
                finally:
                    store_client = engine.store
                    await engine.stop()
                    if store_client is not None:
                        await store_client.close()
    finally:
        await store.stop()


def restocked_refund(rereads: int) -> Callable[[Rig], Any]:
    async def run(rig: Rig) -> dict[str, Any]:
        emu = rig.store.emulator
        order = emu.place_order([("redwine", 5)])
        await rig.sync()
        emu.refund(order, [("redwine", 2)], restock=True)
        for _ in range(rereads):
            await rig.sync()
        return {
            "credit_memos": rig.memos(),
            "qb_quantity": int(rig.qb.item("redwine").quantity_on_hand),
            "store_stock": emu.stock("redwine"),
        }

    return run


async def parent_managed(rig: Rig) -> dict[str, Any]:
    emu = rig.store.emulator
    parent, ids = emu.add_variable_product("Shirt", [("", None), ("", None)], sku="SHIRT", stock=10)
    rig.qb.add_item("SHIRT", 7)
    await rig.task("catalog")
    await rig.sync()
    return {
        "parent_stock": emu.stock_of(parent),
        "variations": [emu.manage_stock_of(v) for v in ids.values()],
        "qb_quantity": int(rig.qb.item("SHIRT").quantity_on_hand),
    }


async def cancelled_after_posting(rig: Rig) -> dict[str, Any]:
    emu = rig.store.emulator
    order = emu.place_order([("redwine", 5)])
    await rig.sync()
    posted = int(rig.qb.item("redwine").quantity_on_hand)
    emu.set_order_status(order, "cancelled")
    for _ in range(3):
        await rig.sync()
    return {
        "qb_before_sale": 20,
        "qb_after_sale": posted,
        "qb_after_cancel": int(rig.qb.item("redwine").quantity_on_hand),
        "credit_memos": rig.memos(),
        "store_stock": emu.stock("redwine"),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.woocommerce_stock", description=__doc__.split("\n")[0])
    parser.add_argument("--rereads", type=int, default=5, help="import-and-session rounds after the refund (5)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.rereads < 1:
        parser.error("--rereads must be 1 or more")
    return args


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    configure_logging(level="warning", json=False)
    errors: list[str] = []
    refund = asyncio.run(with_rig(restocked_refund(args.rereads)))
    parent = asyncio.run(with_rig(parent_managed))
    cancel = asyncio.run(with_rig(cancelled_after_posting))
    if refund["credit_memos"] != 1:
        errors.append(f"{refund['credit_memos']} credit memos for one restocked refund (target 1)")
    if parent["parent_stock"] != 7 or parent["variations"] != ["parent", "parent"]:
        errors.append(f"parent-managed product after the push: {parent}")
    if cancel["qb_after_cancel"] != 20:
        errors.append(f"QuickBooks after the cancel: {cancel['qb_after_cancel']} (target 20)")
    if args.json:
        text = json.dumps({"restocked_refund": refund, "parent_managed": parent, "cancelled": cancel}, indent=2)
    else:
        text = format_table(
            [
                (f"credit memos for one restocked refund, after {args.rereads} re-reads", str(refund["credit_memos"])),
                (
                    "  QuickBooks / store quantity after it (sold 5 of 20, 2 back)",
                    f"{refund['qb_quantity']} / {refund['store_stock']}",
                ),
                (
                    "parent-kept variable product: parent stock after pushing QuickBooks' 7 (was 10)",
                    str(parent["parent_stock"]),
                ),
                ("  its variations' manage_stock after the push", ", ".join(map(str, parent["variations"]))),
                (
                    "QuickBooks quantity: before the sale / after it / after the cancel",
                    f"{cancel['qb_before_sale']} / {cancel['qb_after_sale']} / {cancel['qb_after_cancel']}",
                ),
                ("  credit memos for the cancel, after 3 re-reads", str(cancel["credit_memos"])),
            ]
        )
    return finish(text, errors, out)


if __name__ == "__main__":
    sys.exit(main())
