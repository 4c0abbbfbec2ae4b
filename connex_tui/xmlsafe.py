"""One XML parser for everything that arrives from outside: no DTDs, no entities, no network.

SOAP bodies come from the internet and qbXML responses are relayed by the Web Connector; both are
parsed with this parser so a billion-laughs or external-entity payload is refused, not expanded.
"""

from __future__ import annotations

from lxml import etree


class UnsafeXMLError(ValueError):
    """The document is not well-formed, or carries a DTD (which we never accept)."""


def _parser(encoding: str | None = None) -> etree.XMLParser:
    return etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def parse_untrusted(data: bytes | str) -> etree._Element:
    """Parse `data` or raise UnsafeXMLError naming what was wrong.

    Bytes are decoded as their BOM or XML declaration says (UTF-8 by default). Text has been decoded
    already (a qbXML response arrives as the text of a SOAP element), so an encoding its declaration
    still names is ignored: `<?xml version="1.0" encoding="ISO-8859-1"?>` in front of "Café" must
    neither turn it into "CafÃ©" nor make an unknown encoding name fail the parse.
    """
    encoding = None
    if isinstance(data, str):
        # lxml refuses str input that carries an encoding declaration; bytes are what we parse.
        data = data.encode("utf-8")
        encoding = "utf-8"
    try:
        root = etree.fromstring(data, parser=_parser(encoding))
    except (etree.LxmlError, ValueError) as exc:
        raise UnsafeXMLError(f"not well-formed XML: {exc}") from None
    if root is None:
        raise UnsafeXMLError("empty XML document")
    doctype = root.getroottree().docinfo
    if doctype.internalDTD is not None or doctype.doctype:
        raise UnsafeXMLError("XML with a DOCTYPE is not accepted")
    return root


def local_name(tag: object) -> str:
    """`{ns}name` -> `name`; comments and processing instructions have no name."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]
