"""Stock batches side by side: as many under way as the store's gate allows at the moment.

A real store takes seconds per batch (a WooCommerce batch of 100 is 100 product saves), so one
batch at a time pushes one batch per round trip. The dispatcher keeps `gate.limit` batches under
way (storefronts.limiter: adaptive, halved on 429/5xx/timeouts, paused by Retry-After) and starts
the next as soon as one finishes. Each batch is the pusher's own `push_once`: it takes its rows in
a transaction and marks them in flight, so two batches never hold the same SKU, and a SKU whose
quantity changes while it is in flight is pushed again only after its answer is recorded (the
pusher deletes a row only if the pushed quantity is still the newest). Hence: never two updates
of one SKU under way at once, and never an older answer over a newer quantity.

The dispatcher also publishes what the dashboard shows (meta `store.throughput`): the current
concurrency and its maximum, the store's round trip p50/p95 and the updates per second of the
current drain, at most once a second and at the end of each drain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..storefronts.limiter import StoreGate
from .db import Database
from .pusher import InventoryPusher, PushOutcome
from .throughput import THROUGHPUT_KEY, Throughput

PUBLISH_EVERY = 1.0  # seconds between two writes of the figures during a drain


class BatchDispatcher:
    def __init__(
        self,
        db: Database,
        pusher: InventoryPusher,
        gate: StoreGate | None,
    ) -> None:
        self.db = db
        self.pusher = pusher
        self.gate = gate  # None (a store without one): one batch at a time
        self._clock = db.clock.monotonic  # elapsed time for the figures
        self._published = float("-inf")

    def width(self) -> int:
        return self.gate.limit if self.gate is not None else 1

    async def drain(
        self,
        *,
        full_batches_only: bool = False,
        on_batch: Callable[[PushOutcome], None] = lambda outcome: None,
        stop: Callable[[], Awaitable[bool]] | None = None,
    ) -> PushOutcome:
        """Batches until one comes back short (nothing more is due), `stop` says so, or one raises;
        then waits for those under way and returns the sum (or raises the first error)."""
        total = PushOutcome()
        running: set[asyncio.Task[PushOutcome]] = set()
        more, error = True, None
        started = self._clock()
        try:
            while more or running:
                while more and len(running) < self.width():
                    running.add(asyncio.create_task(self.pusher.push_once(full_batches_only=full_batches_only)))
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is not None:
                        error, more = error or task.exception(), False
                        continue
                    outcome = task.result()
                    _add(total, outcome)
                    if outcome.taken:
                        on_batch(outcome)
                    if outcome.taken < self.pusher.store.batch_limit:
                        more = False
                if more and stop is not None and await stop():
                    more = False
                if total.taken:
                    await self._publish(total.pushed, started, force=not (more or running))
        finally:
            for task in running:  # only when the drain itself is cancelled
                task.cancel()
        if error is not None:
            raise error
        return total

    async def _publish(self, pushed: int, started: float, *, force: bool) -> None:
        now = self._clock()
        if self.gate is None or (not force and now - self._published < PUBLISH_EVERY):
            return
        self._published = now
        snap = self.gate.snapshot()
        elapsed = now - started
        figures = Throughput(
            concurrency=snap.limit,
            maximum=snap.maximum,
            rtt_p50=snap.rtt_p50,
            rtt_p95=snap.rtt_p95,
            updates_per_second=round(pushed / elapsed, 1) if pushed and elapsed > 0 else None,
            at=self.db.clock.stamp(),
        )
        await self.db.set_meta_now(THROUGHPUT_KEY, figures.to_json())


def _add(total: PushOutcome, outcome: PushOutcome) -> None:
    total.taken += outcome.taken
    total.pushed += outcome.pushed
    total.failed += outcome.failed
    total.retrying += outcome.retrying
