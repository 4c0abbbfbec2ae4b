"""The inventory task: drains the pending queue to the store in the largest batches it allows.

Per batch: take the due rows (oldest first), mark them in flight, set their stock on the store, and
record each SKU's outcome in one transaction: success deletes the row (unless QuickBooks reported
a newer quantity meanwhile) and logs it; a permanent failure keeps the row as `failed` with the
reason; a transient one goes back to `pending` with exponential backoff and jitter, and becomes
`failed` after `max_attempts`. Stock sets are absolute, so a batch repeated after a crash is
harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import aiosqlite
import structlog

from ..storefronts.base import (
    CatalogEntry,
    CredentialsError,
    StockResult,
    StockUpdate,
    Storefront,
    StorefrontError,
)
from ..storefronts.retry import RetryPolicy, backoff
from .catalog import CatalogIndex, lookup
from .clock import stamp
from .db import Database
from .numbers import BadNumber, shown, stock_level, whole_number
from .skus_rule import sku_key

log = structlog.get_logger("connex.inventory")

NOT_ON_STORE = "SKU not found on the store: does the QuickBooks item name match the store SKU?"
# A SKU the store refused for a passing reason waits 5 s, 10 s, 20 s... (at most an hour) times a
# random factor between 0.5 and 1 (`backoff` with least=0.5), so a crowd of failed SKUs spreads out.
SKU_BACKOFF = RetryPolicy(base_delay=5.0, max_delay=3600.0)
CATALOG_REFRESH_MIN_SECONDS = 30.0  # a missing SKU refreshes the index at most this often
# When a whole batch fails for passing reasons, the store is down, not the SKUs: nothing counts
# against their attempts, and the queue waits for the store with its own bounded backoff.
OUTAGE_BACKOFF = RetryPolicy(base_delay=5.0, max_delay=300.0)
OUTAGE_KEY = "store.outages"


@dataclass
class PushOutcome:
    taken: int = 0
    pushed: int = 0
    failed: int = 0
    retrying: int = 0

    def __str__(self) -> str:
        return f"{self.pushed} pushed, {self.failed} failed, {self.retrying} to retry"


def _quantity(sku: str, text: str) -> int | StockResult:
    """The whole units to send for a pending row, or the failure that keeps it from the store (a
    QuickBooks quantity of NaN must not become a stock of 0)."""
    try:
        return stock_level(text, f"QuickBooks' quantity for {sku}")
    except BadNumber as exc:
        return StockResult(sku, ok=False, permanent=True, reason=f"{exc}; not sent to the store")


def _checked(update: StockUpdate, result: Any) -> StockResult:
    """A client's result for one update, with its numbers checked: a store that answers NaN or
    Infinity for a SKU fails that SKU, with the value it sent, and nothing else."""
    sku = update.sku
    if not isinstance(result, StockResult) or result.sku != sku:
        return StockResult(sku, ok=False, reason="the store gave no answer for this SKU")
    try:
        before = None if result.before is None else whole_number(result.before, f"the store's stock of {sku}")
        after = None if result.after is None else whole_number(result.after, f"the store's new stock of {sku}")
    except BadNumber as exc:
        return StockResult(sku, ok=False, permanent=True, reason=f"{exc} in its answer to the update")
    return StockResult(sku, result.ok, before, after, str(result.reason), bool(result.permanent))


class InventoryPusher:
    def __init__(
        self,
        db: Database,
        store: Storefront,
        *,
        max_attempts: int = 8,
        request_timeout: float = 60.0,
        index: CatalogIndex | None = None,
        match: str = "name",
    ) -> None:
        self.db = db
        self.match = match  # `[inventory] match`: which QuickBooks field a store SKU is compared with
        self.store = store
        self.index = index or CatalogIndex(db, store)
        self.max_attempts = max_attempts
        self.request_timeout = request_timeout  # the longest a store request can be under way

    async def recover(self) -> int:
        """Rows a crash left in flight go back to pending (start-up only). Not at once: the request
        that carried them may still land on the store, and a newer quantity pushed before it would
        lose to it; after the store's request timeout, the last write is ours."""
        later = self.db.clock.stamp(after_seconds=self.request_timeout)
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE pending SET state = 'pending', attempts = attempts + 1, next_attempt = ?,"
                " last_error = 'interrupted by a restart; pushed again once the earlier request cannot land'"
                " WHERE state = 'in_flight'",
                (later,),
            )
            return cur.rowcount

    async def next_due(self) -> str | None:
        due = await self.db.fetchval("SELECT min(next_attempt) FROM pending WHERE state = 'pending'")
        return None if due is None else str(due)

    async def push_once(self, *, full_batches_only: bool = False) -> PushOutcome:
        """One batch; an outcome with taken == 0 means nothing was due (or, with
        `full_batches_only`, not enough to fill a batch)."""
        rows = await self._take_due(self.store.batch_limit if full_batches_only else 1)
        outcome = PushOutcome(taken=len(rows))
        if not rows:
            return outcome
        try:
            if not await self._push_rows(rows, outcome):
                return outcome
        except Exception:
            # Whatever went wrong (the catalog refresh failed, a bug), no row may stay in flight:
            # nothing was recorded, so the rows are simply due again. (A cancelled push keeps
            # them in flight on purpose: its request may still land; `recover` waits it out.)
            await self._release([sku for sku, _ in rows])
            raise
        log.info(
            "inventory_batch",
            taken=outcome.taken,
            pushed=outcome.pushed,
            failed=outcome.failed,
            retrying=outcome.retrying,
        )
        return outcome

    async def _push_rows(self, rows: list[tuple[str, str]], outcome: PushOutcome) -> bool:
        """Push the rows taken and record every outcome; False when the store was down (the rows
        were put back to wait for it)."""
        entries = await self._entries([sku for sku, _ in rows])
        results: dict[str, StockResult] = {}
        updates: list[StockUpdate] = []
        for sku, text in rows:
            quantity = _quantity(sku, text)
            entry = entries.get(sku)
            if isinstance(quantity, StockResult):
                results[sku] = quantity
            elif not isinstance(entry, CatalogEntry):  # not on the store, or the reason it cannot be pushed to
                results[sku] = StockResult(
                    sku, ok=False, permanent=True, reason=NOT_ON_STORE if entry is None else entry
                )
            else:
                updates.append(StockUpdate(sku, quantity, entry))
        if updates:
            stock_results = await self._set_stock(updates)
            if all(not r.ok and not r.permanent for r in stock_results):
                await self._store_down(rows, stock_results[0].reason, outcome)
                return False
            await self.db.set_meta_now(OUTAGE_KEY, "0")
            results.update({r.sku: r for r in stock_results})
        await self._record(rows, results, outcome)
        return True

    async def _take_due(self, at_least: int) -> list[tuple[str, str]]:
        now = self.db.clock.stamp()
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT sku, quantity FROM pending WHERE state = 'pending' AND next_attempt <= ?"
                " ORDER BY next_attempt, sku LIMIT ?",
                (now, self.store.batch_limit),
            ) as cur:
                rows = [(row[0], row[1]) for row in await cur.fetchall()]
            if len(rows) < at_least:
                return []
            await conn.executemany(
                "UPDATE pending SET state = 'in_flight', pushed_quantity = quantity, updated_at = ? WHERE sku = ?",
                [(now, sku) for sku, _ in rows],
            )
        return rows

    async def _entries(self, skus: list[str]) -> dict[str, CatalogEntry | str]:
        """SKU -> its store entry, or why it cannot be pushed to (several store products claim it...)."""
        entries = await lookup(self.db, skus, match=self.match)
        missing = [s for s in skus if s not in entries]
        if missing:
            # One refresh of the index before calling a SKU missing (it may be new on the store),
            # unless the index is younger than CATALOG_REFRESH_MIN_SECONDS.
            recent = self.db.clock.stamp(after_seconds=-CATALOG_REFRESH_MIN_SECONDS)
            count = await self.index.refresh(unless_newer_than=recent)
            if count is not None:
                log.info("catalog_refreshed", skus=count, reason="unknown SKU", missing=len(missing))
            entries = await lookup(self.db, skus, match=self.match)
        return entries

    async def _set_stock(self, updates: list[StockUpdate]) -> list[StockResult]:
        """One result per update, in order, its numbers checked. A client that raises on the
        answer (one item's NaN it could not parse) has the batch split in halves until the item
        at fault is alone, and that item fails with the reason; stock sets are absolute, so
        sending the others again is harmless."""
        try:
            answers = list(await self.store.set_stock(updates))
        except CredentialsError:
            raise  # nothing is wrong with these SKUs: push_once puts them back and the task stops
        except (StorefrontError, OSError, aiohttp.ClientError) as exc:  # passing: the store, not the SKUs
            return [StockResult(u.sku, ok=False, reason=str(exc) or type(exc).__name__) for u in updates]
        except Exception as exc:  # noqa: BLE001 - the client choked on something in the store's answer
            if len(updates) == 1:
                sku = updates[0].sku
                reason = f"the store's answer for {sku} could not be read ({type(exc).__name__}: {shown(str(exc))})"
                log.warning("stock_answer_unreadable", sku=sku, error=repr(exc)[:300])
                return [StockResult(sku, ok=False, permanent=True, reason=reason)]
            half = len(updates) // 2
            return await self._set_stock(updates[:half]) + await self._set_stock(updates[half:])
        return [_checked(u, answers[i] if i < len(answers) else None) for i, u in enumerate(updates)]

    async def _store_down(self, rows: list[tuple[str, str]], reason: str, outcome: PushOutcome) -> None:
        """Every update in the batch failed for passing reasons: wait for the store, keep the SKUs'
        attempts as they are, and say so once per SKU in the log."""
        outages = int(await self.db.get_meta(OUTAGE_KEY) or 0) + 1
        wait = backoff(outages - 1, OUTAGE_BACKOFF, least=0.5)
        at = self.db.clock.now()
        now, until = stamp(at), stamp(at + timedelta(seconds=wait))
        note = f"{reason} (the store seems down; retrying in {wait:.0f} s)"
        async with self.db.transaction() as conn:
            await self.db.set_meta(conn, OUTAGE_KEY, str(outages))
            # Everything waiting is held back, not only this batch: the store is down for all of it.
            await conn.execute(
                "UPDATE pending SET next_attempt = max(next_attempt, ?) WHERE state = 'pending'", (until,)
            )
            for sku, quantity in rows:
                await conn.execute(
                    "UPDATE pending SET state = 'pending', next_attempt = ?, last_error = ?, updated_at = ?"
                    " WHERE sku = ? AND state = 'in_flight'",
                    (until, note, now, sku),
                )
                await conn.execute(
                    "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,0,?)",
                    (now, sku, None, quantity, note),
                )
        outcome.retrying += len(rows)
        log.warning("store_unavailable", skus=len(rows), outages=outages, retry_in=round(wait, 1), reason=reason[:300])

    async def _release(self, skus: list[str]) -> None:
        async with self.db.transaction() as conn:
            await conn.executemany(
                "UPDATE pending SET state = 'pending', pushed_quantity = NULL WHERE sku = ? AND state = 'in_flight'",
                [(s,) for s in skus],
            )

    async def _record(self, rows: list[tuple[str, str]], results: dict[str, StockResult], outcome: PushOutcome) -> None:
        """All outcomes of a batch in one transaction, with one statement per kind of change (the
        write lock is held briefly: the Web Connector's calls wait on the same lock)."""
        now_dt = self.db.clock.now()
        now = stamp(now_dt)
        missing = StockResult("", ok=False, reason="the store gave no answer for this SKU")
        done = [(sku, quantity, results.get(sku) or missing) for sku, quantity in rows]
        pushed = [(sku, quantity, r) for sku, quantity, r in done if r.ok]
        outcome.pushed += len(pushed)
        async with self.db.transaction() as conn:
            if pushed:
                after = [(sku, r.after if r.after is not None else _sent(sku, quantity)) for sku, quantity, r in pushed]
                await conn.executemany(
                    "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,1,'')",
                    [(now, sku, _text(r.before), str(a)) for (sku, _, r), (_, a) in zip(pushed, after)],
                )
                await conn.executemany(
                    "UPDATE catalog SET quantity = ? WHERE sku_key = ?", [(a, sku_key(sku)) for sku, a in after]
                )
                # Deleted only if QuickBooks did not report a newer quantity while we pushed; a row
                # that changed goes back to pending with the newer quantity.
                await conn.executemany(
                    "DELETE FROM pending WHERE sku = ? AND quantity = pushed_quantity", [(sku,) for sku, _, _ in pushed]
                )
                await conn.executemany(
                    "UPDATE pending SET state = 'pending', attempts = 0, next_attempt = ?, last_error = NULL"
                    " WHERE sku = ? AND state = 'in_flight'",
                    [(now, sku) for sku, _, _ in pushed],
                )
            for sku, quantity, result in done:
                if not result.ok:
                    await self._record_failure(conn, sku, quantity, result, now_dt, outcome)

    async def _record_failure(
        self,
        conn: aiosqlite.Connection,
        sku: str,
        quantity: str,
        result: StockResult,
        now_dt: datetime,
        outcome: PushOutcome,
    ) -> None:
        now = stamp(now_dt)
        async with conn.execute("SELECT attempts FROM pending WHERE sku = ?", (sku,)) as cur:
            row = await cur.fetchone()
        attempts = (row[0] if row else 0) + 1
        give_up = result.permanent or attempts >= self.max_attempts
        reason = result.reason or "the store refused the update"
        if give_up:
            outcome.failed += 1
            await conn.execute(
                "UPDATE pending SET state = 'failed', attempts = ?, last_error = ?, updated_at = ? WHERE sku = ?",
                (attempts, reason, now, sku),
            )
            await conn.execute(
                "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,0,?)",
                (now, sku, _text(result.before), quantity, reason),
            )
            log.warning("stock_push_failed", sku=sku, reason=reason[:300], attempts=attempts)
        else:
            outcome.retrying += 1
            next_attempt = stamp(now_dt + timedelta(seconds=backoff(attempts - 1, SKU_BACKOFF, least=0.5)))
            await conn.execute(
                "UPDATE pending SET state = 'pending', attempts = ?, next_attempt = ?, last_error = ?, updated_at = ?"
                " WHERE sku = ?",
                (attempts, next_attempt, reason, now, sku),
            )


def _sent(sku: str, text: str) -> int:
    quantity = _quantity(sku, text)
    return 0 if isinstance(quantity, StockResult) else quantity  # only pushed rows get here: valid


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)
