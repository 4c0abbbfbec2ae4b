"""Shopify calls and query-cost points to import 1,000 orders, with the client as it is and, for
comparison, with the client of an earlier commit (`--before COMMIT`, read with `git show`).

The shop is the Shopify emulator over real local HTTP on the standard plan (a 2000-point bucket
refilled at 100 points a second), on a VIRTUAL clock: the client's throttle waits advance it, so the
bucket is enforced and the waiting is measured without sleeping. The orders are a fixed
pseudo-random mix (seed 10): 60% one line, 25% two or three, 10% four to six, 5% eight to twelve;
8% partly refunded with restock, 2% cancelled, 1% edited to fewer units.

Reported: GraphQL calls (HTTP requests), requested points (requestedQueryCost, what the bucket must
hold before a call runs), actual points (actualQueryCost, what the bucket is finally charged),
virtual seconds spent waiting for the bucket, THROTTLED answers, orders read.

    python -m bench.shopify_orders [--orders 1000] [--before 82f984a] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp

from connex_tui.sim.shopify import ShopifyEmulator
from connex_tui.storefronts import shopify as current

from .common import finish, format_table

TOKEN = "shpat_bench"
LOCATION = "gid://shopify/Location/1"


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waited = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        self.waited += max(0.0, seconds)
        await asyncio.sleep(0)


# Names in storefronts.base that changed after an earlier client was written: old name -> today's
# (StoreOrderData became StoreOrder when the store clients and the engine came to share one model).
RENAMED = {"StoreOrderData": "StoreOrder"}


def client_module_at(commit: str) -> ModuleType:
    """storefronts/shopify.py as it was at `commit`, imported next to today's base and retry (the
    base names it uses that were renamed since are read under their names of today)."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{commit}:connex_tui/storefronts/shopify.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for old, new in RENAMED.items():  # names today's base gives another name
        source = re.sub(rf"\b{old}\b", new, source)
    spec = importlib.util.spec_from_loader("connex_tui.storefronts._shopify_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "connex_tui.storefronts"
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{commit}:connex_tui/storefronts/shopify.py", "exec"), module.__dict__)  # noqa: S102
    return module


def build_shop(orders: int, clock: VirtualClock) -> ShopifyEmulator:
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    shop = ShopifyEmulator(access_token=TOKEN, clock=clock, now=lambda: moment)
    skus = [f"SKU-{n:03}" for n in range(60)]
    shop.add_product("Catalog", {sku: 1_000_000 for sku in skus})
    rng = random.Random(10)
    for _ in range(orders):
        roll = rng.random()
        count = (
            1
            if roll < 0.60
            else rng.randint(2, 3)
            if roll < 0.85
            else rng.randint(4, 6)
            if roll < 0.95
            else rng.randint(8, 12)
        )
        lines = [(sku, rng.randint(1, 4)) for sku in rng.sample(skus, count)]
        order = shop.place_order(lines)
        fate = rng.random()
        if fate < 0.08:
            shop.refund(order, [(lines[0][0], 1)])
        elif fate < 0.10:
            shop.cancel_order(order)
        elif fate < 0.11 and lines[0][1] > 1:
            shop.edit_order(order, {lines[0][0]: lines[0][1] - 1})
        moment += timedelta(seconds=30)
    return shop


async def measure(module: ModuleType, orders: int) -> dict[str, Any]:
    clock = VirtualClock()
    shop = build_shop(orders, clock)
    url = await shop.start()
    try:
        async with aiohttp.ClientSession() as http:
            client = module.ShopifyClient(
                url, TOKEN, LOCATION, api_version="2026-10", session=http, clock=clock, sleep=clock.sleep
            )
            read = await client.list_orders(None)
    finally:
        await shop.stop()
    return {
        "orders read": len(read),
        "calls": sum(shop.operations.values()),
        "requested points": sum(shop.requested_costs),
        "actual points": sum(shop.actual_costs),
        "virtual seconds waiting": round(clock.waited, 1),
        "throttled answers": shop.throttled,
        "orders queries (pages, refund batches)": shop.operations["query:orders"],
        "order(id:) queries (lines, edits)": shop.operations["query:order"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--before", default="", help="also measure the client of this commit")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    if args.before:
        results[f"before ({args.before})"] = asyncio.run(measure(client_module_at(args.before), args.orders))
    results["now"] = asyncio.run(measure(current, args.orders))
    if args.json:
        return finish(json.dumps(results, indent=2), [])
    text = "\n\n".join(
        f"{label}:\n" + format_table([(key, str(value)) for key, value in figures.items()])
        for label, figures in results.items()
    )
    return finish(f"Shopify: import {args.orders} orders\n\n{text}", [])


if __name__ == "__main__":
    sys.exit(main())
