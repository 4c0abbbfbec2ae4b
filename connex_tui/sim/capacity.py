"""What a real store's server takes to answer: per-request latency, per-item cost, bounded workers.

An emulator answers in microseconds; a real WooCommerce store does not, and how it does not is what
the pusher's concurrency has to cope with. Knobs (all off by default):

* `latency`: seconds every request takes before it is served (network, TLS, WordPress boot).
* `per_item`: seconds per item of a batch body (``create`` + ``update`` + ``delete``). Evidence:
  WooCommerce's ``WC_REST_Controller::batch_items``
  (woocommerce/woocommerce, plugins/woocommerce/includes/abstracts/abstract-wc-rest-controller.php)
  loops over the items and calls ``update_item`` for each in turn, a full product save with its
  hooks, so a batch of 100 costs about 100 saves. Here every item's cost is spent before the
  handler applies the batch (the answer comes at the same time; no request sees a half batch).
* `workers`: requests served at once; the rest wait in line for a free one. Evidence: PHP-FPM's
  ``pm.max_children``, "the limit on the number of simultaneous requests that will be served"
  (php-src sapi/fpm/www.conf.in; php.net/manual/en/install.fpm.configuration.php); a request
  beyond it waits in the listen backlog. `queue_timeout` (seconds in line) answers 504 as the
  proxy in front does when its upstream timeout runs out (nginx ``fastcgi_read_timeout``).

It also counts what tests and the benchmark want to know: requests served, the most served at
once, the most waiting, and `same_item_overlaps`: how often one item id was in two batch
requests under way at the same time (real WooCommerce then keeps whichever save finishes last).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerCapacity:
    latency: float = 0.0
    per_item: float = 0.0
    workers: int | None = None
    queue_timeout: float | None = None
    served: int = 0
    serving: int = 0
    peak_serving: int = 0
    waiting: int = 0
    peak_waiting: int = 0
    timed_out: int = 0
    same_item_overlaps: int = 0
    _ids_under_way: Counter[str] = field(default_factory=Counter)
    _slots: asyncio.Semaphore | None = None
    _slots_for: int | None = None

    def reset_counts(self) -> None:
        self.served = self.peak_serving = self.peak_waiting = self.timed_out = self.same_item_overlaps = 0

    def _semaphore(self) -> asyncio.Semaphore | None:
        if self.workers is None:
            return None
        if self._slots is None or self._slots_for != self.workers:
            self._slots, self._slots_for = asyncio.Semaphore(self.workers), self.workers
        return self._slots

    async def _batch_ids(self, request: web.Request) -> list[str]:
        if request.method != "POST" or not request.path.endswith("/batch"):
            return []
        try:
            body = json.loads(await request.read() or b"{}")  # aiohttp keeps the body for the handler
        except ValueError:
            return []
        ids: list[str] = []
        if isinstance(body, dict):
            for key in ("update", "delete"):
                for item in body.get(key) or []:
                    item_id = item.get("id") if isinstance(item, dict) else item
                    if item_id is not None:
                        ids.append(str(item_id))
            ids += ["new"] * len(body.get("create") or [])
        return ids

    async def _line_up(self, slots: asyncio.Semaphore) -> bool:
        """Wait for a worker; False when the wait ran past `queue_timeout`."""
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            if self.queue_timeout is None:
                await slots.acquire()
                return True
            try:
                await asyncio.wait_for(slots.acquire(), self.queue_timeout)
            except TimeoutError:
                return False
            return True
        finally:
            self.waiting -= 1

    def middleware(self) -> Middleware:
        @web.middleware
        async def capacity(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not (self.latency or self.per_item or self.workers is not None):
                return await handler(request)
            slots = self._semaphore()
            if slots is not None and not await self._line_up(slots):
                self.timed_out += 1
                return web.json_response(
                    {"code": "http_504", "message": "Gateway Timeout", "data": {"status": 504}}, status=504
                )
            ids = await self._batch_ids(request)
            real = [i for i in ids if i != "new"]
            if any(self._ids_under_way[i] for i in real):
                self.same_item_overlaps += 1
            self._ids_under_way.update(real)
            self.serving += 1
            self.peak_serving = max(self.peak_serving, self.serving)
            try:
                await asyncio.sleep(self.latency + self.per_item * len(ids))
                response = await handler(request)
                self.served += 1
                return response
            finally:
                self.serving -= 1
                self._ids_under_way.subtract(real)
                if slots is not None:
                    slots.release()

        return capacity


def describe(capacity: ServerCapacity) -> dict[str, Any]:
    return {
        "latency": capacity.latency,
        "per_item": capacity.per_item,
        "workers": capacity.workers,
        "served": capacity.served,
        "peak_serving": capacity.peak_serving,
        "peak_waiting": capacity.peak_waiting,
        "timed_out": capacity.timed_out,
        "same_item_overlaps": capacity.same_item_overlaps,
    }
