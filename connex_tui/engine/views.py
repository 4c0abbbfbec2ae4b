"""Read models: what the interface and the admin commands show, straight from the database.

Every query here is bounded (a page, a tail, a count on an index), so a screen costs the same with
100,000 log lines as with ten, and works the same in the engine's process or in `monitor`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .admin_commands import is_paused
from .clock import parse_stamp, stamp
from .db import Database
from .throughput import THROUGHPUT_KEY, Throughput

PAGE = 200


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (parse_stamp(end) - parse_stamp(start)).total_seconds()


@dataclass(frozen=True)
class SessionSummary:
    id: int
    started: str
    ended: str | None
    seconds: float | None
    requests: int
    result: str | None
    error: str | None
    client: str


@dataclass(frozen=True)
class Failure:
    at: str
    what: str  # "SKU redwine" / "order 1001"
    reason: str


@dataclass(frozen=True)
class StoreState:
    state: str  # "ok", "credentials", "unreachable", "error", "not configured", "unknown"
    detail: str


@dataclass(frozen=True)
class Dashboard:
    last_session: SessionSummary | None
    store: StoreState
    orders_imported_today: int
    orders_posted_today: int
    orders_failed: int
    pending: int
    in_flight: int
    failed_skus: int
    pushes_per_minute: tuple[int, ...]  # oldest first, one per minute, the last 30 minutes
    drain_done: int
    drain_total: int
    latest_failures: tuple[Failure, ...]
    paused: bool
    throughput: Throughput | None = None  # concurrency, round trips, updates/s of the last drain

    @property
    def healthy(self) -> bool:
        session_ok = self.last_session is None or self.last_session.result in (None, "ok", "none")
        return (
            session_ok
            and self.store.state in ("ok", "not configured", "unknown")
            and not (self.failed_skus or self.orders_failed)
        )


@dataclass(frozen=True)
class PendingRow:
    sku: str
    quantity: str
    state: str
    attempts: int
    next_attempt: str
    last_error: str | None


@dataclass(frozen=True)
class LogRow:
    id: int
    at: str
    sku: str
    old_qty: str | None
    new_qty: str | None
    ok: bool
    reason: str


@dataclass(frozen=True)
class OrderRow:
    id: int
    number: str
    store_id: str
    status: str
    qb_kind: str
    qb_state: str
    txn_id: str | None
    ref_number: str
    error: str | None
    imported_at: str
    updated_at: str


@dataclass(frozen=True)
class TaskRow:
    name: str
    interval_seconds: int
    last_run: str | None
    next_run: str | None
    last_result: str | None


@dataclass(frozen=True)
class EventRow:
    id: int
    at: str
    level: str
    kind: str
    message: str


async def last_session(db: Database) -> SessionSummary | None:
    row = await db.fetchone(
        "SELECT id, started, ended, requests, result, error, client FROM qbwc_sessions"
        " WHERE result IS NULL OR result != 'none' ORDER BY id DESC LIMIT 1"
    )
    if row is None:
        return None
    return SessionSummary(
        row["id"],
        row["started"],
        row["ended"],
        _seconds_between(row["started"], row["ended"]),
        row["requests"],
        row["result"],
        row["error"],
        row["client"],
    )


async def store_state(db: Database) -> StoreState:
    """What the store tasks last said: the interface's "store connection" light."""
    rows = await db.fetchall(
        "SELECT name, last_run, last_result FROM tasks WHERE name IN ('orders', 'inventory', 'catalog')"
        " AND last_run IS NOT NULL ORDER BY last_run DESC"
    )
    if not rows:
        return StoreState("not configured" if not await db.fetchval("SELECT count(*) FROM tasks") else "unknown", "")
    latest = rows[0]["last_result"] or ""
    if latest.startswith("ok"):
        return StoreState("ok", f"{rows[0]['name']}: {latest[4:]}")
    if "credentials" in latest:
        return StoreState("credentials", latest.removeprefix("error: "))
    if "unavailable" in latest or "could not be sent" in latest:
        return StoreState("unreachable", latest.removeprefix("error: "))
    return StoreState("error", latest.removeprefix("error: "))


