"""How many requests one store gets at once, and when it gets none.

Every HTTP request a storefront client sends passes through its store's `StoreGate`:

* Concurrency is adaptive (AIMD, as TCP's congestion window): it starts at `start` (2) requests at
  once and grows while the round trip stays flat (within `RTT_TOLERANCE` of the quickest recent one
  for that kind of request) and nothing is throttled or failing: doubling per round of answers
  until the first cut or the first slower round trip (TCP's slow start), then by one per round. A 429, a 5xx, a timeout or a dropped connection halves it, once per round: answers to
  requests sent before the last cut do not cut again (they were sent at the old rate). It never
  goes above `maximum` (`[storefront] max_concurrency`) nor below 1.
* Why the round trip: a WooCommerce store serves a bounded number of requests at once (PHP-FPM's
  `pm.max_children`, "the limit on the number of simultaneous requests that will be served",
  php-src sapi/fpm/www.conf.in); requests beyond it wait in the listen queue, so the round trip
  grows while the throughput does not. Growing stops there, before the host answers 503.
* `Retry-After` pauses every request to the store until it has passed, not only the one that was
  told: a new request waits for the pause, whichever task sends it.

The gate also keeps the figures the dashboard shows: the current limit, requests under way, and
the round trip's p50/p95 over the last `SAMPLES` answers. Time comes from the injected clock and
sleep. This module imports nothing from the engine.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

RTT_TOLERANCE = 1.5  # a round trip up to this times the quickest recent one is "flat"
RTT_SLACK = 0.02  # seconds: jitter on a fast store is not queueing
SAMPLES = 200  # round trips kept for the percentiles
BASELINE_SAMPLES = 50  # the quickest of the last this many round trips of one kind is the baseline
DEFAULT_START = 2
DEFAULT_MAXIMUM = 8


class Outcome(Enum):
    OK = "ok"  # answered (any status the store meant, 4xx included)
    THROTTLED = "throttled"  # 429
    FAILED = "failed"  # 5xx, timeout, dropped connection
    NEUTRAL = "neutral"  # cancelled, or a local problem (TLS): says nothing about the store's load


@dataclass(frozen=True)
class Ticket:
    kind: str
    started: float
    epoch: int  # the number of cuts before this request was sent


@dataclass(frozen=True)
class GateSnapshot:
    limit: int
    maximum: int
    in_flight: int
    peak: int  # the highest limit reached
    rtt_p50: float | None
    rtt_p95: float | None
    cuts: int  # times the limit was halved
    paused_for: float  # seconds left of a Retry-After pause


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(fraction * len(ordered) + 0.999999)))
    return ordered[rank - 1]


def request_kind(what: str) -> str:
    """ "WooCommerce POST /products/123/variations/batch" -> "WooCommerce POST /products/#/variations/batch":
    round trips are compared within one kind of request."""
    return re.sub(r"\d+", "#", what)


class StoreGate:
    def __init__(
        self,
        *,
        start: int = DEFAULT_START,
        maximum: int = DEFAULT_MAXIMUM,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if maximum < 1:
            raise ValueError("the most requests at once must be at least 1")
        self.maximum = maximum
        self._window = float(max(1, min(start, maximum)))
        self.peak = int(self._window)
        self.in_flight = 0
        self.cuts = 0
        self._slow_start = True  # doubling per round until the first sign of a limit
        self._paused_until = 0.0
        self._clock = clock
        self._sleep = sleep
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._rtts: deque[float] = deque(maxlen=SAMPLES)
        self._baselines: dict[str, deque[float]] = {}
        self.history: list[tuple[float, int]] = [(clock(), int(self._window))]  # (time, limit) at each change

    @property
    def limit(self) -> int:
        """Requests allowed at once now."""
        return int(self._window)

    # ------------------------------------------------------------------ slots
    async def acquire(self, what: str) -> Ticket:
        """Wait for a pause to pass and a free slot; the ticket goes back through `release`."""
        while True:
            wait = self._paused_until - self._clock()
            if wait > 0:
                await self._sleep(wait)
                continue
            if self.in_flight < self.limit:
                self.in_flight += 1
                return Ticket(request_kind(what), self._clock(), self.cuts)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # the slot it was woken for goes to the next in line
                raise

    def release(self, ticket: Ticket, outcome: Outcome, retry_after: float | None = None) -> None:
        self.in_flight -= 1
        if retry_after is not None and retry_after > 0:
            self.pause(retry_after)
        if outcome is Outcome.OK:
            self._answered(ticket)
        elif outcome in (Outcome.THROTTLED, Outcome.FAILED) and ticket.epoch == self.cuts:
            self._cut()
        self._wake()

    def pause(self, seconds: float) -> None:
        """No request to this store starts for `seconds` (a Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    # ------------------------------------------------------------------ the window
    def _answered(self, ticket: Ticket) -> None:
        rtt = max(0.0, self._clock() - ticket.started)
        self._rtts.append(rtt)
        recent = self._baselines.setdefault(ticket.kind, deque(maxlen=BASELINE_SAMPLES))
        baseline = min(recent) if recent else rtt
        recent.append(rtt)
        if rtt > baseline * RTT_TOLERANCE + RTT_SLACK:
            self._slow_start = False  # the store queues: hold
        elif self._window < self.maximum:
            # A round is `limit` answers: one more per answer doubles it per round, 1/limit adds one.
            step = 1.0 if self._slow_start else 1.0 / self.limit
            self._set(min(float(self.maximum), self._window + step))

    def _cut(self) -> None:
        self.cuts += 1
        self._slow_start = False
        self._set(max(1.0, float(self.limit // 2)))

    def _set(self, window: float) -> None:
        before = self.limit
        self._window = window
        if self.limit != before:
            self.peak = max(self.peak, self.limit)
            self.history.append((self._clock(), self.limit))

    def _wake(self) -> None:
        free = self.limit - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    # ------------------------------------------------------------------ figures
    def snapshot(self) -> GateSnapshot:
        rtts = list(self._rtts)
        return GateSnapshot(
            limit=self.limit,
            maximum=self.maximum,
            in_flight=self.in_flight,
            peak=self.peak,
            rtt_p50=percentile(rtts, 0.50),
            rtt_p95=percentile(rtts, 0.95),
            cuts=self.cuts,
            paused_for=max(0.0, self._paused_until - self._clock()),
        )


def gate_of(store: object) -> StoreGate | None:
    """The gate a storefront client sends through, if it has one (test doubles may not)."""
    gate = getattr(store, "gate", None)
    return gate if isinstance(gate, StoreGate) else None
