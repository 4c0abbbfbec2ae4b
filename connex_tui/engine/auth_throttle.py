"""Failed Web Connector logins, counted per client address, so a password cannot be guessed at
network speed: after `max_failures` failures within `window` seconds the address is refused
outright (even with the right password) for a lock that doubles with each lockout, up to
`max_lock`. A success clears the address's record."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_TRACKED = 10_000  # addresses remembered at most; the oldest are forgotten first


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.base_lock = base_lock
        self.max_lock = max_lock
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def locked_for(self, client: str) -> float:
        """Seconds this address must still wait (0 when it may try)."""
        record = self._records.get(client)
        return 0.0 if record is None else max(0.0, record.locked_until - self.clock())

    def failed(self, client: str) -> float:
        """Count a failure; returns the lock it caused (0 when none)."""
        now = self.clock()
        record = self._records.pop(client, None) or _Record()
        self._records[client] = record  # most recently seen last
        while record.failures and record.failures[0] <= now - self.window:
            record.failures.popleft()
        record.failures.append(now)
        while len(self._records) > MAX_TRACKED:
            self._records.popitem(last=False)
        if len(record.failures) < self.max_failures:
            return 0.0
        lock = min(self.max_lock, self.base_lock * float(2**record.lockouts))  # int ** int is Any to mypy
        record.lockouts += 1
        record.locked_until = now + lock
        record.failures.clear()
        return lock

    def locked_addresses(self) -> int:
        """How many addresses are locked out right now (for /metrics)."""
        now = self.clock()
        return sum(1 for record in self._records.values() if record.locked_until > now)

    def succeeded(self, client: str) -> None:
        self._records.pop(client, None)
