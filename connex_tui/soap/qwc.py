"""The .qwc file the merchant opens in the QuickBooks Web Connector to add connex-tui."""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape


def new_guid() -> str:
    """A GUID in the braces-and-upper-case form the Web Connector writes."""
    return "{" + str(uuid.uuid4()).upper() + "}"


def qwc_document(
    *,
    app_name: str,
    app_url: str,
    support_url: str,
    username: str,
    owner_id: str,
    file_id: str,
    run_every_minutes: int,
    description: str = "Syncs web store orders into QuickBooks and QuickBooks stock to the store",
) -> str:
    fields = [
        ("AppName", app_name),
        ("AppID", ""),
        ("AppURL", app_url),
        ("AppDescription", description),
        ("AppSupport", support_url),
        ("UserName", username),
        ("OwnerID", owner_id),
        ("FileID", file_id),
        ("QBType", "QBFS"),
        ("Style", "Document"),
    ]
    body = "".join(f"  <{name}>{escape(value)}</{name}>\n" for name, value in fields)
    return (
        '<?xml version="1.0"?>\n<QBWCXML>\n'
        f"{body}"
        f"  <Scheduler>\n    <RunEveryNMinutes>{int(run_every_minutes)}</RunEveryNMinutes>\n  </Scheduler>\n"
        "  <IsReadOnly>false</IsReadOnly>\n</QBWCXML>\n"
    )
