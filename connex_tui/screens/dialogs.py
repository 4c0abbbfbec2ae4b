"""Modal dialogs: confirm a destructive command, show a row's full detail, list the keys.

Titles and texts quote SKUs, order numbers and store errors: they are shown as plain text
(`Content`, never markup; a `str` border title would be parsed as markup) and made safe with
`textsafe`. A title is one line cut to `TITLE_WIDTH`; the detail view's values are shown whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ..textsafe import short, visible

TITLE_WIDTH = 60  # a border title is cut here: the whole value is in the dialog's body


class ConfirmDialog(ModalScreen[bool], inherit_bindings=False):
    """Yes/no; `y` confirms, `n` or escape cancels. "No" has the focus, so enter alone is safe."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
        Binding("tab,right", "app.focus_next", "Next button", show=False, id="confirm.focus_next"),
        Binding("shift+tab,left", "app.focus_previous", "Previous button", show=False, id="confirm.focus_previous"),
    ]

    def __init__(self, title: str, question: str, *, yes: str = "Yes") -> None:
        super().__init__(classes="dialog")
        self.title_text = short(title, TITLE_WIDTH)
        self.question = visible(question, lines=True)
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box") as box:
            box.border_title = Content(self.title_text)
            yield Static(Content(self.question), id="dialog-question")
            with Horizontal(id="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes", compact=True)
                yield Button("No (n)", variant="default", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class DetailDialog(ModalScreen[None], inherit_bindings=False):
    """Every field of one row, untruncated (errors wrap)."""

    BINDINGS = [
        Binding("escape,enter,q", "close", "Close", id="detail.close"),
        Binding("up,k", "scroll_up", "Scroll up", show=False, id="detail.scroll_up"),
        Binding("down,j", "scroll_down", "Scroll down", show=False, id="detail.scroll_down"),
    ]

    def __init__(self, title: str, fields: Sequence[tuple[str, str]], footer: str = "") -> None:
        super().__init__(classes="dialog")
        self.title_text = short(title, TITLE_WIDTH)
        self.fields = [(short(name, 20), visible(value, lines=True)) for name, value in fields]
        self.footer_text = visible(footer, lines=True)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box", classes="detail") as box:
            box.border_title = Content(self.title_text)
            box.border_subtitle = "escape to close"
            with VerticalScroll(id="detail-body"):
                width = max((len(name) for name, _ in self.fields), default=0)
                for name, value in self.fields:
                    with Horizontal(classes="detail-field"):
                        yield Label(Content(name.ljust(width)), classes="detail-name")
                        yield Static(Content(value or "-"), classes="detail-value")
                if self.footer_text:
                    yield Static(Content(self.footer_text), classes="detail-footer")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll_up(self) -> None:
        self.query_one("#detail-body", VerticalScroll).scroll_up(animate=False)

    def action_scroll_down(self) -> None:
        self.query_one("#detail-body", VerticalScroll).scroll_down(animate=False)


class KeysDialog(ModalScreen[None], inherit_bindings=False):
    """The keys that apply on the screen underneath, then the keys that work everywhere."""

    BINDINGS = [
        Binding("escape,question_mark,enter,q", "close", "Close", id="keys.close"),
        Binding("up,k", "scroll_up", "Scroll up", show=False, id="keys.scroll_up"),
        Binding("down,j", "scroll_down", "Scroll down", show=False, id="keys.scroll_down"),
    ]

    def __init__(self, title: str, groups: Sequence[tuple[str, Sequence[tuple[str, str, bool]]]]) -> None:
        super().__init__(classes="dialog")
        self.title_text = short(title, TITLE_WIDTH)
        self.groups = groups

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box", classes="keys") as box:
            box.border_title = Content(self.title_text)
            box.border_subtitle = "escape to close"
            with VerticalScroll(id="keys-body"):
                width = max((len(key) for _, rows in self.groups for key, _, _ in rows), default=0)
                for heading, rows in self.groups:
                    yield Static(Content.from_markup("[b]$heading[/]", heading=heading), classes="keys-heading")
                    for key, description, enabled in rows:
                        line = Content.assemble(
                            (key.rjust(width), "bold"),
                            "  ",
                            description,
                            (" (not now)" if not enabled else "", "dim"),
                        )
                        yield Static(line, classes="keys-row")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll_up(self) -> None:
        self.query_one("#keys-body", VerticalScroll).scroll_up(animate=False)

    def action_scroll_down(self) -> None:
        self.query_one("#keys-body", VerticalScroll).scroll_down(animate=False)
