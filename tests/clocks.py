"""A clock the tests set: the engine's `Clock` with wall time that moves only when told.

Hand one to `Engine(config, clock=...)`, `Database.open(path, clock)` or `Backend(..., clock=...)`
and every part reads it (the engine has no other clock). Elapsed time (`monotonic`) stays the
machine's unless a test sets `elapsed` too, so timeouts and rate figures behave as in production.
"""

from __future__ import annotations

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
    """A running engine reads `clock` from now on (every part asks the database for the time)."""
    assert engine.db is not None
    engine.clock = engine.db.clock = clock
    return clock
