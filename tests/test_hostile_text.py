"""Data is text (issue 11, point 1): SKUs, order numbers, customers, item names and store errors
that are markup (`[/]`, `[@click=app.quit]x[/]`), terminal commands (`ESC]0;…BEL`, `ESC]52;…BEL`,
`ESC[2J`, C1 CSI/OSC), bidi overrides or 5,000 characters long, through every screen, dialog and
key of the interface, and through every admin command's text and `--json` output.

What is checked each time: the App is still running (a markup error in a toast used to end the
process and the Web Connector endpoint with it); nothing was parsed as markup (the literal brackets
are on screen, no data-made `@click`); no unsafe character is in what the terminal would be sent
(the full repaint Textual's driver writes, background screens and toasts included), and the
interface's own sanitiser left nothing for the last-resort line filter to remove.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from textual.command import CommandPalette
from textual.widgets import Input, Log, OptionList, Static

from connex_tui.app import ConnexApp
from connex_tui.engine.config import Config
from connex_tui.engine.db import Database
from connex_tui.engine.events import OrderFailed, SessionEnded
from connex_tui.screens.dialogs import ConfirmDialog, DetailDialog, KeysDialog
from connex_tui.textsafe import JSON_RAW, UNSAFE, clip, safe_json, short, visible
from connex_tui.widgets import fmt
from connex_tui.widgets.diff_table import DiffTable

from .conftest import PASSWORD, make_config
from .hostile_text import HOSTILE, escapes_in, has_terminal_command, seed_hostile
from .pty_terminal import start_on_terminal
from .tui_fixtures import (  # noqa: F401 - fixtures
    _template,
    _template_dir,
    db,
    make_app,
    seed_database,
    seeded_path,
    wait_for,
)

VALUES = list(HOSTILE.values())
BIG = (160, 45)  # wide enough for the error columns to show the hostile text

# ---------------------------------------------------------------------------------------------
# Hypothesis: text made of what hostile values are made of


UNSAFE_CHARS = [
    chr(c)
    for c in [
        *range(0x20),
        *range(0x7F, 0xA0),
        0x61C,
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0x2028,
        0x2029,
    ]
]
PIECES = [
    "[",
    "]",
    "[/]",
    "[b]",
    "[@click=app.quit]",
    "$",
    "\\",
    "\x1b[",
    "\x1b]0;",
    "\x1b]52;c;",
    "\x07",
    "\x1b\\",
    "\x9b",
    "\x9d",
    "\u202e",
    "\u2066",
    "\r\n",
    "\t",
    "👩\u200d💻",
    "é",
    "مرحبا",
    "名前",
]
STORABLE_CHAR = st.one_of(st.characters(codec="utf-8"), st.sampled_from(UNSAFE_CHARS), st.sampled_from(PIECES))
STORABLE = st.lists(STORABLE_CHAR, max_size=80).map("".join)  # what SQLite can hold (no lone surrogates)
ANY_TEXT = st.one_of(
    STORABLE,
    st.text(),
    st.lists(st.one_of(STORABLE_CHAR, st.sampled_from(["\ud800", "\udfff"])), max_size=40).map("".join),
)
SAFE_TEXT = st.text(st.characters(codec="utf-8").filter(lambda ch: not UNSAFE.match(ch)))
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(ANY_TEXT)
def test_visible_leaves_nothing_a_terminal_would_obey(text: str) -> None:
    one = visible(text)
    assert not UNSAFE.search(one)
    assert visible(one) == one  # idempotent: safe text is left alone
    many = visible(text, lines=True)
    assert not UNSAFE.search(many.replace("\n", ""))
    assert visible(many, lines=True) == many
    for ch in set(text) - set("\t\n\r\x0b\x0c\x85\u2028\u2029"):
        if UNSAFE.match(ch):  # each one is shown as its escape, not dropped
            assert ("\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u%04x" % ord(ch)) in one
    # Every other character is kept, in order.
    rest = iter(one)
    assert all(ch in rest for ch in text if not UNSAFE.match(ch))


@SETTINGS
@given(SAFE_TEXT)
def test_safe_text_is_shown_exactly(text: str) -> None:
    assert visible(text) == text
    assert visible(text, lines=True) == text


@SETTINGS
@given(ANY_TEXT)
def test_lines_are_kept_in_the_detail_view(text: str) -> None:
    breaks = len(re.findall("\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]", text))
    assert visible(text, lines=True).count("\n") == breaks
    assert "\n" not in visible(text)


@SETTINGS
@given(
    st.recursive(
        st.one_of(st.none(), st.integers(), ANY_TEXT),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(ANY_TEXT, inner, max_size=4)),
        max_leaves=12,
    )
)
def test_safe_json_round_trips_and_holds_no_raw_control(document: Any) -> None:
    text = safe_json(document)
    if not re.search("[\ud800-\udfff]", json.dumps(document, ensure_ascii=False)):
        assert json.loads(text) == document  # a script reads exactly the stored value
    else:  # lone surrogates (never from SQLite): in JSON two in a row read back as one pair
        json.loads(text)
    assert not JSON_RAW.search(text)
    assert not UNSAFE.search(text.replace("\n", ""))  # json.dumps escapes C0 itself; newlines are the indent
    text.encode("utf-8")  # a lone surrogate is escaped, never written (that would raise)


@SETTINGS
@given(ANY_TEXT, st.integers(min_value=1, max_value=300))
def test_clip_cuts_with_an_ellipsis(text: str, width: int) -> None:
    cut = clip(text, width)
    assert len(cut) <= width
    assert cut == text or cut.endswith("…")
    assert text.startswith(cut[:-1]) if cut != text else True


@SETTINGS
@given(ANY_TEXT, st.sampled_from(["", "error", "muted"]))
def test_table_cells_and_panel_lines_are_plain_safe_text(text: str, role: str) -> None:
    styles = fmt.role_styles({})
    cell = fmt.to_text(fmt.Styled(text, role), styles)
    assert cell.plain == visible(text)  # Rich Text, never markup: "[b]x" stays "[b]x"
    assert not cell.spans
    line = fmt.one_line(text, 50)
    assert len(line) <= 50 and not UNSAFE.search(line)
    assert not UNSAFE.search(fmt.quantity(text))


def test_a_huge_quantity_is_shown_as_written() -> None:
    # int(Decimal("1e99999")) has 100,000 digits: str() of it raised, and 1e999999999 took minutes.
    assert fmt.quantity("1e99999") == "1e99999"
    assert fmt.quantity("1e999999999") == "1e999999999"
    assert fmt.quantity("-1E-999999999") == "-1E-999999999"
    assert fmt.quantity("NaN") == "NaN" and fmt.quantity("Infinity") == "Infinity"
    assert fmt.quantity("12.50") == "12.5" and fmt.quantity("1E+3") == "1000"


def test_the_sanitiser_imports_neither_textual_nor_rich() -> None:
    """The admin commands use it on servers without the interface's libraries."""
    code = (
        "import sys, connex_tui.textsafe, connex_tui.admin;"
        " print(sorted(m for m in ('textual', 'rich') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# The interface: what the terminal would be sent

_OUR_SEQUENCES = re.compile(r"\x1b\[[0-9;:]*m|\x1b\[\d+;\d+H")  # Textual's styles and cursor moves


def full_repaint(app: ConnexApp) -> Any:
    """What Textual's driver paints for what is shown now: modal backgrounds and toasts included."""
    return app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)


