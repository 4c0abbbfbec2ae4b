"""HTTP retries shared by the storefront clients, against a real local server."""

from __future__ import annotations

import asyncio
import random

import aiohttp
import pytest
from aiohttp import web

from connex_tui.storefronts.base import CredentialsError, RequestStats, StoreUnavailable
from connex_tui.storefronts.retry import RetryPolicy, backoff, request_with_retry, retry_after_seconds


@pytest.fixture
async def server():
    script: list[tuple[int, dict]] = []
    hits = []

    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if not script:
            return web.json_response({"ok": True})
        status, extra = script.pop(0)
        if extra.get("sleep"):
            await asyncio.sleep(extra["sleep"])
        if extra.get("drop"):
            request.transport.abort()
            return web.Response()
        return web.json_response({"error": status}, status=status, headers=extra.get("headers", {}))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", script, hits
    await runner.cleanup()


async def call(url: str, policy: RetryPolicy = RetryPolicy(attempts=4, base_delay=0.01)):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    stats = RequestStats()
    async with aiohttp.ClientSession() as session:
        result = await request_with_retry(
            session, "POST", url + "/x", what="Test POST /x", policy=policy, stats=stats, sleep=sleep
        )
    return result, waits, stats


async def test_retry_after_is_honoured(server) -> None:
    url, script, hits = server
    script += [(429, {"headers": {"Retry-After": "2.5"}}), (503, {"headers": {"Retry-After": "1"}})]
    result, waits, stats = await call(url)
    assert result.status == 200 and result.json() == {"ok": True}
    assert waits == [2.5, 1.0]
    assert stats.requests == 3 and stats.retries == 2 and stats.throttled == 1


async def test_without_retry_after_the_backoff_is_bounded(server) -> None:
    url, script, _ = server
    script += [(500, {}), (502, {}), (429, {})]
    policy = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02)
    result, waits, _ = await call(url, policy)
    assert result.status == 200 and len(waits) == 3 and all(0 <= w <= 0.02 for w in waits)


async def test_a_huge_retry_after_is_capped(server) -> None:
    url, script, _ = server
    script += [(429, {"headers": {"Retry-After": "86400"}})]
    _, waits, _ = await call(url, RetryPolicy(attempts=2, max_retry_after=60))
    assert waits == [60]


async def test_credentials_errors_stop_at_once(server) -> None:
    url, script, hits = server
    script += [(401, {})]
    with pytest.raises(CredentialsError, match="check your credentials"):
        await call(url)
    assert len(hits) == 1


async def test_exhausted_retries_raise_store_unavailable_naming_the_call(server) -> None:
    url, script, hits = server
    script += [(503, {"headers": {"Retry-After": "0"}})] * 4
    with pytest.raises(StoreUnavailable) as info:
        await call(url)
    assert "Test POST /x" in str(info.value) and "HTTP 503" in str(info.value) and "4 tries" in str(info.value)
    assert len(hits) == 4


async def test_dropped_connections_and_timeouts_are_retried(server) -> None:
    url, script, _ = server
    script += [(0, {"drop": True}), (200, {"sleep": 1.0})]
    result, waits, stats = await call(url, RetryPolicy(attempts=4, base_delay=0.01, timeout=0.3))
    assert result.status == 200 and stats.retries == 2


async def test_other_client_errors_are_returned_not_retried(server) -> None:
    url, script, hits = server
    script += [(400, {})]
    result, waits, _ = await call(url)
    assert result.status == 400 and waits == [] and len(hits) == 1


def test_retry_after_parsing_and_backoff_shape() -> None:
    assert retry_after_seconds("2.0") == 2.0 and retry_after_seconds("-3") == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None and retry_after_seconds(None) is None
    policy = RetryPolicy(base_delay=1, max_delay=8)
    assert all(0 <= backoff(n, policy) <= min(8, 2**n) for n in range(10) for _ in range(20))


def test_backoff_equal_jitter_repeatable_and_bounded_for_any_attempt() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    waits = [backoff(n, policy, least=0.5, rng=random.Random(7)) for n in range(6)]
    assert waits == [backoff(n, policy, least=0.5, rng=random.Random(7)) for n in range(6)]
    assert all(min(8, 2**n) / 2 <= wait <= min(8, 2**n) for n, wait in enumerate(waits))
    assert 4 <= backoff(5000, policy, least=0.5) <= 8  # no OverflowError, however many tries


async def test_timeouts_do_not_put_the_url_with_its_credentials_in_the_error() -> None:
    import socket

    with socket.socket() as listener:  # accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        stats = RequestStats()
        async with aiohttp.ClientSession() as session:
            with pytest.raises(StoreUnavailable) as info:
                await request_with_retry(
                    session,
                    "GET",
                    f"http://127.0.0.1:{port}/x?consumer_secret=cs_SECRET",
                    what="Test GET /x",
                    policy=RetryPolicy(attempts=2, base_delay=0.01, timeout=0.2),
                    stats=stats,
                )
    assert "cs_SECRET" not in str(info.value) and "TimeoutError" in str(info.value)
