"""The orders task: store orders into the database, once each, ready for the Web Connector.

The store is asked for orders modified since the watermark minus an overlap (clocks and
eventually-consistent listings can hide an order for a moment); orders already known are matched
by store id, so re-reading is harmless. A new paid order is kept with its lines for the next
Web Connector session; one cancelled before it reached QuickBooks is skipped (with the credit
memos it had waiting).

Restocks (a refund's lines put back on the shelf, or a cancellation's) become credit memos so that
QuickBooks gets every unit back exactly once, whatever the store reports them against: per order
and SKU, the engine compares the units the store says were restocked with the units its credit
memos for that order already carry, and queues a credit memo only for the difference, named after
the first refund that has none yet. Re-reading an order, or a store that cannot say which refund
restocked what (WooCommerce keeps a running total per line), therefore never gives QuickBooks a
unit twice. The sale posted minus the units in its credit memos is what the order took from the
store's shelf.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import aiosqlite
import structlog

from ..soap.qbxml import ref_number_for
from ..storefronts.base import Storefront, StoreLine, StoreOrder, StoreRefund
from .config import Config
from .clock import parse_stamp
from .db import Database
from .numbers import BadNumber, line_quantity, money
from .orders import insert_order, kept_raw
from .skus import sku_key

log = structlog.get_logger("connex.orders")

WATERMARK_KEY = "orders.watermark"
OVERLAP = timedelta(minutes=5)


@dataclass
class ImportOutcome:
    seen: int = 0
    imported: int = 0
    skipped: int = 0
    credit_memos: int = 0

    def __str__(self) -> str:
        return f"{self.seen} seen, {self.imported} new, {self.skipped} cancelled, {self.credit_memos} credit memos"


def _lines(lines: tuple[StoreLine, ...]) -> tuple[tuple[StoreLine, ...], list[str]]:
    """The lines worth posting, and what is wrong with the others' numbers (checked here too,
    whatever the client checked: the engine's own boundary). A line whose quantity is not a plain
    number (NaN, Infinity, a word, a million units) is kept with the quantity as it came, so the
    order cannot be posted or re-queued without it: the order waits as failed with the reason."""
    kept: list[StoreLine] = []
    problems: list[str] = []
    for n, line in enumerate(lines, start=1):
        where = f"line {n} ({str(line.sku)[:40] or 'no SKU'})"
        try:
            quantity = line_quantity(line.quantity, f"{where} quantity")
            price = None if line.price is None else money(line.price, f"{where} price")
        except BadNumber as exc:
            problems.append(str(exc))
            kept.append(StoreLine(str(line.sku), _as_stored(line.quantity), None, str(line.name)))
            continue
        if quantity > 0:
            kept.append(StoreLine(str(line.sku), quantity, price, str(line.name)))
    return tuple(kept), problems


def _as_stored(value: Any) -> Decimal:
    """A bad quantity as it will sit in the database: a Decimal text QuickBooks' builder refuses
    (NaN, Infinity, 1E+30), never a word that would break reading the order back."""
    return value if isinstance(value, Decimal) else Decimal("NaN")


def _cleaned(data: StoreOrder) -> tuple[StoreOrder, list[str]]:
    """The order as it is kept: the lines `_lines` keeps and only the kept part of its raw
    document; and what is wrong with its lines."""
    lines, problems = _lines(data.lines)
    if data.lines and not lines and not problems:
        problems = ["no line has a quantity above 0 (the store's quantities could not be read as numbers?)"]
    return dataclasses.replace(data, lines=lines, raw=kept_raw(data.raw)), problems


class OrderImporter:
    def __init__(self, db: Database, store: Storefront, config: Config) -> None:
        self.db = db
        self.store = store
        self.config = config
        self.statuses = {s.lower() for s in config.orders.statuses}

    async def run(self) -> ImportOutcome:
        watermark = await self.db.get_meta(WATERMARK_KEY)
        since = parse_stamp(watermark) - OVERLAP if watermark else None
        orders = await self.store.list_orders(since)
        outcome = ImportOutcome(seen=len(orders))
        latest, held = watermark, False
        async with self.db.transaction() as conn:
            for data in orders:
                kept = await self._contained(conn, data, outcome)
                stamp = data.modified_at if _is_time(data.modified_at) else None
                if not kept:
                    # Never move the watermark past an order we could not keep: the next poll
                    # reads it again (from its own date, or from where we were).
                    held = True
                    latest = _earliest(latest, stamp) if stamp else watermark
                    continue
                if stamp and not held and (latest is None or _after(stamp, latest)):
                    latest = stamp
            if latest and latest != watermark:
                await self.db.set_meta(conn, WATERMARK_KEY, latest)
        if outcome.imported or outcome.skipped or outcome.credit_memos:
            log.info(
                "orders_imported",
                seen=outcome.seen,
                new=outcome.imported,
                skipped=outcome.skipped,
                credit_memos=outcome.credit_memos,
            )
        return outcome

    async def _contained(self, conn: aiosqlite.Connection, data: StoreOrder, outcome: ImportOutcome) -> bool:
        """One order in a savepoint: whatever it holds, a failure is that order's alone. An order
        that could not be imported is kept as failed with the reason; False when not even that
        could be written."""
        await conn.execute("SAVEPOINT one_order")
        try:
            await self._one(conn, data, outcome)
        except Exception as exc:  # noqa: BLE001 - untrusted data: contain it to this order
            await conn.execute("ROLLBACK TO one_order")
            await conn.execute("RELEASE one_order")
            log.warning("order_unreadable", order=str(data.number)[:60], error=repr(exc)[:300])
            return await _keep_as_failed(
                conn, data, f"the store's order could not be read: {type(exc).__name__}: {exc}", self.db.clock.stamp()
            )
        await conn.execute("RELEASE one_order")
        return True

    async def _one(self, conn: aiosqlite.Connection, data: StoreOrder, outcome: ImportOutcome) -> None:
        async with conn.execute("SELECT id, qb_state FROM orders WHERE store_id = ?", (data.store_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            if data.cancelled or data.status.lower() not in self.statuses:
                return  # not (yet) an order to post; a later change brings it back with a new date
            if data.problem:
                await self._unreadable(conn, data, outcome)
                return
            order, problems = _cleaned(data)
            order_id = await insert_order(conn, order, self.config.orders.post_as, self.db.clock.stamp())
            if order_id is None:
                return
            outcome.imported += 1
            log.info("order_imported", order=data.number, lines=len(data.lines))
            await self._check_lines(conn, order_id, data, problems)
            await self._credit_memos(conn, order_id, data, outcome)
            return
        order_id, state = row[0], row[1]
        await conn.execute(
            "UPDATE orders SET status = ?, modified_at = ?, updated_at = ? WHERE id = ?",
            (data.status, data.modified_at, self.db.clock.stamp(), order_id),
        )
        if data.problem:
            log.warning("order_unreadable", order=data.number, reason=data.problem[:300])
            return  # what the store says now cannot be right: keep what we had, change nothing
        if data.cancelled and state in ("new", "failed"):
            # Never reached QuickBooks: neither it nor its waiting credit memos go there.
            reason = "cancelled on the store before it reached QuickBooks"
            await conn.execute(
                "UPDATE orders SET qb_state = 'skipped', error = ? WHERE id = ? OR (parent_order_id = ?"
                " AND qb_kind = 'credit_memo' AND qb_state IN ('new', 'failed'))",
                (reason, order_id, order_id),
            )
            outcome.skipped += 1
            log.info("order_skipped", order=data.number, reason="cancelled before posting")
            return
        if state != "skipped":
            await self._credit_memos(conn, order_id, data, outcome)

    async def _unreadable(self, conn: aiosqlite.Connection, data: StoreOrder, outcome: ImportOutcome) -> None:
        """A new order whose store answer holds a value that cannot be right: kept, failed, with
        the reason, for a person (fixing it on the store brings it back with a new date)."""
        order = dataclasses.replace(data, lines=(), raw=kept_raw(data.raw))
        order_id = await insert_order(conn, order, self.config.orders.post_as, self.db.clock.stamp())
        if order_id is None:
            return
        await conn.execute("UPDATE orders SET qb_state = 'failed', error = ? WHERE id = ?", (data.problem, order_id))
        outcome.imported += 1
        log.warning("order_failed", order=data.number, reason=data.problem[:300])

    async def _check_lines(
        self, conn: aiosqlite.Connection, order_id: int, data: StoreOrder, problems: list[str]
    ) -> None:
        """An order QuickBooks cannot take as it is waits as failed, with the reason, for a person."""
        unnamed = [n for n, line in enumerate(data.lines, start=1) if not str(line.sku).strip()]
        if problems:
            reason = "; ".join(problems) + ": correct the order on the store, or enter it in QuickBooks by hand"
        elif not data.lines:
            reason = "the order has no lines"
        elif unnamed:
            reason = (
                f"line {', '.join(map(str, unnamed))} has no SKU on the store, so it matches no QuickBooks"
                " item: give the product a SKU (or map it), then re-queue the order"
            )
        else:
            return
        await conn.execute("UPDATE orders SET qb_state = 'failed', error = ? WHERE id = ?", (reason, order_id))
        log.warning("order_failed", order=data.number, reason=reason)

    async def _credit_memos(
        self, conn: aiosqlite.Connection, order_id: int, data: StoreOrder, outcome: ImportOutcome
    ) -> None:
        data = await self._readable_refunds(conn, order_id, data, outcome)
        covered = await _memo_units(conn, order_id)
        missing = _subtract(_restocked(data), _total(covered.values()))
        if not missing:
            return  # every restocked unit already has its credit memo (or nothing was restocked)
        taken = await _memo_ids(conn, order_id)
        for refund_id, lines in _share_out(data, missing, covered):
            store_id, number = _memo_name(data, refund_id, taken)
            memo = StoreOrder(
                store_id=store_id,
                number=number,
                status="refund",
                customer=data.customer,
                created_at=_refund_time(data, refund_id),
                modified_at=data.modified_at,
                lines=tuple(lines),
                raw={"refund_of": data.store_id, "refund_id": refund_id},
            )
            new_id = await insert_order(conn, memo, "credit_memo", self.db.clock.stamp())
            if new_id is not None:
                taken.add(store_id)
                await conn.execute("UPDATE orders SET parent_order_id = ? WHERE id = ?", (order_id, new_id))
                outcome.credit_memos += 1
                log.info(
                    "credit_memo_queued",
                    order=data.number,
                    refund=refund_id,
                    units=str(sum((l.quantity for l in lines), Decimal(0))),
                )

    async def _readable_refunds(
        self, conn: aiosqlite.Connection, order_id: int, data: StoreOrder, outcome: ImportOutcome
    ) -> StoreOrder:
        """`data` without the refunds whose numbers cannot be right (restocked units of NaN,
        Infinity, a million): each such refund waits once as a failed credit memo with the
        reason, and the order's other refunds go on as usual."""
        good: list[StoreRefund] = []
        for refund in data.refunds:
            _, problems = _lines(tuple(line for line in refund.lines if str(line.sku).strip()))
            if not problems:
                good.append(refund)
                continue
            reason = "; ".join(problems) + ": enter this refund's credit memo in QuickBooks by hand"
            memo = StoreOrder(
                store_id=f"{data.store_id}/refund/{refund.refund_id}/unreadable",
                number=f"{data.number}-R{str(refund.refund_id).rsplit('/', 1)[-1]}",
                status="refund",
                customer=data.customer,
                created_at=refund.created_at,
                modified_at=data.modified_at,
                lines=(),
                raw={"refund_of": data.store_id, "refund_id": refund.refund_id},
            )
            new_id = await insert_order(conn, memo, "credit_memo", self.db.clock.stamp())
            if new_id is not None:  # once: the same refund read again finds it there
                await conn.execute(
                    "UPDATE orders SET parent_order_id = ?, qb_state = 'failed', error = ? WHERE id = ?",
                    (order_id, reason, new_id),
                )
                outcome.credit_memos += 1
                log.warning("order_failed", order=memo.number, reason=reason[:300])
        return data if len(good) == len(data.refunds) else dataclasses.replace(data, refunds=tuple(good))


