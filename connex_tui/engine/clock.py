"""The engine's one clock and its one timestamp format.

Nothing in the engine reads the time on its own: the `Engine` makes one `Clock` and opens the
database with it, and every part reads `db.clock` (every time it reads is compared with, or stored
in, that database). Tests and tools hand in their own clock (a subclass that says what time it is)
and so move time for the whole engine at once.

Stored times are `stamp()` text: ISO 8601 in UTC with milliseconds
("2026-03-09T14:03:27.120+00:00"). One fixed width and offset, so the SQL compares and sorts them as
text; `parse_stamp` reads them back (and any ISO 8601 text with an offset).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


def stamp(moment: datetime) -> str:
    """`moment` as stored text; a naive datetime is taken to be UTC already."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds")


def parse_stamp(text: str) -> datetime:
    """Stored text back to an aware datetime; ValueError names nothing, so callers that read
    untrusted text say where it came from."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_stamp_or_none(text: str | None) -> datetime | None:
    """`parse_stamp`, with None for no text or text that is not a time (what a screen or a
    metric shows as "unknown" rather than failing on)."""
    if not text:
        return None
    try:
        return parse_stamp(text)
    except (TypeError, ValueError):
        return None


class Clock:
    """The machine's clocks: wall time (aware, UTC) and an elapsed-time counter.

    Subclass it to decide what time it is (the tests' `ManualClock` stands still until moved)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a counter that never goes back (waits, deadlines, rates), not wall time."""
        return time.monotonic()

    def stamp(self, *, after_seconds: float = 0.0) -> str:
        """Now (or `after_seconds` from now; negative is the past) as stored text."""
        moment = self.now()
        return stamp(moment + timedelta(seconds=after_seconds) if after_seconds else moment)


SYSTEM_CLOCK = Clock()
