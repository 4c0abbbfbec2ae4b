"""Tasks: the scheduled tasks with their last and next run; `enter` runs the selected one now."""

from __future__ import annotations

from collections.abc import Iterable

from textual.binding import Binding
from textual.content import Content
from textual.widget import Widget
from textual.widgets import DataTable, Label

from ..engine.views import TaskRow
from ..textsafe import short
from ..widgets import fmt
from ..widgets.diff_table import Column, DiffTable
from ..widgets.fmt import Styled
from .base import DataScreen


def every(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def result_cell(result: str | None) -> Styled:
    if not result:
        return Styled("-", "muted")
    text = fmt.one_line(result, 300)
    if result.startswith("ok"):
        return Styled(text, "success")
    return Styled(text, "error" if result.startswith("error") else "")


class TasksScreen(DataScreen):
    MODE = "tasks"
    TITLE = "Tasks"
    BINDINGS = DataScreen.BINDINGS + [
        Binding("enter", "run_now", "Run now", tooltip="Run the selected task within a second", id="tasks.run_now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, TaskRow] = {}

    def compose_body(self) -> Iterable[Widget]:
        yield Label("", id="summary", classes="summary")
        yield DiffTable(
            [
                Column("name", "Task", 10),
                Column("every", "Every", 7),
                Column("last", "Last run", 11),
                Column("next", "Next run", 11),
                Column("result", "Last result"),
            ],
            id="tasks-table",
        )

    def on_mount(self) -> None:
        self.query_one(DiffTable).focus()

    async def fetch(self, params: object) -> list[TaskRow]:
        return await self.backend.tasks()

    def apply(self, rows: list[TaskRow]) -> None:
        now = self.now
        self.rows = {row.name: row for row in rows}
        self.query_one(DiffTable).sync(
            [
                (
                    row.name,
                    (
                        row.name,
                        every(row.interval_seconds),
                        fmt.relative(row.last_run, now, empty="never"),
                        fmt.due(row.next_run, now) if row.next_run else "-",
                        result_cell(row.last_result),
                    ),
                )
                for row in rows
            ]
        )
        text = f"{len(rows)} scheduled tasks · the engine picks up a run-now within a second"
        if not rows:
            text = "no scheduled tasks yet: they appear once the engine has started with a store configured"
        self.query_one("#summary", Label).update(Content(text))
        self.update_bindings()

    @property
    def selected(self) -> TaskRow | None:
        key = self.query_one(DiffTable).cursor_key
        return self.rows.get(key) if key is not None else None

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.update_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_now":
            return self.selected is not None
        return True

    async def action_run_now(self) -> None:
        row = self.selected
        if row is None:
            return
        try:
            await self.backend.run_task_now(row.name)
        except KeyError as exc:
            self.notify(str(exc), severity="error")
        else:
            self.notify(f"{short(row.name)} runs within a second", title="Run now")
        self.request_refresh()
