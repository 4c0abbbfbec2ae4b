"""The QuickBooks Web Connector's side of the conversation, over real HTTP.

It calls our endpoint exactly as QBWC does (SOAP 1.1, default-namespace bodies, quoted SOAPAction,
escaped qbXML), hands each request to a QuickBooks simulator and relays the response, follows the
protocol's rules on every answer (none/nvu/busy, "" and NoOp, negative percentages, getLastError,
closeConnection), and can drop the connection after QuickBooks processed a request, which is the
situation that makes other products post duplicate orders.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import aiohttp

from ..xmlsafe import local_name, parse_untrusted
from .quickbooks import QBXMLRequestError, QuickBooksSim

TNS = "http://developer.intuit.com/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
USER_AGENT = "Mozilla/4.0 (compatible; MSIE 6.0; MS Web Services Client Protocol 4.0.30319.42000)"
NOOP = "NoOp"

# BeginSession's error when authenticate named a company file and QuickBooks has another one open
# (QBXMLRP2 HRESULT 0x8004040A; the wording as applications quote it, e.g. Open Dental's QuickBooks
# manual: "A QuickBooks company data file is already open and it is different from the one
# requested"). The Web Connector reports it through connectionError (QBWC guide ch.8).
OTHER_FILE_OPEN_HRESULT = "0x8004040A"
OTHER_FILE_OPEN_MESSAGE = "A QuickBooks company data file is already open and it is different from the one requested."


class WebConnectorError(Exception):
    """The endpoint answered something the real Web Connector would reject (a QBWC10xx error)."""


@dataclass
class RunResult:
    auth: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    percents: list[int] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    last_error: str | None = None
    close_message: str | None = None
    dropped: bool = False
    company_file: str | None = None  # the file QuickBooks had open for this run

    @property
    def postpone_seconds(self) -> int | None:
        """authenticate's optional third element: seconds to postpone this update (QBWC
        Programmer's Guide ch.10, authenticate; honoured with Auto-Run on). "" or absent: none."""
        if len(self.auth) > 2 and self.auth[2].strip().isdigit():
            return int(self.auth[2])
        return None

    @property
    def status(self) -> str:
        """What the Web Connector's Status column would show, roughly."""
        if len(self.auth) > 1 and self.auth[1] in ("none", "nvu", "busy"):
            return self.auth[1]
        if self.dropped:
            return "dropped"
        return "error" if self.last_error else "ok"


