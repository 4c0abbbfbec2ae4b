"""The .qwc file the merchant opens in the QuickBooks Web Connector to add connex-tui."""

from __future__ import annotations

import ipaddress
import uuid
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class QWCError(ValueError):
    """An AppURL the Web Connector would refuse; the message says why and what to set."""


def app_url_for_qwc(url: str) -> str:
    """The AppURL as the Web Connector accepts it: https, or http on localhost only (QBWC1010),
    and a host name, not an IP address (QBWC1001/1002); a loopback address becomes "localhost"."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in LOOPBACK:
        netloc = "localhost" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    if parts.scheme != "https":
        raise QWCError(
            f"the Web Connector only accepts https for a host other than localhost, and {url} is http:"
            " set [qbwc] public_url to the https address it reaches (or tls_cert and tls_key)"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return url
    raise QWCError(
        f"the Web Connector needs a host name, not an IP address, in the AppURL ({url}):"
        " set [qbwc] public_url to https://your-host-name/..."
    )


def new_guid() -> str:
    """A GUID in the braces-and-upper-case form the Web Connector writes."""
    return "{" + str(uuid.uuid4()).upper() + "}"


# QBWC Programmer's Guide ch.4, Table 4-1 (reference qbwc-qbxml.md section 4):
#   UnattendedModePref umpRequired | umpOptional; PersonalDataPref pdpNotNeeded | pdpOptional |
#   pdpRequired; AuthFlags: the QuickBooks editions that may use the application, 0x1 SimpleStart,
#   0x2 Pro, 0x4 Premier, 0x8 Enterprise, combined (Intuit's HTTPSWebService.qwc sample: 0xF);
#   AppUniqueName: QBWC replaces an application of that name instead of adding a clone.
UNATTENDED_MODE = {"optional": "umpOptional", "required": "umpRequired"}
PERSONAL_DATA = {"not_needed": "pdpNotNeeded", "optional": "pdpOptional", "required": "pdpRequired"}
# Pro, Premier and Enterprise: the editions with inventory (SimpleStart has none).
AUTH_FLAGS = "0xE"


def qwc_document(
    *,
    app_name: str,
    app_url: str,
    support_url: str,
    username: str,
    owner_id: str,
    file_id: str,
    run_every_minutes: int,
    app_unique_name: str | None = None,
    unattended_mode: str = "optional",
    personal_data: str = "not_needed",
    description: str = "Syncs web store orders into QuickBooks and QuickBooks stock to the store",
) -> str:
    fields = [
        ("AppName", app_name),
        ("AppUniqueName", app_unique_name or app_name),
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
    prefs = [
        ("IsReadOnly", "false"),
        ("UnattendedModePref", UNATTENDED_MODE[unattended_mode]),
        ("PersonalDataPref", PERSONAL_DATA[personal_data]),
        ("AuthFlags", AUTH_FLAGS),
    ]
    tail = "".join(f"  <{name}>{value}</{name}>\n" for name, value in prefs)
    return (
        '<?xml version="1.0"?>\n<QBWCXML>\n'
        f"{body}"
        f"  <Scheduler>\n    <RunEveryNMinutes>{int(run_every_minutes)}</RunEveryNMinutes>\n  </Scheduler>\n"
        f"{tail}</QBWCXML>\n"
    )
