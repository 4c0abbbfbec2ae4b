"""The storefront side's scheduled tasks: orders, inventory, catalog, reconcile, cleanup."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import structlog

from ..storefronts.base import Storefront
from ..storefronts.limiter import gate_of
from .catalog import CatalogIndex
from .admin_commands import is_paused
from .config import Config
from .clock import parse_stamp, stamp
from .db import Database
from .dispatch import BatchDispatcher
from .event_log import trim_events
from .events import EventBus, PendingQueued, StockPushed
from .items import SKU_COLUMN, queue_stock, store_quantities
from .order_import import OrderImporter
from .orders import drop_raw_orders
from .pusher import InventoryPusher
from .scheduler import TaskResult, TaskSpec
from .skus import QBItemRef, sku_key

log = structlog.get_logger("connex.tasks")

INVENTORY_IDLE_SECONDS = 30  # the inventory task is woken by the Web Connector; this is its fallback
# While a Web Connector session is reading items, only full batches are pushed (the fewest API
# calls); the rest goes when the session ends, or when it has been quiet this long.
SESSION_QUIET_SECONDS = 5.0


class SyncTasks:
    def __init__(self, db: Database, store: Storefront, config: Config, bus: EventBus | None = None) -> None:
        self.db = db
        self.bus = bus or EventBus()
        self.store = store
        self.config = config
        self.importer = OrderImporter(db, store, config)
        self.index = CatalogIndex(db, store)
        self.pusher = InventoryPusher(
            db,
            store,
            max_attempts=config.inventory.max_attempts,
            request_timeout=config.storefront.timeout_seconds,
            index=self.index,
            match=config.inventory.match,
        )
        self.dispatcher = BatchDispatcher(db, self.pusher, gate_of(store))

    def specs(self) -> list[TaskSpec]:
        inv = self.config.inventory
        return [
            TaskSpec("orders", self.config.orders.poll_seconds, self.orders),
            TaskSpec("inventory", INVENTORY_IDLE_SECONDS, self.inventory),
            TaskSpec("catalog", inv.catalog_refresh_minutes * 60, self.catalog),
            TaskSpec(
                "reconcile", inv.reconcile_hours * 3600, self.reconcile, first_run_delay=inv.reconcile_hours * 3600
            ),
            TaskSpec("cleanup", 86400, self.cleanup),
        ]

    async def orders(self) -> TaskResult:
        outcome = await self.importer.run()
        notice = f"; {self.store.stats.notice}" if self.store.stats.notice else ""  # e.g. the API version served
        return TaskResult(
            str(outcome) + notice, quiet=not (outcome.imported or outcome.skipped or outcome.credit_memos)
        )

    async def _session_reading(self) -> bool:
        quiet_since = self.db.clock.stamp(after_seconds=-SESSION_QUIET_SECONDS)
        return bool(
            await self.db.fetchval(
                "SELECT count(*) FROM qbwc_sessions WHERE ended IS NULL AND last_seen >= ?", (quiet_since,)
            )
        )

    async def inventory(self) -> TaskResult:
        """Drain the queue batch after batch; come back when the next retry is due."""
        if await is_paused(self.db):
            return TaskResult("paused")
        reading = await self._session_reading()
        total = await self.dispatcher.drain(
            full_batches_only=reading,
            on_batch=lambda o: self.bus.emit(StockPushed(o.pushed, o.failed, o.retrying)),
            stop=lambda: is_paused(self.db),
        )
        due = await self.pusher.next_due()
        again = parse_stamp(due) if due else None
        if reading and due:
            # Held back for a fuller batch: look again once the session has had time to go quiet.
            again = self.db.clock.now() + timedelta(seconds=SESSION_QUIET_SECONDS)
        return TaskResult(str(total), again, quiet=True)  # each batch has its own event

    async def catalog(self) -> TaskResult:
        started = self.db.clock.stamp()
        count = await self.index.refresh(unless_newer_than=started)
        if count is None:
            return TaskResult("the index was refreshed meanwhile (a SKU it did not know)", quiet=True)
        return TaskResult(f"{count} SKUs on the store")

    async def reconcile(self) -> TaskResult:
        """Compare every matched SKU's store stock with QuickBooks and queue the differences
        (catches stock edited by hand on the store)."""
        await self.index.refresh(unless_newer_than=self.db.clock.stamp())  # or take one that finished while we waited
        match = self.config.inventory.match
        column = SKU_COLUMN[match]
        rows = await self.db.fetchall(
            f"SELECT {column}, full_name, quantity_on_hand FROM items WHERE is_active = 1 AND {column} IS NOT NULL"
        )
        store_rows = await self.db.fetchall("SELECT sku_key, quantity FROM catalog WHERE managed = 1")
        on_store: dict[str, set[int | None]] = {}
        for row in store_rows:
            on_store.setdefault(row[0], set()).add(row[1])
        async with self.db.transaction() as conn:
            wanted, _ = await store_quantities(
                conn,
                [(QBItemRef(row[0], row[1]), Decimal(row[2])) for row in rows],
                match=match,
                quantity_mode=self.config.inventory.quantity,
            )
            differences = {
                sku: qty
                for sku, qty in wanted.items()
                if sku_key(sku) in on_store and on_store[sku_key(sku)] != {int(qty)}
            }
            await queue_stock(conn, differences, self.db.clock.stamp())
        if differences:
            self.bus.emit(PendingQueued(len(differences)))  # the inventory task pushes them now
        log.info("reconciled", compared=len([s for s in wanted if sku_key(s) in on_store]), queued=len(differences))
        return TaskResult(f"{len(differences)} of {len(wanted)} SKUs differed and were queued")

    async def cleanup(self) -> TaskResult:
        now = self.db.clock.now()
        cutoff = now - timedelta(days=self.config.inventory.log_retention_days)
        async with self.db.transaction() as conn:
            cur = await conn.execute("DELETE FROM sku_log WHERE at < ?", (stamp(cutoff),))
        events = await trim_events(self.db)
        raws = await drop_raw_orders(self.db, now - timedelta(days=self.config.orders.raw_retention_days))
        return TaskResult(
            f"{cur.rowcount} SKU log lines older than {self.config.inventory.log_retention_days} days,"
            f" {events} old events and the store data of {raws} orders older than"
            f" {self.config.orders.raw_retention_days} days removed"
        )
