"""How long one Web Connector session takes with a large backlog, and where the time goes.

The session posts N new store orders (as sales receipts, 1-3 lines each) and reads back M
modified inventory items, against the real engine: its SQLite file, its session planner and its
aiohttp endpoint on a free local port, driven over real HTTP by the Web Connector simulator with
the QuickBooks simulator behind it. Everything lives in a temporary folder and is thrown away.

It reports:
  * SOAP round trips: HTTP calls in all and sendRequestXML/receiveResponseXML pairs;
  * qbXML requests by kind: order adds, lookups (in-doubt orders), transaction scans, item pages;
  * the server's time per SOAP call (the endpoint's own measure, handed to the engine's
    observer): p50 / p99 / max overall and for sendRequestXML and receiveResponseXML;
  * the total server time, the time spent inside the QuickBooks simulator, and the wall time of
    the whole session.
Then it checks that every order was posted, QuickBooks holds exactly N sales receipts and the
items table has M rows; if not it prints what is wrong and exits 1.

Run it from the checkout:

    python -m bench.qbwc_session                      # 1000 orders, 10000 items, a text table
    python -m bench.qbwc_session --orders 5 --items 50 --json
    python -m bench.qbwc_session --profile profile.txt   # needs pyinstrument, if installed

The orders are made with a seeded random generator (`--seed`), so runs are reproducible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from connex_tui.engine.db import Database
from connex_tui.engine.logs import configure_logging
from connex_tui.engine.orders import insert_order
from connex_tui.storefronts.base import StoreLine, StoreOrder
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import RunResult, WebConnectorSim

from bench.common import bench_config, finish, format_table, item_names, latency_ms, latency_text, profiled

DEFAULT_ORDERS = 1000
DEFAULT_ITEMS = 10_000
DEFAULT_SEED = 1
MAX_LINES = 3
MAX_LINE_QUANTITY = 5
SPARE_STOCK = 100  # left on hand in every item once all the orders are posted
PRICE = Decimal("9.99")
TIMED_METHODS = ("sendRequestXML", "receiveResponseXML")
_RQ_TAG = re.compile(r"<(\w+)Rq\b(?:[^>]*\brequestID=\"([^\"]*)\")?")


# --------------------------------------------------------------------------- set-up


def make_orders(count: int, skus: Sequence[str], rng: random.Random) -> list[StoreOrder]:
    """`count` store orders of 1-3 lines, each line on a different existing item."""
    orders = []
    for n in range(1, count + 1):
        picked = rng.sample(skus, k=min(rng.randint(1, MAX_LINES), len(skus)))
        lines = tuple(StoreLine(sku, Decimal(rng.randint(1, MAX_LINE_QUANTITY)), PRICE) for sku in picked)
        orders.append(StoreOrder(f"bench-{n}", str(100_000 + n), lines))
    return orders


def seed_quickbooks(skus: Sequence[str], orders: Sequence[StoreOrder]) -> QuickBooksSim:
    """A company file with every SKU in stock: what the orders take plus SPARE_STOCK."""
    demand: Counter[str] = Counter()
    for order in orders:
        for line in order.lines:
            demand[line.sku] += int(line.quantity)
    qb = QuickBooksSim()
    for sku in skus:
        qb.add_item(sku, demand[sku] + SPARE_STOCK, price=PRICE)
    return qb


async def insert_orders(db: Database, orders: Sequence[StoreOrder]) -> None:
    """All the orders in one transaction, as a store import of a backlog would."""
    async with db.transaction() as conn:
        for order in orders:
            await insert_order(conn, order, "sales_receipt", db.clock.stamp())


# --------------------------------------------------------------------------- measuring


@dataclass
class CallLog:
    """The engine's observer: (method, seconds) of each SOAP call, as the server timed it."""

    calls: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, method: str, seconds: float, _outcome: str) -> None:
        self.calls.append((method, seconds))

    def seconds(self, method: str | None = None) -> list[float]:
        return [s for m, s in self.calls if method is None or m == method]


@dataclass
class Stopwatch:
    seconds: float = 0.0
    count: int = 0


def time_process(qb: QuickBooksSim) -> Stopwatch:
    """Wrap `qb.process` so every call of the simulator adds to the returned stopwatch."""
    watch = Stopwatch()
    process = qb.process

    def timed(request_xml: str | bytes) -> str:
        started = time.perf_counter()
        try:
            return process(request_xml)
        finally:
            watch.seconds += time.perf_counter() - started
            watch.count += 1

    qb.process = timed  # type: ignore[method-assign]
    return watch


def request_kinds(requests: Sequence[str]) -> dict[str, int]:
    """qbXML requests inside the message sets: order adds, transaction lookups, item pages."""
    kinds: Counter[str] = Counter()
    for document in requests:
        for tag, request_id in _RQ_TAG.findall(document):
            if tag == "QBXMLMsgs":
                continue
            if request_id.startswith("txn-"):
                kinds["txn_scans"] += 1  # transactions modified since the last read (items they touched)
            elif tag.endswith("Add"):
                kinds["order_adds"] += 1
            elif tag.startswith("Item") and tag.endswith("Query"):
                kinds["item_pages"] += 1
            elif tag.endswith("Query"):
                kinds["lookups"] += 1
            else:
                kinds["other"] += 1
    return {name: kinds[name] for name in ("order_adds", "lookups", "txn_scans", "item_pages", "other")}