async def pushes_per_minute(db: Database, minutes: int = 30) -> tuple[int, ...]:
    now = db.clock.now()
    start = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    rows = await db.fetchall(
        "SELECT substr(at, 1, 16) AS minute, count(*) FROM sku_log WHERE ok = 1 AND at >= ? GROUP BY minute",
        (stamp(start),),
    )
    counts = {row[0]: row[1] for row in rows}
    return tuple(counts.get(stamp(start + timedelta(minutes=n + 1))[:16], 0) for n in range(minutes))


async def drain_progress(db: Database) -> tuple[int, int]:
    """(done, total) of the current drain: lines logged since the oldest waiting row was queued."""
    waiting = await db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'")
    if not waiting:
        return 0, 0
    since = await db.fetchval("SELECT min(updated_at) FROM pending WHERE state != 'failed'")
    done = await db.fetchval("SELECT count(*) FROM sku_log WHERE at >= ?", (since,))
    return done, done + waiting


async def latest_failures(db: Database, limit: int = 5) -> tuple[Failure, ...]:
    skus = await db.fetchall("SELECT at, sku, reason FROM sku_log WHERE ok = 0 ORDER BY id DESC LIMIT ?", (limit,))
    orders = await db.fetchall(
        "SELECT updated_at, number, error FROM orders WHERE qb_state = 'failed' ORDER BY updated_at DESC LIMIT ?",
        (limit,),
    )
    lines = [Failure(r[0], f"SKU {r[1]}", r[2]) for r in skus] + [
        Failure(r[0], f"order {r[1]}", r[2] or "") for r in orders
    ]
    return tuple(sorted(lines, key=lambda f: f.at, reverse=True)[:limit])


async def dashboard(db: Database) -> Dashboard:
    today = stamp(db.clock.now().replace(hour=0, minute=0, second=0, microsecond=0))
    counts = await db.fetchone(
        "SELECT sum(state = 'pending'), sum(state = 'in_flight'), sum(state = 'failed') FROM pending"
    )
    assert counts is not None  # an aggregate without GROUP BY always returns one row
    done, total = await drain_progress(db)
    return Dashboard(
        last_session=await last_session(db),
        store=await store_state(db),
        orders_imported_today=await db.fetchval(
            "SELECT count(*) FROM orders WHERE imported_at >= ? AND qb_kind != 'credit_memo'", (today,)
        ),
        orders_posted_today=await db.fetchval(
            "SELECT count(*) FROM orders WHERE qb_state = 'posted' AND qb_kind != 'credit_memo' AND updated_at >= ?",
            (today,),
        ),
        orders_failed=await db.fetchval("SELECT count(*) FROM orders WHERE qb_state = 'failed'"),
        pending=counts[0] or 0,
        in_flight=counts[1] or 0,
        failed_skus=counts[2] or 0,
        pushes_per_minute=await pushes_per_minute(db),
        drain_done=done,
        drain_total=total,
        latest_failures=await latest_failures(db),
        paused=await is_paused(db),
        throughput=Throughput.from_json(await db.get_meta(THROUGHPUT_KEY)),
    )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_PENDING_COLUMNS = "sku, quantity, state, attempts, next_attempt, last_error"
_LOG_COLUMNS = "id, at, sku, old_qty, new_qty, ok, reason"


def _log_rows(rows: Iterable[Sequence[Any]]) -> list[LogRow]:
    """`sku_log` rows selected as `_LOG_COLUMNS`, as `LogRow`s (`ok` stored as 0/1)."""
    return [LogRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]


