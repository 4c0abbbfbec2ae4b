"""`connex-tui demo`: the QuickBooks half of the sync, end to end, on this machine.

It starts the real engine and endpoint on a free local port with a throw-away database, a
simulated QuickBooks company file (redwine at 20 among a few hundred items) and the simulated Web
Connector, then runs Web Connector sessions: the first reads every item, the next posts a store
order of 5 redwine (QuickBooks falls to 15) and reads back what changed, and an inventory
adjustment made in QuickBooks is picked up by the one after. It prints what happened.
The store side (emulators, stock pushes) joins in the storefront issue.
"""

from __future__ import annotations

import secrets
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import aiohttp

from .engine.config import Config, parse_config
from .engine.orders import OrderLine, StoreOrder, add_order
from .engine.runtime import Engine
from .sim.quickbooks import QuickBooksSim
from .sim.webconnector import RunResult, WebConnectorSim

CATALOG_SIZE = 300


def demo_config(folder: Path, password: str) -> Config:
    data = {
        "database": {"path": str(folder / "demo.db")},
        "qbwc": {"host": "127.0.0.1", "port": 0, "password": password, "read_min_interval_seconds": 0},
        "storefront": {"platform": "none"},
    }
    return parse_config(data, folder / "demo.toml", {})


def seed_quickbooks(qb: QuickBooksSim) -> None:
    qb.add_item("redwine", 20, price=Decimal("12.50"))
    for n in range(1, CATALOG_SIZE):
        qb.add_item(f"SKU-{n:04d}", 5 + n % 40, price=Decimal("9.99"))


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _session_line(n: int, run: RunResult) -> str:
    return (
        f"session {n}: authenticate -> {run.auth[1] if len(run.auth) > 1 else '?'!r}, "
        f"{len(run.requests)} qbXML requests, close: {run.close_message}"
    )


async def run_demo(*, sessions: int = 3, out: TextIO | None = None) -> int:
    import sys

    from .engine.logs import configure_logging

    out = out or sys.stdout
    # The demo tells its story on stdout; only warnings and errors of the engine go to stderr.
    configure_logging(level="warning", json=False)
    with tempfile.TemporaryDirectory(prefix="connex-demo-") as tmp:
        password = secrets.token_urlsafe(16)
        config = demo_config(Path(tmp), password)
        qb = QuickBooksSim()
        seed_quickbooks(qb)
        async with Engine(config) as engine, aiohttp.ClientSession() as http:
            assert engine.db is not None
            wc = WebConnectorSim(engine.url, config.qbwc.username, password, qb, http=http)
            _say(out, f"connex-tui demo: Web Connector endpoint at {engine.url}")
            _say(out, f"QuickBooks (simulated): {len(qb.items)} items, redwine {qb.item('redwine').quantity_on_hand}")
            for n in range(1, max(sessions, 1) + 1):
                if n == 2:
                    await add_order(engine.db, StoreOrder("demo-1001", "1001", (OrderLine("redwine", Decimal(5)),)))
                    _say(out, "store order #1001: 5 x redwine imported")
                if n == 3:
                    qb.adjust_quantity("SKU-0007", 10)
                    _say(out, "QuickBooks: inventory adjustment +10 SKU-0007")
                run = await wc.run_once()
                _say(out, _session_line(n, run))
            row = await engine.db.fetchone("SELECT qb_state, txn_id FROM orders WHERE store_id = 'demo-1001'")
            pending = await engine.db.fetchval("SELECT count(*) FROM pending")
            redwine = await engine.db.fetchval("SELECT quantity FROM pending WHERE sku = 'redwine'")
            _say(out, f"order #1001 in QuickBooks: {row['qb_state'] if row else 'not imported'} (TxnID {row['txn_id'] if row else '-'})")
            _say(out, f"QuickBooks redwine now {qb.item('redwine').quantity_on_hand}; queued for the store: redwine {redwine}")
            _say(out, f"pending queue: {pending} SKUs waiting to be pushed to the store")
            ok = row is not None and row["qb_state"] == "posted" and qb.item("redwine").quantity_on_hand == 15
            _say(out, "demo finished: " + ("QuickBooks and connex-tui agree" if ok else "something did not sync (see above)"))
            return 0 if ok else 1
