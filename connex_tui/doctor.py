"""`connex-tui doctor`: check an installation the way it will be used, one line per check.

    ok    config     ./connex.toml: woocommerce store, endpoint https://connex.example.com/qbwc
    FAIL  store      https://shop.example.com: the store refused our credentials (HTTP 401) ...

The exit code is 1 when a check fails (warnings do not fail). Checks, in order:

* config: the file loads and validates (a failure here skips the rest); a readable secret warns.
* database: the SQLite file opens read-only, passes `PRAGMA quick_check`, and its schema is not
  newer than this program; a missing file is a warning when its folder can be created/written.
* store: the credentials, with one read (orders changed since now) through the same client the
  engine uses; Shopify's `location_id` must exist.
* clock: our clock against the store's HTTP `Date` header (RFC 9110 section 6.6.1). Order import
  asks for orders changed since the watermark minus 5 minutes (engine/order_import.py OVERLAP), so
  a skew past that can skip orders: fail beyond 5 minutes, warn beyond 1 minute.
* endpoint: a SOAP `serverVersion` call to `public_url` (else the local address), certificate
  verified as the Web Connector verifies it: needs the engine running.
* tls: the endpoint's certificate expiry (fail when expired, warn within 14 days); skipped for
  plain http (the Web Connector accepts http://localhost only).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp

from .engine.clock import SYSTEM_CLOCK, Clock
from .engine.config import Config, ConfigError, load_config, permission_warning
from .engine.schema import MIGRATIONS
from .storefronts.base import StorefrontError
from .storefronts.factory import make_storefront
from .storefronts.retry import RetryPolicy
from .textsafe import visible

SKEW_FAIL = timedelta(minutes=5)  # engine/order_import.py OVERLAP
SKEW_WARN = timedelta(minutes=1)
CERT_WARN = timedelta(days=14)
TIMEOUT = 20.0

SERVER_VERSION = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<serverVersion xmlns="http://developer.intuit.com/"><strVersion>doctor</strVersion></serverVersion>'
    "</soap:Body></soap:Envelope>"
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, warn, fail, skip
    detail: str

    def line(self) -> str:
        label = "FAIL" if self.status == "fail" else self.status
        # The detail may quote the store's or the database's own words: shown as text, never obeyed.
        return f"{label:<5} {self.name:<9} {visible(self.detail)}"


@dataclass
class Doctor:
    config: Config
    clock: Clock  # the engine's kind: what time this machine says it is
    endpoint_ssl: ssl.SSLContext | None = None  # None: the system's trust store, as the Web Connector's
    store_date: datetime | None = None
    store_checked_at: datetime | None = None

    def _endpoint_url(self) -> str:
        q = self.config.qbwc
        if q.public_url or q.host not in ("0.0.0.0", "::", ""):
            return q.endpoint_url
        # Listening on every address: this machine reaches it on loopback (0.0.0.0 is no
        # destination on Windows).
        return q.local_url().replace(f"//{q.host}:", "//127.0.0.1:").replace(f"//[{q.host}]:", "//127.0.0.1:")

    # ------------------------------------------------------------------ database
    async def database(self) -> Check:
        path = self.config.database.path
        if not path.exists():
            folder = next((p for p in path.parents if p.exists()), None)
            if folder is None or not os.access(folder, os.W_OK):
                return Check("database", "fail", f"{path} does not exist and {folder} is not writable")
            return Check("database", "warn", f"{path} does not exist yet: the engine creates it at start")
        return await asyncio.to_thread(self._inspect_database, path)

    @staticmethod
    def _inspect_database(path: Path) -> Check:
        try:
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10)
        except sqlite3.Error as exc:
            return Check("database", "fail", f"{path}: cannot open ({exc})")
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            pending = failed = 0
            if version:
                pending, failed = conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(state = 'failed'), 0) FROM pending"
                ).fetchone()
        except sqlite3.Error as exc:
            return Check("database", "fail", f"{path}: {exc}")
        finally:
            conn.close()
        if verdict != "ok":
            return Check("database", "fail", f"{path}: integrity check failed: {verdict}")
        if version > len(MIGRATIONS):
            return Check(
                "database",
                "fail",
                f"{path}: schema {version} is newer than this program's ({len(MIGRATIONS)}): upgrade connex-tui",
            )
        return Check(
            "database", "ok", f"{path}: schema {version}, integrity ok, {pending} SKUs waiting ({failed} failed)"
        )

    # ------------------------------------------------------------------ store and clock
    async def store(self) -> Check:
        c = self.config.storefront
        if c.platform == "none":
            return Check("store", "skip", 'no store configured ([storefront] platform = "none")')
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._remember_date)
        async with aiohttp.ClientSession(trace_configs=[trace]) as session:
            # Two tries, not six with backoff: a person is waiting for the answer.
            client = make_storefront(
                c, session=session, policy=RetryPolicy(attempts=2, timeout=TIMEOUT), clock=self.clock
            )
            assert client is not None
            try:
                await asyncio.wait_for(client.list_orders(self.clock.now()), TIMEOUT * 3)  # one read: orders since now
            except StorefrontError as exc:
                return Check("store", "fail", f"{c.url}: {exc}")
            except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
                return Check("store", "fail", f"{c.url}: no answer ({type(exc).__name__})")
            finally:
                await client.close()
        if getattr(client, "location_found", None) is False:
            return Check("store", "fail", f"{c.url}: credentials accepted, but location {c.location_id} does not exist")
        calls = client.stats.requests
        return Check("store", "ok", f"{c.url}: {c.platform} credentials accepted ({calls} request{'s' * (calls > 1)})")

    async def _remember_date(self, _session: Any, _context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        value = params.response.headers.get("Date")
        if value:
            try:
                self.store_date = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return
            self.store_checked_at = self.clock.now()

    def clock_skew(self) -> Check:
        if self.store_date is None or self.store_checked_at is None:
            return Check("clock", "skip", "no Date header from the store to compare with")
        skew = self.store_checked_at - self.store_date
        seconds = skew.total_seconds()
        detail = f"{abs(seconds):.0f} s {'ahead of' if seconds > 0 else 'behind'} the store's clock"
        if abs(skew) > SKEW_FAIL:
            return Check("clock", "fail", f"{detail}: set this machine's time (NTP); orders can be missed")
        if abs(skew) > SKEW_WARN:
            return Check("clock", "warn", detail)
        return Check("clock", "ok", detail)

    # ------------------------------------------------------------------ endpoint and certificate
    def _ssl(self) -> ssl.SSLContext:
        return self.endpoint_ssl or ssl.create_default_context()

    async def endpoint(self) -> Check:
        url = self._endpoint_url()
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": '"http://developer.intuit.com/serverVersion"',
        }
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    url,
                    data=SERVER_VERSION.encode(),
                    headers=headers,
                    ssl=self._ssl(),
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                ) as resp,
            ):
                body = await resp.text()
        except aiohttp.ClientSSLError as exc:
            return Check("endpoint", "fail", f"{url}: the certificate is not trusted ({_reason(exc)})")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return Check("endpoint", "fail", f"{url}: no answer ({type(exc).__name__}): is the engine running?")
        if resp.status != 200 or "serverVersionResponse" not in body:
            return Check("endpoint", "fail", f"{url}: HTTP {resp.status}, not the connex-tui endpoint")
        return Check("endpoint", "ok", f"{url}: the Web Connector endpoint answers")

    async def tls(self) -> Check:
        url = self._endpoint_url()
        if urlsplit(url).scheme != "https":
            url = self.config.qbwc.local_url() if self.config.qbwc.tls_cert else url
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            return Check("tls", "skip", f"{url} is plain http (the Web Connector allows it for localhost only)")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    parts.hostname, parts.port or 443, ssl=self._ssl(), server_hostname=parts.hostname
                ),
                TIMEOUT,
            )
        except ssl.SSLError as exc:
            return Check("tls", "fail", f"{parts.hostname}: {_reason(exc)}")
        except (OSError, asyncio.TimeoutError) as exc:
            return Check("tls", "fail", f"{parts.hostname}:{parts.port or 443}: no connection ({type(exc).__name__})")
        try:
            cert = writer.get_extra_info("peercert") or {}
        finally:
            writer.close()
        if "notAfter" not in cert:
            return Check("tls", "fail", f"{parts.hostname}: the certificate has no expiry date")
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), timezone.utc)
        left = expires - self.clock.now()
        when = expires.strftime("%Y-%m-%d %H:%M UTC")
        if left <= timedelta(0):
            return Check("tls", "fail", f"{parts.hostname}: the certificate expired {when}")
        if left < CERT_WARN:
            return Check("tls", "warn", f"{parts.hostname}: the certificate expires {when}, in {left.days} days")
        return Check("tls", "ok", f"{parts.hostname}: the certificate is valid until {when} ({left.days} days)")


def _reason(exc: BaseException) -> str:
    return (
        str(getattr(exc, "reason", None) or getattr(exc, "verify_message", None) or exc).strip() or type(exc).__name__
    )


def _config_check(path: Path, environ: dict[str, str]) -> tuple[Check, Config | None]:
    try:
        config = load_config(path, environ)
    except ConfigError as exc:
        return Check("config", "fail", str(exc)), None
    warning = permission_warning(path)
    summary = f"{path}: {config.storefront.platform} store, endpoint {config.qbwc.endpoint_url}"
    if warning:
        return Check("config", "warn", warning), config
    return Check("config", "ok", summary), config


async def run_doctor(
    path: Path,
    out: TextIO,
    *,
    environ: dict[str, str] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    endpoint_ssl: ssl.SSLContext | None = None,
) -> int:
    """Print one line per check; 1 when any failed, else 0."""
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        print(check.line(), file=out, flush=True)

    first, config = _config_check(path, dict(os.environ if environ is None else environ))
    report(first)
    if config is None:
        print("      (the other checks need a valid configuration)", file=out)
        return 1
    doctor = Doctor(config, clock, endpoint_ssl)
    steps: list[Callable[[], Awaitable[Check]]] = [doctor.database, doctor.store]
    for step in steps:
        report(await step())
    report(doctor.clock_skew())
    report(await doctor.endpoint())
    report(await doctor.tls())
    return 1 if any(check.status == "fail" for check in checks) else 0
