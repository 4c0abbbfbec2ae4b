"""Read models and admin commands on a real database, and the event log the interface tails."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connex_tui.engine import admin_commands, views
from connex_tui.engine.db import Database
from connex_tui.engine.event_log import EventRecorder, trim_events
from connex_tui.engine.events import EventBus, OrderFailed, PendingQueued, SessionEnded
from connex_tui.engine.items import queue_stock
from connex_tui.engine.logs import configure_logging
from connex_tui.engine.orders import add_order
from connex_tui.storefronts.base import StoreLine, StoreOrder


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(tmp_path / "v.db")
    yield database
    await database.close()


def ago(**delta: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(**delta)).isoformat(timespec="milliseconds")


async def log_lines(db: Database, lines: list[tuple[str, str, int, str]]) -> None:
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?, ?, '1', '2', ?, ?)", lines
        )


async def test_dashboard_counts_and_health(db: Database) -> None:
    empty = await views.dashboard(db)
    assert empty.healthy and empty.pending == 0 and empty.last_session is None
    assert empty.store.state == "not configured" and len(empty.pushes_per_minute) == 30

    await add_order(db, StoreOrder("o1", "1001", (StoreLine("redwine", Decimal(1)),)))
    await add_order(db, StoreOrder("o2", "1002", (StoreLine("redwine", Decimal(1)),)))
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE orders SET qb_state = 'failed', error = 'QuickBooks said 3140' WHERE store_id = 'o2'"
        )
        await queue_stock(conn, {"a": Decimal(1), "b": Decimal(2), "c": Decimal(3)}, db.clock.stamp())
        await conn.execute("UPDATE pending SET state = 'failed', last_error = 'SKU not found' WHERE sku = 'c'")
        await conn.execute(
            "INSERT INTO qbwc_sessions(ticket_hash, started, last_seen, ended, requests, result, state)"
            " VALUES ('h', ?, ?, ?, 9, 'ok', '{}')",
            (ago(seconds=70), ago(seconds=10), ago(seconds=10)),
        )
        await conn.execute(
            "INSERT INTO tasks(name, interval_seconds, last_run, last_result) VALUES"
            " ('inventory', 30, ?, 'error: WooCommerce POST /products/batch: the store is unavailable (HTTP 503) after 6 tries')",
            (ago(seconds=5),),
        )
    await log_lines(
        db, [(ago(minutes=2), "a", 1, ""), (ago(minutes=2), "b", 1, ""), (ago(minutes=1), "c", 0, "SKU not found")]
    )

    board = await views.dashboard(db)
    assert board.orders_imported_today == 2 and board.orders_failed == 1
    assert (board.pending, board.failed_skus) == (2, 1)
    assert board.last_session.requests == 9 and 59 < board.last_session.seconds < 61
    assert board.store.state == "unreachable" and "HTTP 503" in board.store.detail
    assert sum(board.pushes_per_minute) == 2
    assert [f.what for f in board.latest_failures][:2] == ["order 1002", "SKU c"]
    assert not board.healthy


async def test_pending_page_failed_first_filtered_and_counted(db: Database) -> None:
    async with db.transaction() as conn:
        await queue_stock(conn, {f"sku-{n:03d}": Decimal(n) for n in range(250)}, db.clock.stamp())
        await conn.execute("UPDATE pending SET state = 'failed' WHERE sku = 'sku-200'")
    rows, total = await views.pending_page(db, limit=10)
    assert total == 250 and len(rows) == 10 and rows[0].sku == "sku-200" and rows[0].state == "failed"
    rows, total = await views.pending_page(db, sku_filter="sku-01")
    assert total == 10 and all("sku-01" in r.sku for r in rows)
    rows, total = await views.pending_page(db, sku_filter="100%_")  # LIKE wildcards are literal
    assert total == 0


async def test_sku_log_keyset_pages_through_everything_once(db: Database) -> None:
    await log_lines(db, [(ago(seconds=n), f"s{n % 7}", int(n % 5 != 0), "" if n % 5 else "no") for n in range(1000)])
    seen, before = [], None
    while True:
        page = await views.sku_log_page(db, before_id=before, limit=150)
        if not page:
            break
        seen += [r.id for r in page]
        before = page[-1].id
    assert len(seen) == 1000 == len(set(seen)) and seen == sorted(seen, reverse=True)
    failed = await views.sku_log_page(db, failed_only=True, limit=1000)
    assert len(failed) == 200 and not any(r.ok for r in failed)
    recent = await views.sku_log_page(db, since=ago(seconds=10.5), limit=1000)
    assert len(recent) == 11


async def test_commands_retry_drop_pause_and_run_now(db: Database) -> None:
    async with db.transaction() as conn:
        await queue_stock(conn, {"a": Decimal(1), "b": Decimal(2)}, db.clock.stamp())
        await conn.execute("UPDATE pending SET state = 'failed', attempts = 8, last_error = 'x'")
        await conn.execute("INSERT INTO tasks(name, interval_seconds, next_run) VALUES ('inventory', 30, '2999-01-01')")
        await db.set_meta(conn, "catalog.refreshed_at", db.clock.stamp())
    assert await admin_commands.retry(db, ["a"]) == 1
    assert await db.get_meta("catalog.refreshed_at") is None  # the store's index is read again
    row = await db.fetchone("SELECT state, attempts, last_error FROM pending WHERE sku = 'a'")
    assert tuple(row) == ("pending", 0, None)
    assert await db.fetchval("SELECT next_run FROM tasks WHERE name = 'inventory'") < "2999"
    assert await admin_commands.retry_all_failed(db) == 1
    assert await admin_commands.drop(db, ["a", "b", "zzz"]) == 2
    await admin_commands.set_paused(db, True)
    assert await admin_commands.is_paused(db) and (await views.dashboard(db)).paused
    await admin_commands.set_paused(db, False)
    assert not await admin_commands.is_paused(db)
    with pytest.raises(KeyError, match="unknown task 'nope'.*inventory"):
        await admin_commands.run_task_now(db, "nope")


async def test_requeue_only_failed_orders(db: Database) -> None:
    order_id = await add_order(db, StoreOrder("o1", "1", (StoreLine("x", Decimal(1)),)))
    assert not await admin_commands.requeue_order(db, order_id)
    async with db.transaction() as conn:
        await conn.execute("UPDATE orders SET qb_state = 'failed', error = 'e'")
    assert await admin_commands.requeue_order(db, order_id)
    rows, _ = await views.orders_page(db)
    assert rows[0].qb_state == "new" and rows[0].error is None


def test_a_failing_listener_is_logged_and_the_others_still_hear_the_event() -> None:
    bus = EventBus()
    heard: list[object] = []

    def broken(event: object) -> None:
        raise ValueError("listener bug with s3cret-token inside")

    bus.subscribe(broken)
    bus.subscribe(heard.append)
    stream = io.StringIO()
    configure_logging(level="info", secrets=["s3cret-token"], stream=stream)
    try:
        bus.emit(OrderFailed(1, "1001", "no such item"))
    finally:
        configure_logging(level="warning", json=False)
    assert heard == [OrderFailed(1, "1001", "no such item")]  # the next listener was not skipped
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "event listener failed" and line["level"] == "error"
    assert line["listener"].endswith(
        "test_a_failing_listener_is_logged_and_the_others_still_hear_the_event.<locals>.broken"
    )
    assert line["kind"] == "OrderFailed" and "ValueError: listener bug" in line["exception"]
    assert "s3cret-token" not in stream.getvalue()  # the traceback goes through the secret redaction


async def test_event_recorder_writes_described_events_and_tail_follows(db: Database) -> None:
    bus = EventBus()
    recorder = EventRecorder(db, bus)
    recorder.start()
    bus.emit(SessionEnded(3, "ok", 12, "OK: 2 orders posted, 10 items read"))
    bus.emit(PendingQueued(10))  # too chatty to record
    bus.emit(OrderFailed(1, "1001", "QuickBooks does not know item X"))
    await asyncio.sleep(0.7)
    tail = await views.events_tail(db)
    assert [(e.level, e.kind) for e in tail] == [("info", "SessionEnded"), ("error", "OrderFailed")]
    assert "2 orders posted" in tail[0].message
    bus.emit(SessionEnded(4, "error", 3, "Failed"))
    await recorder.stop()  # flushes what is buffered
    newer = await views.events_tail(db, after_id=tail[-1].id)
    assert [e.kind for e in newer] == ["SessionEnded"] and newer[0].level == "error"
    assert await trim_events(db, keep=1) == 2
