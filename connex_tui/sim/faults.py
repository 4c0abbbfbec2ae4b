"""Fault injection and request counting for the storefront emulators.

Tests queue faults (latency, an HTTP status with an optional Retry-After, a dropped connection,
or the real answer's JSON rewritten, e.g. a NaN where a number belongs, as a plugin or proxy on
a real store can do) for a route; each matching request consumes one. Every request is counted per route, so tests can
assert exactly how many calls the client made.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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
    # Serve the request, then send rewrite(its JSON) instead; Python's json writes NaN/Infinity
    # as the bare tokens a non-conforming server would.
    rewrite: Callable[[Any], Any] | None = None
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
        if fault.rewrite is not None:
            return _rewritten(await handler(request), fault.rewrite)
        if fault.status is None:
            return await handler(request)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        body = fault.body if fault.body is not None else error_body(fault.status)
        return web.Response(status=fault.status, body=body, headers=headers, content_type="application/json")

    return middleware


def _rewritten(response: web.StreamResponse, rewrite: Callable[[Any], Any]) -> web.StreamResponse:
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes):
        return response
    data = rewrite(json.loads(body))
    answer = web.Response(status=response.status, body=json.dumps(data).encode(), content_type="application/json")
    for name, value in response.headers.items():
        if name.lower().startswith("x-"):  # pagination and cost headers stay
            answer.headers[name] = value
    return answer
