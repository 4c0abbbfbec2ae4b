"""What every one of the six screens shares: the status line, the footer, and the refresh cycle;
and what the three table screens (Pending, SKU log, Orders) share: `TableScreen`.

The refresh cycle: the App's timer (and engine events, in-process) call `request_refresh()` on the
visible screen only. A worker reads one snapshot with the backend's bounded async queries and
posts it as a `Loaded` message; the handler applies it to the widgets by difference. At most one
read is in flight per screen: requests that arrive meanwhile are folded into one more read.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label

from ..engine.views import PAGE

from ..widgets.diff_table import Column, DiffTable
from ..widgets.footer import ConnexFooter
from ..widgets.status_bar import StatusBar
from .messages import Loaded

if TYPE_CHECKING:  # pragma: no cover
    from ..app import ConnexApp
    from ..backend import Backend


RowT = TypeVar("RowT")


@dataclass(frozen=True)
class TablePage(Generic[RowT]):
    """One fetch of a table screen: the rows shown, how many there are in all, how many failed."""

    rows: list[RowT]
    total: int
    failed: int


class LoadFailed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


FOCUS_BINDINGS = [
    Binding("tab", "app.focus_next", "Focus next", show=False, id="focus.next"),
    Binding("shift+tab", "app.focus_previous", "Focus previous", show=False, id="focus.previous"),
]


class DataScreen(Screen[None], inherit_bindings=False):
    MODE: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    BINDINGS = list(FOCUS_BINDINGS)

    def __init__(self) -> None:
        super().__init__(id=f"screen-{self.MODE}")
        self._loading = False
        self._dirty = False
        self._last_error: str | None = None
        self._binding_state: tuple[bool | None, ...] | None = None

    @property
    def connex(self) -> ConnexApp:
        return self.app  # type: ignore[return-value]

    @property
    def backend(self) -> Backend:
        return self.connex.backend

    @property
    def now(self):  # noqa: ANN201 - datetime
        return self.backend.now()

    def compose(self) -> ComposeResult:
        yield StatusBar(self.MODE)
        yield from self.compose_body()
        yield ConnexFooter(compact=True, show_command_palette=True)

    def compose_body(self) -> Iterable[Widget]:
        return ()

    # ------------------------------------------------------------------ refresh cycle

    def on_screen_resume(self) -> None:
        self.request_refresh()

    @property
    def idle(self) -> bool:
        return not self._loading and not self._dirty

    def params(self) -> Hashable:
        """What the snapshot depends on besides time (filters, page size)."""
        return ()

    async def fetch(self, params: Any) -> Any:
        raise NotImplementedError

    def apply(self, data: Any) -> None:
        raise NotImplementedError

    def request_refresh(self) -> None:
        if not self.is_mounted or self.connex.backend.db_or_none is None:
            return
        if self._loading:
            self._dirty = True
            return
        self._loading = True
        self._dirty = False
        params = self.params()
        self.run_worker(self._load(params), group="load", exit_on_error=False, description=f"load {self.MODE}")

    async def _load(self, params: Any) -> None:
        try:
            data = await self.fetch(params)
        except Exception as exc:  # shown to the person, never raised into the App
            data = LoadFailed(exc)
        self.post_message(Loaded(params, data))

    def on_loaded(self, message: Loaded) -> None:
        message.stop()
        self._loading = False
        if isinstance(message.data, LoadFailed):
            text = self.backend.redact(f"{type(message.data.error).__name__}: {message.data.error}")[:300]
            if text != self._last_error:
                self._last_error = text
                self.notify(text, title="Could not read the database", severity="error")
        elif message.params == self.params():
            self._last_error = None
            try:
                self.apply(message.data)
            except Exception as exc:  # a display bug must not take the engine's process down
                if self.connex.harness.strict:
                    raise
                self.log.error("apply failed", screen=self.MODE, error=repr(exc))
                self.notify(self.backend.redact(repr(exc))[:200], title="Display error", severity="error")
            self.connex.harness.count(self, "loads")  # snapshots applied (tests wait on this)
        else:
            self._dirty = True  # the filter changed while reading: read again
        if self._dirty and self.is_current:
            self.request_refresh()

    def update_bindings(self) -> None:
        """Refresh the footer only when what applies changed (the Footer recomposes on every refresh)."""
        actions = [binding.action for binding in self.BINDINGS if isinstance(binding, Binding)]
        state = tuple(self.check_action(action, ()) for action in actions)
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    # ------------------------------------------------------------------ filter box (Pending, SKU log)

    def show_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.cursor_blink = self.connex.harness.cursor_blink
        box.focus()

    def hide_filter(self, *, clear: bool) -> None:
        box = self.query_one("#filter", Input)
        if clear:
            box.value = ""
        box.display = bool(box.value)
        self.focus_table()

    def focus_table(self) -> None:
        for table in self.query("DiffTable"):
            table.focus()
            break


class TableScreen(DataScreen, Generic[RowT]):
    """A screen around one `DiffTable` whose rows (`self.rows`) are keyed as in the table.

    Shared here: the layout (a summary line, the table of `COLUMNS`, and with `FILTER` a SKU filter
    box, hidden until asked for), the selected row, reading more as the cursor comes within
    `NEAR_END` rows of the end, and enter (or a click) opening the selected row's detail
    (`action_detail`). By default
    more means `PAGE` more rows at the next refresh (`limit`), while fewer than `total` are shown;
    a screen that pages otherwise (the SKU log reads older keyset pages) overrides `load_more`.
    """

    NEAR_END: ClassVar[int] = 20  # rows from the end at which the next page is read
    COLUMNS: ClassVar[Sequence[Column]] = ()
    TABLE_ID: ClassVar[str] = ""
    FILTER: ClassVar[bool] = False  # a SKU filter box under the table

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, RowT] = {}
        self.limit = PAGE
        self.total = 0

    def compose_body(self) -> Iterable[Widget]:
        yield Label("", id="summary", classes="summary")
        yield DiffTable(self.COLUMNS, id=self.TABLE_ID)
        if self.FILTER:
            yield Input(placeholder="filter by SKU (enter: done, escape: clear)", id="filter", compact=True)

    def on_mount(self) -> None:
        if self.FILTER:
            self.query_one("#filter", Input).display = False
        self.query_one(DiffTable).focus()

    @property
    def selected(self) -> RowT | None:
        key = self.query_one(DiffTable).cursor_key
        return self.rows.get(key) if key is not None else None

    def near_end(self, row: int) -> bool:
        return row >= self.query_one(DiffTable).row_count - self.NEAR_END

    def load_more(self) -> None:
        if self.limit < self.total:
            self.limit += PAGE
            self.request_refresh()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_bindings()
        if self.near_end(event.cursor_row):
            self.load_more()

    @on(DataTable.RowSelected)
    async def _clicked(self, _event: DataTable.RowSelected) -> None:
        await self.run_action("detail")