# --------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    run: RunResult
    calls: CallLog
    sim: Stopwatch
    wall_seconds: float
    posted: int
    receipts: int
    item_rows: int


async def run_session(orders: int, items: int, seed: int, profile: Path | None) -> Outcome:
    rng = random.Random(seed)
    skus = item_names(items)
    store_orders = make_orders(orders, skus, rng)
    qb = seed_quickbooks(skus, store_orders)
    sim = time_process(qb)
    calls = CallLog()
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="connex-bench-") as tmp:
        config = bench_config(Path(tmp), password)
        async with Engine(config, observer=calls) as engine, aiohttp.ClientSession() as http:
            assert engine.db is not None
            await insert_orders(engine.db, store_orders)
            wc = WebConnectorSim(engine.url, config.qbwc.username, password, qb, http=http)
            with profiled(profile):
                started = time.perf_counter()
                run = await wc.run_once()
                wall = time.perf_counter() - started
            db = engine.db
            posted = await db.fetchval("SELECT count(*) FROM orders WHERE qb_state = 'posted'")
            item_rows = await db.fetchval("SELECT count(*) FROM items")
    receipts = sum(1 for txn in qb.transactions if txn.kind == "sales_receipt")
    return Outcome(run, calls, sim, wall, int(posted), receipts, int(item_rows))


def problems(outcome: Outcome, orders: int, items: int) -> list[str]:
    found = []
    if outcome.run.status != "ok":
        found.append(f"the session ended {outcome.run.status!r}: {outcome.run.last_error or outcome.run.close_message}")
    if outcome.posted != orders:
        found.append(f"{outcome.posted} orders posted, expected {orders}")
    if outcome.receipts != orders:
        found.append(f"QuickBooks has {outcome.receipts} sales receipts, expected {orders}")
    if outcome.item_rows != items:
        found.append(f"the items table has {outcome.item_rows} rows, expected {items}")
    return found


def report(outcome: Outcome, orders: int, items: int) -> dict[str, Any]:
    run, calls = outcome.run, outcome.calls
    server = {"all": latency_ms(calls.seconds())}
    server.update({method: latency_ms(calls.seconds(method)) for method in TIMED_METHODS})
    return {
        "orders": orders,
        "items": items,
        "posted": outcome.posted,
        "sales_receipts": outcome.receipts,
        "item_rows": outcome.item_rows,
        "status": run.status,
        "soap": {
            "http_calls": len(run.calls),
            "exchanges": len(run.percents),
            "by_method": dict(Counter(run.calls)),
        },
        "qbxml": {"message_sets": len(run.requests), **request_kinds(run.requests)},
        "server_ms": server,
        "server_total_s": round(sum(calls.seconds()), 4),
        "sim_s": round(outcome.sim.seconds, 4),
        "sim_calls": outcome.sim.count,
        "wall_s": round(outcome.wall_seconds, 4),
    }


# --------------------------------------------------------------------------- output


def _rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    soap, qbxml = data["soap"], data["qbxml"]
    rows = [
        ("session", f"{data['orders']} orders, {data['items']} items: {data['status']}"),
        ("checked", f"{data['posted']} posted, {data['sales_receipts']} sales receipts, {data['item_rows']} item rows"),
        ("SOAP HTTP calls", str(soap["http_calls"])),
        ("send/receive pairs", str(soap["exchanges"])),
        ("qbXML message sets", str(qbxml["message_sets"])),
        ("  order adds", str(qbxml["order_adds"])),
        ("  lookups", str(qbxml["lookups"])),
        ("  transaction scans", str(qbxml["txn_scans"])),
        ("  item pages", str(qbxml["item_pages"])),
    ]
    for name, stats in data["server_ms"].items():
        rows.append((f"server ms {name}", latency_text(stats)))
    rows += [
        ("server total s", f"{data['server_total_s']:.3f}"),
        ("QuickBooks sim s", f"{data['sim_s']:.3f}  ({data['sim_calls']} calls)"),
        ("wall s", f"{data['wall_s']:.3f}"),
    ]
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.qbwc_session", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--orders", type=int, default=DEFAULT_ORDERS, help="new store orders to post (default %(default)s)"
    )
    parser.add_argument(
        "--items", type=int, default=DEFAULT_ITEMS, help="modified items to read back (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the order generator (default %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="write a pyinstrument text report of the session to FILE"
    )
    args = parser.parse_args(argv)
    if args.orders < 0 or args.items < 1:
        parser.error("--orders must be 0 or more and --items 1 or more")
    return args


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    configure_logging(level="warning", json=False)  # keep the engine's log lines off the table
    outcome = asyncio.run(run_session(args.orders, args.items, args.seed, args.profile))
    data = report(outcome, args.orders, args.items)
    text = json.dumps(data, indent=2) if args.json else format_table(_rows(data))
    return finish(text, problems(outcome, args.orders, args.items), out)


if __name__ == "__main__":
    sys.exit(main())
