"""Pending: the queue of stock updates waiting for the store, failed first."""

from __future__ import annotations


from textual import on
from textual.binding import Binding
from textual.content import Content
from textual.widgets import Input, Label

from ..backend import PAGE
from ..engine.views import PendingRow
from ..textsafe import short
from ..widgets import fmt
from ..widgets.diff_table import Column, DiffTable
from ..widgets.fmt import Styled
from .base import TablePage, TableScreen
from .dialogs import ConfirmDialog, DetailDialog

STATE = {
    "failed": Styled("failed", "error"),
    "in_flight": Styled("sending", "warning"),
    "pending": Styled("pending", ""),
}


class PendingScreen(TableScreen[PendingRow]):
    MODE = "pending"
    TITLE = "Pending"
    BINDINGS = TableScreen.BINDINGS + [
        Binding("r", "retry", "Retry", tooltip="Retry the selected SKU now", id="pending.retry"),
        Binding(
            "R", "retry_all", "Retry all failed", tooltip="Retry every failed SKU (asks first)", id="pending.retry_all"
        ),
        Binding("d", "drop", "Drop", tooltip="Drop the selected SKU from the queue (asks first)", id="pending.drop"),
        Binding("slash", "filter", "Filter", tooltip="Show only SKUs containing some text", id="pending.filter"),
        Binding("enter", "detail", "Detail", tooltip="Everything about the selected SKU", id="pending.detail"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="pending.clear_filter"),
    ]
    COLUMNS = [
        Column("sku", "SKU", 18),
        Column("qty", "Qty", 6),
        Column("state", "State", 7),
        Column("attempts", "Tries", 5),
        Column("next", "Next try", 10),
        Column("error", "Last error"),
    ]
    TABLE_ID = "pending-table"
    FILTER = True

    def __init__(self) -> None:
        super().__init__()
        self.sku_filter = ""
        self.failed = 0

    # ------------------------------------------------------------------ data

    def params(self) -> tuple[str, int]:
        return (self.sku_filter, self.limit)

    async def fetch(self, params: tuple[str, int]) -> TablePage[PendingRow]:
        sku_filter, limit = params
        rows, total = await self.backend.pending_page(sku_filter=sku_filter, limit=limit)
        return TablePage(rows, total, await self.backend.pending_failed_count())

    def apply(self, data: TablePage[PendingRow]) -> None:
        now = self.now
        self.total, self.failed = data.total, data.failed
        self.rows = {row.sku: row for row in data.rows}
        table = self.query_one(DiffTable)
        table.sync(
            [
                (
                    row.sku,
                    (
                        row.sku,
                        fmt.quantity(row.quantity),
                        STATE.get(row.state, Styled(row.state)),
                        str(row.attempts),
                        fmt.due(row.next_attempt, now) if row.state == "pending" else "-",
                        Styled(fmt.one_line(row.last_error, 300), "error" if row.state == "failed" else "muted"),
                    ),
                )
                for row in data.rows
            ]
        )
        shown = len(data.rows)
        matching = f"{self.total:,} matching '{short(self.sku_filter, 30)}'"
        parts = [f"{self.total:,} in the queue" if not self.sku_filter else matching]
        parts.append(f"{self.failed:,} failed (listed first)")
        if shown < self.total:
            parts.append(f"showing {shown:,}, more load as you scroll")
        self.query_one("#summary", Label).update(Content(" · ".join(parts)))
        self.update_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "drop"):
            row = self.selected
            if row is None:
                return False
            return None if row.state == "in_flight" else True
        if action == "detail":
            return self.selected is not None
        if action == "retry_all":
            return self.failed > 0
        if action == "clear_filter":
            return bool(self.sku_filter) or self.query_one("#filter", Input).display
        return True

    # ------------------------------------------------------------------ actions

    async def action_retry(self) -> None:
        row = self.selected
        if row is None:
            return
        if await self.backend.retry([row.sku]):
            self.notify(f"{short(row.sku)}: queued to be pushed now", title="Retry")
        else:
            self.notify(f"{short(row.sku)} is being sent right now; nothing to retry", severity="warning")
        self.request_refresh()

    def action_retry_all(self) -> None:
        count = self.failed

        async def answered(yes: bool | None) -> None:
            if yes:
                done = await self.backend.retry_all_failed()
                self.notify(f"{done:,} failed SKUs queued to be pushed again", title="Retry all failed")
                self.request_refresh()

        self.app.push_screen(
            ConfirmDialog("Retry all failed", f"Push all {count:,} failed SKUs to the store again?", yes="Retry all"),
            answered,
        )

    def action_drop(self) -> None:
        row = self.selected
        if row is None:
            return

        async def answered(yes: bool | None) -> None:
            if yes:
                if await self.backend.drop([row.sku]):
                    self.notify(f"{short(row.sku)} dropped from the queue", title="Drop")
                else:
                    self.notify(f"{short(row.sku)} is being sent right now; not dropped", severity="warning")
                self.request_refresh()

        self.app.push_screen(
            ConfirmDialog(
                "Drop SKU",
                f"Drop {short(row.sku)} from the queue?\nThe store will not get quantity"
                f" {short(fmt.quantity(row.quantity), 20)}"
                " until QuickBooks changes it again.",
                yes="Drop",
            ),
            answered,
        )

    async def action_detail(self) -> None:
        row = self.selected
        if row is None:
            return
        now = self.now
        current = await self.backend.pending_row(row.sku) or row
        history = await self.backend.sku_history(row.sku)
        fields = [
            ("SKU", current.sku),
            ("Quantity", fmt.quantity(current.quantity)),
            ("State", STATE.get(current.state, Styled(current.state)).text),
            ("Attempts", str(current.attempts)),
            ("Next attempt", fmt.full_time(current.next_attempt, now) if current.state != "failed" else "- (failed)"),
            ("Last error", current.last_error or "-"),
        ]
        recent = "\n".join(
            f"{fmt.clock_time(line.at, now)}  {'ok  ' if line.ok else 'FAIL'}  "
            f"{fmt.quantity(line.old_qty)} -> {fmt.quantity(line.new_qty)}  {fmt.one_line(line.reason, 200)}"
            for line in history
        )
        self.app.push_screen(
            DetailDialog(f"SKU {current.sku}", fields, footer=f"Recent pushes\n{recent}" if recent else "")
        )

    def action_filter(self) -> None:
        self.show_filter()

    def action_clear_filter(self) -> None:
        self.hide_filter(clear=True)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.sku_filter = event.value.strip()
        self.limit = PAGE
        self.request_refresh()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, _event: Input.Submitted) -> None:
        self.hide_filter(clear=False)
