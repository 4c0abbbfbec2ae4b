"""SOAP 1.1 envelopes: read a Web Connector call, write its answer or a fault.

Calls are dispatched on the local name of the Body's first child, whatever prefix the client
used; the qbXML travels as escaped text, which the XML parser un-escapes for us and `escape`
escapes again on the way out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from ..xmlsafe import UnsafeXMLError, local_name, parse_untrusted
from .operations import OPERATIONS, SOAP11_ENV, SOAP12_ENV, TNS


class SoapFault(Exception):
    """A request we cannot treat as a Web Connector call; answered with a SOAP fault."""

    def __init__(self, code: str, message: str, http_status: int = 500) -> None:
        super().__init__(message)
        self.code = code  # "Client", "Server" or "VersionMismatch"
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True)
class SoapCall:
    method: str
    args: dict[str, str]


def parse_call(body: bytes) -> SoapCall:
    """The operation and its arguments, or SoapFault naming what was wrong."""
    try:
        root = parse_untrusted(body)
    except UnsafeXMLError as exc:
        raise SoapFault("Client", f"the request body is not a SOAP envelope: {exc}") from None
    if local_name(root.tag) != "Envelope":
        raise SoapFault("Client", f"the request body is not a SOAP envelope (root element <{local_name(root.tag)}>)")
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if namespace == SOAP12_ENV:
        raise SoapFault("VersionMismatch", "SOAP 1.2 is not supported: the Web Connector speaks SOAP 1.1")
    if namespace != SOAP11_ENV:
        raise SoapFault("VersionMismatch", f"unknown SOAP envelope namespace {namespace!r}")
    body_el = next((child for child in root if local_name(child.tag) == "Body"), None)
    if body_el is None:
        raise SoapFault("Client", "the SOAP envelope has no Body")
    call = next((child for child in body_el if local_name(child.tag)), None)
    if call is None:
        raise SoapFault("Client", "the SOAP Body is empty")
    method = local_name(call.tag)
    if method not in OPERATIONS:
        raise SoapFault("Client", f"unknown operation {method!r}")
    args: dict[str, str] = {}
    for child in call:
        name = local_name(child.tag)
        if name:
            args[name] = "".join(child.itertext())
    return SoapCall(method, args)


# What XML 1.0 cannot carry at all: C0 controls but tab, newline and CR; lone surrogates; U+FFFE/U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    """`value` as element content: escaped, and any character XML cannot carry replaced by U+FFFD,
    so that the answer is well-formed (and encodable) whatever a handler or a parser message held."""
    return escape(_NOT_XML.sub("\ufffd", value))


_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<soap:Envelope xmlns:soap="{SOAP11_ENV}" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>'
)
_TAIL = "</soap:Body></soap:Envelope>"


def render_result(method: str, value: str | int | list[str]) -> bytes:
    """`<{method}Response><{method}Result>…` in the Intuit namespace."""
    if isinstance(value, list):
        # Empty strings stay as elements: the Web Connector fails authentication without them.
        inner = "".join(f"<string>{_text(item)}</string>" for item in value)
    else:
        inner = _text(str(value))
    xml = f'{_HEAD}<{method}Response xmlns="{TNS}"><{method}Result>{inner}</{method}Result></{method}Response>{_TAIL}'
    return xml.encode("utf-8")


def render_fault(fault: SoapFault) -> bytes:
    xml = (
        f"{_HEAD}<soap:Fault><faultcode>soap:{fault.code}</faultcode>"
        f"<faultstring>{_text(fault.message)}</faultstring></soap:Fault>{_TAIL}"
    )
    return xml.encode("utf-8")
