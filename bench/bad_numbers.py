"""Bad numbers through the real clients and the engine: how many were tried, and what was left.

For each value in a fixed list (NaN, ±Infinity, fractions, words, absurd sizes, wrong types) and
`--random` more drawn from floats and text: the WooCommerce emulator answers a stock batch of 10
SKUs with that value as one SKU's stock (over real HTTP); the pusher runs; the rows left in flight
and the SKUs pushed and failed are counted. Then each value as an order line's quantity (the
orders task, three orders per value) and as a product's stock (a catalog refresh). Usage:

    python -m bench.bad_numbers [--random 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import bench_config
from connex_tui.engine.catalog import refresh_catalog
from connex_tui.engine.db import Database
from connex_tui.engine.items import queue_stock
from connex_tui.engine.order_import import OrderImporter
from connex_tui.engine.pusher import InventoryPusher
from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.woocommerce import WooCommerceClient

KEY, SECRET = "ck_bench", "cs_bench"
FIXED: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    1e300,
    -1e300,
    2.5,
    10**30,
    -(10**30),
    "NaN",
    "Infinity",
    "12abc",
    "",
    True,
    [],
    {},
    {"value": 1},
    None,
    "1e30",
    "sNaN",
    2**63,
    -1,
    0.1,
]


def values(extra: int, seed: int = 11) -> list[Any]:
    rng = random.Random(seed)
    drawn: list[Any] = []
    for _ in range(extra):
        kind = rng.random()
        if kind < 0.5:
            drawn.append(rng.choice([rng.uniform(-1e20, 1e20), rng.random() * 10, float(rng.getrandbits(70))]))
        else:
            drawn.append("".join(rng.choice("0123456789.eE+-NaInfity x") for _ in range(rng.randint(0, 8))))
    return FIXED + drawn


async def one(value: Any, folder: Path) -> dict[str, int]:
    emu = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET)
    await emu.start()
    client = WooCommerceClient(
        emu.base_url, KEY, SECRET, policy=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, timeout=5.0)
    )
    db = await Database.open(folder / "connex.db")
    tally = {
        "in_flight": 0,
        "pushed": 0,
        "failed": 0,
        "orders_imported": 0,
        "orders_failed": 0,
        "orders_task_errors": 0,
        "catalog_errors": 0,
    }
    try:
        for n in range(10):
            emu.add_product(f"S{n}", 1)
        bad_id = emu.product_id("S3")

        def batch(data: Any) -> Any:
            for entry in data.get("update", []):
                if entry.get("id") == bad_id:
                    entry["stock_quantity"] = value
            return data

        emu.faults.add("POST /wp-json/wc/v3/products/batch", rewrite=batch, times=1000)
        async with db.transaction() as conn:
            await queue_stock(conn, {f"S{n}": Decimal(5 + n) for n in range(10)}, db.clock.stamp())
        outcome = await InventoryPusher(db, client).push_once()
        tally["in_flight"] = await db.fetchval("SELECT count(*) FROM pending WHERE state = 'in_flight'")
        tally["pushed"], tally["failed"] = outcome.pushed, outcome.failed
        emu.faults.clear()
        ids = [emu.place_order([("S1", 1)], number=f"N{k}") for k in range(3)]

        def line(data: Any) -> Any:
            for order in data:
                if order.get("id") == ids[1]:
                    order["line_items"][0]["quantity"] = value
            return data

        emu.faults.add("GET /wp-json/wc/v3/orders", rewrite=line, times=1000)
        try:
            imported = await OrderImporter(db, client, bench_config(folder, "x")).run()
            tally["orders_imported"] = imported.imported
        except Exception:  # noqa: BLE001 - counted: the target is none
            tally["orders_task_errors"] = 1
        tally["orders_failed"] = await db.fetchval("SELECT count(*) FROM orders WHERE qb_state = 'failed'")

        def stock(data: Any) -> Any:
            for product in data:
                if product.get("sku") == "S5":
                    product["stock_quantity"] = value
            return data

        emu.faults.add("GET /wp-json/wc/v3/products", rewrite=stock, times=1000)
        try:
            await refresh_catalog(db, client)
        except Exception:  # noqa: BLE001 - counted
            tally["catalog_errors"] = 1
    finally:
        await db.close()
        await client.close()
        await emu.stop()
    return tally


async def run(extra: int) -> dict[str, Any]:
    totals: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    tried = values(extra)
    for value in tried:
        with tempfile.TemporaryDirectory() as folder:
            tally = await one(value, Path(folder))
        for key, count in tally.items():
            totals[key] = totals.get(key, 0) + count
            if count and key in ("in_flight", "orders_task_errors", "catalog_errors"):
                examples.setdefault(key, []).append(repr(value)[:30])
    return {"values_tried": len(tried), **totals, "examples": examples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    result = asyncio.run(run(args.random))
    print(json.dumps(result) if args.json else "\n".join(f"{k:20} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
