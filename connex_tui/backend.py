"""The interface's only door to the engine.

A `Backend` holds a `Database` (the engine's own connection when attached, a separate one in
monitor mode), an optional `EventBus` (in-process only) and the engine's `Clock` (the engine's own
when attached; its database is opened with it in monitor mode), whose time the interface shows in
`zone` (the machine's time zone unless given). Every read goes through the
bounded queries of `engine.views`, every action through `engine.admin_commands`, so the interface
works the same inside the engine's process and from another one (no SQL here).

Everything returned is passed through `redact()`: the interface never shows a secret, even when
one slipped into an error message stored in the database.

Constructors:

* `Backend.attached(engine)` - same process: the engine's database and event bus.
* `await Backend.open(db_path)` - monitor mode: its own connection, polling only; `close()` it.
* `Backend.lazy(db_path)` - like `open`, for synchronous callers (``textual serve``, snapshot tests):
  the connection is opened by the App on mount (`connect()`) and closed on unmount (`release()`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .engine import admin_commands, views
from .engine.clock import SYSTEM_CLOCK, Clock
from .engine.db import Database
from .engine.events import Event, EventBus

if TYPE_CHECKING:  # pragma: no cover
    from .engine.runtime import Engine

T = TypeVar("T")
MASK = "***"
PAGE = views.PAGE

# Shapes of credentials that may end up in an error text even when we do not know the value:
# WooCommerce keys, Shopify tokens, HTTP auth headers, URL user info, key=value pairs.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:ck|cs)_[0-9a-fA-F]{16,}\b"), MASK),
    (re.compile(r"\bshp(?:at|ca|pa|ss)_[0-9a-zA-Z]{8,}\b"), MASK),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    (re.compile(r"(?i)(x-shopify-access-token\s*[:=]\s*)\S+"), rf"\1{MASK}"),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+(@)"), rf"\1{MASK}\2"),
    (
        re.compile(
            r"(?i)\b((?:consumer_key|consumer_secret|access_token|password|passwd|api_key|apikey|secret|token)"
            r"[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+"
        ),
        rf"\1{MASK}",
    ),
)


class Redactor:
    """Masks known secret values and anything shaped like a credential."""

    CACHE_SIZE = 4096

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
        self._cache: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        if not text:
            return text
        cached = self._cache.get(text)
        if cached is None:
            cached = self._redact(text)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = cached
        return cached

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def clean(self, value: T) -> T:
        """A copy of a view dataclass (or tuple/list of them) with every string redacted."""
        if isinstance(value, str):
            return self(value)  # type: ignore[return-value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes: dict[str, Any] = {}
            for field in dataclasses.fields(value):
                old = getattr(value, field.name)
                new = self.clean(old)
                if new is not old:
                    changes[field.name] = new
            return dataclasses.replace(value, **changes) if changes else value  # type: ignore[return-value]
        if isinstance(value, tuple):
            return tuple(self.clean(v) for v in value)  # type: ignore[return-value]
        if isinstance(value, list):
            return [self.clean(v) for v in value]  # type: ignore[return-value]
        return value


class Backend:
    def __init__(
        self,
        db: Database | None,
        *,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        zone: tzinfo | None = None,
        secrets: Iterable[str] = (),
        db_path: Path | str | None = None,
        mode: str = "attached",
    ) -> None:
        self.db_or_none = db
        self.bus = bus
        self.clock = clock or (db.clock if db is not None else SYSTEM_CLOCK)
        self.zone = zone  # None: the machine's time zone
        self.redact = Redactor(secrets)
        self.db_path = Path(db_path) if db_path is not None else (db.path if db is not None else None)
        self.mode = mode  # "attached" (in the engine's process) or "monitor"
        self._owns_db = False
        self._lazy = False

    # ------------------------------------------------------------------ constructors

    @classmethod
    def attached(cls, engine: Engine, *, zone: tzinfo | None = None) -> Backend:
        """In the engine's process: its database connection and its event bus."""
        if engine.db is None:
            raise RuntimeError("start the engine before attaching the interface")
        return cls(engine.db, bus=engine.bus, zone=zone, secrets=engine.config.secrets(), mode="attached")

    @classmethod
    async def open(cls, db_path: Path | str, **options: Any) -> Backend:
        """Monitor mode: a connection of our own to the engine's database, open now; polling
        only; the caller `close()`s it. `options` are `lazy`'s."""
        backend = cls.lazy(db_path, **options)
        backend._lazy = False  # not closed by the App's unmount: the caller owns it
        await backend.connect()
        return backend

    @classmethod
    def lazy(
        cls,
        db_path: Path | str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        zone: tzinfo | None = None,
        secrets: Iterable[str] = (),
    ) -> Backend:
        """Monitor mode for synchronous callers: the App opens the connection on mount."""
        backend = cls(None, clock=clock, zone=zone, secrets=secrets, db_path=db_path, mode="monitor")
        backend._lazy = True
        return backend

    def now(self) -> datetime:
        """The engine's time in the zone times are shown in."""
        return self.clock.now().astimezone(self.zone)

    # ------------------------------------------------------------------ lifetime

    @property
    def db(self) -> Database:
        if self.db_or_none is None:
            raise RuntimeError("backend not connected")
        return self.db_or_none

    @property
    def live(self) -> bool:
        """True when engine events arrive in-process (attached mode)."""
        return self.bus is not None

    async def connect(self) -> None:
        """Open a lazily constructed backend's connection (no-op otherwise)."""
        if self.db_or_none is None:
            if self.db_path is None:
                raise RuntimeError("backend has neither a database nor a path")
            self.db_or_none = await Database.open(self.db_path, self.clock)
            self._owns_db = True

    async def release(self) -> None:
        """Called by the App on unmount: closes only a connection the App opened itself."""
        if self._lazy:
            await self.close()

    async def close(self) -> None:
        if self._owns_db and self.db_or_none is not None:
            await self.db_or_none.close()
            self.db_or_none = None
            self._owns_db = False

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Engine events to `callback` (attached mode); returns the unsubscribe function."""
        if self.bus is None:
            return lambda: None
        return self.bus.subscribe(callback)

    # ------------------------------------------------------------------ reads

    async def dashboard(self) -> views.Dashboard:
        return self.redact.clean(await views.dashboard(self.db))

    async def pending_page(
        self, *, sku_filter: str = "", failed_only: bool = False, offset: int = 0, limit: int = PAGE
    ) -> tuple[list[views.PendingRow], int]:
        rows, total = await views.pending_page(
            self.db, sku_filter=sku_filter, failed_only=failed_only, offset=offset, limit=limit
        )
        return self.redact.clean(rows), total

    async def pending_failed_count(self) -> int:
        return await views.pending_failed_count(self.db)

    async def pending_row(self, sku: str) -> views.PendingRow | None:
        return self.redact.clean(await views.pending_row(self.db, sku))

    async def sku_log_page(
        self,
        *,
        failed_only: bool = False,
        sku_filter: str = "",
        before_id: int | None = None,
        limit: int = PAGE,
    ) -> list[views.LogRow]:
        rows = await views.sku_log_page(
            self.db, failed_only=failed_only, sku_filter=sku_filter, before_id=before_id, limit=limit
        )
        return self.redact.clean(rows)

    async def sku_history(self, sku: str, limit: int = 5) -> list[views.LogRow]:
        """The latest log lines of exactly this SKU (the pending detail)."""
        return self.redact.clean(await views.sku_history(self.db, sku, limit))

    async def orders_page(
        self, *, failed_only: bool = False, offset: int = 0, limit: int = PAGE
    ) -> tuple[list[views.OrderRow], int]:
        rows, total = await views.orders_page(self.db, failed_only=failed_only, offset=offset, limit=limit)
        return self.redact.clean(rows), total

    async def tasks(self) -> list[views.TaskRow]:
        return self.redact.clean(await views.tasks(self.db))

    async def events_tail(self, *, after_id: int = 0, limit: int = PAGE) -> list[views.EventRow]:
        return self.redact.clean(await views.events_tail(self.db, after_id=after_id, limit=limit))

    async def is_paused(self) -> bool:
        return await admin_commands.is_paused(self.db)

    # ------------------------------------------------------------------ commands

    async def retry(self, skus: Sequence[str]) -> int:
        return await admin_commands.retry(self.db, skus)

    async def retry_all_failed(self) -> int:
        return await admin_commands.retry_all_failed(self.db)

    async def drop(self, skus: Sequence[str]) -> int:
        return await admin_commands.drop(self.db, skus)

    async def requeue_order(self, order_id: int) -> bool:
        return await admin_commands.requeue_order(self.db, order_id)

    async def run_task_now(self, name: str) -> None:
        await admin_commands.run_task_now(self.db, name)

    async def set_paused(self, paused: bool) -> None:
        await admin_commands.set_paused(self.db, paused)

    async def toggle_paused(self) -> bool:
        """Flip the pause flag; returns the new state."""
        return await admin_commands.toggle_paused(self.db)