def terminal_output(app: ConnexApp, update: Any = None) -> str:
    """The full repaint as a terminal receives it, less the newline Textual puts between two lines."""
    update = update or full_repaint(app)
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
    )
    raw = update.render_segments(console)
    assert raw.count("\n") == len(update.strips) - 1  # one per line: none came from the data
    return raw.replace("\n", "")


def shown_text(app: ConnexApp, update: Any = None) -> str:
    update = update or full_repaint(app)
    return "\n".join("".join(strip.text for strip in line) for line in update.strips)


def data_actions(update: Any) -> list[str]:
    """`@click` actions carried by what is shown (Textual adds none of its own here)."""
    found = []
    for segment in (segment for line in update.strips for strip in line for segment in strip):
        meta = segment.style.meta if segment.style is not None else {}
        if "@click" in meta:
            found.append(str(meta["@click"]))
    return found


def assert_intact(app: ConnexApp, where: str) -> str:
    """The App runs, the terminal would get no control character from data, nothing came through
    as an action; returns the text shown."""
    assert app.is_running and app.return_code is None, f"{where}: the interface stopped"
    update = full_repaint(app)
    leftover = _OUR_SEQUENCES.sub("", terminal_output(app, update))
    assert not escapes_in(leftover), f"{where}: unsafe characters sent to the terminal: {escapes_in(leftover)[:10]}"
    assert not has_terminal_command(leftover), where
    assert not any("quit" in action for action in data_actions(update)), f"{where}: data became an action"
    assert app.unsafe_filter.removed == 0, f"{where}: a widget rendered unsanitised text"
    return shown_text(app, update)


