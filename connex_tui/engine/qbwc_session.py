"""The Web Connector session: the endpoint's QBWCHandler on top of the database.

It puts three units together, sharing one `SessionContext` (the database, whose clock is the
engine's one, and the configuration):
  * tickets and sessions (`session_tickets`): who may begin, which session a call belongs to,
    the typed state saved with each session row (`session_state`);
  * planning (`session_plan`): what to ask QuickBooks next, and how much is left;
  * recording (`session_record`): QuickBooks' answers applied to the database.
A session's plan is derived from the database at every call plus its saved state, so a restart
of connex-tui in the middle of a session loses nothing. Every response is recorded in the same
transaction that advances the plan; the events of a call go out after its commit.
"""

from __future__ import annotations

import asyncio
import hmac

import aiosqlite
import structlog

from .. import __version__
from ..soap.qbxml import QBXMLParseError, message_set, negotiate_version, parse_response
from .auth_throttle import AuthThrottle
from .company import (
    CompanyFile,
    company_from_hcp,
    mismatch,
    our_owner_id,
    record_company,
    recorded_company,
    remember_refused,
)
from .config import Config
from .db import Database
from .events import EventBus, SessionEnded, SessionStarted
from .session_plan import Planner
from .session_record import IN_DOUBT_WINDOW, Recorder, drop_outstanding
from .session_state import SessionState
from .session_tickets import Session, SessionBook, SessionContext, hash_ticket, new_ticket

__all__ = ["IN_DOUBT_WINDOW", "QBWCSessions", "hash_ticket", "new_ticket"]

log = structlog.get_logger("connex.session")

# BeginSession: "A QuickBooks company data file is already open and it is different from the one
# requested" (QBXMLRP2 HRESULT table; the Web Connector passes it to connectionError).
OTHER_FILE_OPEN_HRESULT = "0x8004040A"


