"""Recording: what QuickBooks answered, applied to the database in the transaction of the call.

One answer per request is trusted (an Rs of the kind asked for, under a requestID given once);
adds post or fail their order, lookups settle orders in doubt, item pages are recorded and queued
for the store, transaction scans collect the items they touched. Watermarks move only when a read
is complete. Events are collected on the session and go out after the commit.
"""

from __future__ import annotations

from datetime import timedelta

import aiosqlite
import structlog

from ..soap.qbxml import TXN_SOURCE, QBResponse, classify_status, memo_marker, touched_list_ids
from .events import PendingQueued
from .items import qb_time_key, record_items
from .session_orders import fail_orders, post_order
from .session_plan import Planner
from .session_state import Outstanding, SessionState
from .clock import parse_stamp
from .session_tickets import Session, SessionContext

log = structlog.get_logger("connex.session")

# An order handed to QuickBooks this recently by a session that did not end cleanly may still be
# inside QuickBooks (a big message set takes a while): it is looked up, never added again, until
# this long after it was sent. Longer than QuickBooks takes for one big request.
IN_DOUBT_WINDOW = timedelta(minutes=10)
MAX_ITERATOR_RESTARTS = 2
NOT_AVAILABLE_STATUS = 3250  # the edition has no such list or transaction (QuickBooks Pro: assemblies)
PARSE_ERROR_HRESULT = "0x80040400"
_USABLE = ("ok", "no_match", "warning")


def trusted_answers(responses: list[QBResponse], outstanding: dict[str, Outstanding]) -> dict[str, QBResponse]:
    """The one answer per request we can trust: an Rs of the kind we asked for, under a requestID
    given once. A duplicated or mismatched Rs counts as no answer (its orders stay in doubt)."""
    counts: dict[str, int] = {}
    for rs in responses:
        if rs.request_id is not None:
            counts[rs.request_id] = counts.get(rs.request_id, 0) + 1
    answers: dict[str, QBResponse] = {}
    for rs in responses:
        if rs.request_id is None or rs.request_id not in outstanding:
            continue
        entry = outstanding[rs.request_id]
        if counts[rs.request_id] > 1 or rs.name != entry.rs:
            log.warning(
                "qbxml_ambiguous_answer",
                request_id=rs.request_id[:40],
                element=rs.name[:60],
                expected=entry.rs,
                copies=counts[rs.request_id],
            )
            continue
        answers[rs.request_id] = rs
    return answers


def drop_outstanding(state: SessionState, outstanding: dict[str, Outstanding] | None = None) -> None:
    """Forget requests whose answer will not come: an iterator restarts from its watermark, the
    ListIDs of a lost read by ListID go back in the queue; adds stay 'sent' (in doubt)."""
    for entry in (outstanding if outstanding is not None else state.outstanding or {}).values():
        if entry.type == "items":
            state.items.reset_iterator()
        elif entry.type == "txns" and state.txns and entry.source in state.txns:
            scan = state.txns[entry.source]
            scan.iterator_id = scan.remaining = None
        elif entry.type == "touched" and state.touched is not None and entry.kind:
            state.touched.setdefault(entry.kind, []).extend(entry.ids)
    state.outstanding = None


