"""Where Intuit's qbXML schemas and the Web Connector WSDL live on this machine.

They are not copied into the project (Intuit's licence): `CONNEX_QBXML_SPEC_DIR` names the folder,
else `../shared/spec` beside the checkout is used.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def spec_dir() -> Path | None:
    """The folder holding qbxmlops130.xsd, or None when neither place has it."""
    env = os.environ.get("CONNEX_QBXML_SPEC_DIR")
    candidates = [Path(env)] if env else []
    candidates += [_CHECKOUT.parent / "shared" / "spec", _CHECKOUT / "shared" / "spec"]
    for folder in candidates:
        if (folder / "qbxmlops130.xsd").is_file():
            return folder
    return None


@lru_cache(maxsize=1)
def qbxml_schema():  # -> lxml.etree.XMLSchema | None
    """Intuit's qbXML 13.0 schema, parsed once (about a second), or None when absent."""
    folder = spec_dir()
    if folder is None:
        return None
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(folder / "qbxmlops130.xsd")))
