"""A DataTable updated by difference, keyed by row key.

`sync(rows)` reconciles the table with a window of rows (a page of the queue, the task list):
stale rows are removed, changed cells are updated with `update_cell`, new rows are added, and the
order is fixed with one `sort` only when it changed. Only when most rows are stale is the table
cleared and refilled in one go (cheaper than many O(n) `remove_row` calls). Nothing is rebuilt on
a tick where nothing changed: a tick with no change costs a dict comparison per row.

`append(rows)` and `prepend(rows)` serve the keyset-paged SKU log (older pages at the end, new
lines at the top).

Cells are plain strings or `Styled(text, role)`; they are rendered as Rich `Text` (never parsed as
markup) with colours taken from the theme.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.style import Style
from textual.binding import Binding
from textual.widgets import DataTable

from ..harness import harness_of
from .fmt import Cell, role_styles, to_text


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None = None


Row = tuple[str, Sequence[Cell]]


class DiffTable(DataTable, inherit_bindings=False):
    """Row-cursor table; `enter` is left to the screen (so its footer shows what enter does)."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Cursor up", show=False, id="table.cursor_up"),
        Binding("down,j", "cursor_down", "Cursor down", show=False, id="table.cursor_down"),
        Binding("right", "cursor_right", "Scroll right", show=False, id="table.right"),
        Binding("left", "cursor_left", "Scroll left", show=False, id="table.left"),
        Binding("pageup", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("ctrl+home,g", "scroll_top", "First row", show=False, id="table.top"),
        Binding("ctrl+end,G", "scroll_bottom", "Last row", show=False, id="table.bottom"),
        Binding("home", "scroll_home", "Home", show=False, id="table.home"),
        Binding("end", "scroll_end", "End", show=False, id="table.end"),
    ]

    def __init__(self, columns: Sequence[Column], *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, id=id, classes=classes)
        self.spec = list(columns)
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._first: dict[str, object] = {}  # row key -> the Text object of its first cell (for sorting)
        self._styles: dict[str, Style] | None = None

    def on_mount(self) -> None:
        for column in self.spec:
            self.add_column(column.label, width=column.width, key=column.key)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    # ------------------------------------------------------------------ reading

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        row = min(max(self.cursor_row, 0), self.row_count - 1)
        return str(self.ordered_rows[row].key.value)

    def raw(self, key: str) -> tuple[Cell, ...] | None:
        return self._cells.get(key)

    # ------------------------------------------------------------------ writing

    @property
    def styles_by_role(self) -> dict[str, Style]:
        if self._styles is None:
            self._styles = role_styles(self.app.get_css_variables())
        return self._styles

    def _theme_changed(self, _theme: object) -> None:
        self._styles = None
        rows = [(key, self._cells[key]) for key in self.keys]
        self.reset(rows)

    def _add(self, key: str, cells: Sequence[Cell]) -> None:
        texts = [to_text(cell, self.styles_by_role) for cell in cells]
        self.add_row(*texts, key=key)
        self._cells[key] = tuple(cells)
        self._first[key] = texts[0]

    def reset(self, rows: Iterable[Row]) -> None:
        """Clear and refill (used when most rows changed, or the query changed)."""
        keep = self.cursor_key
        with self.app.batch_update():
            self.clear()
            self._cells.clear()
            self._first.clear()
            for key, cells in rows:
                self._add(key, cells)
            self._restore_cursor(keep, fallback_top=True)

    def sync(self, rows: Sequence[Row]) -> bool:
        """Make the table show exactly `rows`, in that order, by difference. True if anything changed."""
        wanted = {key: tuple(cells) for key, cells in rows}
        stale = [key for key in self._cells if key not in wanted]
        if self._cells and len(stale) * 2 > len(self._cells) and len(stale) > 8:
            harness_of(self.app).count(self, "full_rebuilds")  # tests: a refresh rebuilt nothing
            self.reset(rows)
            return True
        keep = self.cursor_key
        changed = False
        with self.app.batch_update():
            for key in stale:
                self.remove_row(key)
                del self._cells[key]
                self._first.pop(key, None)
                changed = True
            for key, cells in wanted.items():
                old = self._cells.get(key)
                if old is None:
                    self._add(key, cells)
                    changed = True
                elif old != cells:
                    for index, (before, after) in enumerate(zip(old, cells)):
                        if before != after:
                            text = to_text(after, self.styles_by_role)
                            self.update_cell(key, self.spec[index].key, text)
                            if index == 0:
                                self._first[key] = text
                            harness_of(self.app).count(self, "cell_updates")
                    self._cells[key] = cells
                    changed = True
            order = [key for key, _ in rows]
            if self.keys != order:
                self._reorder(order)
                changed = True
            if changed:
                self._restore_cursor(keep)
        return changed

    def append(self, rows: Iterable[Row]) -> int:
        """Add rows at the end (the next, older page); rows already shown are skipped."""
        added = 0
        with self.app.batch_update():
            for key, cells in rows:
                if key not in self._cells:
                    self._add(key, cells)
                    added += 1
        return added

    def prepend(self, rows: Sequence[Row]) -> int:
        """Add rows at the top (new log lines), keeping the cursor on the row it was on."""
        new = [(key, cells) for key, cells in rows if key not in self._cells]
        if not new:
            return 0
        keep = self.cursor_key
        with self.app.batch_update():
            order = [key for key, _ in new] + self.keys
            for key, cells in new:
                self._add(key, cells)
            self._reorder(order)
            self._restore_cursor(keep)
        return len(new)

    def _reorder(self, order: Sequence[str]) -> None:
        position = {id(self._first[key]): index for index, key in enumerate(order)}
        self.sort(key=lambda values: position.get(id(values[0]), len(position)))

    def _restore_cursor(self, key: str | None, *, fallback_top: bool = False) -> None:
        if not self.row_count:
            return
        if key is not None and key in self._cells:
            row = self.get_row_index(key)
        elif fallback_top:
            row = 0
        else:
            row = min(self.cursor_row, self.row_count - 1)
        if row != self.cursor_row:
            self.move_cursor(row=row, animate=False, scroll=False)
