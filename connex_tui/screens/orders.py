"""Orders: each store order and where it is in QuickBooks (new, sent, posted with its TxnID,
failed with the reason); `r` puts a failed order back to `new`."""

from __future__ import annotations


from textual.binding import Binding
from textual.content import Content
from textual.widgets import Label

from ..engine.views import OrderRow
from ..textsafe import short
from ..widgets import fmt
from ..widgets.diff_table import Column, DiffTable
from ..widgets.fmt import Styled
from .base import TablePage, TableScreen
from .dialogs import DetailDialog

KIND = {"sales_receipt": "receipt", "invoice": "invoice", "sales_order": "order", "credit_memo": "credit"}
QB_STATE = {
    "new": Styled("new", ""),
    "sent": Styled("sent", "warning"),
    "posted": Styled("posted", "success"),
    "failed": Styled("failed", "error"),
    "skipped": Styled("skipped", "muted"),
}


class OrdersScreen(TableScreen[OrderRow]):
    MODE = "orders"
    TITLE = "Orders"
    BINDINGS = TableScreen.BINDINGS + [
        Binding("r", "requeue", "Re-queue", tooltip="Send the failed order to QuickBooks again", id="orders.requeue"),
        Binding("enter", "detail", "Detail", tooltip="Everything about the selected order", id="orders.detail"),
    ]
    COLUMNS = [
        Column("number", "Order", 10),
        Column("kind", "Kind", 7),
        Column("status", "Store", 10),
        Column("qb", "QuickBooks", 10),
        Column("txn", "TxnID / Ref", 15),
        Column("updated", "Updated", 10),
        Column("error", "Reason"),
    ]
    TABLE_ID = "orders-table"

    def __init__(self) -> None:
        super().__init__()
        self.failed = 0

    def params(self) -> int:
        return self.limit

    async def fetch(self, limit: int) -> TablePage[OrderRow]:
        rows, total = await self.backend.orders_page(limit=limit)
        _failed, failed = await self.backend.orders_page(failed_only=True, limit=0)
        return TablePage(rows, total, failed)

    def apply(self, data: TablePage[OrderRow]) -> None:
        now = self.now
        self.total, self.failed = data.total, data.failed
        self.rows = {str(row.id): row for row in data.rows}
        self.query_one(DiffTable).sync(
            [
                (
                    str(row.id),
                    (
                        row.number,
                        KIND.get(row.qb_kind, row.qb_kind),
                        row.status or "-",
                        QB_STATE.get(row.qb_state, Styled(row.qb_state)),
                        row.txn_id or (row.ref_number if row.qb_state != "new" else "-"),
                        fmt.relative(row.updated_at, now),
                        Styled(fmt.one_line(row.error, 300), "error") if row.error else "",
                    ),
                )
                for row in data.rows
            ]
        )
        parts = [f"{self.total:,} orders", f"{self.failed:,} failed (listed first)"]
        if len(data.rows) < self.total:
            parts.append(f"showing {len(data.rows):,}, more load as you scroll")
        self.query_one("#summary", Label).update(Content(" · ".join(parts)))
        self.update_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "requeue":
            row = self.selected
            return row is not None and row.qb_state == "failed"
        if action == "detail":
            return self.selected is not None
        return True

    async def action_requeue(self) -> None:
        row = self.selected
        if row is None or row.qb_state != "failed":
            return
        if await self.backend.requeue_order(row.id):
            self.notify(
                f"order {short(row.number)} goes to QuickBooks at the next Web Connector session", title="Re-queued"
            )
        else:
            self.notify(f"order {short(row.number)} is no longer failed", severity="warning")
        self.request_refresh()

    def action_detail(self) -> None:
        row = self.selected
        if row is None:
            return
        now = self.now
        self.app.push_screen(
            DetailDialog(
                f"Order {row.number}",
                [
                    ("Order", row.number),
                    ("Store id", row.store_id),
                    ("Store status", row.status or "-"),
                    ("Kind", KIND.get(row.qb_kind, row.qb_kind)),
                    ("QuickBooks", row.qb_state),
                    ("TxnID", row.txn_id or "-"),
                    ("RefNumber", row.ref_number),
                    ("Reason", row.error or "-"),
                    ("Imported", fmt.full_time(row.imported_at, now)),
                    ("Updated", fmt.full_time(row.updated_at, now)),
                ],
            )
        )
