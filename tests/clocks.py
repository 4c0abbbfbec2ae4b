"""Clocks the tests set.

`ManualClock`/`ShiftedClock` are the engine's `Clock` with wall time that moves only when told: hand
one to `Engine(config, clock=...)`, `Database.open(path, clock)` or `Backend(..., clock=...)` and
every part reads it (the engine has no other clock). Elapsed time (`monotonic`) stays the machine's
unless a test sets `elapsed` too, so timeouts and rate figures behave as in production.

`VirtualTime` is an elapsed-time counter with its own `sleep`, for the store clients' pacing and the
emulators' rate limits: time moves only when the code under test sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from connex_tui.engine.clock import Clock
from connex_tui.engine.runtime import Engine


class ManualClock(Clock):
    def __init__(self, at: datetime, *, elapsed: float | None = None) -> None:
        self.at = at
        self.elapsed = elapsed  # None: the machine's monotonic counter

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return super().monotonic() if self.elapsed is None else self.elapsed

    def advance(self, **delta: float) -> datetime:
        """Move wall time (and a set elapsed counter) forward; returns the new time."""
        step = timedelta(**delta)
        self.at += step
        if self.elapsed is not None:
            self.elapsed += step.total_seconds()
        return self.at


class ShiftedClock(Clock):
    """The machine's wall time moved by `offset` (a test jumps ahead without freezing time)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def use_clock(engine: Engine, clock: Clock) -> Clock:
    """A running engine reads its wall time from `clock` from now on (every part asks the database
    for it). Elapsed-time counters handed out at start (login throttle, endpoint timers, the store
    client's pacing) keep the clock they were given: tests here move wall time only."""
    assert engine.db is not None
    engine.clock = engine.db.clock = clock
    return clock


class VirtualTime:
    """Seconds that move only when the code under test sleeps (or the test sets `now`): a store's
    throttle is enforced, and waited out, without the test waiting for real. Pass the object as
    the clock (calling it gives the time) and its `sleep`; `slept` lists every wait asked for."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)  # others run meanwhile, as in a real wait