async def settled(pilot: Any, mode: str) -> Any:
    app: ConnexApp = pilot.app
    await wait_for(
        pilot,
        lambda: app.current_mode == mode and app.harness.counted(app.screen, "loads") > 0 and app.screen.idle,
        what=f"{mode} loaded",
    )
    return app.screen


async def go(pilot: Any, key: str, mode: str) -> Any:
    await pilot.press(key)
    return await settled(pilot, mode)


def select(app: ConnexApp, key: str) -> None:
    table = app.screen.query_one(DiffTable)
    table.move_cursor(row=table.get_row_index(key), animate=False)


def detail_values(app: ConnexApp) -> dict[str, str]:
    dialog = app.screen
    assert isinstance(dialog, DetailDialog)
    return {name: value for name, value in dialog.fields}


def last_toast(app: ConnexApp) -> Any:
    notes = list(app._notifications)
    assert notes, "no toast"
    return notes[-1]


@pytest.fixture
async def hostile_path(seeded_path: Path) -> Path:
    await seed_hostile(seeded_path, VALUES)
    return seeded_path


def keys_of(prefix: str = "") -> list[str]:
    return [f"{prefix}{value}H{n}" for n, value in enumerate(VALUES)]


async def test_every_screen_shows_hostile_text_as_text(hostile_path: Path) -> None:
    app = make_app(hostile_path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        await settled(pilot, "dashboard")
        text = assert_intact(app, "dashboard")
        assert "[/] | [@click=app.quit]x[/] | [bold]x" in text  # the store's last word, literally
        for key, mode in zip("234561", ["pending", "sku_log", "orders", "tasks", "events", "dashboard"]):
            await go(pilot, key, mode)
            if mode == "events":
                await wait_for(pilot, lambda: app.screen.lines_written >= len(VALUES), what="events written")
            text = assert_intact(app, mode)
            if mode in ("pending", "sku_log", "orders", "tasks", "events"):
                assert "[@click=app.quit]x[/]" in text, mode
                assert "\\x1b]0;PWNED\\x07" in text, mode
                assert "\\u202eevil.exe" in text, mode
            if mode in ("pending", "sku_log", "orders", "tasks"):
                assert re.search("L{8,}…", text), f"{mode}: the 5,000 characters, cut where the column ends"
                assert "-END" not in text
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, KeysDialog))
            assert_intact(app, f"{mode} keys")
            await pilot.press("escape")


async def test_pending_keys_on_hostile_rows(hostile_path: Path, db: Database) -> None:
    app = make_app(hostile_path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        await go(pilot, "2", "pending")
        for value, sku in zip(VALUES, keys_of()):
            select(app, sku)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailDialog), what=f"detail of {sku!r}")
            fields = detail_values(app)
            assert fields["SKU"] == visible(sku, lines=True)  # whole, however long
            assert fields["Last error"] == visible(f"store said: {value}", lines=True)
            assert app.screen.title_text == short(f"SKU {sku}", 60)
            assert_intact(app, f"pending detail {sku[:30]!r}")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, DetailDialog))

            await pilot.press("r")
            await wait_for(pilot, lambda: last_toast(app).message.startswith(short(sku)), what="retry toast")
            assert not last_toast(app).markup
            assert_intact(app, f"pending r {sku[:30]!r}")

            select(app, sku)
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            assert app.screen.question.startswith(f"Drop {short(sku)} from the queue?")
            assert_intact(app, f"pending d {sku[:30]!r}")
            await pilot.press("n")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
        # Drop one for real (its toast quotes the SKU), then retry all failed.
        click = keys_of()[1]
        select(app, click)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: "dropped" in last_toast(app).message, what="drop toast")
        assert last_toast(app).message == f"{click} dropped from the queue"  # the brackets, literally
        assert await db.fetchval("SELECT count(*) FROM pending WHERE sku = ?", (click,)) == 0
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: "failed SKUs queued" in last_toast(app).message)
        assert_intact(app, "pending R")

        # The filter: typed brackets are text, and so is what they match.
        await pilot.press("slash", "left_square_bracket", "slash", "right_square_bracket")
        screen = app.screen
        await wait_for(
            pilot, lambda: screen.sku_filter == "[/]" and screen.idle and app.harness.counted(screen, "loads") > 0
        )
        await wait_for(
            pilot,
            lambda: set(screen.rows) <= {k for k in keys_of() + keys_of("P") if "[/]" in k} and len(screen.rows) > 0,
            what="filtered",
        )
        await pilot.press("enter")
        text = assert_intact(app, "pending filter")
        assert "matching '[/]'" in text


