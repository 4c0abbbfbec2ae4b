"""Fault injection and request counting for the storefront emulators.

Tests queue faults (latency, an HTTP status with an optional Retry-After, a dropped connection)
for a route; each matching request consumes one. Every request is counted per route, so tests can
assert exactly how many calls the client made.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware


@dataclass
class Fault:
    route: str  # "POST /wp-json/wc/v3/products/batch", or "*" for any request
    status: int | None = None  # answer with this status instead of serving
    retry_after: str | None = None
    latency: float = 0.0  # seconds to wait before serving (or faulting)
    drop: bool = False  # close the connection without an answer
    body: bytes | None = None  # a body to send with `status` (default: the platform's error JSON)
    times: int = 1


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self.counters: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def add(self, route: str, **kwargs: object) -> Fault:
        fault = Fault(route=route, **kwargs)  # type: ignore[arg-type]
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def take(self, route: str) -> Fault | None:
        for fault in self._faults:
            if fault.route in (route, "*") and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fault_middleware(
    plan: FaultPlan, route_of: Callable[[web.Request], str], error_body: Callable[[int], bytes]
) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        plan.counters[route] += 1
        fault = plan.take(route)
        if fault is None:
            return await handler(request)
        plan.injected[route] += 1
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.drop:
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError  # aiohttp drops the request when the transport is gone
        if fault.status is None:
            return await handler(request)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        body = fault.body if fault.body is not None else error_body(fault.status)
        return web.Response(status=fault.status, body=body, headers=headers, content_type="application/json")

    return middleware
