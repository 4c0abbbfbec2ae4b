"""The endpoint's limits before login: small bodies, deadlines, a connection cap (issue 11).

The aiohttp server runs on a real loopback port; raw sockets play the slow and oversized
clients. The load test runs the real headless engine as its own process and measures its
resident memory (bench/endpoint_abuse.py, at a small bounded size here).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bench.endpoint_abuse import abuse
from connex_tui.soap.server import (
    EndpointLimits,
    IssuedTickets,
    client_address,
    make_app,
    start_endpoint,
)

NS = 'xmlns="http://developer.intuit.com/"'


def envelope(inner: str) -> bytes:
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f"{inner}</soap:Body></soap:Envelope>"
    ).encode()


class Handler:
    """The session side, reduced to what the endpoint's limits are tested against."""

    def __init__(self) -> None:
        self.received: list[int] = []

    async def server_version(self) -> str:
        return "test"

    async def client_version(self, version: str) -> str:
        return ""

    async def authenticate(self, username: str, password: str, client: str) -> list[str]:
        return ["T-1", ""] if password == "right" else ["", "nvu"]

    async def send_request_xml(self, *args: str) -> str:
        return ""

    async def receive_response_xml(self, ticket: str, response: str, hresult: str, message: str) -> int:
        self.received.append(len(response))
        return 100

    async def connection_error(self, ticket: str, hresult: str, message: str) -> str:
        return "done"

    async def get_last_error(self, ticket: str) -> str:
        return ""

    async def close_connection(self, ticket: str) -> str:
        return "OK"


LIMITS = EndpointLimits(
    small_body_bytes=4096, header_seconds=1.0, body_seconds=1.0, max_connections=12, max_per_address=4, large_bodies=1
)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[str, int, Handler]]:
    handler = Handler()
    runner, port = await start_endpoint(make_app(handler, limits=LIMITS), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}/qbwc", port, handler
    await runner.cleanup()


async def post(url: str, body: bytes) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.read()


def receive(ticket: str, size: int) -> bytes:
    return envelope(
        f"<receiveResponseXML {NS}><ticket>{ticket}</ticket><response>{'x' * size}</response></receiveResponseXML>"
    )


async def test_only_a_receive_with_an_issued_ticket_may_be_large(endpoint) -> None:
    url, _, handler = endpoint
    big = 200_000
    status, body = await post(url, receive("T-1", big))
    assert status == 413 and b"without a session" in body  # no ticket issued yet
    status, body = await post(
        url,
        envelope(
            f"<authenticate {NS}><strUserName>u</strUserName><strPassword>{'p' * big}</strPassword></authenticate>"
        ),
    )
    assert status == 413
    status, body = await post(
        url, envelope(f"<authenticate {NS}><strUserName>u</strUserName><strPassword>right</strPassword></authenticate>")
    )
    assert status == 200 and b"T-1" in body
    status, body = await post(url, receive("T-1", big))
    assert status == 200 and handler.received == [big]
    # Two at once, one large-body slot: both are read, one after the other.
    answers = await asyncio.gather(post(url, receive("T-1", big)), post(url, receive("T-1", big)))
    assert [a[0] for a in answers] == [200, 200]
    assert await post(url, envelope(f"<closeConnection {NS}><ticket>T-1</ticket></closeConnection>"))
    status, _ = await post(url, receive("T-1", big))
    assert status == 413  # closed: the ticket no longer opens the door to a large body


async def test_slow_headers_and_slow_bodies_are_cut_off(endpoint) -> None:
    _, port, _ = endpoint
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /qbwc HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    started = time.monotonic()
    for _ in range(30):
        await asyncio.sleep(0.1)
        if reader.at_eof():
            break
        writer.write(b"a")
    assert await reader.read() == b"" and time.monotonic() - started < 3.0  # dropped at the header deadline
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /qbwc HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<")
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 408"), status
    writer.close()


async def test_the_connection_cap_pushes_out_idle_connections_not_the_real_call(endpoint) -> None:
    url, port, _ = endpoint
    idle = []
    for n in range(30):  # from six addresses, five each: over both caps
        idle.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{2 + n % 6}", 0)))
    await asyncio.sleep(0.2)
    open_ = [pair for pair in idle if not pair[0].at_eof()]
    for reader, _ in idle:
        try:
            await asyncio.wait_for(reader.read(), 0.05)
        except TimeoutError:
            pass
    still_open = [pair for pair in idle if not pair[0].at_eof()]
    assert len(still_open) <= LIMITS.max_connections, (len(open_), len(still_open))
    status, body = await post(url, envelope(f"<serverVersion {NS}/>"))
    assert status == 200 and b"test" in body
    for _, writer in idle:
        writer.close()


def test_forwarded_for_is_read_only_from_a_trusted_proxy() -> None:
    import ipaddress

    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address("203.0.113.5", "198.51.100.1", proxies) == "203.0.113.5"  # not a proxy: ignored
    assert client_address("10.0.0.2", "198.51.100.1, 203.0.113.9", proxies) == "203.0.113.9"
    assert client_address("10.0.0.2", "203.0.113.9, 10.0.0.7", proxies) == "203.0.113.9"
    assert client_address("10.0.0.2", "not-an-address", proxies) == "10.0.0.2"
    assert client_address("10.0.0.2", "198.51.100.1", ()) == "10.0.0.2"


def test_issued_tickets_expire_and_are_bounded() -> None:
    now = [0.0]
    tickets = IssuedTickets(ttl=10, size=2, clock=lambda: now[0])
    tickets.issued("a")
    tickets.issued("b")
    tickets.issued("c")
    assert not tickets.valid("a") and tickets.valid("b") and tickets.valid("c")
    now[0] = 8
    tickets.touch("b")  # a call of the session: idle time starts again
    now[0] = 16
    assert tickets.valid("b") and not tickets.valid("c")


async def test_memory_stays_flat_and_the_real_call_answers_under_slow_and_oversized_clients() -> None:
    figures = await abuse(slow=300, oversized_clients=6, body_mb=32, slow_bodies=0, seconds=6)
    summary = figures.summary()
    assert summary["rss_growth_mb"] < 100, summary
    assert summary["real_calls"] > 0 and summary["real_answers"] == {"ticket": summary["real_calls"]}, summary
    assert set(summary["oversized_answers"]) <= {"413", "closed"} and summary["oversized_answers"].get("413"), summary


async def test_a_kept_alive_connection_outlives_the_header_deadline(endpoint) -> None:
    """The Web Connector's .NET client reuses an idle connection for up to 100 s: the header
    deadline is for a connection's first request only, not for the wait between calls."""
    url, _, _ = endpoint
    made: list[int] = []

    async def on_create(*_: Any) -> None:
        made.append(1)

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as http:
        for pause in (0, LIMITS.header_seconds * 2):
            await asyncio.sleep(pause)
            async with http.post(url, data=envelope(f"<serverVersion {NS}/>")) as resp:
                assert resp.status == 200 and b"test" in await resp.read()
    assert len(made) == 1  # the second call went over the same, still open connection