async def test_sku_log_keys_on_hostile_rows(hostile_path: Path) -> None:
    app = make_app(hostile_path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        screen = await go(pilot, "3", "sku_log")
        by_sku = {line.sku: key for key, line in screen.rows.items()}
        for value, sku in zip(VALUES, keys_of()):
            select(app, by_sku[sku])
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailDialog))
            fields = detail_values(app)
            assert fields["SKU"] == visible(sku, lines=True)
            assert fields["Before"] == visible(fmt.quantity(value), lines=True)
            assert f'Item "{visible(value, lines=True)}"' in fields["Reason"]
            assert_intact(app, f"log detail {sku[:30]!r}")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, DetailDialog))
        await pilot.press("f")
        await wait_for(pilot, lambda: screen.failed_only and screen.idle)
        assert_intact(app, "log failures only")
        await pilot.press("slash", *"[bold", "right_square_bracket")
        await wait_for(
            pilot,
            lambda: (
                screen.sku_filter == "[bold]"
                and screen.idle
                and screen.rows
                and all("[bold]" in line.sku.lower() for line in screen.rows.values())
            ),
        )
        await pilot.press("enter")
        assert "SKU contains '[bold]'" in assert_intact(app, "log filter")


async def test_orders_keys_on_hostile_rows(hostile_path: Path, db: Database) -> None:
    app = make_app(hostile_path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        screen = await go(pilot, "4", "orders")
        by_number = {row.number: key for key, row in screen.rows.items()}
        for value, number in zip(VALUES, keys_of()):
            select(app, by_number[number])
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailDialog))
            fields = detail_values(app)
            assert fields["Order"] == visible(number, lines=True)
            assert fields["Store status"] == visible(value, lines=True)
            assert fields["RefNumber"] == visible(value, lines=True) == fields["TxnID"]
            assert fields["Reason"] == visible(f"store error: {value}", lines=True)
            assert app.screen.title_text == short(f"Order {number}", 60)
            assert_intact(app, f"order detail {number[:30]!r}")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, DetailDialog))
            await pilot.press("r")
            await wait_for(pilot, lambda: last_toast(app).message.startswith(f"order {short(number)} goes"))
            assert_intact(app, f"order r {number[:30]!r}")
        requeued = {row[0] for row in await db.fetchall("SELECT number FROM orders WHERE qb_state = 'new'")}
        assert set(keys_of()) <= requeued