async def _keep_as_failed(conn: aiosqlite.Connection, data: StoreOrder, reason: str, now: str) -> bool:
    """The order's bare identity with the reason, so a person sees it and the watermark can move;
    `now` (stored text) is when."""
    try:
        store_id, number = str(data.store_id)[:200], str(data.number)[:200] or str(data.store_id)[:200]
        await conn.execute(
            "INSERT INTO orders(store_id, number, status, qb_state, error, ref_number, imported_at, updated_at)"
            " VALUES (?,?,?,'failed',?,?,?,?) ON CONFLICT(store_id) DO NOTHING",
            (store_id, number, str(data.status)[:60], reason[:1000], ref_number_for(number, store_id), now, now),
        )
        return True
    except Exception as exc:  # noqa: BLE001 - the caller holds the watermark back instead
        log.warning("order_not_kept", error=repr(exc)[:300])
        return False


def _is_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _earliest(a: str | None, b: str) -> str:
    return b if a is None or _after(a, b) else a


_Units = dict[str, Decimal]  # SKU key -> units


def _restocked(data: StoreOrder) -> _Units:
    """Units the store says this order put back on the shelf, per SKU."""
    units: _Units = {}
    for refund in data.refunds:
        for line in refund.lines:
            if line.sku.strip() and line.quantity > 0:
                units[sku_key(line.sku)] = units.get(sku_key(line.sku), Decimal(0)) + line.quantity
    return units


