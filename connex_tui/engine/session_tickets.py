"""Tickets and sessions: which Web Connector session a call belongs to, and which may begin.

A ticket is random and stored hashed. A session is a `qbwc_sessions` row; its typed state
(`SessionState`) is saved with it at the end of every call. Everything here runs inside the
caller's transaction and reads the time from the one clock of the `SessionContext`.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiosqlite

from .config import Config
from .clock import parse_stamp, stamp
from .db import Database
from .events import Event
from .session_state import SessionState


def hash_ticket(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("utf-8")).hexdigest()


def new_ticket() -> str:
    return secrets.token_hex(20)


@dataclass
class SessionContext:
    """What every unit of the planner shares: the database (and its clock, the engine's one) and
    the configuration."""

    db: Database
    config: Config

    def now(self) -> datetime:
        return self.db.clock.now()

    def stamp(self) -> str:
        return self.db.clock.stamp()


@dataclass
class Session:
    id: int
    state: SessionState
    requests: int
    # Events of this call, emitted only once its transaction has committed (none for what a
    # rollback undid): a listener never hears "posted" for an order the database does not hold.
    events: list[Event] = field(default_factory=list)


@dataclass
class OpenSession:
    """A session still open when a Web Connector authenticates."""

    id: int
    last_seen: datetime
    requests: int
    quiet: float = 0.0

    def reason(self, by: int) -> str:
        return (
            f"Superseded by session {by}: the Web Connector started a new run after {self.quiet:g} s"
            " without a call from this one (its connection dropped). Orders it handed to QuickBooks"
            " are looked up before anything is added again."
        )


class SessionBook:
    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx

    async def close_interrupted(self, conn: aiosqlite.Connection) -> int:
        cur = await conn.execute(
            "UPDATE qbwc_sessions SET ended = ?, result = 'interrupted',"
            " error = coalesce(error, 'connex-tui stopped during this session') WHERE ended IS NULL",
            (self.ctx.stamp(),),
        )
        return cur.rowcount

    async def expire_idle(self, conn: aiosqlite.Connection, now: datetime) -> None:
        cutoff = stamp(now - timedelta(minutes=self.ctx.config.qbwc.ticket_idle_minutes))
        await conn.execute(
            "UPDATE qbwc_sessions SET ended = ?, result = 'expired' WHERE ended IS NULL AND last_seen < ?",
            (stamp(now), cutoff),
        )

    async def open_session(self, conn: aiosqlite.Connection) -> OpenSession | None:
        async with conn.execute(
            "SELECT id, last_seen, requests FROM qbwc_sessions WHERE ended IS NULL ORDER BY id DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return OpenSession(id=int(row["id"]), last_seen=parse_stamp(row["last_seen"]), requests=int(row["requests"]))

    def concurrent_wait(self, session: OpenSession, now: datetime) -> int:
        """Seconds another Web Connector should wait, or 0 when the open session has gone quiet.

        The Web Connector runs one update per application at a time (its UpdateLock) and, after a
        transport error between sendRequestXML and receiveResponseXML, ends the run without
        closeConnection or connectionError. So a new authenticate from our user over a quiet
        session means that session is dead; only one that answered a call moments ago belongs to
        a second, genuinely concurrent Web Connector."""
        window = timedelta(seconds=self.ctx.config.qbwc.concurrent_seconds)
        quiet = now - session.last_seen
        if quiet >= window:
            return 0
        return max(1, math.ceil((window - quiet).total_seconds()))

    async def supersede(self, conn: aiosqlite.Connection, session: OpenSession, by: int, now: datetime) -> None:
        """Close a dead session at once. The orders it handed over stay 'sent' (in doubt): the new
        session looks them up, and adds one again only once QuickBooks cannot still be at it."""
        session.quiet = round((now - session.last_seen).total_seconds(), 1)
        await conn.execute(
            "UPDATE qbwc_sessions SET ended = ?, result = 'superseded', error = ? WHERE id = ?",
            (stamp(now), session.reason(by), session.id),
        )

    async def begin(self, conn: aiosqlite.Connection, ticket: str, client: str, now: datetime, *, work: bool) -> int:
        at = stamp(now)
        cur = await conn.execute(
            "INSERT INTO qbwc_sessions(ticket_hash, client, started, last_seen, ended, result, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                hash_ticket(ticket),
                client,
                at,
                at,
                None if work else at,
                None if work else "none",
                SessionState().to_json(),
            ),
        )
        return int(cur.lastrowid or 0)

    async def lookup(self, conn: aiosqlite.Connection, ticket: str, *, count: bool) -> Session | None:
        """The open session this ticket belongs to, touched; None for unknown, ended or idle ones."""
        if not ticket:
            return None
        now = self.ctx.now()
        async with conn.execute(
            "SELECT id, state, requests, last_seen FROM qbwc_sessions WHERE ticket_hash = ? AND ended IS NULL",
            (hash_ticket(ticket),),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        idle = timedelta(minutes=self.ctx.config.qbwc.ticket_idle_minutes)
        if now - parse_stamp(row["last_seen"]) > idle:
            await conn.execute(
                "UPDATE qbwc_sessions SET ended = ?, result = 'expired' WHERE id = ?",
                (stamp(now), row["id"]),
            )
            return None
        requests = int(row["requests"]) + (1 if count else 0)
        await conn.execute(
            "UPDATE qbwc_sessions SET last_seen = ?, requests = ? WHERE id = ?",
            (stamp(now), requests, row["id"]),
        )
        return Session(id=int(row["id"]), state=SessionState.from_json(row["state"]), requests=requests)

    async def save(self, conn: aiosqlite.Connection, session: Session, **columns: str | int | None) -> None:
        sets = ", ".join(f"{name} = ?" for name in ["state", *columns])
        await conn.execute(
            f"UPDATE qbwc_sessions SET {sets} WHERE id = ?",
            (session.state.to_json(), *columns.values(), session.id),
        )