async def test_tasks_and_events_with_hostile_text(hostile_path: Path) -> None:
    app = make_app(hostile_path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        await go(pilot, "5", "tasks")
        for name in keys_of():
            select(app, name)
            await pilot.press("enter")
            await wait_for(pilot, lambda: last_toast(app).message == f"{short(name)} runs within a second")
            assert_intact(app, f"task run {name[:30]!r}")
        screen = await go(pilot, "6", "events")
        await wait_for(pilot, lambda: screen.lines_written >= len(VALUES))
        # In the engine's own process events are shown live, before they reach the table.
        for n, value in enumerate(VALUES):
            screen.add_live(OrderFailed(order_id=n, number=value, reason=value))
            screen.add_live(SessionEnded(session_id=n, result=value, requests=1, summary=value))
        await pilot.pause()
        lines = screen.query_one(Log).lines
        assert not any(UNSAFE.search(line) for line in lines)
        assert any("order [@click=app.quit]x[/] failed: [@click=app.quit]x[/]" in line for line in lines)
        assert any(line.endswith("…") and "LLLL" in line for line in lines)  # 5,000 characters, cut
        assert_intact(app, "events live")


async def test_command_palette_runs_actions_on_hostile_rows(hostile_path: Path) -> None:
    app = make_app(hostile_path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        await go(pilot, "2", "pending")
        click = keys_of()[1]
        select(app, click)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        options = app.screen.query_one(OptionList)
        await wait_for(pilot, lambda: options.option_count > 10, what="commands listed")
        assert_intact(app, "palette")
        await pilot.press(*"pending: retry")
        await wait_for(pilot, lambda: "Retry" in str(options.get_option_at_index(0).prompt), what="Pending: Retry")
        await pilot.press("enter")
        await wait_for(pilot, lambda: last_toast(app).message == f"{click}: queued to be pushed now")
        await wait_for(pilot, lambda: "[@click=app.quit]x[/]H1:" in shown_text(app), what="the toast drawn")
        assert_intact(app, "palette retry")


async def test_the_dashboard_cuts_long_values(hostile_path: Path) -> None:
    app = make_app(hostile_path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        await settled(pilot, "dashboard")
        text = assert_intact(app, "dashboard")
        assert "LLLLLLLLLL" in text and "-END" not in text  # the 5,000-character value, cut
        assert max(len(line) for line in text.splitlines()) <= BIG[0]
        panel = str(app.screen.query_one("#dash-failures", Static).content)
        assert all(len(line) < 250 for line in panel.splitlines())
        # A long subject is cut and still separated from its reason.
        assert "SKU LLLLLLLLLLLLLLLLLLLLLLLLL… QuickBooks 3140" in panel
        assert "SKU a\\x00b\\x7fc\\x08d XH10 QuickBooks 3140" in panel
        # The store's and the last session's words, literally.
        assert "[/] | [@click=app.quit]x[/] | [bold]x" in str(app.screen.query_one("#dash-store", Static).content)
        assert "result [/] | [@click=app.quit]x[/] |…" in text


async def test_a_pasted_control_character_is_removed_by_the_last_line_of_defence(seeded_path: Path) -> None:
    """Text typed or pasted into an input is rendered by Textual itself: the line filter removes
    what would drive the terminal there, keeping the layout (those characters take no cell)."""
    app = make_app(seeded_path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        screen = await go(pilot, "2", "pending")
        await pilot.press("slash")
        box = screen.query_one("#filter", Input)
        box.insert_text_at_cursor(f"{HOSTILE['title']}\u202e{HOSTILE['clear']}")
        await wait_for(pilot, lambda: screen.sku_filter.startswith("\x1b") and screen.idle)
        raw = _OUR_SEQUENCES.sub("", terminal_output(app))
        assert not escapes_in(raw) and not has_terminal_command(raw)
        assert app.unsafe_filter.removed > 0  # the input's own rendering needed it
        assert "matching '\\x1b]0;PWNED\\x07\\u202e\\x1b[2J'" in shown_text(app)  # the summary: escaped


# ---------------------------------------------------------------------------------------------
# Hypothesis through the whole interface: random hostile text in every table, every screen


async def _walk(path: Path, values: list[str]) -> None:
    app = make_app(path)
    async with app.run_test(size=BIG, notifications=True) as pilot:
        await settled(pilot, "dashboard")
        assert_intact(app, "dashboard")
        for key, mode in zip("23456", ["pending", "sku_log", "orders", "tasks", "events"]):
            screen = await go(pilot, key, mode)
            assert_intact(app, mode)
            if mode in ("pending", "orders"):
                wanted = keys_of_values(values)[0]
                rows = screen.rows
                row_key = next(
                    k for k, row in rows.items() if getattr(row, "sku", getattr(row, "number", None)) == wanted
                )
                select(app, row_key)
                await pilot.press("enter")
                await wait_for(pilot, lambda: isinstance(app.screen, DetailDialog))
                assert_intact(app, f"{mode} detail")
                await pilot.press("escape")
                await wait_for(pilot, lambda: not isinstance(app.screen, DetailDialog))
                await pilot.press("r")
                await wait_for(pilot, lambda: bool(app._notifications))
                assert_intact(app, f"{mode} r")


def keys_of_values(values: list[str]) -> list[str]:
    return [f"{value}H{n}" for n, value in enumerate(values)]


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(STORABLE, min_size=2, max_size=3))
def test_random_hostile_text_through_every_screen(values: list[str], _template_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / f"walk-{time.monotonic_ns()}.db"
    shutil.copyfile(_template("small", seed_database, _template_dir), path)
    asyncio.run(seed_hostile(path, values))
    asyncio.run(_walk(path, values))


# ---------------------------------------------------------------------------------------------
# The admin commands: text and --json

ADMIN_RUNS = [
    ["status"],
    ["queue", "list", "--limit", "0"],
    ["log", "--limit", "0"],
    ["orders", "--limit", "0"],
    ["tasks"],
]


def hostile_config(tmp_path: Path, source: Path) -> Config:
    folder = tmp_path / "admin"
    folder.mkdir(exist_ok=True)
    config = make_config(folder)
    shutil.copyfile(source, config.database.path)
    (folder / "connex.toml").write_text(
        f'[database]\npath = "connex.db"\n[qbwc]\npassword = "{PASSWORD}"\n[storefront]\nplatform = "none"\n'
    )
    (folder / "connex.toml").chmod(0o600)
    return config


async def _admin(config: Config, *argv: str) -> tuple[int, str]:
    from .test_admin_cli import admin

    return await admin(config, *argv)


@pytest.mark.parametrize("argv", ADMIN_RUNS, ids=lambda a: " ".join(a[:2]))
async def test_admin_text_output_is_safe_and_fits(tmp_path: Path, hostile_path: Path, argv: list[str]) -> None:
    config = hostile_config(tmp_path, hostile_path)
    _code, text = await _admin(config, *argv)
    assert not escapes_in(text.replace("\n", "")), escapes_in(text.replace("\n", ""))[:10]
    assert all(len(line) <= 100 for line in text.splitlines())  # 5,000 characters are cut
    assert "-END" not in text
    assert "[@click=app.quit]x[/]" in text  # literally
    assert "\\x1b]0;PWNED\\x07" in text


@pytest.mark.parametrize("argv", ADMIN_RUNS, ids=lambda a: " ".join(a[:2]))
async def test_admin_json_is_escaped_and_exact(tmp_path: Path, hostile_path: Path, argv: list[str]) -> None:
    config = hostile_config(tmp_path, hostile_path)
    _code, text = await _admin(config, *argv, "--json")
    assert not UNSAFE.search(text.replace("\n", "")), escapes_in(text.replace("\n", ""))[:10]
    document = json.loads(text)
    strings = set(_strings(document))
    for value, key in zip(VALUES, keys_of()):  # the stored values, exactly
        if argv[0] in ("queue", "log"):
            assert key in strings
        elif argv[0] == "orders":
            assert key in strings and f"store error: {value}" in strings
        elif argv[0] == "tasks":
            assert f"error: {value}" in strings


def _strings(document: Any) -> list[str]:
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [s for k, v in document.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(document, list):
        return [s for item in document for s in _strings(item)]
    return []


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(STORABLE, min_size=1, max_size=4))
def test_random_hostile_text_through_the_admin_commands(values: list[str], _template_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / f"cli-{time.monotonic_ns()}"
    root.mkdir()
    config = make_config(root)
    shutil.copyfile(_template("small", seed_database, _template_dir), config.database.path)

    async def run() -> None:
        await seed_hostile(config.database.path, values)
        for argv in ADMIN_RUNS:
            _code, text = await _admin(config, *argv)
            assert not escapes_in(text.replace("\n", "")), argv
            assert all(len(line) <= 100 for line in text.splitlines()), argv
            _code, text = await _admin(config, *argv, "--json")
            assert not UNSAFE.search(text.replace("\n", "")), argv
            document = json.loads(text)
            if argv[0] in ("queue", "log"):
                assert set(keys_of_values(values)) <= set(_strings(document))

    asyncio.run(run())


def test_admin_commands_write_no_control_bytes(tmp_path: Path, hostile_path: Path) -> None:
    """The real process: the bytes on its standard output and error."""
    config = hostile_config(tmp_path, hostile_path)
    toml = config.database.path.parent / "connex.toml"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONIOENCODING": "utf-8"}
    runs = [[*argv, *extra] for argv in ADMIN_RUNS for extra in ([], ["--json"])]
    runs.append(["queue", "drop", HOSTILE["title"], HOSTILE["rlo"]])  # not in the queue: named on stderr
    for argv in runs:
        done = subprocess.run(
            [sys.executable, "-m", "connex_tui.cli", *argv, "--config", str(toml)],
            capture_output=True,
            env=env,
            timeout=60,
        )
        assert done.returncode in (0, 1), (argv, done.stderr[-500:])
        for stream in (done.stdout, done.stderr):
            text = stream.decode("utf-8")
            assert not escapes_in(text.replace("\n", "")), (argv, escapes_in(text.replace("\n", ""))[:5])
        if argv[0] == "queue" and argv[1] == "drop":
            assert b"not in the queue: \\x1b]0;PWNED\\x07, \\u202eevil.exe" in done.stderr
    assert config.database.path.exists()


# ---------------------------------------------------------------------------------------------
# The real thing: `connex-tui monitor` on a terminal, every screen and key on hostile rows


def test_monitor_on_a_real_terminal_sends_no_data_made_command(tmp_path: Path, hostile_path: Path) -> None:
    config = tmp_path / "connex.toml"  # next to the hostile database, connex.db
    config.write_text(
        '[database]\npath = "connex.db"\n[qbwc]\npassword = "pty-Pa55word-x"\n[storefront]\nplatform = "none"\n'
    )
    config.chmod(0o600)
    proc, master, screen, reader = start_on_terminal(
        ["monitor", "--config", str(config), "--no-mouse"],
        columns=160,
        lines=45,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )

    def keys(*sequence: str, pause: float = 0.35) -> None:
        for key in sequence:
            assert proc.poll() is None, "the interface exited"
            os.write(master, key.encode())
            time.sleep(pause)

    try:
        deadline = time.monotonic() + 30
        while b"Dashboard" not in b"".join(screen) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        down = "\x1b[B"
        keys("2", *[down] * 3)  # past the three seeded failed SKUs: the hostile ones
        for _ in range(len(VALUES)):
            keys("\r", pause=0.2)  # the detail
            keys("\x1b", pause=0.3)  # close it (an escape alone is known as one after a short wait)
            keys("r", down, pause=0.15)
        keys("3", "\r", "\x1b", "4", "\r", "\x1b", "r", "5", "\r", "6", "1", "\x10", "\x1b", pause=0.4)
        assert proc.poll() is None, "the interface exited"
        keys("q")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        reader.join(timeout=5)
    # Textual's own OSC: the mouse pointer's shape (OSC 22), ended by a BEL.
    out = re.sub("\x1b]22;[a-z-]*\x07", "", b"".join(screen).decode("utf-8", "replace"))
    assert "Pending" in out and "Orders" in out
    assert "\\x1b]0;PWNED\\x07" in out  # the hostile text was drawn, escaped
    assert "\x1b]0;PWNED" not in out and "\x1b]52;" not in out and "\x1b[2J" not in out
    found = [
        (repr(m.group()), repr(out[max(m.start() - 30, 0) : m.end() + 10]))
        for m in re.finditer("[\u0080-\u009f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\x07\x00\x7f]", out)
    ]
    assert not found, found[:5]


def test_doctor_shows_a_store_answer_as_text() -> None:
    """`connex-tui doctor` quotes what the store answered when its check fails."""
    from connex_tui.doctor import Check

    line = Check("store", "fail", f"https://shop.example: 401 {HOSTILE['title']}{HOSTILE['rlo']}").line()
    assert line == "FAIL  store     https://shop.example: 401 \\x1b]0;PWNED\\x07\\u202eevil.exe"


async def test_company_command_shows_quickbooks_names_as_text(tmp_path: Path) -> None:
    """`connex-tui company` prints the company file's path and name as QuickBooks reported them."""
    import contextlib

    from connex_tui.cli import company_command
    from connex_tui.engine.company import CompanyFile, record_company, remember_refused

    config = make_config(tmp_path)
    database = await Database.open(config.database.path)
    try:
        async with database.transaction() as conn:
            await record_company(conn, CompanyFile(f"C:\\Books\\{HOSTILE['title']}.qbw", HOSTILE["rlo"], "{F1}"))
            await remember_refused(conn, CompanyFile(f"C:\\Copy\\{HOSTILE['clear']}.qbw", HOSTILE["click"]))
    finally:
        await database.close()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        await company_command(config, "show")
    text = out.getvalue()
    assert not escapes_in(text.replace("\n", ""))
    assert 'C:\\Books\\\\x1b]0;PWNED\\x07.qbw (company "\\u202eevil.exe", FileID {F1})' in text
    assert 'refused: C:\\Copy\\\\x1b[2J.qbw (company "[@click=app.quit]x[/]")' in text