async def _memo_units(conn: aiosqlite.Connection, order_id: int) -> dict[str, _Units]:
    """Units this order's credit memos already carry (all but skipped ones), per refund id and SKU."""
    units: dict[str, _Units] = {}
    async with conn.execute(
        "SELECT o.raw, l.sku, l.quantity FROM order_lines l JOIN orders o ON o.id = l.order_id"
        " WHERE o.parent_order_id = ? AND o.qb_kind = 'credit_memo' AND o.qb_state != 'skipped'",
        (order_id,),
    ) as cur:
        async for row in cur:
            refund = units.setdefault(_refund_id_of(row[0]), {})
            refund[sku_key(row[1])] = refund.get(sku_key(row[1]), Decimal(0)) + Decimal(row[2])
    return units


def _refund_id_of(raw: str) -> str:
    try:
        value = json.loads(raw).get("refund_id")
    except (ValueError, AttributeError):
        return ""
    return str(value) if value is not None else ""


def _total(parts: Iterable[_Units]) -> _Units:
    total: _Units = {}
    for part in parts:
        for key, units in part.items():
            total[key] = total.get(key, Decimal(0)) + units
    return total


async def _memo_ids(conn: aiosqlite.Connection, order_id: int) -> set[str]:
    async with conn.execute(
        "SELECT store_id FROM orders WHERE parent_order_id = ? AND qb_kind = 'credit_memo'", (order_id,)
    ) as cur:
        return {row[0] for row in await cur.fetchall()}