class QBWCSessions:
    """Implements the endpoint's QBWCHandler on top of the database."""

    def __init__(
        self,
        db: Database,
        config: Config,
        bus: EventBus | None = None,
    ) -> None:
        self.db = db
        self.ctx = SessionContext(db, config)
        self.bus = bus or EventBus()
        self.auth_throttle = AuthThrottle(clock=db.clock.monotonic)
        self.book = SessionBook(self.ctx)
        self.planner = Planner(self.ctx)
        self.recorder = Recorder(self.ctx, self.planner)

    # The configuration lives in the shared context: setting it here sets it for every unit (a
    # reload swaps it). The clock is the database's (`db.clock`), the engine's one.
    @property
    def config(self) -> Config:
        return self.ctx.config

    @config.setter
    def config(self, config: Config) -> None:
        self.ctx.config = config

    async def close_interrupted(self) -> int:
        """At start-up: sessions an earlier process left open cannot go on (the Web Connector's
        calls failed while we were down, and it gave up). Closing them lets the next session in
        instead of answering "busy"; their orders stay 'sent' and are looked up next time."""
        async with self.db.transaction() as conn:
            return await self.book.close_interrupted(conn)

    def _emit(self, session: Session) -> None:
        """After the commit: what this call recorded, for the listeners."""
        events, session.events = session.events, []
        for event in events:
            self.bus.emit(event)

    # --- the handshake ------------------------------------------------------------------------

    async def server_version(self) -> str:
        return f"connex-tui {__version__}"

    async def client_version(self, version: str) -> str:
        return ""

    async def authenticate(self, username: str, password: str, client: str) -> list[str]:
        qbwc = self.config.qbwc
        # Both comparisons always run, in constant time, so timing tells nothing about which failed.
        user_ok = hmac.compare_digest(username.encode("utf-8"), qbwc.username.encode("utf-8"))
        pass_ok = hmac.compare_digest(password.encode("utf-8"), qbwc.password.reveal().encode("utf-8"))
        if not (user_ok & pass_ok):
            # The right credentials are never refused (no lockout of the real Web Connector);
            # wrong ones from a (user, address) that keeps failing are answered slowly.
            hold = self.auth_throttle.failed(username, client)
            log.warning("qbwc_auth_failed", client=client, username=username[:64], held_seconds=hold)
            if hold:
                await asyncio.sleep(hold)
            return ["", "nvu"]
        self.auth_throttle.succeeded(username, client)
        now = self.ctx.now()
        ticket = new_ticket()
        async with self.db.transaction() as conn:
            await self.book.expire_idle(conn, now)
            superseded = await self.book.open_session(conn)
            if superseded is not None:
                wait = self.book.concurrent_wait(superseded, now)
                if wait:
                    log.warning("qbwc_busy", client=client, open_session=superseded.id, retry_seconds=wait)
                    return ["", "busy", str(wait), ""]
            has_work = await self.planner.has_work(conn, now)
            session_id = await self.book.begin(conn, ticket, client, now, work=has_work)
            if superseded is not None:
                await self.book.supersede(conn, superseded, session_id, now)
            come_back = None if has_work else await self.planner.seconds_until_work(conn, now)
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

    # --- sendRequestXML -----------------------------------------------------------------------

    async def send_request_xml(
        self, ticket: str, hcp_response: str, company_file: str, country: str, major: str, minor: str
    ) -> str:
        async with self.db.transaction() as conn:
            session = await self.book.lookup(conn, ticket, count=True)
            if session is None:
                log.warning("qbwc_unknown_ticket", method="sendRequestXML")
                return ""
            requests = await self._send(conn, session, hcp_response, company_file, major, minor)
        self._emit(session)
        if not requests:
            return ""
        return message_set(requests, session.state.version, on_error="continueOnError")

    async def _send(
        self, conn: aiosqlite.Connection, session: Session, hcp_response: str, company_file: str, major: str, minor: str
    ) -> list[str]:
        state = session.state
        columns: dict[str, str | int | None] = {}
        if state.done == 0 and state.outstanding is None and state.company is None:
            state.version = negotiate_version(major, minor)
            columns = {"company": company_file[:260], "qbxml_version": state.version}
            await self._check_company(
                conn, session, company_from_hcp(company_file, hcp_response, await our_owner_id(conn))
            )
        if state.wrong_company:
            await self.book.save(conn, session, error=state.error, **columns)
            return []  # another company file: nothing is asked, nothing posted or read
        if state.outstanding is not None:
            # sendRequestXML again without a response: the last exchange was disrupted. Adds in it
            # stay 'sent' and are looked up next session; an iterator restarts from its watermark.
            log.warning("qbwc_exchange_disrupted", session=session.id)
            drop_outstanding(state)
        requests, outstanding = await self.planner.next_step(conn, session)
        state.outstanding = outstanding
        if not requests:
            state.finished = True
        await self.book.save(conn, session, **columns)
        return requests

    async def _check_company(self, conn: aiosqlite.Connection, session: Session, current: CompanyFile) -> None:
        state = session.state
        state.company = current.to_json()
        recorded = await recorded_company(conn)
        if recorded is None:
            return  # recorded when this session ends well
        what = mismatch(recorded, current)
        if what is None:
            return
        await remember_refused(conn, current)
        state.wrong_company = True
        state.error = (
            f"QuickBooks has {what} open: {current.describe()}. connex-tui works with {recorded.describe()};"
            " this session posted and pushed nothing. Open that file in QuickBooks, or run"
            " `connex-tui company accept` to work with this one from now on."
        )
        log.error("qbwc_wrong_company_file", session=session.id, recorded=recorded.path[:260], open=current.path[:260])

    # --- receiveResponseXML -------------------------------------------------------------------

    async def receive_response_xml(self, ticket: str, response: str, hresult: str, message: str) -> int:
        async with self.db.transaction() as conn:
            session = await self.book.lookup(conn, ticket, count=True)
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
        outstanding = state.outstanding
        if outstanding is None:
            # The same response delivered twice, or one we did not ask for: nothing to record.
            log.warning("qbwc_unexpected_response", session=session.id)
            percent = await self.planner.percent(conn, session)
            await self.book.save(conn, session)
            return percent
        state.outstanding = None
        if hresult:
            await self.recorder.on_hresult(conn, session, outstanding, hresult, message)
            await self.book.save(conn, session, error=state.error)
            return -1
        try:
            responses = parse_response(response)
        except QBXMLParseError as exc:
            state.error = (
                f"The QuickBooks response could not be read ({exc}); the orders in it are checked next session."
            )
            log.error("qbxml_response_unreadable", session=session.id, reason=str(exc)[:300])
            await self.book.save(conn, session, error=state.error)
            return -1
        await conn.execute("SAVEPOINT apply_response")
        before = state.to_json()
        try:
            await self.recorder.apply(conn, session, outstanding, responses)
        except Exception as exc:  # a response we could not record must not leave the session stuck
            await conn.execute("ROLLBACK TO apply_response")
            # Nothing of it was recorded: the plan and the counters go back too, and nothing is announced.
            session.state = state = SessionState.from_json(before)
            session.events.clear()
            log.error(
                "qbxml_response_not_recorded", session=session.id, error=f"{type(exc).__name__}: {str(exc)[:200]}"
            )
            state.error = "connex-tui could not record QuickBooks' answer; the orders in it are looked up next session."
            await self.book.save(conn, session, error=state.error)
            return -1
        await conn.execute("RELEASE apply_response")
        state.done += 1
        percent = -1 if state.error else await self.planner.percent(conn, session)
        await self.book.save(conn, session, error=state.error)
        return percent

    # --- the rest of the protocol -------------------------------------------------------------

    async def connection_error(self, ticket: str, hresult: str, message: str) -> str:
        async with self.db.transaction() as conn:
            session = await self.book.lookup(conn, ticket, count=True)
            if session is not None:
                state = session.state
                recorded = await recorded_company(conn)
                if hresult.strip().lower() == OTHER_FILE_OPEN_HRESULT.lower() and recorded is not None:
                    # BeginSession refused the recorded path: QuickBooks has another file open.
                    state.wrong_company = True
                    state.error = (
                        f"QuickBooks has another company file open ({hresult[:40]}: {(message or 'no message')[:500]})."
                        f" connex-tui works with {recorded.describe()}; this session posted and pushed nothing."
                        " Open that file in QuickBooks, or run `connex-tui company accept` to work with whichever"
                        " file is open at the next run."
                    )
                else:
                    state.error = (
                        f"The Web Connector could not open QuickBooks ({hresult[:40]}): {(message or 'no message')[:2000]}."
                        " Is QuickBooks running with the company file open?"
                    )
                await self.book.save(conn, session, error=state.error)
        log.error("qbwc_connection_error", hresult=hresult[:40], message=message[:300])
        return "done"

    async def get_last_error(self, ticket: str) -> str:
        async with self.db.transaction() as conn:
            session = await self.book.lookup(conn, ticket, count=True)
            if session is None:
                return "Unknown or expired ticket: the session ended. The next scheduled run starts a new one."
            error = session.state.error
        if error:
            return str(error)
        return "Nothing left to do in this session."

    async def close_connection(self, ticket: str) -> str:
        async with self.db.transaction() as conn:
            session = await self.book.lookup(conn, ticket, count=True)
            if session is None:
                return "Session already closed."
            state = session.state
            if state.outstanding:
                drop_outstanding(state)
            result = "wrong_company" if state.wrong_company else "error" if state.error else "ok"
            if result == "ok" and state.company:
                # The first successful session records the company file every later one must match.
                company = CompanyFile.from_json(state.company)
                if company is not None:
                    await record_company(conn, company)
            summary = state.summary()
            await self.book.save(conn, session, ended=self.ctx.stamp(), result=result)
        log.info("qbwc_session_end", session=session.id, result=result, requests=session.requests, summary=summary)
        self.bus.emit(SessionEnded(session.id, result, session.requests, summary))
        return summary if result == "ok" else f"Failed: {state.error}"