class WebConnectorSim:
    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        qb: QuickBooksSim,
        *,
        version: str = "2.3.0.215",
        qbxml_major: int = 13,
        qbxml_minor: int = 0,
        company_file: str | None = None,
        owner_id: str | None = None,
        file_id: str | None = None,
        http: aiohttp.ClientSession | None = None,
        drop_after: int | None = None,
        qb_unavailable: bool = False,
        max_requests: int = 100_000,
        time_scale: float = 1.0,
    ) -> None:
        self.url = url
        self.username = username
        self.password = password
        self.qb = qb
        self.version = version
        self.qbxml_major = qbxml_major
        self.qbxml_minor = qbxml_minor
        self.company_file = company_file  # None: the file QuickBooks has open (qb.company_file)
        self.owner_id = owner_id  # the .qwc's OwnerID and FileID, stamped into the file on first contact
        self.file_id = file_id
        self._http = http
        self.drop_after = drop_after  # drop the connection after QuickBooks processed request N (1-based)
        self.qb_unavailable = qb_unavailable
        self.max_requests = max_requests
        self.time_scale = time_scale  # real seconds per second a postponement asks for (tests shrink it)
        self.runs: list[RunResult] = []

    # --- SOAP ---------------------------------------------------------------------------------

    async def call(self, method: str, **args: str | int) -> Any:
        """One SOAP call; returns the result's text, int or list of strings."""
        children = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in args.items())
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>'
            f'<{method} xmlns="{TNS}">{children}</{method}></soap:Body></soap:Envelope>'
        )
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{TNS}{method}"',
            "User-Agent": USER_AGENT,
        }
        http = self._http or aiohttp.ClientSession()
        try:
            async with http.post(self.url, data=body.encode("utf-8"), headers=headers) as resp:
                payload = await resp.read()
                content_type = resp.headers.get("Content-Type", "")
                status = resp.status
        finally:
            if self._http is None:
                await http.close()
        if not content_type.startswith("text/xml"):
            raise WebConnectorError(f"{method}: response content type {content_type!r}, expected 'text/xml'")
        if status != 200:
            raise WebConnectorError(f"{method}: HTTP {status}: {payload[:300]!r}")
        return _read_result(method, payload)

    # --- one scheduled run --------------------------------------------------------------------

    async def run_once(self) -> RunResult:
        result = RunResult()
        self.runs.append(result)

        async def call(method: str, **args: str | int) -> Any:
            result.calls.append(method)
            return await self.call(method, **args)

        await call("serverVersion")
        client_answer = await call("clientVersion", strVersion=self.version)
        if isinstance(client_answer, str) and client_answer[:2] in ("E:", "O:"):
            result.last_error = client_answer
            return result
        auth = await call("authenticate", strUserName=self.username, strPassword=self.password)
        result.auth = auth
        ticket = auth[0] if auth else ""
        if len(auth) < 2 or auth[1] in ("none", "nvu", "busy"):
            result.close_message = await call("closeConnection", ticket=ticket)
            return result
        if self.qb_unavailable:
            return await self._connection_error(result, call, ticket, "0x80040401", "Could not access QuickBooks.")
        requested = auth[1]
        if requested and requested.lower() != self.qb.company_file.lower():
            # authenticate named a company file (QBWC guide ch.2: any other string is the path of
            # the file to open) and QuickBooks has a different one open: BeginSession fails.
            return await self._connection_error(result, call, ticket, OTHER_FILE_OPEN_HRESULT, OTHER_FILE_OPEN_MESSAGE)
        result.company_file = self.qb.company_file
        if self.owner_id and self.file_id:
            self.qb.stamp_file_id(self.owner_id, self.file_id)
        self.qb.begin_session()
        try:
            await self._exchange(ticket, result, call)
        finally:
            self.qb.end_session()
        if not result.dropped:
            result.close_message = await call("closeConnection", ticket=ticket)
        return result

    async def _connection_error(
        self, result: RunResult, call: Any, ticket: str, hresult: str, message: str
    ) -> RunResult:
        answer = await call("connectionError", ticket=ticket, hresult=hresult, message=message)
        result.last_error = await call("getLastError", ticket=ticket) if answer != "done" else None
        result.close_message = await call("closeConnection", ticket=ticket)
        return result

    async def _exchange(self, ticket: str, result: RunResult, call: Any) -> None:
        first = True
        noops = 0
        while len(result.requests) < self.max_requests:
            request = await call(
                "sendRequestXML",
                ticket=ticket,
                strHCPResponse=self.qb.host_query_response() if first else "",
                strCompanyFileName=self.company_file or self.qb.company_file,
                qbXMLCountry="US",
                qbXMLMajorVers=self.qbxml_major,
                qbXMLMinorVers=self.qbxml_minor,
            )
            first = False
            if request in ("", NOOP):
                message = await call("getLastError", ticket=ticket)
                if message == NOOP and noops < 3:
                    noops += 1
                    await asyncio.sleep(0.01)  # QBWC waits 5 s; a simulator need not
                    continue
                result.last_error = message
                return
            result.requests.append(request)
            try:
                response, hresult, message = self.qb.process(request), "", ""
            except QBXMLRequestError as exc:
                response, hresult, message = "", exc.hresult, exc.message
            result.responses.append(response)
            if self.drop_after is not None and len(result.requests) >= self.drop_after:
                result.dropped = True  # QuickBooks did the work; the answer never reaches the server
                return
            percent = int(
                await call("receiveResponseXML", ticket=ticket, response=response, hresult=hresult, message=message)
            )
            result.percents.append(percent)
            if percent < 0:
                result.last_error = await call("getLastError", ticket=ticket)
                return
            if percent >= 100:
                return

    async def run_every(self, seconds: float, stop: asyncio.Event) -> None:
        """Run on a schedule until `stop` is set, like QBWC's Auto-Run."""
        while not stop.is_set():
            try:
                await self.run_once()
            except (aiohttp.ClientError, WebConnectorError):
                pass  # QBWC logs it and tries again at the next interval
            # An application that postponed the update names when to come back (authenticate [2]).
            last = self.runs[-1] if self.runs else None
            wait = seconds if last is None or last.postpone_seconds is None else last.postpone_seconds * self.time_scale
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass


def _read_result(method: str, payload: bytes) -> Any:
    root = parse_untrusted(payload)
    body = next((c for c in root if local_name(c.tag) == "Body"), None)
    if body is None:
        raise WebConnectorError(f"{method}: answer has no SOAP Body")
    wrapper = next(iter(body), None)
    if wrapper is None or local_name(wrapper.tag) != f"{method}Response":
        found = None if wrapper is None else local_name(wrapper.tag)
        raise WebConnectorError(f"{method}: expected {method}Response, got {found}")
    if not wrapper.tag.startswith("{" + TNS + "}"):
        raise WebConnectorError(f"{method}: response is not in the {TNS} namespace")
    res = next((c for c in wrapper if local_name(c.tag) == f"{method}Result"), None)
    if method == "authenticate":
        if res is None:
            raise WebConnectorError("authenticate: no authenticateResult")
        return [(s.text or "") for s in res if local_name(s.tag) == "string"]
    text = "" if res is None else (res.text or "")
    if method == "receiveResponseXML":
        try:
            return int(text)
        except ValueError:
            raise WebConnectorError(f"receiveResponseXML: result {text!r} is not an integer") from None
    return text