async def pending_page(
    db: Database, *, sku_filter: str = "", failed_only: bool = False, offset: int = 0, limit: int = PAGE
) -> tuple[list[PendingRow], int]:
    """Failed first, then by when they are due; and how many rows match in all."""
    where, params = ["1 = 1"], []
    if sku_filter:
        where.append("sku LIKE ? ESCAPE '\\'")
        params.append(_like(sku_filter))
    if failed_only:
        where.append("state = 'failed'")
    clause = " AND ".join(where)
    total = await db.fetchval(f"SELECT count(*) FROM pending WHERE {clause}", params)
    rows = await db.fetchall(
        f"SELECT {_PENDING_COLUMNS} FROM pending WHERE {clause}"
        " ORDER BY state != 'failed', next_attempt, sku LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [PendingRow(*row) for row in rows], total


async def pending_failed_count(db: Database) -> int:
    return int(await db.fetchval("SELECT count(*) FROM pending WHERE state = 'failed'") or 0)


async def pending_row(db: Database, sku: str) -> PendingRow | None:
    """The queue row of exactly this SKU, if it is queued (the pending detail)."""
    row = await db.fetchone(f"SELECT {_PENDING_COLUMNS} FROM pending WHERE sku = ?", (sku,))
    return None if row is None else PendingRow(*row)


async def pending_states(db: Database, skus: Sequence[str]) -> dict[str, str]:
    """The queue state of each of these SKUs that is queued (read 500 at a time: SQLite's limit on
    bound parameters is not reached however many SKUs a command names)."""
    states: dict[str, str] = {}
    for start in range(0, len(skus), 500):
        chunk = skus[start : start + 500]
        rows = await db.fetchall(f"SELECT sku, state FROM pending WHERE sku IN ({', '.join('?' * len(chunk))})", chunk)
        states.update({row[0]: row[1] for row in rows})
    return states


async def sku_log_page(
    db: Database,
    *,
    failed_only: bool = False,
    sku_filter: str = "",
    since: str | None = None,
    before_id: int | None = None,
    limit: int = PAGE,
) -> list[LogRow]:
    """Newest first; the next page starts before the last row's id (keyset paging: no OFFSET scan)."""
    where, params = ["1 = 1"], list[str | int]()  # texts and the keyset id
    if failed_only:
        where.append("ok = 0")
    if sku_filter:
        where.append("sku LIKE ? ESCAPE '\\'")
        params.append(_like(sku_filter))
    if since:
        where.append("at >= ?")
        params.append(since)
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    rows = await db.fetchall(
        f"SELECT {_LOG_COLUMNS} FROM sku_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
        [*params, limit],
    )
    return _log_rows(rows)


async def sku_history(db: Database, sku: str, limit: int = 5) -> list[LogRow]:
    """The latest log lines of exactly this SKU, newest first (the pending detail)."""
    rows = await db.fetchall(f"SELECT {_LOG_COLUMNS} FROM sku_log WHERE sku = ? ORDER BY id DESC LIMIT ?", (sku, limit))
    return _log_rows(rows)


async def orders_page(
    db: Database, *, failed_only: bool = False, offset: int = 0, limit: int = PAGE
) -> tuple[list[OrderRow], int]:
    where = "qb_state = 'failed'" if failed_only else "1 = 1"
    total = await db.fetchval(f"SELECT count(*) FROM orders WHERE {where}")
    rows = await db.fetchall(
        "SELECT id, number, store_id, status, qb_kind, qb_state, txn_id, ref_number, error, imported_at, updated_at"
        f" FROM orders WHERE {where} ORDER BY qb_state != 'failed', id DESC LIMIT ? OFFSET ?",
        (limit, offset),
    )
    return [OrderRow(*row) for row in rows], total


async def tasks(db: Database) -> list[TaskRow]:
    rows = await db.fetchall("SELECT name, interval_seconds, last_run, next_run, last_result FROM tasks ORDER BY name")
    return [TaskRow(*row) for row in rows]


async def task_next_run(db: Database, name: str) -> str | None:
    value = await db.fetchval("SELECT next_run FROM tasks WHERE name = ?", (name,))
    return None if value is None else str(value)


async def events_tail(db: Database, *, after_id: int = 0, limit: int = PAGE) -> list[EventRow]:
    """The newest `limit` events after `after_id`, oldest first (ready to append to a log view)."""
    rows = await db.fetchall(
        "SELECT id, at, level, kind, message FROM (SELECT * FROM events WHERE id > ? ORDER BY id DESC LIMIT ?)"
        " ORDER BY id",
        (after_id, limit),
    )
    return [EventRow(*row) for row in rows]