class Recorder:
    def __init__(self, ctx: SessionContext, planner: Planner) -> None:
        self.ctx = ctx
        self.planner = planner

    async def apply(
        self,
        conn: aiosqlite.Connection,
        session: Session,
        outstanding: dict[str, Outstanding],
        responses: list[QBResponse],
    ) -> None:
        by_id = trusted_answers(responses, outstanding)
        for request_id, entry in outstanding.items():
            rs = by_id.get(request_id)
            await self.record_requests(conn, session, {request_id: entry}, rs)
            if entry.type == "add" and entry.order is not None:
                await self._add(conn, session, entry.order, rs)
            elif entry.type == "check":
                await self._check(conn, session, entry.orders, rs)
            elif entry.type == "txns" and entry.source is not None:
                await self._txns(conn, session, entry.source, rs)
            elif entry.type == "touched" and entry.kind is not None:
                await self._touched(conn, session, entry.kind, rs)
            elif entry.type == "items" and entry.kind is not None:
                await self._items(conn, session, entry.kind, rs)
        unknown = {r.request_id for r in responses} - set(outstanding)
        if unknown:
            log.warning(
                "qbxml_unknown_request_ids",
                session=session.id,
                request_ids=[str(i)[:40] for i in sorted(unknown, key=str)[:10]],
            )

    async def on_hresult(
        self,
        conn: aiosqlite.Connection,
        session: Session,
        outstanding: dict[str, Outstanding],
        hresult: str,
        message: str,
    ) -> None:
        state = session.state
        adds = [entry.order for entry in outstanding.values() if entry.type == "add" and entry.order is not None]
        if hresult.lower() == PARSE_ERROR_HRESULT.lower() and adds:
            # QuickBooks refused the whole message set unread: nothing was posted.
            reason = (
                f"QuickBooks could not read the request ({hresult[:40]}: {message[:500]})."
                " This is a connex-tui bug; please report it."
            )
            await fail_orders(self.ctx, conn, session, adds, reason)
        state.error = f"QuickBooks reported an error ({hresult[:40]}): {(message or 'no message')[:2000]}"
        drop_outstanding(state, outstanding)
        log.error("qbwc_hresult", session=session.id, hresult=hresult[:40], message=message[:300])
        await self.record_requests(conn, session, outstanding, None)

    async def record_requests(
        self, conn: aiosqlite.Connection, session: Session, outstanding: dict[str, Outstanding], rs: QBResponse | None
    ) -> None:
        stamp = self.ctx.stamp()
        await conn.executemany(
            "INSERT INTO qb_requests(session_id, at, request_id, kind, status_code, severity, message)"
            " VALUES (?,?,?,?,?,?,?)",
            [
                (
                    session.id,
                    stamp,
                    request_id,
                    entry.type,
                    None if rs is None else rs.status_code,
                    None if rs is None else rs.severity,
                    None if rs is None else rs.message[:1000],
                )
                for request_id, entry in outstanding.items()
            ],
        )

    # --- orders -------------------------------------------------------------------------------

    async def _add(self, conn: aiosqlite.Connection, session: Session, order_id: int, rs: QBResponse | None) -> None:
        if rs is None:
            return  # no answer for it: stays 'sent', looked up next session
        status = classify_status(rs.status_code)
        txn_id = next((ret.get("TxnID") for ret in rs.rets if ret.get("TxnID")), None)
        if status in _USABLE and txn_id:
            await post_order(self.ctx, conn, session, order_id, str(txn_id))
        elif status == "locked":
            # QuickBooks was busy with the record: try again next session (sent_session keeps it
            # out of this one).
            await conn.execute(
                "UPDATE orders SET qb_state = 'new', error = ?, updated_at = ? WHERE id = ?",
                (
                    f"QuickBooks record in use ({rs.status_code}): {rs.message}; retried next session",
                    self.ctx.stamp(),
                    order_id,
                ),
            )
        else:
            if rs.status_code == NOT_AVAILABLE_STATUS:
                reason = (
                    f"This QuickBooks edition cannot take this kind of transaction ({rs.status_code}: {rs.message})."
                    " QuickBooks Pro has no sales orders: set [orders] post_as to sales_receipt or invoice."
                )
            elif status == "missing_reference":
                reason = (
                    f"QuickBooks does not know an item or customer in this order ({rs.status_code}: {rs.message})."
                    " Does the store SKU match a QuickBooks item?"
                )
            else:
                reason = f"QuickBooks refused the order ({rs.status_code}: {rs.message or 'no message'})"
            await fail_orders(self.ctx, conn, session, [order_id], reason)
            session.state.failed += 1

    async def _check(
        self, conn: aiosqlite.Connection, session: Session, order_ids: list[int], rs: QBResponse | None
    ) -> None:
        marks = ",".join("?" * len(order_ids))
        if rs is None or classify_status(rs.status_code) not in _USABLE:
            # The lookup itself failed: leave them in doubt, but not for the rest of this session.
            await conn.execute(f"UPDATE orders SET sent_session = ? WHERE id IN ({marks})", (session.id, *order_ids))
            return
        async with conn.execute(
            "SELECT o.id, o.store_id, o.sent_at, s.result AS sender_result FROM orders o"
            f" LEFT JOIN qbwc_sessions s ON s.id = o.sent_session WHERE o.id IN ({marks})",
            order_ids,
        ) as cur:
            orders = list(await cur.fetchall())
        for order in orders:
            marker = memo_marker(order["store_id"])
            found = next((ret for ret in rs.rets if marker in str(ret.get("Memo", "")) and ret.get("TxnID")), None)
            if found is not None:
                session.state.found += 1
                log.info("order_found_in_quickbooks", session=session.id, order_id=order["id"])
                await post_order(self.ctx, conn, session, order["id"], str(found["TxnID"]))
            elif self._surely_not_in_progress(order):
                # Not in QuickBooks, and QuickBooks is not still working on it: add it again.
                await conn.execute(
                    "UPDATE orders SET qb_state = 'new', sent_session = NULL, updated_at = ? WHERE id = ?",
                    (self.ctx.stamp(), order["id"]),
                )
            else:
                # Not there yet, but the request that carried it may still be inside QuickBooks
                # (the session was cut off, not closed): look again next session.
                await conn.execute("UPDATE orders SET sent_session = ? WHERE id = ?", (session.id, order["id"]))
                log.info("order_still_in_doubt", session=session.id, order_id=order["id"])

    def _surely_not_in_progress(self, order: aiosqlite.Row) -> bool:
        """The Web Connector closed the session that sent it (it only does so once QuickBooks has
        answered), or it was sent long enough ago that QuickBooks cannot still be at it."""
        if order["sender_result"] in ("ok", "error") or not order["sent_at"]:
            return True
        return self.ctx.now() - parse_stamp(order["sent_at"]) > IN_DOUBT_WINDOW

    # --- items --------------------------------------------------------------------------------

    async def _record_page(self, conn: aiosqlite.Connection, session: Session, kind: str, rs: QBResponse) -> str | None:
        """Record a page of item Rets and queue their quantities; the newest TimeModified in it."""
        inventory = self.ctx.config.inventory
        recorded = await record_items(
            conn, kind, rs.rets, match=inventory.match, quantity_mode=inventory.quantity, now=self.ctx.stamp()
        )
        session.state.items_read += recorded.count
        session.state.queued += recorded.queued
        if recorded.queued:
            session.events.append(PendingQueued(recorded.queued))
        return recorded.max_time_modified

    async def _items(self, conn: aiosqlite.Connection, session: Session, kind: str, rs: QBResponse | None) -> None:
        state = session.state
        items = state.items
        page = self.ctx.config.qbwc.max_returned
        status = "error" if rs is None else classify_status(rs.status_code)
        if status == "iterator_invalid" and items.restarts < MAX_ITERATOR_RESTARTS:
            items.reset_iterator()
            items.restarts += 1
            log.warning("qbxml_iterator_restarted", session=session.id, kind=kind)
            return
        if rs is not None and rs.status_code == NOT_AVAILABLE_STATUS:
            # This edition has no such list: nothing to read, and not a failure.
            await self.ctx.db.set_meta(conn, f"items.unavailable.{kind}", self.ctx.stamp())
            log.info("qbxml_list_not_in_this_edition", session=session.id, kind=kind, message=rs.message[:200])
            await self.planner.kind_done(conn, session)
            return
        if rs is None or status not in _USABLE:
            code = "no answer" if rs is None else f"{rs.status_code}: {rs.message[:500]}"
            state.error = f"Reading {kind} items from QuickBooks failed ({code})."
            return
        if len(rs.rets) > page:
            # QuickBooks never sends more than MaxReturned; a page that does is not QuickBooks'.
            state.error = (
                f"Reading {kind} items from QuickBooks failed: {len(rs.rets)} items in a page of at most {page}."
            )
            return
        newest = await self._record_page(conn, session, kind, rs)
        if newest and (items.max_seen is None or qb_time_key(newest) > qb_time_key(items.max_seen)):
            items.max_seen = newest
        remaining = rs.iterator_remaining or 0
        if remaining > 0 and rs.iterator_id:
            items.iterator_id, items.remaining = rs.iterator_id, remaining
            return
        # This kind is read completely: its watermark moves (inclusive, so re-reads are harmless).
        if items.max_seen:
            await self.ctx.db.set_meta(conn, f"items.watermark.{kind}", items.max_seen)
        await self.ctx.db.set_meta(conn, f"items.unavailable.{kind}", "")  # answered: available after all
        await self.planner.kind_done(conn, session)

    async def _txns(self, conn: aiosqlite.Connection, session: Session, name: str, rs: QBResponse | None) -> None:
        state = session.state
        assert state.txns is not None
        scan = state.txns[name]
        status = "error" if rs is None else classify_status(rs.status_code)
        if rs is not None and rs.status_code == NOT_AVAILABLE_STATUS:
            await self.ctx.db.set_meta(conn, f"txns.unavailable.{name}", self.ctx.stamp())
            log.info("qbxml_list_not_in_this_edition", session=session.id, kind=name, message=rs.message[:200])
            del state.txns[name]
        elif status == "iterator_invalid" and scan.restarts < MAX_ITERATOR_RESTARTS:
            scan.iterator_id = scan.remaining = None
            scan.restarts += 1
        elif rs is None or status not in _USABLE:
            code = "no answer" if rs is None else f"{rs.status_code}: {rs.message[:500]}"
            state.error = f"Reading {name} transactions from QuickBooks failed ({code})."
            return
        else:
            touched = set(state.touched_ids)
            for ret in rs.rets:
                touched |= touched_list_ids(ret, TXN_SOURCE[name])
                modified = ret.get("TimeModified")
                if modified and (scan.max_seen is None or qb_time_key(modified) > qb_time_key(scan.max_seen)):
                    scan.max_seen = modified
            state.touched_ids = sorted(touched)
            if (rs.iterator_remaining or 0) > 0 and rs.iterator_id:
                scan.iterator_id, scan.remaining = rs.iterator_id, rs.iterator_remaining
            else:
                # Scanned to the end: the next scan starts here (inclusive; re-reads are harmless).
                await self.ctx.db.set_meta(conn, f"txns.watermark.{name}", scan.max_seen or scan.start)
                await self.ctx.db.set_meta(conn, f"txns.unavailable.{name}", "")
                del state.txns[name]
        if not state.txns:
            await self.planner.txns_done(conn, session)
            log.info(
                "qbwc_items_touched_by_transactions",
                session=session.id,
                items=sum(len(ids) for ids in (state.touched or {}).values()),
            )

    async def _touched(self, conn: aiosqlite.Connection, session: Session, kind: str, rs: QBResponse | None) -> None:
        if rs is None or classify_status(rs.status_code) not in _USABLE:
            # 500 (one of them no longer exists) is a warning and fine; anything else is not.
            code = "no answer" if rs is None else f"{rs.status_code}: {rs.message[:500]}"
            session.state.error = f"Reading {kind} items touched by transactions failed ({code})."
            return
        await self._record_page(conn, session, kind, rs)
