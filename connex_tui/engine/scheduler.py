"""Scheduled tasks: each runs on its interval, can be woken early, and can be run now by name.

The `tasks` table holds each task's interval, last run, next run and last result, so the
interface, the admin commands and another process can see and steer them: setting a task's
next_run to now (what `run_now` does) is picked up within a second, from this process or another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from .clock import parse_stamp, stamp
from .db import Database
from .events import EventBus, TaskFinished

log = structlog.get_logger("connex.tasks")

POLL_SECONDS = 1.0  # how soon a change made by another process (run now) is noticed


@dataclass(frozen=True)
class TaskResult:
    summary: str
    again_at: datetime | None = None  # run again sooner than the interval (the queue has more)
    quiet: bool = False  # nothing happened worth an entry in the event log


TaskFn = Callable[[], Awaitable[TaskResult]]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    interval_seconds: int
    run: TaskFn
    first_run_delay: float = 0.0  # seconds after start-up


class Scheduler:
    def __init__(self, db: Database, specs: list[TaskSpec], bus: EventBus | None = None) -> None:
        self.db = db
        self.bus = bus or EventBus()
        self.specs = {spec.name: spec for spec in specs}
        self._wake = {name: asyncio.Event() for name in self.specs}
        self._loops: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Future[str]] = {}

    async def start(self) -> None:
        now = self.db.clock.now()
        async with self.db.transaction() as conn:
            for spec in self.specs.values():
                await conn.execute(
                    "INSERT INTO tasks(name, interval_seconds, next_run) VALUES (?, ?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET interval_seconds = excluded.interval_seconds,"
                    " next_run = min(coalesce(tasks.next_run, excluded.next_run), excluded.next_run)",
                    (spec.name, spec.interval_seconds, stamp(now + timedelta(seconds=spec.first_run_delay))),
                )
        self._loops = [asyncio.create_task(self._loop(spec), name=f"task:{spec.name}") for spec in self.specs.values()]

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []

    def wake(self, name: str) -> None:
        if name in self._wake:
            self._wake[name].set()

    async def run_now(self, name: str) -> None:
        """Make `name` due now (works the same from another process through the database)."""
        if name not in self.specs:
            raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(self.specs))}")
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE tasks SET next_run = ? WHERE name = ?", (self.db.clock.stamp(), name))
        self.wake(name)

    async def run_and_wait(self, name: str) -> str:
        """Run `name` now and return its result (for tests and the demo)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._running[name] = future
        await self.run_now(name)
        return await future

    async def _due_in(self, name: str) -> float:
        next_run = await self.db.fetchval("SELECT next_run FROM tasks WHERE name = ?", (name,))
        if next_run is None:
            return 0.0
        return (parse_stamp(next_run) - self.db.clock.now()).total_seconds()

    async def _wait_due(self, name: str) -> None:
        event = self._wake[name]
        while True:
            delay = await self._due_in(name)
            if delay <= 0 or event.is_set():
                event.clear()
                return
            try:
                await asyncio.wait_for(event.wait(), timeout=min(delay, POLL_SECONDS))
            except asyncio.TimeoutError:
                pass

    async def _loop(self, spec: TaskSpec) -> None:
        while True:
            await self._wait_due(spec.name)
            due_at = await self.db.fetchval("SELECT next_run FROM tasks WHERE name = ?", (spec.name,))
            started = self.db.clock.now()
            try:
                result = await spec.run()
                summary = f"ok: {result.summary}"
                ok = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing task is recorded and retried later, never fatal
                log.error("task_failed", task=spec.name, error=str(exc)[:300])
                result = TaskResult(str(exc))
                summary = f"error: {exc}"
                ok = False
            if not ok or not result.quiet:
                self.bus.emit(TaskFinished(spec.name, summary, ok))
            next_run = started + timedelta(seconds=spec.interval_seconds)
            if result.again_at is not None and result.again_at < next_run:
                next_run = max(result.again_at, self.db.clock.now())
            async with self.db.transaction() as conn:
                await conn.execute(
                    "UPDATE tasks SET last_run = ?, next_run = CASE WHEN next_run IS ? THEN ? ELSE next_run END,"
                    " last_result = ? WHERE name = ?",
                    # A run-now request that arrived while this run was going keeps its time.
                    (stamp(started), due_at, stamp(next_run), summary[:500], spec.name),
                )
            future = self._running.pop(spec.name, None)
            if future is not None and not future.done():
                future.set_result(summary)
