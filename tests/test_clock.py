"""The engine's one clock: its stored format, and that every part of a running engine reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import aiohttp
import pytest

from connex_tui.engine.clock import Clock, parse_stamp, parse_stamp_or_none, stamp

from .clocks import ManualClock
from .test_sync_e2e import start_sync


def test_stamps_are_utc_with_milliseconds_and_sort_as_text() -> None:
    paris = timezone(timedelta(hours=1))
    assert stamp(datetime(2026, 3, 9, 15, 3, 27, 120500, tzinfo=paris)) == "2026-03-09T14:03:27.120+00:00"
    assert stamp(datetime(2026, 3, 9, 14, 3, 27)) == "2026-03-09T14:03:27.000+00:00"  # naive: taken as UTC
    moments = [datetime(2026, 3, 9, 14, 3, 27, tzinfo=UTC) + timedelta(milliseconds=n * 937) for n in range(50)]
    assert sorted(stamp(m) for m in reversed(moments)) == [stamp(m) for m in moments]


def test_parsing_reads_stamps_back_and_any_iso_time_with_an_offset() -> None:
    moment = datetime(2026, 3, 9, 14, 3, 27, 120000, tzinfo=UTC)
    assert parse_stamp(stamp(moment)) == moment
    assert parse_stamp("2026-03-09T15:03:27.120+01:00") == moment
    assert parse_stamp("2026-03-09T14:03:27.120Z") == moment
    assert parse_stamp("2026-03-09T14:03:27.120") == moment  # naive: UTC
    with pytest.raises(ValueError):
        parse_stamp("yesterday")
    assert parse_stamp_or_none("yesterday") is None and parse_stamp_or_none(None) is None
    assert parse_stamp_or_none("") is None and parse_stamp_or_none(stamp(moment)) == moment


def test_the_clock_stamps_now_and_moments_from_now() -> None:
    clock = ManualClock(datetime(2026, 3, 9, 14, 0, tzinfo=UTC))
    assert clock.stamp() == "2026-03-09T14:00:00.000+00:00"
    assert clock.stamp(after_seconds=90) == "2026-03-09T14:01:30.000+00:00"
    assert clock.stamp(after_seconds=-0.5) == "2026-03-09T13:59:59.500+00:00"
    system = Clock()
    before = datetime.now(UTC)
    assert before <= system.now() <= datetime.now(UTC) and system.now().tzinfo is not None
    first = system.monotonic()
    assert system.monotonic() >= first


async def test_a_running_engine_writes_only_its_own_clocks_time(tmp_path, http: aiohttp.ClientSession) -> None:
    """An order from the store to QuickBooks and its stock back to the store, on an engine whose
    clock stands still five minutes in the past: every time the engine wrote, in every table, is
    that time (or later by a wait it chose). One read of the machine's clock anywhere would show
    as a time five minutes later. (Five minutes: WooCommerce's OAuth allows fifteen.)"""
    frozen = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    sync = await start_sync(tmp_path, "woocommerce", http, engine_clock=ManualClock(frozen))
    try:
        sync.store.order([("redwine", 5)])
        assert "1 new" in await sync.import_orders()
        await sync.session()
        await sync.drain()
        assert sync.qb.item("redwine").quantity_on_hand == 15 and sync.store.stock("redwine") == 15
        await sync.engine.recorder.flush()
        written = {
            "orders.imported_at": "SELECT imported_at FROM orders",
            "orders.updated_at": "SELECT updated_at FROM orders",
            "orders.sent_at": "SELECT sent_at FROM orders",
            "items.seen_at": "SELECT seen_at FROM items",
            "sku_log.at": "SELECT at FROM sku_log",
            "tasks.last_run": "SELECT last_run FROM tasks WHERE last_run IS NOT NULL",
            "qbwc_sessions.started": "SELECT started FROM qbwc_sessions",
            "qbwc_sessions.last_seen": "SELECT last_seen FROM qbwc_sessions",
            "qbwc_sessions.ended": "SELECT ended FROM qbwc_sessions",
            "qb_requests.at": "SELECT at FROM qb_requests",
            "catalog.refreshed_at": "SELECT refreshed_at FROM catalog",
            "events.at": "SELECT at FROM events",
        }
        seen: dict[str, set[str]] = {}
        for name, sql in written.items():
            seen[name] = {row[0] for row in await sync.db.fetchall(sql)}
            assert seen[name], f"{name}: nothing written, so nothing proved"
        assert {name: values for name, values in seen.items() if values != {stamp(frozen)}} == {}
        # Times to come are the clock's time plus a wait (never before it).
        for (due,) in await sync.db.fetchall("SELECT next_run FROM tasks"):
            assert parse_stamp(due) >= frozen
    finally:
        await sync.stop()
