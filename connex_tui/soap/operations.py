"""The Web Connector's SOAP contract: its eight operations, their parameters and result types.

One table drives the request parsing, the dispatch, the answers and the WSDL we serve, so the
three can never disagree. Names and order follow Intuit's QBWebConnectorSvc.wsdl.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TNS = "http://developer.intuit.com/"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"

ResultType = Literal["string", "int", "ArrayOfString"]


@dataclass(frozen=True)
class Param:
    name: str
    type: Literal["string", "int"] = "string"


@dataclass(frozen=True)
class Operation:
    name: str
    params: tuple[Param, ...]
    result: ResultType = "string"


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("serverVersion", (Param("strVersion"),)),
        Operation("clientVersion", (Param("strVersion"),)),
        Operation("authenticate", (Param("strUserName"), Param("strPassword")), "ArrayOfString"),
        Operation(
            "sendRequestXML",
            (
                Param("ticket"),
                Param("strHCPResponse"),
                Param("strCompanyFileName"),
                Param("qbXMLCountry"),
                Param("qbXMLMajorVers", "int"),
                Param("qbXMLMinorVers", "int"),
            ),
        ),
        Operation(
            "receiveResponseXML",
            (Param("ticket"), Param("response"), Param("hresult"), Param("message")),
            "int",
        ),
        Operation("connectionError", (Param("ticket"), Param("hresult"), Param("message"))),
        Operation("getLastError", (Param("ticket"),)),
        Operation("closeConnection", (Param("ticket"),)),
    )
}
