"""How fast a QuickBooks stock change reaches the web store, and in how few store API calls.

For each platform (WooCommerce, Shopify) and each size N it runs the real engine (its SQLite file,
its Web Connector endpoint on a free local port, its scheduler and inventory pusher, the real
storefront client) against the store emulator over real local HTTP, with the Web Connector
simulator and the QuickBooks simulator on the other side. Everything lives in a temporary folder
and is thrown away.

Set-up (not measured):
  * QuickBooks holds N inventory items BENCH-00001..; the store holds the same N SKUs at the same
    quantities (WooCommerce: N simple products; Shopify: N one-variant products, standard plan:
    a 2000-point bucket refilled at 100 points a second);
  * the engine starts; its first catalog run builds the store's SKU index. On Shopify that read
    costs 4 points a variant, minutes of throttle waiting at 10,000 variants on the standard plan,
    which is not what this benchmark measures: during set-up the emulator's bucket and the client
    both run on a VIRTUAL clock (the client's throttle waits advance it instead of sleeping, as
    tests/test_sync_e2e.py does), so the bucket is still enforced but costs no real time. Before
    the measured phase the virtual clock is moved on until the bucket is full again and is then
    switched to the real monotonic clock (time.monotonic() plus a constant, so it never runs
    backwards): the measured phase is throttled in real time, as on a real standard-plan shop;
  * one Web Connector session reads all N items (all news the first time) and the queue is
    drained, so the store starts equal to QuickBooks.

Measured phase: every item's quantity changes in QuickBooks (adjust_quantity, +3), then ONE Web
Connector session (WebConnectorSim.run_once) runs, and the engine pushes the changes on its own:
the benchmark does not wake the inventory task. It reports:
  * seconds from the moment closeConnection returned to the moment the last stock update landed
    on the store, and from the start of the session. The first is negative when the last update
    landed before closeConnection returned: while a session reads items the engine pushes only
    full batches, so when N is a multiple of the batch limit the last page read fills the last
    batch, which goes out while the Web Connector is still closing the session. "Landed" is when
    the emulator finished applying a stock-setting request (a middleware added to the emulator's
    aiohttp app stamps it, so there is no polling delay in that figure); the end of the push is found by polling the
    engine's pending queue every 5 ms (from a separate read-only SQLite connection) until nothing
    is left to push; that time is reported too (queue_empty_after_close_s);
  * SKU updates per second: N / (last landed - session start) and N / (last landed - close);
  * stock-setting calls (WooCommerce: POST .../batch; Shopify: inventorySetQuantities mutations)
    against the minimum ceil(N / the client's batch limit);
  * all store API requests in the phase (as the emulator counted them, and as the client did);
  * throttled answers (Shopify emulator's `throttled`; the client's stats) and the seconds the
    client waited for its throttle.
Then it checks that every SKU on the store equals QuickBooks and that nothing failed; if not it
prints what is wrong and exits 1.

The engine, the emulator, the Web Connector simulator and QuickBooks share one process and one
event loop, so the figures include all of them competing for one core.

Run it from the checkout:

    python -m bench.stock_push                        # both platforms, N = 1000 and 10000, a table
    python -m bench.stock_push --platform shopify --items 500 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
from aiohttp import web

from connex_tui.engine.config import Config
from connex_tui.engine.logs import configure_logging
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.stores import EmulatedStore
from connex_tui.sim.webconnector import WebConnectorSim
from connex_tui.storefronts.base import RequestStats, Storefront

from bench.common import bench_config, finish, item_names

PLATFORMS = ("woocommerce", "shopify")
DEFAULT_ITEMS = (1000, 10_000)
DELTA = 3  # every item's quantity goes up by this much in the measured phase
POLL_SECONDS = 0.005
SETUP_TIMEOUT = 900.0
PUSH_TIMEOUT = 600.0
FIRST_TASKS = ("orders", "catalog", "inventory", "cleanup")
ORDERS_POLL = {"poll_seconds": 3600}  # orders polled hourly: after its first run, no order poll during the push


# --------------------------------------------------------------------------- set-up


class PhaseClock:
    """Virtual time during set-up (sleeps advance it at once), then the real monotonic clock,
    shifted by a constant so that it carries on from the virtual time without a jump."""

    def __init__(self) -> None:
        self.virtual = True
        self._now = time.monotonic()
        self._offset = 0.0

    def __call__(self) -> float:
        return self._now if self.virtual else time.monotonic() + self._offset

    async def sleep(self, seconds: float) -> None:
        if self.virtual:
            self._now += max(seconds, 0.0)
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(seconds)

    def advance(self, seconds: float) -> None:
        assert self.virtual
        self._now += seconds

    def go_real(self) -> None:
        self._offset = self._now - time.monotonic()
        self.virtual = False


def start_quantity(n: int) -> int:
    return 10 + n % 50


@dataclass
class Landings:
    """When the emulator finished applying each stock-setting request (perf_counter seconds)."""

    times: list[float] = field(default_factory=list)

    def last(self) -> float | None:
        return max(self.times) if self.times else None


def stamp_stock_calls(store: EmulatedStore, landings: Landings) -> None:
    """Add a middleware to the emulator's app (before it starts) that stamps every stock-setting
    request the moment its handler returns, i.e. once the new stock is in the store."""
    emulator = store.emulator
    make_app = emulator.app

    @web.middleware
    async def stamp(request: web.Request, handler: Any) -> web.StreamResponse:
        if store.platform == "shopify":
            before = emulator.operations["mutation:inventorySetQuantities"]
            response = await handler(request)
            if emulator.operations["mutation:inventorySetQuantities"] > before:
                landings.times.append(time.perf_counter())
            return response
        response = await handler(request)
        if request.method == "POST" and request.path.endswith("/batch") and response.status == 200:
            landings.times.append(time.perf_counter())
        return response

    def app() -> web.Application:
        application = make_app()
        application.middlewares.append(stamp)  # innermost: right around the handler
        return application

    emulator.app = app  # type: ignore[method-assign]


def make_client(platform: str, config: Config, clock: PhaseClock) -> Storefront | None:
    """Shopify: the client on the phase clock (its throttle waits follow it). WooCommerce: None,
    the engine makes its own client from the configuration."""
    if platform != "shopify":
        return None
    from connex_tui.storefronts.shopify import ShopifyClient

    c = config.storefront
    return ShopifyClient(
        c.url, c.access_token.reveal(), c.location_id, api_version=c.api_version, clock=clock, sleep=clock.sleep
    )


async def wait_first_runs(engine: Engine) -> None:
    assert engine.db is not None
    marks = ",".join("?" * len(FIRST_TASKS))
    deadline = time.monotonic() + SETUP_TIMEOUT
    while await engine.db.fetchval(
        f"SELECT count(*) FROM tasks WHERE name IN ({marks}) AND last_run IS NULL", FIRST_TASKS
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the engine's first task runs did not finish")
        await asyncio.sleep(0.02)


async def drain(engine: Engine) -> None:
    """Set-up only: wake the inventory task until nothing is waiting to be pushed."""
    assert engine.db is not None and engine.scheduler is not None
    deadline = time.monotonic() + SETUP_TIMEOUT
    while await engine.db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'"):
        if time.monotonic() > deadline:
            raise RuntimeError("the pending queue did not drain during set-up")
        engine.scheduler.wake("inventory")
        await asyncio.sleep(0.02)


def stats_copy(stats: RequestStats) -> RequestStats:
    return RequestStats(stats.requests, stats.retries, stats.throttled, stats.waited_seconds)


def mismatches(store: EmulatedStore, qb: QuickBooksSim, skus: Sequence[str]) -> list[str]:
    found = []
    for sku in skus:
        wanted = int(qb.item(sku).quantity_on_hand)
        actual = store.stock(sku)
        if actual != wanted:
            found.append(f"{sku}: store {actual}, QuickBooks {wanted}")
    return found


# --------------------------------------------------------------------------- the run


@dataclass
class Case:
    row: dict[str, Any]
    problems: list[str]


async def run_case(platform: str, items: int) -> Case:
    skus = item_names(items)
    quantities = {sku: start_quantity(n) for n, sku in enumerate(skus)}
    clock = PhaseClock()
    options: dict[str, Any] = {"clock": clock} if platform == "shopify" else {}
    store = EmulatedStore(platform, **options)  # Shopify: standard plan, bucket 2000, restore 100/s
    landings = Landings()
    stamp_stock_calls(store, landings)
    qb = QuickBooksSim()
    for sku, quantity in quantities.items():
        qb.add_item(sku, quantity)
    store.seed(quantities)
    password = secrets.token_urlsafe(16)
    problems: list[str] = []
    setup_started = time.perf_counter()
    await store.start()
    with tempfile.TemporaryDirectory(prefix="connex-bench-") as tmp:
        config = bench_config(Path(tmp), password, storefront=store.storefront_config(), orders=ORDERS_POLL)
        client = make_client(platform, config, clock)
        engine = Engine(config, storefront=client)
        reader: aiosqlite.Connection | None = None
        try:
            async with aiohttp.ClientSession() as http:
                await engine.start()
                assert engine.db is not None and engine.store is not None
                await wait_first_runs(engine)  # the catalog run builds the SKU index
                wc = WebConnectorSim(engine.url, config.qbwc.username, password, qb, http=http)
                initial = await wc.run_once()
                if initial.status != "ok":
                    raise RuntimeError(f"the initial session ended {initial.status!r}: {initial.last_error}")
                await drain(engine)
                left = mismatches(store, qb, skus)
                if left:
                    raise RuntimeError(f"after set-up {len(left)} SKUs differ, e.g. {left[0]}")
                if platform == "shopify":
                    emulator = store.emulator
                    clock.advance(emulator.maximum_available / emulator.restore_rate + 1.0)  # bucket full
                    clock.go_real()
                setup_s = time.perf_counter() - setup_started
                reader = await aiosqlite.connect(f"file:{config.database.path}?mode=ro", uri=True)

                # ---------------------------------------------------------- measured phase
                stats_before = stats_copy(engine.store.stats)
                requests_before = sum(store.emulator.counters.values())
                stock_before = store.stock_requests()
                throttled_before = store.throttled()
                landings.times.clear()
                for sku in skus:
                    qb.adjust_quantity(sku, DELTA)
                started = time.perf_counter()
                run = await wc.run_once()
                closed = time.perf_counter()
                drained: float | None = None
                while True:
                    async with reader.execute("SELECT count(*) FROM pending WHERE state != 'failed'") as cur:
                        row = await cur.fetchone()
                    if row is not None and row[0] == 0:
                        drained = time.perf_counter()
                        break
                    if time.perf_counter() - closed > PUSH_TIMEOUT:
                        problems.append(f"the pending queue was not empty {PUSH_TIMEOUT:.0f} s after the session")
                        break
                    await asyncio.sleep(POLL_SECONDS)
                stats_after = stats_copy(engine.store.stats)
                requests = sum(store.emulator.counters.values()) - requests_before
                stock_calls = store.stock_requests() - stock_before
                throttled_emulator = store.throttled() - throttled_before
                last = landings.last()
                # ---------------------------------------------------------- end of the measured phase

                batch_limit = engine.store.batch_limit
                failed = int(await engine.db.fetchval("SELECT count(*) FROM pending WHERE state = 'failed'"))
        finally:
            if reader is not None:
                await reader.close()
            await engine.stop()
            if client is not None:
                await client.close()
            await store.stop()

    if run.status != "ok":
        problems.append(f"the measured session ended {run.status!r}: {run.last_error or run.close_message}")
    if failed:
        problems.append(f"{failed} SKUs failed to push (pending rows in state 'failed')")
    differing = mismatches(store, qb, skus)
    if differing:
        shown = "; ".join(differing[:5])
        problems.append(f"{len(differing)} of {items} SKUs on the store differ from QuickBooks: {shown}")
    if last is None:
        problems.append("no stock update landed on the store in the measured phase")

    def seconds(moment: float | None, since: float) -> float | None:
        return None if moment is None else round(moment - since, 4)

    def rate(span: float | None) -> float | None:
        return round(items / span, 1) if span is not None and span > 0 else None

    close_to_landed = seconds(last, closed)
    start_to_landed = seconds(last, started)
    row = {
        "platform": platform,
        "items": items,
        "batch_limit": batch_limit,
        "status": run.status,
        "setup_s": round(setup_s, 3),
        "session_s": round(closed - started, 4),
        "close_to_last_update_s": close_to_landed,
        "start_to_last_update_s": start_to_landed,
        "last_update_before_close": last is not None and last < closed,
        "queue_empty_after_close_s": seconds(drained, closed),
        "updates_per_s_from_start": rate(start_to_landed),
        "updates_per_s_from_close": rate(close_to_landed),
        "stock_calls": stock_calls,
        "stock_calls_min": math.ceil(items / batch_limit),
        "requests": requests,
        "client_requests": stats_after.requests - stats_before.requests,
        "client_retries": stats_after.retries - stats_before.retries,
        "throttled_emulator": throttled_emulator,
        "throttled_client": stats_after.throttled - stats_before.throttled,
        "throttle_wait_s": round(stats_after.waited_seconds - stats_before.waited_seconds, 4),
        "skus_checked": items,
        "skus_differing": len(differing),
        "failed": failed,
    }
    return Case(row, problems)


# --------------------------------------------------------------------------- output


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("platform", lambda r: r["platform"]),
    ("N", lambda r: str(r["items"])),
    ("close->last s", lambda r: _fmt(r["close_to_last_update_s"])),
    ("start->last s", lambda r: _fmt(r["start_to_last_update_s"])),
    ("session s", lambda r: _fmt(r["session_s"])),
    ("upd/s start", lambda r: _fmt(r["updates_per_s_from_start"], 0)),
    ("upd/s close", lambda r: _fmt(r["updates_per_s_from_close"], 0)),
    ("stock calls/min", lambda r: f"{r['stock_calls']}/{r['stock_calls_min']}"),
    ("requests", lambda r: str(r["requests"])),
    ("throttled emu/cli", lambda r: f"{r['throttled_emulator']}/{r['throttled_client']}"),
    ("store=QB", lambda r: "yes" if not r["skus_differing"] and not r["failed"] else f"{r['skus_differing']} differ"),
)
RIGHT = {"N", "close->last s", "start->last s", "session s", "upd/s start", "upd/s close", "requests"}


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    cells = [[render(row) for _, render in COLUMNS] for row in rows]
    names = [name for name, _ in COLUMNS]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(names)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if n in RIGHT else v.ljust(w) for v, w, n in zip(values, widths, names, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(names), line(["-" * w for w in widths])]
    out += [line(values) for values in cells]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stock_push", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--platform", choices=(*PLATFORMS, "both"), default="both", help="which store emulator (default %(default)s)"
    )
    parser.add_argument(
        "--items",
        type=int,
        nargs="+",
        default=list(DEFAULT_ITEMS),
        metavar="N",
        help="items changed in QuickBooks, one run per size (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.items):
        parser.error("--items must be 1 or more")
    if any(n > 99_999 for n in args.items):
        parser.error("--items must be at most 99999 (the item names are BENCH-nnnnn)")
    return args


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    configure_logging(level="warning", json=False)  # keep the engine's log lines off the table
    platforms = PLATFORMS if args.platform == "both" else (args.platform,)
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for platform in platforms:
        for items in args.items:
            try:
                case = asyncio.run(run_case(platform, items))
            except RuntimeError as exc:  # the set-up went wrong: nothing was measured
                errors.append(f"{platform} N={items}: {exc}")
                continue
            rows.append(case.row)
            errors += [f"{platform} N={items}: {problem}" for problem in case.problems]
    if args.json:
        text = json.dumps({"delta": DELTA, "poll_ms": POLL_SECONDS * 1000, "rows": rows}, indent=2)
    else:
        text = format_table(rows)
    return finish(text, errors, out)


if __name__ == "__main__":
    sys.exit(main())
