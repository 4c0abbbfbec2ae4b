"""Which QuickBooks company file connex-tui works with.

The first successful session records the company file: its path as the Web Connector reports it
(`strCompanyFileName` of sendRequestXML) and the company's identity from `strHCPResponse` (the
CompanyQueryRs the Web Connector sends with the first sendRequestXML: CompanyName, and the
DataExt "FileID" it stamped under our OwnerID on first contact; QBWC Programmer's Guide ch.4 and
Intuit's WCWebService sample: "FileID ... allows an application to verify that the company file it
is exchanging data with is consistent over time"). A later session from another file, or from a
different company at the same path, posts and pushes nothing until `connex-tui company accept`
adopts it deliberately.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import aiosqlite

from ..xmlsafe import UnsafeXMLError, local_name, parse_untrusted
from .db import Database

RECORDED = "company.recorded"
REFUSED = "company.refused"  # the last file a session was refused for: what `company accept` adopts
OWNER_ID = "qwc.owner_id"
PATH_MAX = 260  # Windows' MAX_PATH: anything longer is not a path QuickBooks opened


@dataclass(frozen=True)
class CompanyFile:
    path: str
    name: str | None = None
    file_id: str | None = None

    def describe(self) -> str:
        parts = [self.path or "(no path given)"]
        if self.name:
            parts.append(f'company "{self.name}"')
        if self.file_id:
            parts.append(f"FileID {self.file_id}")
        return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> CompanyFile | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(str(data["path"]), data.get("name"), data.get("file_id"))
        except (ValueError, KeyError, TypeError):
            return None


def _same_path(a: str, b: str) -> bool:
    """Windows paths: case-insensitive, either slash."""
    return a.replace("/", "\\").casefold() == b.replace("/", "\\").casefold()


def mismatch(recorded: CompanyFile, current: CompanyFile) -> str | None:
    """Why `current` is not the recorded company file, or None when it is."""
    if not _same_path(recorded.path, current.path):
        return "a different company file"
    if recorded.file_id and current.file_id and recorded.file_id != current.file_id:
        return "a different company at the same path (its FileID differs)"
    if recorded.name and current.name and recorded.name != current.name:
        return "a different company at the same path (its name differs)"
    return None


def company_from_hcp(path: str, hcp_response: str, owner_id: str | None) -> CompanyFile:
    """The company file a session works with. strHCPResponse comes over the network: anything
    unreadable in it leaves the identity unknown (the path still counts)."""
    path = path.strip()[:PATH_MAX]
    name: str | None = None
    file_id: str | None = None
    if hcp_response.strip():
        try:
            root = parse_untrusted(hcp_response.strip())
        except (UnsafeXMLError, ValueError):
            root = None
        company = (
            None
            if root is None
            else next(
                (el for el in root.iter() if isinstance(el.tag, str) and local_name(el.tag) == "CompanyRet"), None
            )
        )
        if company is not None:
            for child in company:
                if not isinstance(child.tag, str):
                    continue
                tag = local_name(child.tag)
                if tag == "CompanyName" and child.text:
                    name = child.text.strip()[:200] or None
                elif tag == "DataExtRet" and owner_id:
                    fields = {local_name(c.tag): (c.text or "").strip() for c in child if isinstance(c.tag, str)}
                    if fields.get("DataExtName") == "FileID" and fields.get("OwnerID", "").upper() == owner_id.upper():
                        file_id = fields.get("DataExtValue", "")[:64] or None
    return CompanyFile(path, name, file_id)


async def _meta(conn: aiosqlite.Connection, key: str) -> str | None:
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
        row = await cur.fetchone()
    return None if row is None else str(row[0])


async def _set_meta(conn: aiosqlite.Connection, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


async def recorded_company(conn: aiosqlite.Connection) -> CompanyFile | None:
    return CompanyFile.from_json(await _meta(conn, RECORDED))


async def our_owner_id(conn: aiosqlite.Connection) -> str | None:
    return await _meta(conn, OWNER_ID)


async def record_company(conn: aiosqlite.Connection, company: CompanyFile) -> None:
    """After a successful session, inside its transaction: records the file when none is yet; a
    session from the recorded file also clears an earlier refusal (that file is open again)."""
    recorded = await recorded_company(conn)
    if recorded is None:
        if company.path:
            await _set_meta(conn, RECORDED, company.to_json())
    elif mismatch(recorded, company) is None:
        await conn.execute("DELETE FROM meta WHERE key = ?", (REFUSED,))


async def remember_refused(conn: aiosqlite.Connection, company: CompanyFile) -> None:
    await _set_meta(conn, REFUSED, company.to_json())


@dataclass(frozen=True)
class CompanyStatus:
    recorded: CompanyFile | None
    refused: CompanyFile | None


async def company_status(db: Database) -> CompanyStatus:
    return CompanyStatus(
        CompanyFile.from_json(await db.get_meta(RECORDED)), CompanyFile.from_json(await db.get_meta(REFUSED))
    )


async def accept_company(db: Database) -> CompanyFile | None:
    """Adopt the file the last refused session came from; with none refused, forget the recorded
    file so the next session's file is recorded. Returns the adopted file (None: forgotten)."""
    async with db.transaction() as conn:
        refused = CompanyFile.from_json(await _meta(conn, REFUSED))
        await conn.execute("DELETE FROM meta WHERE key IN (?, ?)", (RECORDED, REFUSED))
        if refused is not None:
            await _set_meta(conn, RECORDED, refused.to_json())
        return refused
