"""Failed Web Connector logins, counted per (user name, client address), so a password cannot be
guessed at network speed, without ever locking the real Web Connector out.

The right user name and password always get in: a stranger who knows the endpoint could
otherwise keep the merchant's sync locked for good (behind a reverse proxy every request comes
from the proxy's address). What is throttled is the wrong answers: after `max_failures`
failures within `window` seconds, a (user, address) pair is slowed down for a period that
doubles with each such lockout up to `max_lock`, and during it every further wrong attempt is
answered only after `delay` seconds. A guesser gets one answer per `delay` per connection; the
endpoint caps connections per address (soap/server.py, EndpointLimits). A success clears the
pair's record.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_TRACKED = 10_000  # (user, address) pairs remembered at most; the oldest are forgotten first
USER_CHARS = 64  # of a user name kept as part of a key (a 1 MB user name is not a new key each time)


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0


class AuthThrottle:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: float = 60.0,
        base_lock: float = 30.0,
        max_lock: float = 900.0,
        delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.base_lock = base_lock
        self.max_lock = max_lock
        self.delay = delay
        self.clock = clock
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

    @staticmethod
    def _key(user: str, client: str) -> tuple[str, str]:
        return (user[:USER_CHARS], client)

    def locked_for(self, user: str, client: str) -> float:
        """Seconds this pair's slow-down still lasts (0 when none)."""
        record = self._records.get(self._key(user, client))
        return 0.0 if record is None else max(0.0, record.locked_until - self.clock())

    def failed(self, user: str, client: str) -> float:
        """Count a failure; returns how long to hold this wrong answer back (0: answer now)."""
        now = self.clock()
        key = self._key(user, client)
        record = self._records.pop(key, None) or _Record()
        self._records[key] = record  # most recently seen last
        while len(self._records) > MAX_TRACKED:
            self._records.popitem(last=False)
        if record.locked_until > now:
            return self.delay
        while record.failures and record.failures[0] <= now - self.window:
            record.failures.popleft()
        record.failures.append(now)
        if len(record.failures) < self.max_failures:
            return 0.0
        # float(): int ** int is Any to mypy
        record.locked_until = now + min(self.max_lock, self.base_lock * float(2**record.lockouts))
        record.lockouts += 1
        record.failures.clear()
        return self.delay

    def locked_addresses(self) -> int:
        """How many (user, address) pairs are slowed down right now (for /metrics)."""
        now = self.clock()
        return sum(1 for record in self._records.values() if record.locked_until > now)

    def succeeded(self, user: str, client: str) -> None:
        self._records.pop(self._key(user, client), None)
