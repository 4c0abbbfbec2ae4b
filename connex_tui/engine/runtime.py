"""The running engine: the database, the session planner and the Web Connector endpoint together.

Headless mode, the demo, the interface and the tests all start the engine through this one class,
so they run the same code a merchant's server runs.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from ..soap.qwc import app_url_for_qwc, new_guid, qwc_document
from ..soap.server import CallObserver, EndpointLimits, make_app, start_endpoint
from ..storefronts.base import Storefront
from ..storefronts.factory import make_storefront
from .clock import SYSTEM_CLOCK, Clock
from .config import Config
from .db import Database
from .event_log import EventRecorder
from .metrics import EngineCounters, MetricsSource, start_metrics_site
from .events import Event, EventBus, PendingQueued, SessionEnded
from .qbwc_session import QBWCSessions
from .scheduler import Scheduler
from .sync_tasks import SyncTasks

log = structlog.get_logger("connex.engine")


async def stable_guid(db: Database, key: str) -> str:
    """A GUID made once and kept: the Web Connector ties the company file to OwnerID/FileID."""
    value = await db.get_meta(key)
    if value is None:
        value = new_guid()
        async with db.transaction() as conn:
            await conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))
        value = await db.get_meta(key) or value
    return value


async def build_qwc(db: Database, config: Config, url: str) -> str:
    """The .qwc file for this configuration; needs only the database (for the stable GUIDs), so
    `connex-tui qwc` never starts anything a running engine owns."""
    q = config.qbwc
    app_url = app_url_for_qwc(q.public_url or url)
    return qwc_document(
        app_name=q.app_name,
        app_url=app_url,
        support_url=app_url,
        username=q.username,
        owner_id=await stable_guid(db, "qwc.owner_id"),
        file_id=await stable_guid(db, "qwc.file_id"),
        run_every_minutes=q.run_every_minutes,
        app_unique_name=q.app_unique_name,
        unattended_mode=q.unattended_mode,
        personal_data=q.personal_data,
    )


class Engine:
    def __init__(
        self,
        config: Config,
        *,
        bus: EventBus | None = None,
        observer: CallObserver | None = None,
        storefront: Storefront | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.clock = clock  # the one clock; every part reads it through the database (`db.clock`)
        self.bus = bus or EventBus()
        self.observer = observer
        self.store = storefront
        self._own_store = storefront is None
        self.db: Database | None = None
        self.sessions: QBWCSessions | None = None
        self.tasks: SyncTasks | None = None
        self.scheduler: Scheduler | None = None
        self.recorder: EventRecorder | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        # Counted from construction, so no event of this run is missed by /metrics.
        self.counters = EngineCounters()
        self.bus.subscribe(self.counters)
        self._metrics_runner: web.AppRunner | None = None
        self.metrics_port: int | None = None

    @property
    def url(self) -> str:
        return self.config.qbwc.local_url(self.port)

    async def start(self, *, serve: bool = True, sync: bool = True) -> None:
        """`serve`: the Web Connector endpoint; `sync`: the storefront tasks (when a store is set)."""
        self.db = await Database.open(self.config.database.path, self.clock)
        for warning in self.db.permission_warnings:
            log.warning("file_permissions", problem=warning)
        self.sessions = QBWCSessions(self.db, self.config, self.bus)
        interrupted = await self.sessions.close_interrupted()
        if interrupted:
            log.warning("qbwc_sessions_interrupted", sessions=interrupted, reason="left open by an earlier stop")
        self.recorder = EventRecorder(self.db, self.bus)
        self.recorder.start()
        if sync:
            await self._start_sync()
        if serve:
            await self._serve()
            if self.config.metrics.port is not None:
                await self._serve_metrics()

    async def _start_sync(self) -> None:
        assert self.db is not None
        if self.store is None:
            self.store = make_storefront(self.config.storefront, clock=self.clock)
        if self.store is None:
            return
        self.tasks = SyncTasks(self.db, self.store, self.config, self.bus)
        recovered = await self.tasks.pusher.recover()
        if recovered:
            log.warning("pending_recovered", rows=recovered, reason="left in flight by an earlier stop")
        self.scheduler = Scheduler(self.db, self.tasks.specs(), self.bus)
        await self.scheduler.start()
        self.bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, (PendingQueued, SessionEnded)) and self.scheduler is not None:
            self.scheduler.wake("inventory")

    async def _serve(self) -> None:
        assert self.sessions is not None
        q = self.config.qbwc
        app = make_app(
            self.sessions,
            path=q.path,
            limits=EndpointLimits(max_body_bytes=q.max_body_bytes, max_connections=q.max_connections),
            public_url=q.public_url,
            wsdl_address=lambda: self.url,  # the configured host and the port bound
            trusted_proxies=q.trusted_proxies,
            ticket_ttl=q.ticket_idle_minutes * 60.0,
            observer=self.observer,
            clock=self.clock.monotonic,
        )
        self._runner, self.port = await start_endpoint(app, q.host, q.port, self._ssl_context())
        log.info("qbwc_endpoint_listening", url=self.url)

    async def _serve_metrics(self) -> None:
        assert self.db is not None and self.sessions is not None
        m = self.config.metrics
        source = MetricsSource(self.db, self.counters, store=self.store, auth_throttle=self.sessions.auth_throttle)
        self._metrics_runner, self.metrics_port = await start_metrics_site(source, m.host, m.port or 0)
        log.info("metrics_listening", url=f"http://{m.host}:{self.metrics_port}/metrics")

    def _ssl_context(self) -> ssl.SSLContext | None:
        q = self.config.qbwc
        if not q.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(q.tls_cert), str(q.tls_key) if q.tls_key else None)
        return context

    async def stop(self) -> None:
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
            self._metrics_runner = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        if self.store is not None and self._own_store:
            await self.store.close()
            self.store = None
        if self.recorder is not None:
            await self.recorder.stop()
            self.recorder = None
        if self.db is not None:
            await self.db.close()
            self.db = None
        log.info("engine_stopped")

    async def qwc(self) -> str:
        assert self.db is not None
        return await build_qwc(self.db, self.config, self.url)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


Factory = Callable[[Config], Engine]
