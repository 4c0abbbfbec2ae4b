"""The Web Connector in the field (issue 9), measured over real HTTP with the real engine, a real
SQLite file, the WooCommerce emulator and the QuickBooks and Web Connector simulators:

  * seconds from a dropped connection (after QuickBooks took an add) to the next order posted,
    with the Web Connector on its schedule (`--interval`, real seconds; QBWC's shortest from its
    UI is 60), and what each authenticate answered;
  * Web Connector sessions that end failed on a QuickBooks Pro company (`--pro-sessions` runs with
    orders, refunds and stock changes);
  * what a session from another company file did (posted, read, pushed, result, message);
  * the store's quantity after a bookkeeper's credit memo, with QuickBooks bumping an item's
    TimeModified for transactions and without.

    python -m bench.field [--interval 60] [--pro-sessions 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from connex_tui.engine.logs import configure_logging
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.stores import EmulatedStore
from connex_tui.sim.webconnector import WebConnectorSim
from connex_tui.soap.qbxml import TxnDoc, TxnLine, message_set, txn_add_rq

from .common import bench_config

PASSWORD = "bench-field-Pa55word"


class Rig:
    def __init__(self, folder: Path, http: aiohttp.ClientSession, qb: QuickBooksSim, name: str) -> None:
        self.folder, self.http, self.qb, self.name = folder, http, qb, name
        self.store = EmulatedStore("woocommerce")
        self.engine: Engine | None = None

    async def __aenter__(self) -> Rig:
        await self.store.start()
        self.store.seed({"redwine": 20})
        config = bench_config(
            self.folder,
            PASSWORD,
            name=self.name,
            storefront=self.store.storefront_config(),
            orders={"poll_seconds": 3600},
        )
        self.engine = Engine(config)
        await self.engine.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.engine is not None
        await self.engine.stop()
        await self.store.stop()

    def wc(self, qb: QuickBooksSim | None = None, **options: Any) -> WebConnectorSim:
        assert self.engine is not None
        return WebConnectorSim(self.engine.url, "qbwc", PASSWORD, qb or self.qb, http=self.http, **options)

    async def import_orders(self) -> None:
        assert self.engine is not None and self.engine.scheduler is not None
        await self.engine.scheduler.run_and_wait("orders")

    async def drain(self) -> None:
        assert self.engine is not None and self.engine.db is not None and self.engine.scheduler is not None
        deadline = time.monotonic() + 30
        while await self.engine.db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'"):
            if time.monotonic() > deadline:
                raise RuntimeError("the pending queue did not drain")
            self.engine.scheduler.wake("inventory")
            await asyncio.sleep(0.05)

    async def posted(self) -> int:
        assert self.engine is not None and self.engine.db is not None
        return int(await self.engine.db.fetchval("SELECT count(*) FROM orders WHERE qb_state = 'posted'"))


async def dropped_connection(folder: Path, http: aiohttp.ClientSession, interval: float) -> dict[str, Any]:
    qb = QuickBooksSim()
    qb.add_item("redwine", 20)
    async with Rig(folder, http, qb, "dropped") as rig:
        rig.store.order([("redwine", 5)])
        await rig.import_orders()
        dropped = await rig.wc(drop_after=1).run_once()
        dropped_at = time.monotonic()
        rig.store.order([("redwine", 2)])
        await rig.import_orders()
        wc = rig.wc()
        answers = []
        while True:  # the Web Connector's schedule: a run every `interval` seconds
            await asyncio.sleep(max(0.0, dropped_at + interval * (len(answers) + 1) - time.monotonic()))
            run = await wc.run_once()
            answers.append(run.auth[1] if len(run.auth) > 1 else "?")
            if await rig.posted() == 2:
                break
        seconds = time.monotonic() - dropped_at
        receipts = len([t for t in qb.transactions if t.kind == "sales_receipt"])
        return {
            "dropped": dropped.dropped,
            "interval_s": interval,
            "seconds_to_next_post": round(seconds, 2),
            "runs_after_drop": len(answers),
            "answers": answers,
            "orders_in_quickbooks": receipts,
        }


async def pro_sessions(folder: Path, http: aiohttp.ClientSession, sessions: int) -> dict[str, Any]:
    qb = QuickBooksSim(edition="pro")
    qb.add_item("redwine", 500)
    async with Rig(folder, http, qb, "pro") as rig:
        wc = rig.wc()
        assert rig.engine is not None and rig.engine.db is not None
        for n in range(sessions):
            rig.store.order([("redwine", 1 + n % 3)])
            await rig.import_orders()
            if n % 4 == 3:
                qb.record_txn("Bill", [("redwine", 5)])
            await wc.run_once()
        results = [r[0] for r in await rig.engine.db.fetchall("SELECT result FROM qbwc_sessions ORDER BY id")]
        assembly_queries = sum("ItemInventoryAssemblyQueryRq" in r for run in wc.runs for r in run.requests)
        return {
            "sessions": len(results),
            "failed": sum(r not in ("ok", "none") for r in results),
            "results": sorted(set(results)),
            "assembly_queries_sent": assembly_queries,
            "orders_posted": await rig.posted(),
        }


async def other_company(folder: Path, http: aiohttp.ClientSession) -> dict[str, Any]:
    qb = QuickBooksSim()
    qb.add_item("redwine", 20)
    async with Rig(folder, http, qb, "company") as rig:
        assert rig.engine is not None and rig.engine.db is not None
        await rig.wc().run_once()  # records the company file
        rig.store.order([("redwine", 5)])
        await rig.import_orders()
        other = QuickBooksSim(company_file=r"C:\Users\Public\Documents\Intuit\QuickBooks\Company Files\Test copy.QBW")
        other.add_item("redwine", 80)
        run = await rig.wc(other).run_once()
        row = await rig.engine.db.fetchone("SELECT result, error, state FROM qbwc_sessions ORDER BY id DESC LIMIT 1")
        return {
            "authenticate_named": run.auth[1],
            "calls": run.calls[3:],
            "posted": len(other.transactions),
            "qbxml_requests_answered": len(other.requests),
            "queued_for_store": json.loads(row["state"])["queued"],
            "order_state": await rig.engine.db.fetchval("SELECT qb_state FROM orders"),
            "result": row["result"],
            "message": row["error"],
        }


async def credit_memo(folder: Path, http: aiohttp.ClientSession, bumps: bool) -> dict[str, Any]:
    qb = QuickBooksSim(bumps_item_time_modified=bumps)
    qb.add_item("redwine", 20)
    async with Rig(folder, http, qb, f"memo-{bumps}") as rig:
        wc = rig.wc()
        await wc.run_once()
        await rig.drain()
        rig.store.order([("redwine", 5)])
        await rig.import_orders()
        await wc.run_once()
        await rig.drain()
        after_order = rig.store.stock("redwine")
        doc = TxnDoc("CM-1", "returned at the counter", "Web Store", (TxnLine("redwine", Decimal(3)),))
        qb.process(message_set([txn_add_rq("credit_memo", doc, "cm")]))
        await wc.run_once()
        await rig.drain()
        return {
            "item_time_modified_bumped": bumps,
            "store_after_order": after_order,
            "quickbooks_after_memo": int(qb.item("redwine").quantity_on_hand),
            "store_after_memo": rig.store.stock("redwine"),
        }


async def measure(interval: float, sessions: int) -> dict[str, Any]:
    configure_logging(level="error", json=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with aiohttp.ClientSession() as http:
            return {
                "dropped_connection": await dropped_connection(folder, http, interval),
                "pro": await pro_sessions(folder, http, sessions),
                "other_company_file": await other_company(folder, http),
                "credit_memo": [await credit_memo(folder, http, bumps) for bumps in (True, False)],
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.field", description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=60.0, help="Web Connector schedule, seconds (default 60)")
    parser.add_argument("--pro-sessions", type=int, default=20, help="sessions on a QuickBooks Pro company")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data = asyncio.run(measure(args.interval, args.pro_sessions))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    drop = data["dropped_connection"]
    print(
        f"dropped connection -> next order posted: {drop['seconds_to_next_post']} s "
        f"(schedule {drop['interval_s']:g} s; authenticate answered {drop['answers']}; "
        f"orders in QuickBooks: {drop['orders_in_quickbooks']})"
    )
    pro = data["pro"]
    print(
        f"QuickBooks Pro: {pro['failed']} of {pro['sessions']} sessions failed (results {pro['results']},"
        f" {pro['assembly_queries_sent']} assembly queries sent, {pro['orders_posted']} orders posted)"
    )
    other = data["other_company_file"]
    print(
        f"another company file: authenticate named {other['authenticate_named']!r}; calls {other['calls']};"
        f" posted {other['posted']}, qbXML requests {other['qbxml_requests_answered']},"
        f" queued for the store {other['queued_for_store']}, the order stays {other['order_state']};"
        f" result {other['result']}: {other['message']}"
    )
    for memo in data["credit_memo"]:
        print(
            f"credit memo of 3 (TimeModified bumped: {memo['item_time_modified_bumped']}): store"
            f" {memo['store_after_order']} -> {memo['store_after_memo']} (QuickBooks {memo['quickbooks_after_memo']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
