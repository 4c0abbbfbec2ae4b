"""Fixed data and a fixed clock for the interface's tests and snapshots.

`seed_database(path)` writes a merchant's afternoon into a real SQLite file through the engine's
own `Database` (so the schema is the real one): Web Connector sessions, scheduled tasks, orders in
every QuickBooks state, a pending queue with failures, a few hundred SKU log lines (more than one
keyset page) and an event log. Times are relative to `FIXED_NOW`; the interface and the `db`
fixture are given `FIXED_CLOCK`, which always says `FIXED_NOW` (in UTC, shown in UTC), so every
snapshot renders the same text on any day and in any time zone.

Import the fixtures explicitly: `from tests.tui_fixtures import seeded_path, db, ...`.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connex_tui.app import ConnexApp
from connex_tui.backend import Backend
from connex_tui.harness import Harness
from connex_tui.engine.clock import stamp
from connex_tui.engine.db import Database
from connex_tui.engine.throughput import Throughput

from .clocks import ManualClock

FIXED_NOW = datetime(2026, 3, 10, 14, 30, 0, tzinfo=timezone.utc)
LEAKED_KEY = "ck_5f2b8c1d9e7a6b4c3d2e1f0a9b8c7d6e5f4a3b2c"  # in an order's error: must never be shown

SIZE = (100, 30)
SMALL = (80, 24)


FIXED_CLOCK = ManualClock(FIXED_NOW)  # nothing moves it


def iso(moment: datetime) -> str:
    return stamp(moment)


def ago(**delta: float) -> str:
    return iso(FIXED_NOW - timedelta(**delta))


def ahead(**delta: float) -> str:
    return iso(FIXED_NOW + timedelta(**delta))


FAILED_SKUS = ("GIFT-CARD-50", "QB-ONLY-1", "SKU-0413")
IN_FLIGHT_SKUS = ("SKU-0101", "SKU-0102")
PENDING_COUNT = 24  # pending rows in the fixed data, failed and in flight included
LOG_LINES = 320  # more than one page of 200
FAILED_ORDER_NUMBERS = ("1042", "1045")


async def seed_database(path: Path) -> None:
    rng = random.Random(20260310)
    db = await Database.open(path)
    try:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO meta(key, value) VALUES ('inventory.paused', '0')")
            # The store's pace in the last drain, as engine/dispatch.py writes it.
            await conn.execute(
                "INSERT INTO meta(key, value) VALUES ('store.throughput', ?)",
                (Throughput(6, 8, 0.912, 1.384, 412.5, ago(minutes=2)).to_json(),),
            )
            # Web Connector sessions: the last one two minutes ago, 4.2 s, 12 requests, ok.
            sessions = [
                (ago(minutes=62), ago(minutes=61, seconds=57), 9, "ok", None),
                (ago(minutes=32), ago(minutes=31, seconds=50), 15, "error", "QuickBooks is not running (0x80040408)"),
                (ago(minutes=2, seconds=4.2), ago(minutes=2), 12, "ok", None),
            ]
            for n, (started, ended, requests, result, error) in enumerate(sessions, 1):
                await conn.execute(
                    "INSERT INTO qbwc_sessions(ticket_hash, client, started, last_seen, ended, requests, result, error)"
                    " VALUES (?, '192.0.2.10', ?, ?, ?, ?, ?, ?)",
                    (f"hash-{n}", started, ended, ended, requests, result, error),
                )
            tasks = [
                ("catalog", 3600, ago(minutes=45), ahead(minutes=15), "ok: 312 store SKUs indexed"),
                ("cleanup", 86400, ago(hours=20), ahead(hours=4), "ok: 1,204 old log lines removed"),
                ("inventory", 30, ago(seconds=5), ahead(seconds=25), "ok: 40 pushed, 3 failed"),
                ("orders", 60, ago(seconds=20), ahead(seconds=40), "ok: 3 new orders"),
                ("reconcile", 21600, None, ahead(hours=5, minutes=30), None),
            ]
            await conn.executemany(
                "INSERT INTO tasks(name, interval_seconds, last_run, next_run, last_result) VALUES (?,?,?,?,?)", tasks
            )
            orders: list[tuple[Any, ...]] = []
            for n in range(12):
                number = str(1040 + n)
                state = "posted"
                txn, error, kind = f"{0x1A2B + n:X}-1767225600", None, "sales_receipt"
                if number in FAILED_ORDER_NUMBERS:
                    state, txn = "failed", None
                    error = (
                        'QuickBooks 3140: There is an invalid reference to QuickBooks Item "GIFT-CARD-50"'
                        " in the SalesReceipt line."
                        if number == "1042"
                        else f"store refused the order lookup: 401 Unauthorized (consumer_key={LEAKED_KEY})"
                    )
                elif n >= 10:
                    state, txn = ("new" if n == 11 else "sent"), None
                elif n == 9:
                    kind = "credit_memo"
                orders.append(
                    (
                        f"wc-{9000 + n}",
                        number if kind != "credit_memo" else "1041-R1",
                        "completed" if n < 10 else "processing",
                        state,
                        kind,
                        f"W{number}",
                        txn,
                        error,
                        ago(minutes=90 - n * 7),
                        ago(minutes=60 - n * 5),
                    )
                )
            await conn.executemany(
                "INSERT INTO orders(store_id, number, status, qb_state, qb_kind, ref_number, txn_id, error,"
                " imported_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                orders,
            )
            pending = []
            for n, sku in enumerate(FAILED_SKUS):
                reason = (
                    "SKU not on the store"
                    if sku != "SKU-0413"
                    else "store answered 422: stock_quantity must be a whole number"
                )
                pending.append((sku, str(5 + n), "failed", 8, ago(minutes=10), reason, ago(minutes=40)))
            for sku in IN_FLIGHT_SKUS:
                pending.append((sku, "12", "in_flight", 1, ago(seconds=3), None, ago(minutes=4)))
            for n in range(PENDING_COUNT - len(FAILED_SKUS) - len(IN_FLIGHT_SKUS)):
                attempts = 1 if n % 5 == 0 else 0
                due = ahead(seconds=30 + n * 7) if attempts else ago(seconds=n)
                error = "store answered 503: try again later" if attempts else None
                pending.append(
                    (f"SKU-{200 + n:04d}", str(rng.randint(0, 60)), "pending", attempts, due, error, ago(minutes=4))
                )
            await conn.executemany(
                "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, last_error, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                pending,
            )
            lines = []
            for n in range(LOG_LINES):
                at = ago(seconds=(LOG_LINES - n) * 5.5)  # oldest first: ids grow with time
                sku = f"SKU-{rng.randint(1, 299):04d}"
                old = rng.randint(0, 60)
                if n % 23 == 7:
                    lines.append((at, rng.choice(FAILED_SKUS), str(old), str(old + 1), 0, "SKU not on the store"))
                else:
                    lines.append((at, sku, str(old), str(max(0, old - rng.randint(1, 5))), 1, ""))
            lines.append((ago(seconds=2), "redwine", "20", "15", 1, ""))
            await conn.executemany(
                "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,?,?)", lines
            )
            events = [
                (
                    ago(minutes=32),
                    "error",
                    "SessionEnded",
                    "Web Connector session 2 ended: QuickBooks is not running (15 calls)",
                ),
                (ago(minutes=20), "info", "TaskFinished", "task catalog: 312 store SKUs indexed"),
                (ago(minutes=2, seconds=5), "info", "SessionStarted", "Web Connector session 3 started (192.0.2.10)"),
                (
                    ago(minutes=2, seconds=3),
                    "info",
                    "OrderPosted",
                    "order 1049 posted to QuickBooks (TxnID 1A34-1767225600)",
                ),
                (
                    ago(minutes=2, seconds=2),
                    "error",
                    "OrderFailed",
                    'order 1042 failed: QuickBooks 3140: invalid reference to "GIFT-CARD-50"',
                ),
                (ago(minutes=2, seconds=1), "info", "ItemsRead", "412 QuickBooks items read, 40 stock updates queued"),
                (
                    ago(minutes=2),
                    "info",
                    "SessionEnded",
                    "Web Connector session 3 ended: 2 orders, 412 items (12 calls)",
                ),
                (ago(seconds=5), "warning", "StockPushed", "stock batch: 40 pushed, 3 failed, 0 to retry"),
            ]
            await conn.executemany("INSERT INTO events(at, level, kind, message) VALUES (?,?,?,?)", events)
    finally:
        await db.close()


async def seed_big(path: Path, *, log_lines: int = 100_000, pending: int = 10_000) -> None:
    """The fixed data plus a log of `log_lines` lines and a queue of `pending` rows."""
    await seed_database(path)
    db = await Database.open(path)
    try:
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,?,?)",
                (
                    (
                        ago(days=2, seconds=-n),
                        f"BULK-{n % 5000:05d}",
                        "3",
                        "2",
                        0 if n % 97 == 0 else 1,
                        "SKU not on the store" if n % 97 == 0 else "",
                    )
                    for n in range(log_lines)
                ),
            )
            await conn.executemany(
                "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, last_error, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    (
                        f"BULK-{n:05d}",
                        "4",
                        "failed" if n % 50 == 0 else "pending",
                        8 if n % 50 == 0 else 0,
                        ahead(seconds=n),
                        "SKU not on the store" if n % 50 == 0 else None,
                        ago(minutes=1),
                    )
                    for n in range(pending)
                ),
            )
    finally:
        await db.close()


_TEMPLATES: dict[str, Path] = {}


def _template(kind: str, factory: Callable[[Path], Any], root: Path) -> Path:
    if kind not in _TEMPLATES:
        path = root / f"template-{kind}.db"
        asyncio.run(factory(path))
        _TEMPLATES[kind] = path
    return _TEMPLATES[kind]


@pytest.fixture(scope="session")
def _template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tui-templates")


@pytest.fixture
def seeded_path(tmp_path: Path, _template_dir: Path) -> Path:
    """A fresh copy of the fixed data for this test."""
    target = tmp_path / "connex.db"
    shutil.copyfile(_template("small", seed_database, _template_dir), target)
    return target


@pytest.fixture
def big_path(tmp_path: Path, _template_dir: Path) -> Path:
    target = tmp_path / "big.db"
    shutil.copyfile(_template("big", seed_big, _template_dir), target)
    return target


@pytest.fixture
async def db(seeded_path: Path) -> AsyncIterator[Database]:
    """A second connection to the same file: what the engine (or `monitor`) sees."""
    database = await Database.open(seeded_path, FIXED_CLOCK)
    yield database
    await database.close()


def make_app(path: Path, *, refresh_seconds: float = 0.5, warm_up: bool = False, **kwargs: Any) -> ConnexApp:
    """A monitor-mode App on `path` with the fixed clock, no cursor blink, no animation, display
    errors raised and loads counted (`app.harness`).

    The start-up warm-up (composing all six screens) is off unless asked for: it costs every test
    half a second and only matters for the timing of a first visit.
    """
    harness = Harness(cursor_blink=False, strict=True, warm_up=warm_up, counting=True)
    app = ConnexApp(
        Backend.lazy(path, clock=FIXED_CLOCK, zone=timezone.utc),
        refresh_seconds=refresh_seconds,
        harness=harness,
        **kwargs,
    )
    app.animation_level = "none"
    return app


async def wait_for(pilot: Any, predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> None:
    """Poll (letting the App run) until `predicate()` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await pilot.pause()
        try:
            if predicate():
                return
        except Exception:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def screen_text(app: Any) -> str:
    """What the terminal shows right now, as plain text (one line per row)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
