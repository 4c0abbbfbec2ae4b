"""Stock pushes against stores that take their time: concurrent, adaptive batches.

WooCommerce: the emulator answers every request after an injected latency L (0.25, 0.5, 1, 2 s)
plus a per-item cost C per item of a batch (default 5 ms: 0.5 s for a batch of 100; WooCommerce
saves each product of a batch in turn, see connex_tui/sim/capacity.py), with no bound on the
workers serving it (a host with at least `max_concurrency` PHP workers). For each L:

  * concurrent: N updates (default 10,000; fewer at 2 s with --items-at-2s) queued in the pending
    queue of a real SQLite file and pushed by the engine's inventory task (SyncTasks.inventory:
    the dispatcher, the pusher, the real WooCommerce client and its gate, over real local HTTP),
    with the default maximum concurrency (8), starting from a fresh client (concurrency 2);
  * serial: the same with `max_concurrency = 1`, on fewer updates (default 1,000: its rate does not
    depend on N, and it keeps the run bounded);
  * the bound: maximum concurrency x batch size / round trip, the round trip being L + 100 x C.

Reported: updates per second, the speed-up over serial, the fraction of the bound, the most
requests under way at once (client gate and server), and checks: every SKU on the store equals
what was queued, 0 requests for one item overlapping (`same_item_overlaps`), 0 throttled.

Shopify: the emulator on the standard plan (a 2000-point bucket refilled at 100 points a second),
every request delayed by L (default 0.25 s), 10,000 variants; R rounds (default 2) of 10,000
updates, queued back to back, pushed by the inventory task in calls of B quantities (default 25:
an inventorySetQuantities call costs 10 points whatever its size, and at 250 a call this machine's
CPU, not the bucket, is the limit; 25 makes the bucket the limit, which is what is measured here:
800 calls, 8,000 points, four times the bucket). Reported: points per second sustained
after the bucket first ran dry (held less than 5% of its size; from the emulator's charge of every
call and its bucket after it, against the restore rate),
and throttled answers (emulator and client). Set-up (the catalog read) runs with a huge restore rate
so that it costs no time; the measured phase uses a fresh client, so nothing is learned in advance.

Run it from the checkout (about 4 minutes with the defaults on this machine):

    python -m bench.concurrent_push
    python -m bench.concurrent_push --latencies 1 --items 2000 --serial-items 300 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from bench.common import bench_config, finish, item_names
from connex_tui.engine.db import Database
from connex_tui.engine.items import queue_stock
from connex_tui.engine.sync_tasks import SyncTasks
from connex_tui.sim.shopify import ShopifyEmulator
from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.storefronts.base import Storefront
from connex_tui.storefronts.shopify import ShopifyClient
from connex_tui.storefronts.woocommerce import WooCommerceClient

KEY, SECRET = "ck_bench", "cs_bench"
DEFAULT_LATENCIES = (0.25, 0.5, 1.0, 2.0)
WOO_BATCH = 100
DRY = 0.05  # a bucket holding less than this fraction of its size has run dry


def quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger().setLevel(logging.WARNING)


async def queue(db: Database, quantities: dict[str, int]) -> None:
    async with db.transaction() as conn:
        await queue_stock(conn, {sku: Decimal(q) for sku, q in quantities.items()}, db.clock.stamp())


async def push_all(tasks: SyncTasks, db: Database) -> None:
    """The inventory task, run until nothing is waiting (it returns after each drain)."""
    while await db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'"):
        await tasks.inventory()


def make_tasks(folder: Path, db: Database, store: Storefront) -> SyncTasks:
    config = bench_config(folder, secrets.token_urlsafe(12))
    return SyncTasks(db, store, config)


# --------------------------------------------------------------------------- WooCommerce


async def woo_case(latency: float, per_item: float, items: int, maximum: int) -> dict[str, Any]:
    skus = item_names(items, "CP")
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET)
    for sku in skus:
        emulator.add_product(sku, 0)
    await emulator.start()
    try:
        with tempfile.TemporaryDirectory(prefix="connex-bench-") as tmp:
            db = await Database.open(Path(tmp) / "bench.db")
            try:
                setup = WooCommerceClient(emulator.base_url, KEY, SECRET, concurrency=8)
                await make_tasks(Path(tmp), db, setup).index.refresh()  # the SKU index, no latency
                await setup.close()
                emulator.capacity.latency, emulator.capacity.per_item = latency, per_item
                emulator.capacity.reset_counts()
                client = WooCommerceClient(emulator.base_url, KEY, SECRET, concurrency=maximum)
                tasks = make_tasks(Path(tmp), db, client)
                wanted = {sku: 1 + n % 97 for n, sku in enumerate(skus)}
                await queue(db, wanted)
                started = time.perf_counter()
                await push_all(tasks, db)
                seconds = time.perf_counter() - started
                failed = await db.fetchval("SELECT count(*) FROM pending")
                await client.close()
            finally:
                await db.close()
        wrong = sum(1 for sku, q in wanted.items() if emulator.stock(sku) != q)
        snap = client.gate.snapshot()
        return {
            "latency_s": latency,
            "per_item_s": per_item,
            "items": items,
            "max_concurrency": maximum,
            "seconds": round(seconds, 2),
            "updates_per_s": round(items / seconds, 1),
            "batch_calls": emulator.counters["POST /wp-json/wc/v3/products/batch"],
            "gate_peak": client.gate.peak,
            "server_peak": emulator.capacity.peak_serving,
            "rtt_p50_s": round(snap.rtt_p50 or 0.0, 3),
            "rtt_p95_s": round(snap.rtt_p95 or 0.0, 3),
            "throttled": client.stats.throttled,
            "same_item_overlaps": emulator.capacity.same_item_overlaps,
            "wrong_on_store": wrong,
            "left_in_queue": failed,
        }
    finally:
        await emulator.stop()


async def woo_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for latency in args.latencies:
        items = args.items_at_2s if latency >= 2 and args.items_at_2s else args.items
        concurrent = await woo_case(latency, args.per_item, items, args.max)
        serial = await woo_case(latency, args.per_item, args.serial_items, 1)
        bound = args.max * WOO_BATCH / (latency + WOO_BATCH * args.per_item)
        rows.append(
            {
                "latency_s": latency,
                "per_item_s": args.per_item,
                "items": items,
                "updates_per_s": concurrent["updates_per_s"],
                "seconds": concurrent["seconds"],
                "serial_items": args.serial_items,
                "serial_updates_per_s": serial["updates_per_s"],
                "speedup": round(concurrent["updates_per_s"] / serial["updates_per_s"], 2),
                "bound_updates_per_s": round(bound, 1),
                "of_bound": round(concurrent["updates_per_s"] / bound, 3),
                "concurrent": concurrent,
                "serial": serial,
            }
        )
    return rows


# --------------------------------------------------------------------------- Shopify


class Charges:
    """Server side, after every call the emulator ran: (time, points charged so far, points left in
    the bucket)."""

    def __init__(self, shop: ShopifyEmulator) -> None:
        self.points: list[tuple[float, int, float]] = []
        make_app = shop.app

        @web.middleware
        async def stamp(request: web.Request, handler: Any) -> web.StreamResponse:
            response = await handler(request)
            left = float(shop.throttle_status()["currentlyAvailable"])
            self.points.append((time.perf_counter(), sum(shop.requested_costs), left))
            return response

        def app() -> web.Application:
            application = make_app()
            application.middlewares.append(stamp)
            return application

        shop.app = app  # type: ignore[method-assign]


async def shopify_case(latency: float, variants: int, rounds: int, maximum: int, batch: int) -> dict[str, Any]:
    skus = item_names(variants, "SP")
    shop = ShopifyEmulator()  # standard plan: bucket 2000, restore 100/s
    for n, sku in enumerate(skus):
        shop.add_product(f"Product {n}", {sku: 0})
    charges = Charges(shop)
    await shop.start()
    try:
        with tempfile.TemporaryDirectory(prefix="connex-bench-") as tmp:
            db = await Database.open(Path(tmp) / "bench.db")
            try:
                restore, shop.restore_rate = shop.restore_rate, 1e9  # set-up costs no time
                setup = ShopifyClient(shop.url, shop.access_token, shop.location_id)
                await make_tasks(Path(tmp), db, setup).index.refresh()
                await setup.close()
                shop.restore_rate = restore
                shop.throttle_status()  # refilled to the full bucket at the new rate
                shop.faults.add("*", latency=latency, times=10**9)
                client = ShopifyClient(shop.url, shop.access_token, shop.location_id, concurrency=maximum)
                client.batch_limit = batch
                tasks = make_tasks(Path(tmp), db, client)
                throttled_before, charges.points = shop.throttled, []
                points_before = sum(shop.requested_costs)
                started = time.perf_counter()
                for round_number in range(1, rounds + 1):
                    wanted = {sku: round_number + n % 7 for n, sku in enumerate(skus)}
                    await queue(db, wanted)
                    await push_all(tasks, db)
                seconds = time.perf_counter() - started
                left = await db.fetchval("SELECT count(*) FROM pending")
                await client.close()
            finally:
                await db.close()
        wrong = sum(1 for sku, q in wanted.items() if shop.available(sku) != q)
        spent = [(at, total - points_before, left) for at, total, left in charges.points]
        # Dry: the first answer after which the bucket held less than 5% of its size (the client
        # keeps a margin of about the cost of the calls under way).
        dry = next(((at, points) for at, points, left in spent if left < DRY * shop.maximum_available), None)
        sustained = None
        if dry is not None and spent[-1][0] > dry[0]:
            sustained = (spent[-1][1] - dry[1]) / (spent[-1][0] - dry[0])
        return {
            "latency_s": latency,
            "variants": variants,
            "rounds": rounds,
            "per_call": batch,
            "calls": shop.operations["mutation:inventorySetQuantities"],
            "updates": variants * rounds,
            "seconds": round(seconds, 2),
            "points": spent[-1][1] if spent else 0,
            "bucket": shop.maximum_available,
            "restore_rate": shop.restore_rate,
            "sustained_points_per_s": None if sustained is None else round(sustained, 1),
            "of_restore_rate": None if sustained is None else round(sustained / shop.restore_rate, 3),
            "sustained_window_s": None if dry is None else round(spent[-1][0] - dry[0], 2),
            "throttled_emulator": shop.throttled - throttled_before,
            "throttled_client": client.throttled_answers,
            "gate_peak": client.gate.peak,
            "wrong_on_store": wrong,
            "left_in_queue": left,
        }
    finally:
        await shop.stop()


# --------------------------------------------------------------------------- report


def woo_table(rows: Sequence[dict[str, Any]]) -> str:
    head = ("latency", "N", "updates/s", "serial/s", "speed-up", "bound/s", "of bound", "peak", "p50 rtt", "checks")
    lines = [head]
    for r in rows:
        c = r["concurrent"]
        checks = "ok" if not (c["wrong_on_store"] or c["left_in_queue"] or c["same_item_overlaps"]) else "WRONG"
        lines.append(
            (
                f"{r['latency_s']} s",
                f"{r['items']:,}",
                f"{r['updates_per_s']:,.1f}",
                f"{r['serial_updates_per_s']:,.1f}",
                f"{r['speedup']:.2f}x",
                f"{r['bound_updates_per_s']:,.1f}",
                f"{r['of_bound']:.0%}",
                str(c["gate_peak"]),
                f"{c['rtt_p50_s']:.3f} s",
                checks,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)


def problems_of(woo: Sequence[dict[str, Any]], shop: dict[str, Any] | None) -> list[str]:
    errors = []
    for r in woo:
        for kind in ("concurrent", "serial"):
            c = r[kind]
            if c["wrong_on_store"] or c["left_in_queue"] or c["same_item_overlaps"]:
                errors.append(
                    f"WooCommerce {kind} at {r['latency_s']} s: {c['wrong_on_store']} wrong on the store, "
                    f"{c['left_in_queue']} left, {c['same_item_overlaps']} overlapping updates of one item"
                )
    if shop is not None and (shop["wrong_on_store"] or shop["left_in_queue"]):
        errors.append(f"Shopify: {shop['wrong_on_store']} wrong on the store, {shop['left_in_queue']} left")
    return errors


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrent_push", description=__doc__.splitlines()[0])
    parser.add_argument("--latencies", type=float, nargs="+", default=list(DEFAULT_LATENCIES), metavar="S")
    parser.add_argument("--items", type=int, default=10_000, help="updates per concurrent run")
    parser.add_argument("--items-at-2s", type=int, default=0, help="fewer updates at latencies of 2 s or more")
    parser.add_argument("--serial-items", type=int, default=1_000, help="updates per serial run")
    parser.add_argument("--per-item", type=float, default=0.005, help="WooCommerce seconds per item of a batch")
    parser.add_argument("--max", type=int, default=8, help="max_concurrency (the default is 8)")
    parser.add_argument("--shopify-latency", type=float, default=0.25)
    parser.add_argument("--shopify-variants", type=int, default=10_000)
    parser.add_argument("--shopify-rounds", type=int, default=2)
    parser.add_argument("--shopify-batch", type=int, default=25, help="quantities per inventorySetQuantities call")
    parser.add_argument("--skip-shopify", action="store_true")
    parser.add_argument("--skip-woocommerce", action="store_true")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    woo = [] if args.skip_woocommerce else await woo_rows(args)
    shop = (
        None
        if args.skip_shopify
        else await shopify_case(
            args.shopify_latency, args.shopify_variants, args.shopify_rounds, args.max, args.shopify_batch
        )
    )
    return woo, shop


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    quiet_logs()
    woo, shop = asyncio.run(run(args))
    errors = problems_of(woo, shop)
    if args.json:
        return finish(json.dumps({"woocommerce": woo, "shopify": shop}, indent=2), errors, out)
    parts = []
    if woo:
        parts.append(
            f"WooCommerce, per-item cost {args.per_item * 1000:g} ms, max_concurrency {args.max} "
            f"(bound = {args.max} x {WOO_BATCH} / round trip):\n" + woo_table(woo)
        )
    if shop:
        sustained = (
            "the bucket never ran dry (push more rounds to measure the sustained rate)"
            if shop["sustained_points_per_s"] is None
            else f"sustained {shop['sustained_points_per_s']} points/s over {shop['sustained_window_s']} s after "
            f"the bucket ran dry ({shop['of_restore_rate']:.1%} of the restore rate {shop['restore_rate']:g})"
        )
        parts.append(
            f"Shopify, {shop['latency_s']} s a request, {shop['updates']:,} updates in {shop['calls']} calls of "
            f"{shop['per_call']} in {shop['seconds']} s, "
            f"{shop['points']} points: {sustained}; throttled answers: {shop['throttled_emulator']} (emulator), "
            f"{shop['throttled_client']} (client); peak concurrency {shop['gate_peak']}"
        )
    return finish("\n\n".join(parts), errors, out)


if __name__ == "__main__":
    sys.exit(main())
