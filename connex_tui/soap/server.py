"""The Web Connector endpoint: an aiohttp application that speaks the QBWC SOAP contract.

It knows the protocol and nothing of the sync: every call goes to a `QBWCHandler` (the engine's
session planner plugs in). Whatever goes wrong inside a call, the Web Connector gets a well-formed
answer the protocol defines for errors ("" from sendRequestXML, -1 from receiveResponseXML), and
the reason waits in getLastError, because a SOAP fault or an HTML error page makes it show the
merchant "QBWC1012 Authentication failed" or a QBWC104x error instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
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


def _xml_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


async def _read_body(request: web.Request, max_body_bytes: int) -> bytes:
    """The request body as sent, or SoapFault: too large (413), unreadable, or compressed.

    The Web Connector never compresses what it sends; a Content-Encoding is refused rather than
    decoded (no decompression bomb, no decoder errors escaping as aiohttp's text/plain 500).
    `start_endpoint` switches aiohttp's own decoding off, so the body is read as it came.
    """
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise SoapFault(
            "Client", f"the request body is larger than the limit of {max_body_bytes} bytes", 413
        ) from None
    except web.RequestPayloadError:
        # Only when aiohttp decodes the body itself (an app not started by start_endpoint).
        raise SoapFault("Client", "the request body could not be decoded") from None
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise SoapFault(
            "Client",
            f"a request body with Content-Encoding {coding[:40]!r} is not accepted:"
            " send the SOAP envelope as plain text/xml",
        )
    return body


def make_app(
    handler: QBWCHandler,
    *,
    path: str = "/qbwc",
    max_body_bytes: int = 64 * 1024 * 1024,
    public_url: str | None = None,
    observer: CallObserver | None = None,
) -> web.Application:
    """An aiohttp application serving the endpoint at `path`."""

    async def post(request: web.Request) -> web.Response:
        started = time.perf_counter()
        client = request.remote or ""
        method = "?"
        try:
            body = await _read_body(request, max_body_bytes)
            call = parse_call(body)
            method = call.method
            try:
                value = await _dispatch(handler, call, client)
            except Exception:
                log.exception("qbwc_handler_failed", method=method)
                value = _ON_HANDLER_ERROR[method]
            outcome = _outcome(method, value)
            response = _xml_response(render_result(method, value))
        except SoapFault as fault:
            outcome = f"fault: {fault.message[:120]}"
            log.warning("qbwc_bad_request", client=client, reason=fault.message[:300], status=fault.http_status)
            response = _xml_response(render_fault(fault), fault.http_status)
        seconds = time.perf_counter() - started
        log.info("qbwc_call", method=method, ms=round(seconds * 1000, 2), outcome=outcome)
        if observer is not None:
            observer(method, seconds, outcome)
        return response

    async def get(request: web.Request) -> web.Response:
        if "wsdl" in {key.lower() for key in request.query}:
            address = public_url or str(request.url.with_query(None))
            return _xml_response(wsdl_document(address).encode("utf-8"))
        return web.Response(text=SUPPORT_PAGE, content_type="text/html", charset="utf-8")

    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post(path, post)
    app.router.add_get(path, get)
    return app


async def start_endpoint(
    app: web.Application, host: str, port: int, ssl_context: Any = None
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (to stop it) and the port bound (useful with port 0).

    aiohttp's request-body decoding is off: a Content-Encoding is refused by the endpoint itself
    (see `_read_body`) with a SOAP fault, instead of aiohttp answering a text/plain 400 or 500.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


__all__ = ["QBWCHandler", "make_app", "start_endpoint", "OPERATIONS", "Awaitable"]
