"""The Web Connector endpoint: an aiohttp application that speaks the QBWC SOAP contract.

It knows the protocol and nothing of the sync: every call goes to a `QBWCHandler` (the engine's
session planner plugs in). Whatever goes wrong inside a call, the Web Connector gets a well-formed
answer the protocol defines for errors ("" from sendRequestXML, -1 from receiveResponseXML), and
the reason waits in getLastError, because a SOAP fault or an HTML error page makes it show the
merchant "QBWC1012 Authentication failed" or a QBWC104x error instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiohttp import web

from .envelope import SoapCall, SoapFault, parse_call, render_fault, render_result
from .operations import OPERATIONS
from .wsdl import wsdl_document

log = structlog.get_logger("connex.qbwc")

CallObserver = Callable[[str, float, str], None]
"""Called after each SOAP call with (method, seconds spent, short outcome)."""


class QBWCHandler(Protocol):
    async def server_version(self) -> str: ...
    async def client_version(self, version: str) -> str: ...
    async def authenticate(self, username: str, password: str, client: str) -> list[str]: ...
    async def send_request_xml(
        self, ticket: str, hcp_response: str, company_file: str, country: str, major: str, minor: str
    ) -> str: ...
    async def receive_response_xml(self, ticket: str, response: str, hresult: str, message: str) -> int: ...
    async def connection_error(self, ticket: str, hresult: str, message: str) -> str: ...
    async def get_last_error(self, ticket: str) -> str: ...
    async def close_connection(self, ticket: str) -> str: ...


# What each operation answers when the handler itself fails: the protocol's own error signals.
_ON_HANDLER_ERROR: dict[str, Any] = {
    "serverVersion": "",
    "clientVersion": "",
    "authenticate": ["", "nvu"],
    "sendRequestXML": "",
    "receiveResponseXML": -1,
    "connectionError": "done",
    "getLastError": "connex-tui hit an internal error; see its log.",
    "closeConnection": "connex-tui hit an internal error; see its log.",
}

SUPPORT_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>connex-tui</title></head>
<body><h1>connex-tui Web Connector endpoint</h1>
<p>This address is for the QuickBooks Web Connector. Add it with the .qwc file from
<code>connex-tui qwc</code>; watch the sync with <code>connex-tui monitor</code>.</p></body></html>
"""


async def _dispatch(handler: QBWCHandler, call: SoapCall, client: str) -> Any:
    a = call.args
    match call.method:
        case "serverVersion":
            return await handler.server_version()
        case "clientVersion":
            return await handler.client_version(a.get("strVersion", ""))
        case "authenticate":
            return await handler.authenticate(a.get("strUserName", ""), a.get("strPassword", ""), client)
        case "sendRequestXML":
            return await handler.send_request_xml(
                a.get("ticket", ""),
                a.get("strHCPResponse", ""),
                a.get("strCompanyFileName", ""),
                a.get("qbXMLCountry", ""),
                a.get("qbXMLMajorVers", ""),
                a.get("qbXMLMinorVers", ""),
            )
        case "receiveResponseXML":
            return int(
                await handler.receive_response_xml(
                    a.get("ticket", ""), a.get("response", ""), a.get("hresult", ""), a.get("message", "")
                )
            )
        case "connectionError":
            return await handler.connection_error(a.get("ticket", ""), a.get("hresult", ""), a.get("message", ""))
        case "getLastError":
            return await handler.get_last_error(a.get("ticket", ""))
        case "closeConnection":
            return await handler.close_connection(a.get("ticket", ""))
    raise SoapFault("Client", f"unknown operation {call.method!r}")  # unreachable: parse_call checks


def _outcome(method: str, value: Any) -> str:
    """A short, secret-free description of an answer for the log."""
    if method == "authenticate":
        return value[1] if len(value) > 1 and value[1] else "ticket"
    if method == "sendRequestXML":
        return f"{len(value)} chars" if value else "empty"
    return str(value)[:80]


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class EndpointLimits:
    """What the endpoint grants a client before and after it has logged in.

    Every call before login (serverVersion, clientVersion, authenticate) is a few hundred bytes,
    and so is every call of a session but receiveResponseXML, whose response can be tens of MB
    (a 10,000-item ItemInventoryQueryRs). So: a body larger than `small_body_bytes` is read only
    when it is a receiveResponseXML carrying a ticket this endpoint issued, and only
    `large_bodies` at a time; anything else larger is refused after its first
    `small_body_bytes`, unread. A new connection gets `header_seconds` to send its first
    request's headers, and `body_seconds` / `large_body_seconds` for a body; an idle kept-alive
    connection is closed after `keepalive_seconds`, longer than the 100 s the Web Connector's
    .NET client keeps one for reuse (learn.microsoft.com, ServicePointManager.
    MaxServicePointIdleTime: "The default value is 100,000 milliseconds"), so we never close one
    it is about to reuse; connections beyond `max_per_address` from one address push out that address's
    oldest idle one, and beyond `max_connections` the oldest idle one from an address whose
    connections ended without a request lately (a connection is idle until it has
    sent a whole request).
    """

    max_body_bytes: int = 64 * 1024 * 1024
    small_body_bytes: int = 64 * 1024
    large_bodies: int = 2
    header_seconds: float = 10.0
    keepalive_seconds: float = 120.0
    body_seconds: float = 10.0
    large_body_seconds: float = 300.0
    max_connections: int = 256
    max_per_address: int = 32


