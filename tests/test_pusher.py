"""The inventory pusher's bookkeeping, against a scripted store (the HTTP clients have their own
tests against the emulators; here the subject is what the engine records)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from connex_tui.engine.clock import parse_stamp
from connex_tui.engine.db import Database
from connex_tui.engine.items import queue_stock
from connex_tui.engine.pusher import NOT_ON_STORE, SKU_BACKOFF, InventoryPusher
from connex_tui.storefronts.retry import backoff

from .clocks import ManualClock
from connex_tui.engine.admin_commands import drop, retry_failed_skus, retry_skus
from connex_tui.storefronts.base import (
    CatalogEntry,
    CredentialsError,
    RequestStats,
    StockResult,
    StockUpdate,
    StoreUnavailable,
)


class ScriptedStore:
    platform = "scripted"

    def __init__(self, skus: dict[str, int], batch_limit: int = 3) -> None:
        self.stock = dict(skus)
        self.batch_limit = batch_limit
        self.stats = RequestStats()
        self.catalog_calls = 0
        self.batches: list[list[str]] = []
        self.fail_next: list[Exception | dict[str, StockResult]] = []
        self.during_push = None

    async def list_orders(self, modified_since):
        return []

    async def catalog(self) -> list[CatalogEntry]:
        self.catalog_calls += 1
        return [CatalogEntry(sku, item_id=f"id-{sku}", quantity=q) for sku, q in self.stock.items()]

    async def set_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        assert len(updates) <= self.batch_limit
        self.batches.append([u.sku for u in updates])
        if self.during_push is not None:
            await self.during_push()
        if self.fail_next:
            failure = self.fail_next.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return [failure.get(u.sku) or self._apply(u) for u in updates]
        return [self._apply(u) for u in updates]

    def _apply(self, update: StockUpdate) -> StockResult:
        before = self.stock[update.sku]
        self.stock[update.sku] = update.quantity
        return StockResult(update.sku, ok=True, before=before, after=update.quantity)

    async def close(self) -> None:
        pass


@pytest.fixture
async def db(tmp_path):
    # Time moves only when a test says so (`db.clock.advance`): a retry becomes due by waiting, not
    # by rewriting the queue.
    database = await Database.open(tmp_path / "p.db", ManualClock(datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)))
    yield database
    await database.close()


async def queue(db: Database, **quantities: int) -> None:
    async with db.transaction() as conn:
        await queue_stock(conn, {sku: Decimal(q) for sku, q in quantities.items()}, db.clock.stamp())


async def pending(db: Database) -> dict[str, tuple]:
    rows = await db.fetchall("SELECT sku, quantity, state, attempts, last_error FROM pending ORDER BY sku")
    return {r[0]: tuple(r[1:]) for r in rows}


async def test_batches_respect_the_limit_and_successes_leave_the_queue(db) -> None:
    store = ScriptedStore({f"s{n}": 0 for n in range(7)})
    pusher = InventoryPusher(db, store)
    await queue(db, **{f"s{n}": n + 1 for n in range(7)})
    outcomes = [await pusher.push_once() for _ in range(4)]
    assert [o.taken for o in outcomes] == [3, 3, 1, 0]
    assert store.stock == {f"s{n}": n + 1 for n in range(7)}
    assert await pending(db) == {}
    log = await db.fetchall("SELECT sku, old_qty, new_qty, ok FROM sku_log ORDER BY sku")
    assert [tuple(r) for r in log][:2] == [("s0", "0", "1", 1), ("s1", "0", "2", 1)]
    assert store.catalog_calls == 1  # the index was built once, not per batch


async def test_unknown_sku_fails_after_one_catalog_refresh_and_a_retry_succeeds_once_it_exists(db) -> None:
    store = ScriptedStore({"known": 0})
    pusher = InventoryPusher(db, store)
    await queue(db, known=4, qbonly=9)
    await pusher.push_once()
    assert (await pending(db))["qbonly"][1:] == ("failed", 1, NOT_ON_STORE)
    failed = await db.fetchall("SELECT sku, ok, reason FROM sku_log WHERE ok = 0")
    assert [tuple(r) for r in failed] == [("qbonly", 0, NOT_ON_STORE)]
    assert store.catalog_calls == 1

    store.stock["qbonly"] = 0  # the merchant adds the SKU to the store
    async with db.transaction() as conn:  # pretend the last refresh is old
        await conn.execute("UPDATE meta SET value = '2000-01-01T00:00:00+00:00' WHERE key = 'catalog.refreshed_at'")
    assert await retry_skus(db, ["qbonly"]) == 1
    await pusher.push_once()
    assert store.stock["qbonly"] == 9 and await pending(db) == {}
    assert store.catalog_calls == 2


async def test_transient_failures_back_off_then_fail_after_max_attempts(db) -> None:
    store = ScriptedStore({"a": 0, "ok": 0})
    pusher = InventoryPusher(db, store, max_attempts=3)
    await queue(db, a=5)
    busy = {"a": StockResult("a", ok=False, reason="the store answered 500 for this item")}
    for attempt in (1, 2):
        await queue(db, ok=attempt)  # another SKU in the same batch goes through: the store is up
        store.fail_next.append(busy)
        await pusher.push_once()
        row = await db.fetchone("SELECT state, attempts, next_attempt, last_error FROM pending WHERE sku = 'a'")
        assert (row[0], row[1]) == ("pending", attempt) and "500" in row[3]
        assert row[2] > db.clock.stamp()  # not due again at once
        assert (await pusher.push_once()).taken == 0
        db.clock.advance(seconds=5 * 2 ** (attempt - 1))  # the backoff's ceiling for this attempt
    await queue(db, ok=9)
    store.fail_next.append(busy)
    await pusher.push_once()
    assert (await pending(db))["a"][1:3] == ("failed", 3)
    assert await retry_failed_skus(db) == 1
    await pusher.push_once()
    assert store.stock["a"] == 5


async def test_a_store_outage_holds_the_queue_without_using_up_attempts(db) -> None:
    store = ScriptedStore({f"s{n}": 0 for n in range(5)}, batch_limit=2)
    pusher = InventoryPusher(db, store, max_attempts=2)
    await queue(db, **{f"s{n}": n + 1 for n in range(5)})
    waits = []
    for _outage in range(1, 6):  # down for longer than max_attempts would allow per SKU
        store.fail_next.append(StoreUnavailable("the store is unavailable (HTTP 503) after 6 tries"))
        outcome = await pusher.push_once()
        assert outcome.taken == 2 and outcome.retrying == 2 and outcome.failed == 0
        assert (await pusher.push_once()).taken == 0  # the whole queue waits for the store
        rows = await pending(db)
        assert all(state == "pending" and attempts == 0 for _, state, attempts, _ in rows.values())
        due = parse_stamp(await pusher.next_due())
        waits.append((due - db.clock.now()).total_seconds())
        db.clock.at = due
    assert waits[0] <= 5.5 and max(waits) <= 300 and waits[-1] > waits[0]  # growing, bounded
    log = await db.fetchall("SELECT reason FROM sku_log WHERE ok = 0")
    assert len(log) == 10 and all("store seems down" in r[0] and "HTTP 503" in r[0] for r in log)
    while (await pusher.push_once()).taken:
        pass
    assert store.stock == {f"s{n}": n + 1 for n in range(5)} and await pending(db) == {}
    assert await db.get_meta("store.outages") == "0"


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    import random

    rng = random.Random(7)
    first, fifth, huge = (backoff(n - 1, SKU_BACKOFF, least=0.5, rng=rng) for n in (1, 5, 40))
    assert 2.5 <= first <= 5 and 40 <= fifth <= 80 and 1800 <= huge <= 3600


async def test_per_sku_permanent_failure_does_not_touch_the_others(db) -> None:
    store = ScriptedStore({"a": 1, "b": 1})
    pusher = InventoryPusher(db, store)
    await queue(db, a=2, b=3)
    store.fail_next.append({"b": StockResult("b", ok=False, permanent=True, reason="Invalid ID.")})
    await pusher.push_once()
    assert store.stock["a"] == 2
    assert await pending(db) == {"b": ("3", "failed", 1, "Invalid ID.")}


async def test_a_newer_quantity_arriving_mid_push_is_not_lost(db) -> None:
    store = ScriptedStore({"a": 0})
    pusher = InventoryPusher(db, store)
    await queue(db, a=5)

    async def quickbooks_reports_again() -> None:
        store.during_push = None
        await queue(db, a=7)

    store.during_push = quickbooks_reports_again
    await pusher.push_once()
    assert store.stock["a"] == 5
    assert (await pending(db))["a"][:2] == ("7", "pending")
    await pusher.push_once()
    assert store.stock["a"] == 7 and await pending(db) == {}


async def test_bad_credentials_put_the_batch_back_untouched(db) -> None:
    store = ScriptedStore({"a": 0})
    pusher = InventoryPusher(db, store)
    await queue(db, a=5)
    store.fail_next.append(CredentialsError("check your credentials"))
    with pytest.raises(CredentialsError):
        await pusher.push_once()
    assert await pending(db) == {"a": ("5", "pending", 0, None)}


async def test_rows_left_in_flight_by_a_crash_are_recovered_after_the_store_timeout(db) -> None:
    store = ScriptedStore({"a": 0})
    pusher = InventoryPusher(db, store)
    await queue(db, a=5)
    async with db.transaction() as conn:
        await conn.execute("UPDATE pending SET state = 'in_flight'")
    assert (await pusher.push_once()).taken == 0
    assert await pusher.recover() == 1
    # Not at once: the interrupted request may still land on the store.
    assert (await pusher.push_once()).taken == 0
    row = await db.fetchone("SELECT state, attempts, next_attempt FROM pending")
    assert (row[0], row[1]) == ("pending", 1)
    assert (parse_stamp(row[2]) - db.clock.now()).total_seconds() == 60  # the store's request timeout
    await queue(db, a=6)  # QuickBooks changes it meanwhile: the wait is kept, the quantity is new
    assert (await pusher.push_once()).taken == 0
    db.clock.advance(seconds=59)
    assert (await pusher.push_once()).taken == 0
    db.clock.advance(seconds=1)
    await pusher.push_once()
    assert store.stock["a"] == 6


async def test_drop_removes_rows(db) -> None:
    await queue(db, a=1, b=2)
    assert await drop(db, ["a", "zzz"]) == 1
    assert list(await pending(db)) == ["b"]


async def test_refreshes_asked_for_together_read_the_store_once(db) -> None:
    """At start-up the catalog task and the pusher (which finds its SKUs unknown) both want the
    index: the one that waited takes the other's refresh instead of reading the store again."""
    import asyncio

    from connex_tui.engine.catalog import CatalogIndex

    store = ScriptedStore({"a": 0, "b": 0})
    index = CatalogIndex(db, store)
    pusher = InventoryPusher(db, store, index=index)
    await queue(db, a=1, b=2)
    asked = db.clock.stamp()
    counts = await asyncio.gather(index.refresh(unless_newer_than=asked), pusher.push_once())
    assert store.catalog_calls == 1 and counts[0] == 2 and counts[1].pushed == 2
    assert await index.refresh(unless_newer_than=asked) is None  # fresh enough: not read again
    assert await index.refresh() == 2 and store.catalog_calls == 2  # asked unconditionally: read
