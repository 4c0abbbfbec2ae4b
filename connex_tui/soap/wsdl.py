"""The WSDL served at `GET {path}?wsdl`, generated from the operations table.

It describes the same contract as Intuit's QBWebConnectorSvc.wsdl (document/literal wrapped,
namespace http://developer.intuit.com/) with our own address in it.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .operations import OPERATIONS, TNS, Operation


def _element(name: str, children: list[tuple[str, str, int]]) -> str:
    parts = "".join(
        f'<s:element minOccurs="{min_occurs}" maxOccurs="1" name="{child}" type="{typ}" />'
        for child, typ, min_occurs in children
    )
    return f'<s:element name="{name}"><s:complexType><s:sequence>{parts}</s:sequence></s:complexType></s:element>'


def _types() -> str:
    elements = []
    for op in OPERATIONS.values():
        params = [(p.name, f"s:{p.type}", 1 if p.type == "int" else 0) for p in op.params]
        elements.append(_element(op.name, params))
        result_type = "tns:ArrayOfString" if op.result == "ArrayOfString" else f"s:{op.result}"
        min_occurs = 1 if op.result == "int" else 0
        elements.append(_element(f"{op.name}Response", [(f"{op.name}Result", result_type, min_occurs)]))
    array = (
        '<s:complexType name="ArrayOfString"><s:sequence>'
        '<s:element minOccurs="0" maxOccurs="unbounded" name="string" nillable="true" type="s:string" />'
        "</s:sequence></s:complexType>"
    )
    return (
        f'<wsdl:types><s:schema elementFormDefault="qualified" targetNamespace="{TNS}">'
        f"{''.join(elements)}{array}</s:schema></wsdl:types>"
    )


def _messages(op: Operation) -> str:
    return (
        f'<wsdl:message name="{op.name}SoapIn"><wsdl:part name="parameters" element="tns:{op.name}" /></wsdl:message>'
        f'<wsdl:message name="{op.name}SoapOut"><wsdl:part name="parameters" element="tns:{op.name}Response" /></wsdl:message>'
    )


def wsdl_document(address: str) -> str:
    ops = list(OPERATIONS.values())
    port_ops = "".join(
        f'<wsdl:operation name="{op.name}"><wsdl:input message="tns:{op.name}SoapIn" />'
        f'<wsdl:output message="tns:{op.name}SoapOut" /></wsdl:operation>'
        for op in ops
    )
    binding_ops = "".join(
        f'<wsdl:operation name="{op.name}"><soap:operation soapAction="{TNS}{op.name}" style="document" />'
        '<wsdl:input><soap:body use="literal" /></wsdl:input>'
        '<wsdl:output><soap:body use="literal" /></wsdl:output></wsdl:operation>'
        for op in ops
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<wsdl:definitions xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" '
        f'xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:tns="{TNS}" targetNamespace="{TNS}" '
        'xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/">'
        f"{_types()}{''.join(_messages(op) for op in ops)}"
        f'<wsdl:portType name="QBWebConnectorSvcSoap">{port_ops}</wsdl:portType>'
        '<wsdl:binding name="QBWebConnectorSvcSoap" type="tns:QBWebConnectorSvcSoap">'
        '<soap:binding transport="http://schemas.xmlsoap.org/soap/http" />'
        f"{binding_ops}</wsdl:binding>"
        '<wsdl:service name="QBWebConnectorSvc"><wsdl:port name="QBWebConnectorSvcSoap" '
        f'binding="tns:QBWebConnectorSvcSoap"><soap:address location={quoteattr(address)} />'
        "</wsdl:port></wsdl:service></wsdl:definitions>"
    )
