"""Engine events written to the `events` table, so the interface can tail them from any process.

Events arrive on the bus synchronously; they are buffered and written in one transaction every
half second, so a burst (a session posting 1,000 orders) costs a handful of writes.
"""

from __future__ import annotations

import asyncio
import structlog

from .db import Database
from .events import Event, EventBus, PendingQueued

log = structlog.get_logger("connex.events")

FLUSH_SECONDS = 0.5
KEEP_EVENTS = 20_000
QUIET = (PendingQueued,)  # one per page of items: too chatty for a person's log


class EventRecorder:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db = db
        self._buffer: list[tuple[str, str, str, str]] = []
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, QUIET):
            return
        level, message = event.describe()
        at = self.db.clock.stamp()
        self._buffer.append((at, level, type(event).__name__, message[:2000]))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-recorder")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            async with self.db.transaction() as conn:
                await conn.executemany("INSERT INTO events(at, level, kind, message) VALUES (?,?,?,?)", batch)
        except Exception as exc:  # the log of events must never stop the sync
            log.warning("event_log_write_failed", error=str(exc)[:200])

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()


async def trim_events(db: Database, keep: int = KEEP_EVENTS) -> int:
    async with db.transaction() as conn:
        cur = await conn.execute("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (keep,))
        return cur.rowcount
