"""The Web Connector session planner: what we ask QuickBooks, in which order, and what we record.

A session's plan is derived from the database at every call (orders in doubt, new orders, the
item watermarks) plus a small state kept with the session row, so a restart of connex-tui in the
middle of a session loses nothing: the next call picks up from what the database says.

Order of work in a session:
  1. orders sent in an earlier session whose answer never arrived ("in doubt") are looked up by
     RefNumber and our memo marker; found -> posted, absent -> new again;
  2. new orders are added, several per message set (continueOnError, one requestID each);
  3. inventory and assembly items modified since the last watermark are read with an iterator.
Every response is recorded in the same transaction that advances the plan.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import aiosqlite
import structlog

from .. import __version__
from ..soap.qbxml import (
    QBXML_VERSION,
    TXN_SOURCE,
    TXN_SOURCES,
    QBResponse,
    QBXMLParseError,
    classify_status,
    item_query_by_list_id_rq,
    item_query_rq,
    memo_marker,
    message_set,
    negotiate_version,
    parse_response,
    txn_add_rq,
    txn_changes_rq,
    txn_query_by_ref_rq,
    touched_list_ids,
)
from .auth_throttle import AuthThrottle
from .config import Config
from .company import (
    CompanyFile,
    company_from_hcp,
    mismatch,
    our_owner_id,
    record_company,
    recorded_company,
    remember_refused,
)
from .db import Database, chunked, utcnow
from .events import Event, EventBus, ItemsRead, OrderFailed, OrderPosted, PendingQueued, SessionEnded, SessionStarted
from .items import qb_time_key, record_items
from .orders import txn_docs

log = structlog.get_logger("connex.session")

ITEM_KINDS = ("inventory", "assembly")
# An order handed to QuickBooks this recently by a session that did not end cleanly may still be
# inside QuickBooks (a big message set takes a while): it is looked up, never added again, until
# this long after it was sent. Longer than QuickBooks takes for one big request.
IN_DOUBT_WINDOW = timedelta(minutes=10)
MAX_ITERATOR_RESTARTS = 2
# 3250 "This feature is not enabled or not available in this version of QuickBooks": an edition
# without the list asked for (QuickBooks Pro has no inventory assemblies). It means "none there";
# the next look is a day later, in case the company file moves to another edition.
NOT_AVAILABLE_STATUS = 3250
NOT_AVAILABLE_RECHECK = timedelta(days=1)
PARSE_ERROR_HRESULT = "0x80040400"
# BeginSession: "A QuickBooks company data file is already open and it is different from the one
# requested" (QBXMLRP2 HRESULT table; the Web Connector passes it to connectionError).
OTHER_FILE_OPEN_HRESULT = "0x8004040A"


def hash_ticket(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("utf-8")).hexdigest()


def new_ticket() -> str:
    return secrets.token_hex(20)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _rs_name(request: str) -> str:
    """The response element a request fragment asks for: <SalesReceiptAddRq ...> -> SalesReceiptAddRs."""
    tag = request[1:].split(" ", 1)[0].split(">", 1)[0]
    return tag[:-2] + "Rs" if tag.endswith("Rq") else tag


def _answers(responses: list[QBResponse], outstanding: dict[str, Any]) -> dict[str, QBResponse]:
    """The one answer per request we can trust: an Rs of the kind we asked for, under a requestID
    given once. A duplicated or mismatched Rs counts as no answer (its orders stay in doubt)."""
    counts: dict[str, int] = {}
    for rs in responses:
        if rs.request_id is not None:
            counts[rs.request_id] = counts.get(rs.request_id, 0) + 1
    answers = {}
    for rs in responses:
        entry = outstanding.get(rs.request_id or "")
        if entry is None:
            continue
        if counts[rs.request_id] > 1 or ("rs" in entry and rs.name != entry["rs"]):
            log.warning("qbxml_ambiguous_answer", request_id=rs.request_id[:40], element=rs.name[:60],
                        expected=entry.get("rs"), copies=counts[rs.request_id])
            continue
        answers[rs.request_id] = rs
    return answers


@dataclass
class OpenSession:
    """A session still open when a Web Connector authenticates."""

    id: int
    last_seen: datetime
    requests: int
    quiet: float = 0.0

    def reason(self, by: int) -> str:
        return (f"Superseded by session {by}: the Web Connector started a new run after {self.quiet:g} s"
                " without a call from this one (its connection dropped). Orders it handed to QuickBooks"
                " are looked up before anything is added again.")


@dataclass
class Session:
    id: int
    state: dict[str, Any]
    requests: int
    # Events of this call, emitted only once its transaction has committed (none for what a
    # rollback undid): a listener never hears "posted" for an order the database does not hold.
    events: list[Event] = field(default_factory=list)


def _fresh_state() -> dict[str, Any]:
    return {
        "version": QBXML_VERSION,
        "done": 0,
        "outstanding": None,
        "items": {"phase": 0, "iterator_id": None, "remaining": None, "max_seen": None, "restarts": 0},
        # After the item read: transactions modified since the last scan, per source (None: not begun),
        # and the items they touched, read again by ListID (per kind, a queue of ListIDs).
        "txns": None,
        "touched": None,
        "posted": 0,
        "failed": 0,
        "found": 0,
        "items_read": 0,
        "queued": 0,
        "error": None,
        "finished": False,
    }


class QBWCSessions:
    """Implements the endpoint's QBWCHandler on top of the database."""

    def __init__(
        self,
        db: Database,
        config: Config,
        bus: EventBus | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.db = db
        self.config = config
        self.bus = bus or EventBus()
        self.now = now
        self.auth_throttle = AuthThrottle()

    async def close_interrupted(self) -> int:
        """At start-up: sessions an earlier process left open cannot go on (the Web Connector's
        calls failed while we were down, and it gave up). Closing them lets the next session in
        instead of answering "busy"; their orders stay 'sent' and are looked up next time."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE qbwc_sessions SET ended = ?, result = 'interrupted',"
                " error = coalesce(error, 'connex-tui stopped during this session') WHERE ended IS NULL",
                (self.now().isoformat(timespec="milliseconds"),),
            )
            return cur.rowcount

    # --- the handshake ------------------------------------------------------------------------

    async def server_version(self) -> str:
        return f"connex-tui {__version__}"

    async def client_version(self, version: str) -> str:
        return ""

    async def authenticate(self, username: str, password: str, client: str) -> list[str]:
        qbwc = self.config.qbwc
        wait = self.auth_throttle.locked_for(client)
        if wait:
            log.warning("qbwc_auth_refused", client=client, reason="too many failed logins", seconds_left=round(wait))
            return ["", "nvu"]
        # Both comparisons always run, in constant time, so timing tells nothing about which failed.
        user_ok = hmac.compare_digest(username.encode("utf-8"), qbwc.username.encode("utf-8"))
        pass_ok = hmac.compare_digest(password.encode("utf-8"), qbwc.password.reveal().encode("utf-8"))
        if not (user_ok & pass_ok):
            lock = self.auth_throttle.failed(client)
            log.warning("qbwc_auth_failed", client=client, username=username[:64], locked_seconds=lock)
            return ["", "nvu"]
        self.auth_throttle.succeeded(client)
        now = self.now()
        ticket = new_ticket()
        async with self.db.transaction() as conn:
            await self._expire_idle(conn, now)
            open_session = await self._open_session(conn)
            if open_session is not None:
                wait = self._concurrent_wait(open_session, now)
                if wait:
                    log.warning("qbwc_busy", client=client, open_session=open_session.id, retry_seconds=wait)
                    return ["", "busy", str(wait), ""]
            superseded = open_session
            has_work = await self._has_work(conn, now)
            stamp = now.isoformat(timespec="milliseconds")
            cur = await conn.execute(
                "INSERT INTO qbwc_sessions(ticket_hash, client, started, last_seen, ended, result, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    hash_ticket(ticket),
                    client,
                    stamp,
                    stamp,
                    None if has_work else stamp,
                    None if has_work else "none",
                    json.dumps(_fresh_state()),
                ),
            )
            session_id = int(cur.lastrowid or 0)
            if superseded is not None:
                await self._supersede(conn, superseded, session_id, now)
            come_back = None if has_work else await self._seconds_until_work(conn, now)
            recorded = await recorded_company(conn)
        if superseded is not None:
            log.warning("qbwc_session_superseded", session=superseded.id, by=session_id, quiet_seconds=superseded.quiet)
            self.bus.emit(SessionEnded(superseded.id, "superseded", superseded.requests, superseded.reason(session_id)))
        log.info("qbwc_session_start", session=session_id, client=client, work=has_work)
        if has_work:
            self.bus.emit(SessionStarted(session_id, client))
            # The recorded company file's path: the Web Connector opens that file, and refuses to
            # work on another one QuickBooks has open (QBWC guide ch.2: any other string than
            # none/nvu/busy is the path of the company file to use).
            return [ticket, recorded.path if recorded else ""]
        # "none": the Web Connector shows "No data exchange required"; the third element postpones
        # its next update until items are due for a read (QBWC Programmer's Guide ch.10,
        # authenticate; reference qbwc-qbxml.md section 3.3).
        return [ticket, "none", str(come_back) if come_back else "", ""]

    async def _expire_idle(self, conn: aiosqlite.Connection, now: datetime) -> None:
        cutoff = (now - timedelta(minutes=self.config.qbwc.ticket_idle_minutes)).isoformat(timespec="milliseconds")
        await conn.execute(
            "UPDATE qbwc_sessions SET ended = ?, result = 'expired' WHERE ended IS NULL AND last_seen < ?",
            (now.isoformat(timespec="milliseconds"), cutoff),
        )

    async def _open_session(self, conn: aiosqlite.Connection) -> OpenSession | None:
        async with conn.execute(
            "SELECT id, last_seen, requests FROM qbwc_sessions WHERE ended IS NULL ORDER BY id DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return OpenSession(id=int(row["id"]), last_seen=_parse_time(row["last_seen"]), requests=int(row["requests"]))

    def _concurrent_wait(self, session: OpenSession, now: datetime) -> int:
        """Seconds another Web Connector should wait, or 0 when the open session has gone quiet.

        The Web Connector runs one update per application at a time (its UpdateLock) and, after a
        transport error between sendRequestXML and receiveResponseXML, ends the run without
        closeConnection or connectionError. So a new authenticate from our user over a quiet
        session means that session is dead; only one that answered a call moments ago belongs to
        a second, genuinely concurrent Web Connector."""
        window = timedelta(seconds=self.config.qbwc.concurrent_seconds)
        quiet = now - session.last_seen
        if quiet >= window:
            return 0
        return max(1, math.ceil((window - quiet).total_seconds()))

    async def _supersede(self, conn: aiosqlite.Connection, session: OpenSession, by: int, now: datetime) -> None:
        """Close a dead session at once. The orders it handed over stay 'sent' (in doubt): the new
        session looks them up, and adds one again only once QuickBooks cannot still be at it."""
        session.quiet = round((now - session.last_seen).total_seconds(), 1)
        await conn.execute(
            "UPDATE qbwc_sessions SET ended = ?, result = 'superseded', error = ? WHERE id = ?",
            (now.isoformat(timespec="milliseconds"), session.reason(by), session.id),
        )

    async def _seconds_until_work(self, conn: aiosqlite.Connection, now: datetime) -> int:
        """When items are next due for a read (orders arriving sooner make the next run work anyway)."""
        async with conn.execute("SELECT value FROM meta WHERE key = 'items.last_complete'") as cur:
            row = await cur.fetchone()
        if row is None:
            return 0
        due = _parse_time(row[0]) + timedelta(seconds=self.config.qbwc.read_min_interval_seconds)
        return max(0, math.ceil((due - now).total_seconds()))

    async def _has_work(self, conn: aiosqlite.Connection, now: datetime) -> bool:
        async with conn.execute("SELECT 1 FROM orders WHERE qb_state IN ('new', 'sent') LIMIT 1") as cur:
            if await cur.fetchone() is not None:
                return True
        async with conn.execute("SELECT value FROM meta WHERE key = 'items.last_complete'") as cur:
            row = await cur.fetchone()
        if row is None:
            return True
        age = now - _parse_time(row[0])
        return age.total_seconds() >= self.config.qbwc.read_min_interval_seconds

    # --- ticket lookup ------------------------------------------------------------------------

    async def _session(self, conn: aiosqlite.Connection, ticket: str, *, count: bool) -> Session | None:
        """The open session this ticket belongs to, touched; None for unknown, ended or idle ones."""
        if not ticket:
            return None
        now = self.now()
        async with conn.execute(
            "SELECT id, state, requests, last_seen FROM qbwc_sessions WHERE ticket_hash = ? AND ended IS NULL",
            (hash_ticket(ticket),),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        idle = timedelta(minutes=self.config.qbwc.ticket_idle_minutes)
        if now - _parse_time(row["last_seen"]) > idle:
            await conn.execute(
                "UPDATE qbwc_sessions SET ended = ?, result = 'expired' WHERE id = ?",
                (now.isoformat(timespec="milliseconds"), row["id"]),
            )
            return None
        requests = row["requests"] + (1 if count else 0)
        await conn.execute(
            "UPDATE qbwc_sessions SET last_seen = ?, requests = ? WHERE id = ?",
            (now.isoformat(timespec="milliseconds"), requests, row["id"]),
        )
        return Session(id=row["id"], state=json.loads(row["state"]), requests=requests)

    async def _save(self, conn: aiosqlite.Connection, session: Session, **columns: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in ["state", *columns])
        await conn.execute(
            f"UPDATE qbwc_sessions SET {sets} WHERE id = ?",
            (json.dumps(session.state), *columns.values(), session.id),
        )

    # --- sendRequestXML -----------------------------------------------------------------------

    async def send_request_xml(
        self, ticket: str, hcp_response: str, company_file: str, country: str, major: str, minor: str
    ) -> str:
        async with self.db.transaction() as conn:
            session = await self._session(conn, ticket, count=True)
            if session is None:
                log.warning("qbwc_unknown_ticket", method="sendRequestXML")
                return ""
            requests = await self._send(conn, session, hcp_response, company_file, major, minor)
        self._emit(session)
        if not requests:
            return ""
        return message_set(requests, session.state["version"], on_error="continueOnError")

    async def _send(
        self, conn: aiosqlite.Connection, session: Session, hcp_response: str, company_file: str, major: str, minor: str
    ) -> list[str]:
        state = session.state
        columns: dict[str, Any] = {}
        if state["done"] == 0 and state["outstanding"] is None and "company" not in state:
            state["version"] = negotiate_version(major, minor)
            columns = {"company": company_file[:260], "qbxml_version": state["version"]}
            await self._check_company(conn, session, company_from_hcp(company_file, hcp_response, await our_owner_id(conn)))
        if state.get("wrong_company"):
            await self._save(conn, session, error=state["error"], **columns)
            return []  # another company file: nothing is asked, nothing posted or read
        if state["outstanding"] is not None:
            # sendRequestXML again without a response: the last exchange was disrupted. Adds in it
            # stay 'sent' and are looked up next session; an iterator restarts from its watermark.
            log.warning("qbwc_exchange_disrupted", session=session.id)
            self._drop_outstanding(state)
        requests, outstanding = await self._next_step(conn, session)
        state["outstanding"] = outstanding
        if not requests:
            state["finished"] = True
        await self._save(conn, session, **columns)
        return requests

    async def _check_company(self, conn: aiosqlite.Connection, session: Session, current: CompanyFile) -> None:
        state = session.state
        state["company"] = current.to_json()
        recorded = await recorded_company(conn)
        if recorded is None:
            return  # recorded when this session ends well
        what = mismatch(recorded, current)
        if what is None:
            return
        await remember_refused(conn, current)
        state["wrong_company"] = True
        state["error"] = (
            f"QuickBooks has {what} open: {current.describe()}. connex-tui works with {recorded.describe()};"
            " this session posted and pushed nothing. Open that file in QuickBooks, or run"
            " `connex-tui company accept` to work with this one from now on."
        )
        log.error("qbwc_wrong_company_file", session=session.id, recorded=recorded.path[:260], open=current.path[:260])

    def _emit(self, session: Session) -> None:
        """After the commit: what this call recorded, for the listeners."""
        events, session.events = session.events, []
        for event in events:
            self.bus.emit(event)

    @staticmethod
    def _drop_outstanding(state: dict[str, Any], outstanding: dict[str, Any] | None = None) -> None:
        """Forget a request whose answer will not come: an iterator restarts from its watermark,
        ListIDs of a lost read by ListID go back in the queue."""
        outstanding = outstanding if outstanding is not None else (state["outstanding"] or {})
        for entry in outstanding.values():
            if entry["type"] == "items":
                state["items"]["iterator_id"] = None
                state["items"]["remaining"] = None
            elif entry["type"] == "txns" and state["txns"] and entry["source"] in state["txns"]:
                state["txns"][entry["source"]].update(iterator_id=None, remaining=None)
            elif entry["type"] == "touched" and state["touched"] is not None:
                state["touched"].setdefault(entry["kind"], []).extend(entry["ids"])
        state["outstanding"] = None

    async def _next_step(self, conn: aiosqlite.Connection, session: Session) -> tuple[list[str], dict[str, Any]]:
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

    # --- items touched by transactions ---------------------------------------------------------
    # QuickBooks may or may not give an item a new TimeModified when a transaction moves its
    # quantity (unverified either way; reference qbwc-qbxml.md section 6.3). So besides the read by
    # TimeModified, every transaction type that moves stock is asked for what was modified since the
    # last scan, and the items on their lines are read again by ListID.

    async def _begin_txns(self, conn: aiosqlite.Connection, session: Session) -> None:
        state = session.state
        baseline = await self._meta(conn, "items.watermark.inventory")
        sources: dict[str, Any] = {}
        for source in TXN_SOURCES:
            if await self._unavailable(conn, f"txns.unavailable.{source.qb_name}"):
                continue
            start = await self._meta(conn, f"txns.watermark.{source.qb_name}") or baseline
            if start is None:
                continue  # nothing read yet at all: this session's full item read covers it
            sources[source.qb_name] = {"from": start, "iterator_id": None, "remaining": None,
                                       "max_seen": None, "restarts": 0}
        state["txns"] = sources
        state["touched_ids"] = []

    async def _txns_step(self, conn: aiosqlite.Connection, session: Session) -> tuple[list[str], dict[str, Any]] | None:
        state = session.state
        if state["items"]["phase"] < len(ITEM_KINDS) or state["touched"] is not None:
            return None
        if state["txns"] is None:
            await self._begin_txns(conn, session)
        if not state["txns"]:
            await self._txns_done(conn, session)
            return None
        requests, outstanding = [], {}
        for name, scan in state["txns"].items():
            request_id = f"txn-{name}-{state['done']}"
            request = txn_changes_rq(
                TXN_SOURCE[name],
                request_id,
                from_modified=scan["from"],
                max_returned=self.config.qbwc.max_returned,
                iterator="Continue" if scan["iterator_id"] else "Start",
                iterator_id=scan["iterator_id"],
            )
            requests.append(request)
            outstanding[request_id] = {"type": "txns", "source": name, "rs": _rs_name(request)}
        return requests, outstanding

    async def _apply_txns(self, conn: aiosqlite.Connection, session: Session, name: str, rs: QBResponse | None) -> None:
        state = session.state
        scan = state["txns"][name]
        status = "error" if rs is None else classify_status(rs.status_code)
        if rs is not None and rs.status_code == NOT_AVAILABLE_STATUS:
            await self.db.set_meta(conn, f"txns.unavailable.{name}", self.now().isoformat(timespec="milliseconds"))
            log.info("qbxml_list_not_in_this_edition", session=session.id, kind=name, message=rs.message[:200])
            del state["txns"][name]
        elif status == "iterator_invalid" and scan["restarts"] < MAX_ITERATOR_RESTARTS:
            scan.update(iterator_id=None, remaining=None, restarts=scan["restarts"] + 1)
        elif rs is None or status not in ("ok", "no_match", "warning"):
            code = "no answer" if rs is None else f"{rs.status_code}: {rs.message[:500]}"
            state["error"] = f"Reading {name} transactions from QuickBooks failed ({code})."
            return
        else:
            touched = set(state["touched_ids"])
            for ret in rs.rets:
                touched |= touched_list_ids(ret, TXN_SOURCE[name])
                modified = ret.get("TimeModified")
                if modified and (scan["max_seen"] is None or qb_time_key(modified) > qb_time_key(scan["max_seen"])):
                    scan["max_seen"] = modified
            state["touched_ids"] = sorted(touched)
            if (rs.iterator_remaining or 0) > 0 and rs.iterator_id:
                scan.update(iterator_id=rs.iterator_id, remaining=rs.iterator_remaining)
            else:
                # Scanned to the end: the next scan starts here (inclusive; re-reads are harmless).
                await self.db.set_meta(conn, f"txns.watermark.{name}", scan["max_seen"] or scan["from"])
                await self.db.set_meta(conn, f"txns.unavailable.{name}", "")
                del state["txns"][name]
        if not state["txns"]:
            await self._txns_done(conn, session)

    async def _txns_done(self, conn: aiosqlite.Connection, session: Session) -> None:
        """Queue the touched items we hold, by kind, for a read by ListID."""
        state = session.state
        ids = state.get("touched_ids") or []
        queue: dict[str, list[str]] = {}
        for part in chunked(ids):
            async with conn.execute(
                f"SELECT list_id, kind FROM items WHERE list_id IN ({','.join('?' * len(part))}) ORDER BY list_id",
                list(part),
            ) as cur:
                for row in await cur.fetchall():
                    queue.setdefault(row["kind"], []).append(row["list_id"])
        state["touched"] = queue
        state["touched_ids"] = []
        log.info("qbwc_items_touched_by_transactions", session=session.id,
                 items=sum(len(v) for v in queue.values()))

    def _touched_step(self, session: Session) -> tuple[list[str], dict[str, Any]] | None:
        queue = session.state["touched"]
        if not queue:
            return None
        requests, outstanding = [], {}
        for kind in ITEM_KINDS:
            ids = queue.get(kind) or []
            if not ids:
                continue
            page, queue[kind] = ids[: self.config.qbwc.max_returned], ids[self.config.qbwc.max_returned :]
            request_id = f"touched-{kind}-{session.state['done']}"
            request = item_query_by_list_id_rq(kind, request_id, page)  # type: ignore[arg-type]
            requests.append(request)
            outstanding[request_id] = {"type": "touched", "kind": kind, "ids": page, "rs": _rs_name(request)}
        return (requests, outstanding) if requests else None

    async def _apply_touched(self, conn: aiosqlite.Connection, session: Session, kind: str, rs: QBResponse | None) -> None:
        state = session.state
        if rs is None or classify_status(rs.status_code) not in ("ok", "no_match", "warning"):
            # 500 (one of them no longer exists) is a warning and fine; anything else is not.
            code = "no answer" if rs is None else f"{rs.status_code}: {rs.message[:500]}"
            state["error"] = f"Reading {kind} items touched by transactions failed ({code})."
            return
        recorded = await record_items(
            conn, kind, rs.rets, match=self.config.inventory.match, quantity_mode=self.config.inventory.quantity
        )
        state["items_read"] += recorded.count
        state["queued"] += recorded.queued
        if recorded.queued:
            session.events.append(PendingQueued(recorded.queued))

    async def _meta(self, conn: aiosqlite.Connection, key: str) -> str | None:
        async with conn.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return None if row is None or not row[0] else str(row[0])

    async def _unavailable(self, conn: aiosqlite.Connection, key: str) -> bool:
        """Answered 3250 within the last day (an edition without it)."""
        marked = await self._meta(conn, key)
        return marked is not None and self.now() - _parse_time(marked) < NOT_AVAILABLE_RECHECK

    async def _check_step(self, conn: aiosqlite.Connection, session: Session) -> tuple[list[str], dict] | None:
        limit = self.config.qbwc.orders_per_request
        async with conn.execute(
            "SELECT id, qb_kind, ref_number FROM orders WHERE qb_state = 'sent'"
            " AND (sent_session IS NULL OR sent_session != ?) ORDER BY id LIMIT ?",
            (session.id, limit),
        ) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return None
        by_kind: dict[str, list[aiosqlite.Row]] = {}
        for row in rows:
            by_kind.setdefault(row["qb_kind"], []).append(row)
        requests, outstanding = [], {}
        for kind, kind_rows in by_kind.items():
            request_id = f"chk-{kind}-{session.requests}"
            request = txn_query_by_ref_rq(kind, [r["ref_number"] for r in kind_rows], request_id)
            requests.append(request)
            outstanding[request_id] = {
                "type": "check", "kind": kind, "orders": [r["id"] for r in kind_rows], "rs": _rs_name(request)
            }
        return requests, outstanding

    async def _add_step(self, conn: aiosqlite.Connection, session: Session) -> tuple[list[str], dict] | None:
        async with conn.execute(
            "SELECT id, qb_kind FROM orders WHERE qb_state = 'new'"
            " AND (sent_session IS NULL OR sent_session != ?) ORDER BY id LIMIT ?",
            (session.id, self.config.qbwc.orders_per_request),
        ) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return None
        docs = await txn_docs(
            self.db,
            [r["id"] for r in rows],
            customer=self.config.orders.customer,
            match=self.config.inventory.match,
        )
        requests, outstanding, unusable = [], {}, []
        for row in rows:
            request_id = f"add-{row['id']}"
            try:
                request = txn_add_rq(row["qb_kind"], docs[row["id"]], request_id)
            except (KeyError, ValueError) as exc:
                unusable.append((row["id"], str(exc)))
                continue
            requests.append(request)
            outstanding[request_id] = {"type": "add", "order": row["id"], "rs": _rs_name(request)}
        for order_id, problem in unusable:
            await self._fail_orders(conn, session, [order_id], f"The order cannot be sent to QuickBooks: {problem}")
        rows = [r for r in rows if f"add-{r['id']}" in outstanding]
        if not rows:
            return await self._add_step(conn, session)
        # Marked 'sent' before QuickBooks sees them: if the answer is lost, the next session looks
        # them up before adding anything again.
        marks = ",".join("?" * len(rows))
        await conn.execute(
            f"UPDATE orders SET qb_state = 'sent', sent_session = ?, sent_at = ?, attempts = attempts + 1,"
            f" updated_at = ? WHERE id IN ({marks})",
            (session.id, self.now().isoformat(timespec="milliseconds"), utcnow(), *[r["id"] for r in rows]),
        )
        return requests, outstanding

    async def _items_step(self, conn: aiosqlite.Connection, session: Session) -> tuple[list[str], dict] | None:
        state = session.state
        items = state["items"]
        await self._skip_unavailable(conn, session)
        if items["phase"] >= len(ITEM_KINDS):
            return None
        kind = ITEM_KINDS[items["phase"]]
        request_id = f"items-{kind}-{state['done']}"
        continuing = items["iterator_id"] is not None
        if not continuing:
            # Each iterator starts from the watermark of the last complete read; a Continue
            # re-sends the same filter.
            async with conn.execute("SELECT value FROM meta WHERE key = ?", (f"items.watermark.{kind}",)) as cur:
                row = await cur.fetchone()
            items["from"] = None if row is None else row[0]
        request = item_query_rq(
            kind,
            request_id,
            max_returned=self.config.qbwc.max_returned,
            from_modified=items.get("from"),
            iterator="Continue" if continuing else "Start",
            iterator_id=items["iterator_id"],
        )
        return [request], {request_id: {"type": "items", "kind": kind, "rs": _rs_name(request)}}

    # --- receiveResponseXML -------------------------------------------------------------------

    async def receive_response_xml(self, ticket: str, response: str, hresult: str, message: str) -> int:
        async with self.db.transaction() as conn:
            session = await self._session(conn, ticket, count=True)
            if session is None:
                log.warning("qbwc_unknown_ticket", method="receiveResponseXML")
                return -1
            percent = await self._receive(conn, session, response, hresult, message)
        self._emit(session)
        return percent

    async def _receive(
        self, conn: aiosqlite.Connection, session: Session, response: str, hresult: str, message: str
    ) -> int:
        state = session.state
        outstanding = state["outstanding"]
        if outstanding is None:
            # The same response delivered twice, or one we did not ask for: nothing to record.
            log.warning("qbwc_unexpected_response", session=session.id)
            percent = await self._percent(conn, session)
            await self._save(conn, session)
            return percent
        state["outstanding"] = None
        if hresult:
            await self._on_hresult(conn, session, outstanding, hresult, message)
            await self._save(conn, session, error=state["error"])
            return -1
        try:
            responses = parse_response(response)
        except QBXMLParseError as exc:
            state["error"] = f"The QuickBooks response could not be read ({exc}); the orders in it are checked next session."
            log.error("qbxml_response_unreadable", session=session.id, reason=str(exc)[:300])
            await self._save(conn, session, error=state["error"])
            return -1
        await conn.execute("SAVEPOINT apply_response")
        before = json.dumps(state)
        try:
            await self._apply(conn, session, outstanding, responses)
        except Exception as exc:  # a response we could not record must not leave the session stuck
            await conn.execute("ROLLBACK TO apply_response")
            # Nothing of it was recorded: the plan and the counters go back too, and nothing is announced.
            session.state = state = json.loads(before)
            session.events.clear()
            log.error("qbxml_response_not_recorded", session=session.id, error=f"{type(exc).__name__}: {str(exc)[:200]}")
            state["error"] = (
                "connex-tui could not record QuickBooks' answer; the orders in it are looked up next session."
            )
            await self._save(conn, session, error=state["error"])
            return -1
        await conn.execute("RELEASE apply_response")
        state["done"] += 1
        percent = -1 if state["error"] else await self._percent(conn, session)
        await self._save(conn, session, error=state["error"])
        return percent

    async def _on_hresult(
        self, conn: aiosqlite.Connection, session: Session, outstanding: dict, hresult: str, message: str
    ) -> None:
        state = session.state
        adds = [entry["order"] for entry in outstanding.values() if entry["type"] == "add"]
        if hresult.lower() == PARSE_ERROR_HRESULT.lower() and adds:
            # QuickBooks refused the whole message set unread: nothing was posted.
            reason = (f"QuickBooks could not read the request ({hresult[:40]}: {message[:500]})."
                      " This is a connex-tui bug; please report it.")
            await self._fail_orders(conn, session, adds, reason)
        state["error"] = f"QuickBooks reported an error ({hresult[:40]}): {(message or 'no message')[:2000]}"
        self._drop_outstanding(state, outstanding)
        log.error("qbwc_hresult", session=session.id, hresult=hresult[:40], message=message[:300])
        await self._record_request(conn, session, outstanding, None)

    async def _apply(
        self, conn: aiosqlite.Connection, session: Session, outstanding: dict, responses: list[QBResponse]
    ) -> None:
        by_id = _answers(responses, outstanding)
        for request_id, entry in outstanding.items():
            rs = by_id.get(request_id)
            await self._record_request(conn, session, {request_id: entry}, rs)
            if entry["type"] == "add":
                await self._apply_add(conn, session, entry["order"], rs)
            elif entry["type"] == "check":
                await self._apply_check(conn, session, entry["orders"], rs)
            elif entry["type"] == "txns":
                await self._apply_txns(conn, session, entry["source"], rs)
            elif entry["type"] == "touched":
                await self._apply_touched(conn, session, entry["kind"], rs)
            else:
                await self._apply_items(conn, session, entry["kind"], rs)
        unknown = {r.request_id for r in responses} - set(outstanding)
        if unknown:
            log.warning("qbxml_unknown_request_ids", session=session.id,
                        request_ids=[str(i)[:40] for i in sorted(unknown, key=str)[:10]])

    async def _apply_add(self, conn: aiosqlite.Connection, session: Session, order_id: int, rs: QBResponse | None) -> None:
        if rs is None:
            return  # no answer for it: stays 'sent', looked up next session
        status = classify_status(rs.status_code)
        txn_id = next((ret.get("TxnID") for ret in rs.rets if ret.get("TxnID")), None)
        if status in ("ok", "warning", "no_match") and txn_id:
            await self._post_order(conn, session, order_id, txn_id)
        elif status == "locked":
            # QuickBooks was busy with the record: try again next session (sent_session keeps it
            # out of this one).
            await conn.execute(
                "UPDATE orders SET qb_state = 'new', error = ?, updated_at = ? WHERE id = ?",
                (f"QuickBooks record in use ({rs.status_code}): {rs.message}; retried next session", utcnow(), order_id),
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
            await self._fail_orders(conn, session, [order_id], reason)
            session.state["failed"] += 1

    async def _post_order(self, conn: aiosqlite.Connection, session: Session, order_id: int, txn_id: str) -> None:
        number = await self._set_state(
            conn, "UPDATE orders SET qb_state = 'posted', txn_id = ?, error = NULL, updated_at = ? WHERE id = ?",
            (txn_id, utcnow(), order_id),
        )
        session.state["posted"] += 1
        log.info("order_posted", session=session.id, order=number, txn_id=txn_id)
        session.events.append(OrderPosted(order_id, number, txn_id))

    async def _fail_orders(
        self, conn: aiosqlite.Connection, session: Session, order_ids: list[int], reason: str
    ) -> None:
        for order_id in order_ids:
            number = await self._set_state(
                conn, "UPDATE orders SET qb_state = 'failed', error = ?, updated_at = ? WHERE id = ?",
                (reason, utcnow(), order_id),
            )
            log.warning("order_failed", order=number, reason=reason[:300])
            session.events.append(OrderFailed(order_id, number, reason))

    @staticmethod
    async def _set_state(conn: aiosqlite.Connection, update: str, params: tuple[Any, ...]) -> str:
        """Run an UPDATE of one order and return its number for the log, in one statement."""
        async with conn.execute(update + " RETURNING number", params) as cur:
            row = await cur.fetchone()
        return "" if row is None else row[0]

    async def _apply_check(
        self, conn: aiosqlite.Connection, session: Session, order_ids: list[int], rs: QBResponse | None
    ) -> None:
        if rs is None or classify_status(rs.status_code) not in ("ok", "no_match", "warning"):
            # The lookup itself failed: leave them in doubt, but not for the rest of this session.
            await conn.execute(
                f"UPDATE orders SET sent_session = ? WHERE id IN ({','.join('?' * len(order_ids))})",
                (session.id, *order_ids),
            )
            return
        marks = ",".join("?" * len(order_ids))
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
                session.state["found"] += 1
                log.info("order_found_in_quickbooks", session=session.id, order_id=order["id"])
                await self._post_order(conn, session, order["id"], found["TxnID"])
            elif self._surely_not_in_progress(order):
                # Not in QuickBooks, and QuickBooks is not still working on it: add it again.
                await conn.execute(
                    "UPDATE orders SET qb_state = 'new', sent_session = NULL, updated_at = ? WHERE id = ?",
                    (utcnow(), order["id"]),
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
        return self.now() - _parse_time(order["sent_at"]) > IN_DOUBT_WINDOW

    async def _apply_items(self, conn: aiosqlite.Connection, session: Session, kind: str, rs: QBResponse | None) -> None:
        state = session.state
        items = state["items"]
        status = "error" if rs is None else classify_status(rs.status_code)
        if status == "iterator_invalid" and items["restarts"] < MAX_ITERATOR_RESTARTS:
            items.update(iterator_id=None, remaining=None, restarts=items["restarts"] + 1)
            log.warning("qbxml_iterator_restarted", session=session.id, kind=kind)
            return
        if rs is not None and rs.status_code == NOT_AVAILABLE_STATUS:
            # This edition has no such list: nothing to read, and not a failure.
            await self.db.set_meta(conn, f"items.unavailable.{kind}", self.now().isoformat(timespec="milliseconds"))
            log.info("qbxml_list_not_in_this_edition", session=session.id, kind=kind, message=rs.message[:200])
            await self._kind_done(conn, session)
            return
        if rs is None or status not in ("ok", "no_match", "warning"):
            code = "no answer" if rs is None else f"{rs.status_code}: {rs.message[:500]}"
            state["error"] = f"Reading {kind} items from QuickBooks failed ({code})."
            return
        if len(rs.rets) > self.config.qbwc.max_returned:
            # QuickBooks never sends more than MaxReturned; a page that does is not QuickBooks'.
            state["error"] = (f"Reading {kind} items from QuickBooks failed: {len(rs.rets)} items in a page"
                              f" of at most {self.config.qbwc.max_returned}.")
            return
        recorded = await record_items(
            conn,
            kind,
            rs.rets,
            match=self.config.inventory.match,
            quantity_mode=self.config.inventory.quantity,
        )
        state["items_read"] += recorded.count
        state["queued"] += recorded.queued
        if recorded.queued:
            session.events.append(PendingQueued(recorded.queued))
        if recorded.max_time_modified and (
            items["max_seen"] is None or qb_time_key(recorded.max_time_modified) > qb_time_key(items["max_seen"])
        ):
            items["max_seen"] = recorded.max_time_modified
        remaining = rs.iterator_remaining or 0
        if remaining > 0 and rs.iterator_id:
            items.update(iterator_id=rs.iterator_id, remaining=remaining)
            return
        # This kind is read completely: its watermark moves (inclusive, so re-reads are harmless).
        if items["max_seen"]:
            await self.db.set_meta(conn, f"items.watermark.{kind}", items["max_seen"])
        await self.db.set_meta(conn, f"items.unavailable.{kind}", "")  # answered: available after all
        await self._kind_done(conn, session)

    async def _kind_done(self, conn: aiosqlite.Connection, session: Session) -> None:
        items = session.state["items"]
        items.update(phase=items["phase"] + 1, iterator_id=None, remaining=None, max_seen=None, restarts=0)
        await self._skip_unavailable(conn, session)

    async def _skip_unavailable(self, conn: aiosqlite.Connection, session: Session) -> None:
        """Move past the kinds this edition answered 3250 for within the last day; when that reaches
        the end of the item read, the read is complete."""
        state = session.state
        items = state["items"]
        while items["phase"] < len(ITEM_KINDS) and items["iterator_id"] is None:
            if not await self._unavailable(conn, f"items.unavailable.{ITEM_KINDS[items['phase']]}"):
                return
            items["phase"] += 1
        if items["phase"] >= len(ITEM_KINDS) and not state.get("items_complete"):
            state["items_complete"] = True
            await self.db.set_meta(conn, "items.last_complete", self.now().isoformat(timespec="milliseconds"))
            session.events.append(ItemsRead(state["items_read"], state["queued"]))

    async def _record_request(
        self, conn: aiosqlite.Connection, session: Session, outstanding: dict, rs: QBResponse | None
    ) -> None:
        now = utcnow()
        await conn.executemany(
            "INSERT INTO qb_requests(session_id, at, request_id, kind, status_code, severity, message)"
            " VALUES (?,?,?,?,?,?,?)",
            [
                (
                    session.id,
                    now,
                    request_id,
                    entry["type"],
                    None if rs is None else rs.status_code,
                    None if rs is None else rs.severity,
                    None if rs is None else rs.message[:1000],
                )
                for request_id, entry in outstanding.items()
            ],
        )

    # --- progress -----------------------------------------------------------------------------

    async def _percent(self, conn: aiosqlite.Connection, session: Session) -> int:
        """done / (done + remaining), never 100 while anything remains."""
        remaining = await self._remaining_steps(conn, session)
        if remaining == 0:
            return 100
        done = session.state["done"]
        return min(99, math.floor(100 * done / (done + remaining)))

    async def _remaining_steps(self, conn: aiosqlite.Connection, session: Session) -> int:
        per = self.config.qbwc.orders_per_request
        async with conn.execute(
            "SELECT qb_state, count(*) FROM orders WHERE qb_state IN ('new', 'sent')"
            " AND (sent_session IS NULL OR sent_session != ?) GROUP BY qb_state",
            (session.id,),
        ) as cur:
            counts = {row[0]: row[1] for row in await cur.fetchall()}
        steps = math.ceil(counts.get("sent", 0) / per) + math.ceil(counts.get("new", 0) / per)
        await self._skip_unavailable(conn, session)
        items = session.state["items"]
        kinds_left = len(ITEM_KINDS) - items["phase"]
        page = self.config.qbwc.max_returned
        if kinds_left > 0:
            if items["remaining"]:
                steps += math.ceil(items["remaining"] / page)
                kinds_left -= 1
            steps += kinds_left
        state = session.state
        if state["touched"] is None:
            # The transaction scan (all sources in one message set per page) and, after it, at
            # least one read of the items it finds (counted as one until it is known).
            scans = state["txns"]
            pages = max((math.ceil((scan["remaining"] or 1) / page) for scan in scans.values()), default=0) if scans else 1
            steps += pages + 1 if scans is None or scans else 0
        else:
            steps += max((math.ceil(len(ids) / page) for ids in state["touched"].values()), default=0)
        return steps

    # --- the rest of the protocol -------------------------------------------------------------

    async def connection_error(self, ticket: str, hresult: str, message: str) -> str:
        async with self.db.transaction() as conn:
            session = await self._session(conn, ticket, count=True)
            if session is not None:
                recorded = await recorded_company(conn)
                if hresult.strip().lower() == OTHER_FILE_OPEN_HRESULT.lower() and recorded is not None:
                    # BeginSession refused the recorded path: QuickBooks has another file open.
                    session.state["wrong_company"] = True
                    session.state["error"] = (
                        f"QuickBooks has another company file open ({hresult[:40]}: {(message or 'no message')[:500]})."
                        f" connex-tui works with {recorded.describe()}; this session posted and pushed nothing."
                        " Open that file in QuickBooks, or run `connex-tui company accept` to work with whichever"
                        " file is open at the next run."
                    )
                else:
                    session.state["error"] = (
                        f"The Web Connector could not open QuickBooks ({hresult[:40]}): {(message or 'no message')[:2000]}."
                        " Is QuickBooks running with the company file open?"
                    )
                await self._save(conn, session, error=session.state["error"])
        log.error("qbwc_connection_error", hresult=hresult[:40], message=message[:300])
        return "done"

    async def get_last_error(self, ticket: str) -> str:
        async with self.db.transaction() as conn:
            session = await self._session(conn, ticket, count=True)
            if session is None:
                return "Unknown or expired ticket: the session ended. The next scheduled run starts a new one."
            error = session.state.get("error")
        if error:
            return str(error)
        return "Nothing left to do in this session."

    async def close_connection(self, ticket: str) -> str:
        async with self.db.transaction() as conn:
            session = await self._session(conn, ticket, count=True)
            if session is None:
                return "Session already closed."
            state = session.state
            if state["outstanding"]:
                self._drop_outstanding(state)
            result = "wrong_company" if state.get("wrong_company") else "error" if state["error"] else "ok"
            if result == "ok" and state.get("company"):
                # The first successful session records the company file every later one must match.
                company = CompanyFile.from_json(state["company"])
                if company is not None:
                    await record_company(conn, company)
            summary = self._summary(state)
            await self._save(conn, session, ended=self.now().isoformat(timespec="milliseconds"), result=result)
        log.info("qbwc_session_end", session=session.id, result=result, requests=session.requests, summary=summary)
        self.bus.emit(SessionEnded(session.id, result, session.requests, summary))
        return summary if result == "ok" else f"Failed: {state['error']}"

    @staticmethod
    def _summary(state: dict[str, Any]) -> str:
        parts = [f"{state['posted']} orders posted"]
        if state["failed"]:
            parts.append(f"{state['failed']} failed")
        parts.append(f"{state['items_read']} items read")
        return "OK: " + ", ".join(parts)