def _subtract(wanted: _Units, have: _Units) -> _Units:
    return {
        key: units - have.get(key, Decimal(0)) for key, units in wanted.items() if units > have.get(key, Decimal(0))
    }


def _share_out(data: StoreOrder, missing: _Units, covered: dict[str, _Units]) -> list[tuple[str, list[StoreLine]]]:
    """The missing units, put first against the refunds that report more than their credit memos
    carry, then (a store whose attribution moved) against any refund reporting them; newest refund
    first (the store lists them oldest first): units missing now most likely came back with the
    latest refund. Each line takes at most what that refund reports."""
    left = dict(missing)
    shares: dict[str, list[StoreLine]] = {}
    for uncovered_only in (True, False):
        for refund in reversed(data.refunds):
            have = dict(covered.get(refund.refund_id, {})) if uncovered_only else {}
            for line in refund.lines:
                key = sku_key(line.sku)
                room = line.quantity - have.get(key, Decimal(0))
                have[key] = max(have.get(key, Decimal(0)) - line.quantity, Decimal(0))
                take = min(room, left.get(key, Decimal(0)))
                if line.sku.strip() and take > 0:
                    left[key] -= take
                    shares.setdefault(refund.refund_id, []).append(StoreLine(line.sku, take, line.price, line.name))
    return [(r.refund_id, shares[r.refund_id]) for r in data.refunds if r.refund_id in shares]


def _memo_name(data: StoreOrder, refund_id: str, taken: set[str]) -> tuple[str, str]:
    """(store id, number) of a credit memo for `refund_id`: "<order>/refund/<id>" and
    "<number>-R<id>" the first time, with "+2", "+3"... when that refund's units grew later."""
    base = f"{data.store_id}/refund/{refund_id}"
    short = refund_id.rsplit("/", 1)[-1]
    number = f"{data.number}-C" if refund_id == "cancel" else f"{data.number}-R{short}"
    store_id, n = base, 1
    while store_id in taken:
        n += 1
        store_id = f"{base}+{n}"
    return store_id, number if n == 1 else f"{number}+{n}"


def _refund_time(data: StoreOrder, refund_id: str) -> str:
    return next((r.created_at for r in data.refunds if r.refund_id == refund_id), "")


def _after(a: str, b: str) -> bool:
    try:
        return parse_stamp(a) > parse_stamp(b)
    except ValueError:
        return a > b
