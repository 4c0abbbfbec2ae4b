"""The top line of every screen: the six screens (current one highlighted), pushing or paused,
attached or monitoring."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("1", "dashboard", "Dashboard"),
    ("2", "pending", "Pending"),
    ("3", "sku_log", "SKU log"),
    ("4", "orders", "Orders"),
    ("5", "tasks", "Tasks"),
    ("6", "events", "Events"),
)


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar {
        dock: top;
        height: 1;
        width: 1fr;
        background: $panel;
        color: $foreground;
    }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def on_mount(self) -> None:
        self.watch(self.app, "paused", lambda _value: None if self.refresh() else None, init=False)

    def render(self) -> Content:
        app = self.app
        width = self.size.width or 80
        paused = getattr(app, "paused", None)
        monitor = getattr(getattr(app, "backend", None), "mode", "") == "monitor"
        if paused is None:
            state = Content("…")
        elif paused:
            state = Content.from_markup("[b reverse $text-warning] PAUSED [/]")
        else:
            state = Content.from_markup("[$text-success]● pushing[/]")
        wide = width >= 96
        right = Content.assemble(Content(" monitor · ") if monitor and width >= 90 else Content(" "), state, " ")
        parts: list[Content | str] = []
        if wide:
            parts.append(Content.from_markup("[b] connex-tui [/]│"))
        for key, mode, title in SCREENS:
            label = f" {key} {title} "
            if mode == self.current:
                parts.append(Content.from_markup("[b reverse]$label[/]", label=label))
            else:
                parts.append(Content.from_markup("[dim]$key[/] $title ", key=f" {key}", title=title))
        left = Content.assemble(*parts)
        gap = max(1, width - left.cell_length - right.cell_length)
        return Content.assemble(left, " " * gap, right).truncate(width)