class IssuedTickets:
    """Tickets this endpoint handed out and that were not closed: the only ones for which a large
    body is read. (The handler decides whether a ticket still means a session; this only decides
    whether reading a big body is worth it.)"""

    def __init__(self, ttl: float = 3600.0, size: int = 16, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def issued(self, ticket: str) -> None:
        self._seen[ticket] = self.clock()
        self._seen.move_to_end(ticket)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def closed(self, ticket: str) -> None:
        self._seen.pop(ticket, None)

    def touch(self, ticket: str) -> None:
        """A call carried this ticket: the session is alive (its idle time starts again)."""
        if ticket in self._seen:
            self._seen[ticket] = self.clock()

    def valid(self, ticket: str) -> bool:
        seen = self._seen.get(ticket)
        if seen is None or self.clock() - seen > self.ttl:
            return False
        self._seen[ticket] = self.clock()  # in use: a long session stays known
        return True


def client_address(remote: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str:
    """The client's address: the peer's, or, when the peer is a trusted reverse proxy, the
    rightmost X-Forwarded-For entry that is not itself a trusted proxy. Each proxy appends the
    address it was connected from (nginx docs, ngx_http_proxy_module, $proxy_add_x_forwarded_for:
    the client's header "with the $remote_addr variable appended to it"), so entries further
    left are whatever the client wrote (tornadoweb/tornado PR #1864 skips trusted proxies the
    same way)."""
    peer = remote or ""
    if not trusted or not forwarded_for or not _in(peer, trusted):
        return peer
    for entry in reversed(forwarded_for.split(",")[-20:]):
        candidate = entry.strip()
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            return peer  # a garbled header: trust nothing in it
        if not _in(candidate, trusted):
            return candidate
    return peer


def _in(address: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


_TICKET = re.compile(rb"<(?:[\w.-]+:)?ticket\s*>\s*([^<\s]{1,200})\s*</(?:[\w.-]+:)?ticket\s*>")
_RECEIVE = re.compile(rb"<(?:[\w.-]+:)?receiveResponseXML[\s/>]")


def _xml_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


def _too_large(limit: int, why: str = "") -> SoapFault:
    return SoapFault("Client", f"the request body is larger than the limit of {limit} bytes{why}", 413)


async def _read_upto(request: web.Request, limit: int) -> bytes:
    """At most `limit` bytes of the body (fewer at its end)."""
    data = bytearray()
    while len(data) < limit:
        chunk = await request.content.read(min(256 * 1024, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


DISCARD_BYTES = 8 * 1024 * 1024
DISCARD_SECONDS = 1.0


async def _discard(request: web.Request) -> None:
    """Let an ordinary client that sends its whole body before reading see the 413: drop (never
    keep) up to DISCARD_BYTES of the rest for up to DISCARD_SECONDS; a bigger or slower body is
    cut off when the connection closes."""
    dropped = 0
    try:
        async with asyncio.timeout(DISCARD_SECONDS):
            while dropped < DISCARD_BYTES:
                chunk = await request.content.read(256 * 1024)
                if not chunk:
                    return
                dropped += len(chunk)
    except (TimeoutError, web.RequestPayloadError, ConnectionError, RuntimeError):
        return  # aiohttp raises RuntimeError("Connection closed.") when the peer is gone


async def _read_body(
    request: web.Request, limits: EndpointLimits, tickets: IssuedTickets, large: asyncio.Semaphore
) -> bytes:
    """The request body as sent, or SoapFault: too large (413), too slow (408), unreadable, or
    compressed.

    The Web Connector never compresses what it sends; a Content-Encoding is refused rather than
    decoded (no decompression bomb, no decoder errors escaping as aiohttp's text/plain 500).
    `start_endpoint` switches aiohttp's own decoding off, so the body is read as it came.
    """
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise SoapFault(
            "Client",
            f"a request body with Content-Encoding {coding[:40]!r} is not accepted:"
            " send the SOAP envelope as plain text/xml",
        )
    declared = request.content_length
    if declared is not None and declared > limits.max_body_bytes:
        raise _too_large(limits.max_body_bytes)
    small = min(limits.small_body_bytes, limits.max_body_bytes)
    try:
        async with asyncio.timeout(limits.body_seconds):
            head = await _read_upto(request, small + 1)
        if len(head) <= small:
            return head
        if (
            not _RECEIVE.search(head)
            or not (found := _TICKET.search(head))
            or not tickets.valid(found.group(1).decode("ascii", "replace"))
        ):
            await _discard(request)
            raise _too_large(small, " for a call without a session's ticket (only receiveResponseXML may be larger)")
        async with asyncio.timeout(limits.large_body_seconds):
            async with large:
                rest = await _read_upto(request, limits.max_body_bytes - len(head) + 1)
    except TimeoutError:
        raise SoapFault("Client", "the request body arrived too slowly", 408) from None
    except (web.RequestPayloadError, ConnectionError, RuntimeError):
        # RuntimeError: aiohttp's "Connection closed." when the client went away mid-body.
        raise SoapFault("Client", "the request body could not be read") from None
    if len(head) + len(rest) > limits.max_body_bytes:
        raise _too_large(limits.max_body_bytes)
    return head + rest


RECENT_SECONDS = 10.0  # the window over which an address's wasted connections are counted


class ConnectionGuard:
    """Caps the connections aiohttp's server holds (see EndpointLimits). Installed on the
    runner's Server by `start_endpoint`; the app marks a connection busy while it answers."""

    def __init__(
        self, limits: EndpointLimits, trusted: Sequence[IPNetwork] = (), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.trusted = tuple(trusted)
        self.open: OrderedDict[Any, str] = OrderedDict()  # handler -> peer address, oldest first
        self.busy: set[Any] = set()  # being answered now
        self.served: set[Any] = set()  # sent at least one whole request
        self.evicted = 0
        self._wasted: OrderedDict[str, tuple[float, int]] = OrderedDict()  # address -> (since, count)
        self._deadlines: dict[Any, asyncio.TimerHandle] = {}

    def install(self, server: Any) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: Any) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            self.opened(handler, str(peer[0]) if isinstance(peer, tuple) and peer else "")

        def connection_lost(handler: Any, exc: BaseException | None) -> None:
            self._gone(handler)
            lost(handler, exc)

        server.connection_made = connection_made
        server.connection_lost = connection_lost

    def serving(self, handler: Any) -> None:
        self.busy.add(handler)
        self.served.add(handler)

    def opened(self, handler: Any, address: str) -> None:
        self.open[handler] = address
        self._deadlines[handler] = asyncio.get_running_loop().call_later(
            self.limits.header_seconds, self._header_deadline, handler
        )
        if not _in(address, self.trusted):
            same = [h for h, a in self.open.items() if a == address]
            if len(same) > self.limits.max_per_address:
                self._evict(same)
        if len(self.open) > self.limits.max_connections:
            self._evict(self._wasteful_first())

    def _header_deadline(self, handler: Any) -> None:
        """A new connection that has not sent a whole request within header_seconds is closed."""
        self._deadlines.pop(handler, None)
        if handler in self.open and handler not in self.served and not self._working(handler):
            self._gone(handler)
            handler.force_close()

    def _gone(self, handler: Any) -> None:
        """A connection ended; one that never carried a request counts against its address."""
        deadline = self._deadlines.pop(handler, None)
        if deadline is not None:
            deadline.cancel()
        address = self.open.pop(handler, None)
        if address is not None and handler not in self.served:
            now = self.clock()
            started, count = self._wasted.pop(address, (now, 0))
            self._wasted[address] = (started, count + 1) if now - started <= RECENT_SECONDS else (now, 1)
            while len(self._wasted) > 10_000:
                self._wasted.popitem(last=False)
        self.busy.discard(handler)
        self.served.discard(handler)

    def _wasteful_first(self) -> list[Any]:
        """Idle connections, oldest first, those from an address whose connections ended lately
        without a request first of all: a flood pays for itself, and the Web Connector, whose
        every connection carries a call at once, is not the one pushed out while a flood is under
        way. (The first such connection is usually among the oldest: this stays cheap when a
        flood makes every new connection push one out.)"""
        now = self.clock()
        for handler, address in self.open.items():
            if self._working(handler):
                continue
            started, count = self._wasted.get(address, (0.0, 0))
            if count and now - started <= RECENT_SECONDS:
                return [handler]
        return list(self.open)

    def _working(self, handler: Any) -> bool:
        """Being answered, or holding a whole request not yet handed to the app (aiohttp queues a
        parsed request in RequestHandler._messages; read defensively, it is not public API)."""
        return handler in self.busy or bool(getattr(handler, "_messages", None))

    def _evict(self, candidates: list[Any]) -> None:
        """Close the oldest of `candidates` that is not being answered (a connection still sending
        its headers, or idle between requests); the newest when all are."""
        victim = next((h for h in candidates if not self._working(h)), candidates[-1])
        self._gone(victim)
        self.evicted += 1
        victim.force_close()


GUARD_KEY = web.AppKey("connex_connection_guard", ConnectionGuard)


def _track_tickets(tickets: IssuedTickets, call: SoapCall, value: Any) -> None:
    if call.method == "authenticate" and isinstance(value, list) and len(value) > 1 and value[0]:
        if value[1] not in ("nvu", "none", "busy"):
            tickets.issued(str(value[0]))
    elif call.method == "closeConnection":
        tickets.closed(call.args.get("ticket", ""))
    elif call.args.get("ticket"):
        tickets.touch(call.args["ticket"])


def make_app(
    handler: QBWCHandler,
    *,
    path: str = "/qbwc",
    max_body_bytes: int | None = None,
    limits: EndpointLimits | None = None,
    wsdl_address: Callable[[], str] | None = None,
    public_url: str | None = None,
    trusted_proxies: Sequence[IPNetwork] = (),
    ticket_ttl: float = 3600.0,
    observer: CallObserver | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """An aiohttp application serving the endpoint at `path`.

    The WSDL's address is `public_url`, else `wsdl_address()` (the configured host and port),
    never the request's Host header: that is the client's to write, and a WSDL pointing
    elsewhere would send a SOAP client built from it to whoever the header named. `clock` is an
    elapsed-time counter in seconds (the engine's): ticket lifetimes, flood accounting, call times.
    """
    limits = limits or EndpointLimits()
    if max_body_bytes is not None:
        limits = EndpointLimits(**{**limits.__dict__, "max_body_bytes": max_body_bytes})
    tickets = IssuedTickets(ttl=ticket_ttl, clock=clock)
    guard = ConnectionGuard(limits, trusted_proxies, clock)
    large = asyncio.Semaphore(limits.large_bodies)

    async def post(request: web.Request) -> web.Response:
        started = clock()
        guard.serving(request.protocol)
        client = client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted_proxies)
        method = "?"
        try:
            body = await _read_body(request, limits, tickets, large)
            call = parse_call(body)
            method = call.method
            try:
                value = await _dispatch(handler, call, client)
            except Exception:
                log.exception("qbwc_handler_failed", method=method)
                value = _ON_HANDLER_ERROR[method]
            _track_tickets(tickets, call, value)
            outcome = _outcome(method, value)
            response = _xml_response(render_result(method, value))
        except SoapFault as fault:
            outcome = f"fault: {fault.message[:120]}"
            log.warning("qbwc_bad_request", client=client, reason=fault.message[:300], status=fault.http_status)
            response = _xml_response(render_fault(fault), fault.http_status)
            if fault.http_status in (408, 413):
                response.force_close()  # the rest of the body is never read
        finally:
            guard.busy.discard(request.protocol)
        seconds = clock() - started
        log.info("qbwc_call", method=method, ms=round(seconds * 1000, 2), outcome=outcome)
        if observer is not None:
            observer(method, seconds, outcome)
        return response

    async def get(request: web.Request) -> web.Response:
        guard.served.add(request.protocol)
        if "wsdl" in {key.lower() for key in request.query}:
            address = public_url or (wsdl_address() if wsdl_address is not None else f"http://127.0.0.1{path}")
            return _xml_response(wsdl_document(address).encode("utf-8"))
        return web.Response(text=SUPPORT_PAGE, content_type="text/html", charset="utf-8")

    app = web.Application(client_max_size=limits.max_body_bytes)
    app[GUARD_KEY] = guard
    app.router.add_post(path, post)
    app.router.add_get(path, get)
    return app


async def start_endpoint(
    app: web.Application, host: str, port: int, ssl_context: Any = None
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (to stop it) and the port bound (useful with port 0).

    aiohttp's request-body decoding is off: a Content-Encoding is refused by the endpoint itself
    (see `_read_body`) with a SOAP fault, instead of aiohttp answering a text/plain 400 or 500.
    The header deadline is the ConnectionGuard's (aiohttp's keep-alive timer, armed at connect,
    is the idle limit). No lingering: what is left of a refused body after `_discard` is not
    drained, the connection is closed (draining it is work an attacker could ask for at will).
    """
    guard = app.get(GUARD_KEY)
    keepalive = guard.limits.keepalive_seconds if guard is not None else EndpointLimits.keepalive_seconds
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        auto_decompress=False,
        keepalive_timeout=keepalive,
        lingering_time=0,
    )
    await runner.setup()
    if guard is not None and runner.server is not None:
        guard.install(runner.server)
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


__all__ = ["QBWCHandler", "make_app", "start_endpoint", "OPERATIONS", "Awaitable"]
