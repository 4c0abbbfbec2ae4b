"""Planning: what a Web Connector session asks QuickBooks next, and how much is left.

The plan is derived from the database at every call plus the session's typed state, in this order:
  1. orders sent earlier whose answer never arrived ("in doubt") are looked up by RefNumber;
  2. new orders are added, several per message set (continueOnError, one requestID each);
  3. inventory and assembly items modified since the last watermark are read with an iterator
     (a kind the edition lacks, 3250 within the last day, is skipped);
  4. every transaction type that moves stock is asked what was modified since its watermark, in
     one message set, and 5. the items on their lines are read again by ListID. QuickBooks may or
     may not give an item a new TimeModified when a transaction moves its quantity (unverified
     either way; reference qbwc-qbxml.md section 6.3), so 4 and 5 catch what 3 cannot.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import aiosqlite

from ..soap.qbxml import (
    TXN_SOURCE,
    TXN_SOURCES,
    item_query_by_list_id_rq,
    item_query_rq,
    txn_add_rq,
    txn_changes_rq,
    txn_query_by_ref_rq,
)
from .events import ItemsRead
from .orders import txn_docs
from .session_orders import fail_orders
from .session_state import ITEM_KINDS, Outstanding, SessionState, TxnScan
from .clock import parse_stamp
from .session_tickets import Session, SessionContext

# 3250 "This feature is not enabled or not available in this version of QuickBooks": an edition
# without the list asked for (QuickBooks Pro has no inventory assemblies). It means "none there";
# the next look is a day later, in case the company file moves to another edition.
NOT_AVAILABLE_RECHECK = timedelta(days=1)

Step = tuple[list[str], dict[str, Outstanding]]


def rs_name(request: str) -> str:
    """The response element a request fragment asks for: <SalesReceiptAddRq ...> -> SalesReceiptAddRs."""
    tag = request[1:].split(" ", 1)[0].split(">", 1)[0]
    return tag[:-2] + "Rs" if tag.endswith("Rq") else tag


async def meta_value(conn: aiosqlite.Connection, key: str) -> str | None:
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
        row = await cur.fetchone()
    return None if row is None or not row[0] else str(row[0])


async def unavailable(conn: aiosqlite.Connection, key: str, now: datetime) -> bool:
    """Answered 3250 within the last day (an edition without it)."""
    marked = await meta_value(conn, key)
    return marked is not None and now - parse_stamp(marked) < NOT_AVAILABLE_RECHECK


class Planner:
    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx

    # --- before a session: is there anything to do? ---------------------------------------------

    async def has_work(self, conn: aiosqlite.Connection, now: datetime) -> bool:
        async with conn.execute("SELECT 1 FROM orders WHERE qb_state IN ('new', 'sent') LIMIT 1") as cur:
            if await cur.fetchone() is not None:
                return True
        last = await meta_value(conn, "items.last_complete")
        if last is None:
            return True
        return (now - parse_stamp(last)).total_seconds() >= self.ctx.config.qbwc.read_min_interval_seconds

    async def seconds_until_work(self, conn: aiosqlite.Connection, now: datetime) -> int:
        """When items are next due for a read (orders arriving sooner make the next run work anyway)."""
        last = await meta_value(conn, "items.last_complete")
        if last is None:
            return 0
        due = parse_stamp(last) + timedelta(seconds=self.ctx.config.qbwc.read_min_interval_seconds)
        return max(0, math.ceil((due - now).total_seconds()))

    # --- the next message set ------------------------------------------------------------------

    async def next_step(self, conn: aiosqlite.Connection, session: Session) -> Step:
        step = await self._check_step(conn, session)
        if step is None:
            step = await self._add_step(conn, session)
        if step is None:
            step = await self._items_step(conn, session)
        if step is None:
            step = await self._txns_step(conn, session)
        if step is None:
            step = self._touched_step(session)
        return step or ([], {})

    async def _check_step(self, conn: aiosqlite.Connection, session: Session) -> Step | None:
        async with conn.execute(
            "SELECT id, qb_kind, ref_number FROM orders WHERE qb_state = 'sent'"
            " AND (sent_session IS NULL OR sent_session != ?) ORDER BY id LIMIT ?",
            (session.id, self.ctx.config.qbwc.orders_per_request),
        ) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return None
        by_kind: dict[str, list[aiosqlite.Row]] = {}
        for row in rows:
            by_kind.setdefault(row["qb_kind"], []).append(row)
        requests: list[str] = []
        outstanding: dict[str, Outstanding] = {}
        for kind, kind_rows in by_kind.items():
            request_id = f"chk-{kind}-{session.requests}"
            request = txn_query_by_ref_rq(kind, [r["ref_number"] for r in kind_rows], request_id)  # type: ignore[arg-type]
            requests.append(request)
            outstanding[request_id] = Outstanding(
                "check", rs_name(request), kind=kind, orders=[r["id"] for r in kind_rows]
            )
        return requests, outstanding

    async def _add_step(self, conn: aiosqlite.Connection, session: Session) -> Step | None:
        config = self.ctx.config
        async with conn.execute(
            "SELECT id, qb_kind FROM orders WHERE qb_state = 'new'"
            " AND (sent_session IS NULL OR sent_session != ?) ORDER BY id LIMIT ?",
            (session.id, config.qbwc.orders_per_request),
        ) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return None
        docs = await txn_docs(
            self.ctx.db, [r["id"] for r in rows], customer=config.orders.customer, match=config.inventory.match
        )
        requests: list[str] = []
        outstanding: dict[str, Outstanding] = {}
        for row in rows:
            request_id = f"add-{row['id']}"
            try:
                request = txn_add_rq(row["qb_kind"], docs[row["id"]], request_id)
            except (KeyError, ValueError) as exc:
                await fail_orders(
                    self.ctx, conn, session, [row["id"]], f"The order cannot be sent to QuickBooks: {exc}"
                )
                continue
            requests.append(request)
            outstanding[request_id] = Outstanding("add", rs_name(request), order=row["id"])
        sent = [r["id"] for r in rows if f"add-{r['id']}" in outstanding]
        if not sent:
            return await self._add_step(conn, session)
        # Marked 'sent' before QuickBooks sees them: if the answer is lost, the next session looks
        # them up before adding anything again.
        stamp = self.ctx.stamp()
        await conn.execute(
            f"UPDATE orders SET qb_state = 'sent', sent_session = ?, sent_at = ?, attempts = attempts + 1,"
            f" updated_at = ? WHERE id IN ({','.join('?' * len(sent))})",
            (session.id, stamp, stamp, *sent),
        )
        return requests, outstanding

    async def _items_step(self, conn: aiosqlite.Connection, session: Session) -> Step | None:
        state = session.state
        items = state.items
        await self.skip_unavailable(conn, session)
        if items.done:
            return None
        kind = items.kind
        request_id = f"items-{kind}-{state.done}"
        if items.iterator_id is None:
            # Each iterator starts from the watermark of the last complete read; a Continue
            # re-sends the same filter.
            items.start = await meta_value(conn, f"items.watermark.{kind}")
        request = item_query_rq(
            kind,  # type: ignore[arg-type]
            request_id,
            max_returned=self.ctx.config.qbwc.max_returned,
            from_modified=items.start,
            iterator="Continue" if items.iterator_id is not None else "Start",
            iterator_id=items.iterator_id,
        )
        return [request], {request_id: Outstanding("items", rs_name(request), kind=kind)}

    async def skip_unavailable(self, conn: aiosqlite.Connection, session: Session) -> None:
        """Move past the kinds this edition answered 3250 for within the last day; when that reaches
        the end of the item read, the read is complete."""
        state = session.state
        items = state.items
        now = self.ctx.now()
        while not items.done and items.iterator_id is None:
            if not await unavailable(conn, f"items.unavailable.{items.kind}", now):
                return
            items.phase += 1
        if items.done and not state.items_complete:
            state.items_complete = True
            await self.ctx.db.set_meta(conn, "items.last_complete", self.ctx.stamp())
            session.events.append(ItemsRead(state.items_read, state.queued))

    async def kind_done(self, conn: aiosqlite.Connection, session: Session) -> None:
        session.state.items.next_kind()
        await self.skip_unavailable(conn, session)

    # --- transactions since the last scan, and the items they touched ---------------------------

    async def _begin_txns(self, conn: aiosqlite.Connection, state: SessionState) -> None:
        baseline = await meta_value(conn, "items.watermark.inventory")
        now = self.ctx.now()
        scans: dict[str, TxnScan] = {}
        for source in TXN_SOURCES:
            if await unavailable(conn, f"txns.unavailable.{source.qb_name}", now):
                continue
            start = await meta_value(conn, f"txns.watermark.{source.qb_name}") or baseline
            if start is None:
                continue  # nothing read yet at all: this session's full item read covers it
            scans[source.qb_name] = TxnScan(start=start)
        state.txns = scans
        state.touched_ids = []

    async def _txns_step(self, conn: aiosqlite.Connection, session: Session) -> Step | None:
        state = session.state
        if not state.items.done or state.touched is not None:
            return None
        if state.txns is None:
            await self._begin_txns(conn, state)
        if not state.txns:
            await self.txns_done(conn, session)
            return None
        requests: list[str] = []
        outstanding: dict[str, Outstanding] = {}
        for name, scan in state.txns.items():
            request_id = f"txn-{name}-{state.done}"
            request = txn_changes_rq(
                TXN_SOURCE[name],
                request_id,
                from_modified=scan.start,
                max_returned=self.ctx.config.qbwc.max_returned,
                iterator="Continue" if scan.iterator_id else "Start",
                iterator_id=scan.iterator_id,
            )
            requests.append(request)
            outstanding[request_id] = Outstanding("txns", rs_name(request), source=name)
        return requests, outstanding

    async def txns_done(self, conn: aiosqlite.Connection, session: Session) -> None:
        """Queue the touched items we hold, by kind, for a read by ListID."""
        state = session.state
        queue: dict[str, list[str]] = {}
        ids = state.touched_ids
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            async with conn.execute(
                f"SELECT list_id, kind FROM items WHERE list_id IN ({','.join('?' * len(part))}) ORDER BY list_id",
                part,
            ) as cur:
                for row in await cur.fetchall():
                    queue.setdefault(row["kind"], []).append(row["list_id"])
        state.touched = queue
        state.touched_ids = []

    def _touched_step(self, session: Session) -> Step | None:
        queue = session.state.touched
        if not queue:
            return None
        page = self.ctx.config.qbwc.max_returned
        requests: list[str] = []
        outstanding: dict[str, Outstanding] = {}
        for kind in ITEM_KINDS:
            ids = queue.get(kind) or []
            if not ids:
                continue
            asked, queue[kind] = ids[:page], ids[page:]
            request_id = f"touched-{kind}-{session.state.done}"
            request = item_query_by_list_id_rq(kind, request_id, asked)  # type: ignore[arg-type]
            requests.append(request)
            outstanding[request_id] = Outstanding("touched", rs_name(request), kind=kind, ids=asked)
        return (requests, outstanding) if requests else None

    # --- progress -----------------------------------------------------------------------------

    async def percent(self, conn: aiosqlite.Connection, session: Session) -> int:
        """done / (done + remaining), never 100 while anything remains."""
        remaining = await self._remaining_steps(conn, session)
        if remaining == 0:
            return 100
        done = session.state.done
        return min(99, math.floor(100 * done / (done + remaining)))

    async def _remaining_steps(self, conn: aiosqlite.Connection, session: Session) -> int:
        per = self.ctx.config.qbwc.orders_per_request
        page = self.ctx.config.qbwc.max_returned
        async with conn.execute(
            "SELECT qb_state, count(*) FROM orders WHERE qb_state IN ('new', 'sent')"
            " AND (sent_session IS NULL OR sent_session != ?) GROUP BY qb_state",
            (session.id,),
        ) as cur:
            counts: dict[str, int] = {str(row[0]): int(row[1]) for row in await cur.fetchall()}
        steps = math.ceil(counts.get("sent", 0) / per) + math.ceil(counts.get("new", 0) / per)
        await self.skip_unavailable(conn, session)
        state = session.state
        items = state.items
        kinds_left = len(ITEM_KINDS) - items.phase
        if kinds_left > 0:
            if items.remaining:
                steps += math.ceil(items.remaining / page)
                kinds_left -= 1
            steps += kinds_left
        if state.touched is None:
            # The transaction scan (all sources in one message set per page) and, after it, at
            # least one read of the items it finds (counted as one until it is known).
            scans = state.txns
            if scans is None:
                steps += 2
            elif scans:
                steps += max(math.ceil((scan.remaining or 1) / page) for scan in scans.values()) + 1
        else:
            steps += max((math.ceil(len(ids) / page) for ids in state.touched.values()), default=0)
        return steps
