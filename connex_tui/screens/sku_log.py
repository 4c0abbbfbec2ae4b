"""SKU log: every push outcome, newest first, read in keyset pages of 200.

The first page is read on every refresh (cheap: `ORDER BY id DESC LIMIT 200` on the primary key);
lines newer than the newest shown are added at the top. Older pages are read with
`before_id=<oldest shown>` only when the cursor comes near the end, so a log of any size costs one
page to open.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label

from ..backend import PAGE
from ..engine.views import LogRow
from ..textsafe import short
from ..widgets import fmt
from ..widgets.diff_table import Column, DiffTable, Row
from ..widgets.fmt import Styled
from .base import TableScreen
from .dialogs import DetailDialog


class OlderPage(Message):
    """The next (older) page of the log, read by a worker; the handler appends it."""

    def __init__(self, params: Any, data: Any) -> None:
        super().__init__()
        self.params = params
        self.data = data


class SkuLogScreen(TableScreen[LogRow]):
    MODE = "sku_log"
    TITLE = "SKU log"
    BINDINGS = TableScreen.BINDINGS + [
        Binding("f", "failed_only", "Failed only", tooltip="Show only failures, or everything", id="log.failed_only"),
        Binding("slash", "filter", "Filter", tooltip="Show only SKUs containing some text", id="log.filter"),
        Binding("enter", "detail", "Detail", tooltip="The whole line, reason untruncated", id="log.detail"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="log.clear_filter"),
    ]
    COLUMNS = [
        Column("id", "#", 7),
        Column("at", "Time", 11),
        Column("sku", "SKU", 18),
        Column("old", "Before", 6),
        Column("new", "After", 6),
        Column("ok", "Result", 6),
        Column("reason", "Reason"),
    ]
    TABLE_ID = "log-table"
    FILTER = True

    def __init__(self) -> None:
        super().__init__()
        self.failed_only = False
        self.sku_filter = ""
        self.top_id: int | None = None
        self.bottom_id: int | None = None
        self.exhausted = False
        self._shown_for: tuple[bool, str] | None = None
        self._paging = False

    # ------------------------------------------------------------------ data

    def params(self) -> tuple[bool, str]:
        return (self.failed_only, self.sku_filter)

    async def fetch(self, params: tuple[bool, str]) -> list[LogRow]:
        failed_only, sku_filter = params
        return await self.backend.sku_log_page(failed_only=failed_only, sku_filter=sku_filter, limit=PAGE)

    def _row(self, line: LogRow) -> Row:
        now = self.now
        return (
            str(line.id),
            (
                str(line.id),
                fmt.clock_time(line.at, now),
                line.sku,
                fmt.quantity(line.old_qty),
                fmt.quantity(line.new_qty),
                Styled("ok", "success") if line.ok else Styled("FAIL", "error"),
                Styled(fmt.one_line(line.reason, 300), "" if line.ok else "error"),
            ),
        )

    def apply(self, page: list[LogRow]) -> None:
        table = self.query_one(DiffTable)
        params = self.params()
        fresh = self._shown_for != params
        newer = page if fresh or self.top_id is None else [line for line in page if line.id > self.top_id]
        if fresh or (len(newer) >= PAGE and self.rows):
            # A new query, or more new lines than a page (a gap): start again from the newest.
            self.rows = {str(line.id): line for line in page}
            table.reset([self._row(line) for line in page])
            table.move_cursor(row=0, animate=False)
            self.top_id = page[0].id if page else None
            self.bottom_id = page[-1].id if page else None
            self.exhausted = len(page) < PAGE
            self._shown_for = params
        elif newer:
            for line in newer:
                self.rows[str(line.id)] = line
            table.prepend([self._row(line) for line in newer])
            self.top_id = newer[0].id
            if self.bottom_id is None:
                self.bottom_id = newer[-1].id
        self._summary()
        self.update_bindings()

    def _summary(self) -> None:
        parts = ["newest first", "failures only" if self.failed_only else "successes and failures"]
        if self.sku_filter:
            parts.append(f"SKU contains '{short(self.sku_filter, 30)}'")
        parts.append(f"{len(self.rows):,} lines loaded" + ("" if self.exhausted else ", more as you scroll"))
        self.query_one("#summary", Label).update(Content(" · ".join(parts)))

    # ------------------------------------------------------------------ paging

    def load_more(self) -> None:
        """The next older page (keyset: before the oldest line shown), one read at a time."""
        if self._paging or self.exhausted or self.bottom_id is None:
            return
        self._paging = True
        params, before = self.params(), self.bottom_id
        self.run_worker(self._older(params, before), group="page", exit_on_error=False)

    async def _older(self, params: tuple[bool, str], before: int) -> None:
        failed_only, sku_filter = params
        try:
            self.connex.harness.count(self, "older_pages")  # tests: paging reads one page at a time
            page = await self.backend.sku_log_page(
                failed_only=failed_only, sku_filter=sku_filter, before_id=before, limit=PAGE
            )
        except Exception as exc:
            self.post_message(OlderPage((params, before), exc))
            return
        self.post_message(OlderPage((params, before), page))

    def on_older_page(self, message: OlderPage) -> None:
        message.stop()
        self._paging = False
        params, before = message.params
        if isinstance(message.data, Exception):
            self.notify(self.backend.redact(str(message.data))[:200], title="Could not read the log", severity="error")
            return
        if params != self._shown_for or before != self.bottom_id:
            return  # the query changed meanwhile
        page: list[LogRow] = message.data
        for line in page:
            self.rows[str(line.id)] = line
        self.query_one(DiffTable).append([self._row(line) for line in page])
        if page:
            self.bottom_id = page[-1].id
        self.exhausted = len(page) < PAGE
        self._summary()
        if self.near_end(self.query_one(DiffTable).cursor_row):
            self.load_more()  # the person is holding page-down

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "detail":
            return self.query_one(DiffTable).cursor_key is not None
        if action == "clear_filter":
            return bool(self.sku_filter) or self.query_one("#filter", Input).display
        return True

    def action_failed_only(self) -> None:
        self.failed_only = not self.failed_only
        self._summary()
        self.request_refresh()

    def action_filter(self) -> None:
        self.show_filter()

    def action_clear_filter(self) -> None:
        self.hide_filter(clear=True)

    def action_detail(self) -> None:
        line = self.selected
        if line is None:
            return
        now = self.now
        self.app.push_screen(
            DetailDialog(
                f"Log line {line.id}",
                [
                    ("Time", fmt.full_time(line.at, now)),
                    ("SKU", line.sku),
                    ("Before", fmt.quantity(line.old_qty)),
                    ("After", fmt.quantity(line.new_qty)),
                    ("Result", "ok" if line.ok else "failed"),
                    ("Reason", line.reason or "-"),
                ],
            )
        )

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.sku_filter = event.value.strip()
        self.request_refresh()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, _event: Input.Submitted) -> None:
        self.hide_filter(clear=False)
