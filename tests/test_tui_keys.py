"""Every key of the interface, checked where it matters: in the database (through a connection of
the test's own, as another process would see it) and on screen."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.widgets import Input, OptionList

from connex_tui.app import SCREEN_CLASSES, ConnexApp, ConnexCommands
from connex_tui.engine.clock import parse_stamp, stamp
from connex_tui.engine.config import ConfigError
from connex_tui.engine.db import Database
from connex_tui.keymap import check_keymap
from connex_tui.screens.dialogs import ConfirmDialog, DetailDialog, KeysDialog
from connex_tui.widgets.diff_table import DiffTable
from connex_tui.widgets.fmt import plain
from tests.tui_fixtures import (  # noqa: F401 - fixtures
    FAILED_ORDER_NUMBERS,
    FAILED_SKUS,
    FIXED_NOW,
    LEAKED_KEY,
    LOG_LINES,
    PENDING_COUNT,
    SIZE,
    _template_dir,
    db,
    make_app,
    screen_text,
    seeded_path,
    wait_for,
)


async def settled(pilot: Any, mode: str | None = None) -> Any:
    app: ConnexApp = pilot.app
    await wait_for(
        pilot,
        lambda: (
            (mode is None or app.current_mode == mode)
            and app.harness.counted(app.screen, "loads") > 0
            and app.screen.idle
        ),
        what=f"{mode or app.current_mode} loaded",
    )
    return app.screen


async def go(pilot: Any, key: str, mode: str) -> Any:
    await pilot.press(key)
    return await settled(pilot, mode)


def table(app: ConnexApp) -> DiffTable:
    return app.screen.query_one(DiffTable)


def cells(app: ConnexApp, key: str) -> list[str]:
    raw = table(app).raw(key)
    assert raw is not None, f"row {key} not shown"
    return [plain(cell) for cell in raw]


async def fresh_load(pilot: Any) -> None:
    """Wait for a read that started after now (the database changed under the screen)."""
    app: ConnexApp = pilot.app
    screen = app.screen
    before = app.harness.counted(screen, "loads")
    screen.request_refresh()
    await wait_for(pilot, lambda: app.harness.counted(screen, "loads") > before and screen.idle, what="a fresh load")


# ---------------------------------------------------------------------- screens, help, quit


async def test_number_keys_switch_screens(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "dashboard")
        for key, mode in zip("234561", ["pending", "sku_log", "orders", "tasks", "events", "dashboard"]):
            screen = await go(pilot, key, mode)
            assert isinstance(screen, SCREEN_CLASSES[mode])
            assert f" {key} {screen.TITLE} " in screen_text(app).splitlines()[0]


async def test_question_mark_shows_the_keys(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "2", "pending")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, KeysDialog))
        text = screen_text(app)
        for expected in ("Retry all failed", "Drop", "Filter", "Pause", "Quit", "Dashboard"):
            assert expected in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, KeysDialog))
        assert app.current_mode == "pending"


async def test_q_quits(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "dashboard")
        await pilot.press("q")
        await pilot.pause()
        assert app._exit
    assert app.return_code == 0


# ---------------------------------------------------------------------- pending


async def test_r_retries_the_selected_failed_sku(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "2", "pending")
        sku = table(app).cursor_key
        assert sku == FAILED_SKUS[0]
        assert cells(app, sku)[2:4] == ["failed", "8"]
        await pilot.press("r")
        await fresh_load(pilot)
        row = await db.fetchone("SELECT state, attempts, last_error FROM pending WHERE sku = ?", (sku,))
        assert (row["state"], row["attempts"], row["last_error"]) == ("pending", 0, None)
        assert cells(app, sku)[2:4] == ["pending", "0"]
        # Failed rows stay first: the retried one moved down, the next failure is at the top.
        assert table(app).keys[0] == FAILED_SKUS[1]


async def test_shift_r_retries_all_failed_after_confirming(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "2", "pending")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")  # cancelling changes nothing
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
        assert await db.fetchval("SELECT count(*) FROM pending WHERE state = 'failed'") == len(FAILED_SKUS)
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "3 failed SKUs" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
        await fresh_load(pilot)
        assert await db.fetchval("SELECT count(*) FROM pending WHERE state = 'failed'") == 0
        for sku in FAILED_SKUS:
            assert cells(app, sku)[2:4] == ["pending", "0"]
        # Nothing failed any more: R no longer applies.
        assert "R" not in {key for key, b in app.screen.active_bindings.items() if b.enabled}


async def test_d_drops_the_selected_sku_after_confirming(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "2", "pending")
        await pilot.press("down")
        sku = table(app).cursor_key
        assert sku == FAILED_SKUS[1]
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
        await fresh_load(pilot)
        assert await db.fetchval("SELECT count(*) FROM pending WHERE sku = ?", (sku,)) == 0
        assert sku not in table(app).keys
        assert table(app).row_count == PENDING_COUNT - 1


async def test_slash_filters_the_queue(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "2", "pending")
        assert table(app).row_count == PENDING_COUNT
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        assert box.has_focus
        await pilot.press(*"sku-021")  # case-insensitive, like SQLite's LIKE
        await wait_for(pilot, lambda: app.screen.idle and table(app).row_count == 9, what="filtered")
        assert all(key.startswith("SKU-021") for key in table(app).keys)
        await pilot.press("enter")  # done typing: the table has the keys again
        assert table(app).has_focus
        await pilot.press("r")  # ... so r retries, instead of typing an "r"
        assert box.value == "sku-021"
        await pilot.press("escape")  # clear
        await wait_for(pilot, lambda: app.screen.idle and table(app).row_count == PENDING_COUNT, what="unfiltered")
        assert not box.display


async def test_enter_shows_the_detail(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "2", "pending")
        await pilot.press("down", "down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailDialog))
        text = screen_text(app)
        assert "SKU SKU-0413" in text
        assert "stock_quantity must be a whole number" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.MODE == "pending" if hasattr(app.screen, "MODE") else False)


async def test_retry_does_not_apply_to_a_row_being_sent(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "2", "pending")
        index = next(i for i, key in enumerate(table(app).keys) if cells(app, key)[2] == "sending")
        table(app).move_cursor(row=index)
        await pilot.pause()
        sku = table(app).cursor_key
        assert app.screen.check_action("retry", ()) is None  # shown, disabled
        await pilot.press("r", "d")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        row = await db.fetchone("SELECT state FROM pending WHERE sku = ?", (sku,))
        assert row["state"] == "in_flight"


# ---------------------------------------------------------------------- SKU log


async def test_f_toggles_failed_only(seeded_path: Path, db: Database) -> None:
    failed = await db.fetchval("SELECT count(*) FROM sku_log WHERE ok = 0")
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "3", "sku_log")
        results = {cells(app, key)[5] for key in table(app).keys}
        assert results == {"ok", "FAIL"}
        await pilot.press("f")
        await wait_for(pilot, lambda: app.screen.idle and table(app).row_count == failed, what="failures only")
        assert {cells(app, key)[5] for key in table(app).keys} == {"FAIL"}
        assert "failures only" in screen_text(app)
        await pilot.press("f")
        await wait_for(pilot, lambda: app.screen.idle and table(app).row_count == 200, what="everything again")
        assert {cells(app, key)[5] for key in table(app).keys} == {"ok", "FAIL"}


async def test_sku_log_filter(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "3", "sku_log")
        await pilot.press("slash", *"redwine", "enter")
        await wait_for(pilot, lambda: app.screen.idle and table(app).row_count == 1, what="filtered")
        assert cells(app, table(app).keys[0])[2] == "redwine"


async def test_sku_log_pages_with_the_cursor(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await go(pilot, "3", "sku_log")
        assert table(app).row_count == 200 and app.harness.counted(screen, "older_pages") == 0
        await pilot.press("G")  # to the last row: the next page is read
        await wait_for(pilot, lambda: table(app).row_count == LOG_LINES + 1, what="second page")
        assert app.harness.counted(screen, "older_pages") == 1 and screen.exhausted
        ids = [int(key) for key in table(app).keys]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)


async def test_new_log_lines_arrive_at_the_top(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path, refresh_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "3", "sku_log")
        await pilot.press("down", "down")
        selected = table(app).cursor_key
        rebuilds = app.harness.counted(table(app), "full_rebuilds")
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?, 'NEW-1', '1', '2', 1, '')",
                (datetime.now(timezone.utc).isoformat(),),
            )
        await wait_for(pilot, lambda: cells(app, table(app).keys[0])[2] == "NEW-1", what="new line on top")
        assert table(app).cursor_key == selected  # the cursor stays on the line it was on
        assert app.harness.counted(table(app), "full_rebuilds") == rebuilds


# ---------------------------------------------------------------------- orders, tasks


async def test_r_requeues_a_failed_order(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "4", "orders")
        key = table(app).cursor_key
        assert cells(app, key)[0] == FAILED_ORDER_NUMBERS[1] and cells(app, key)[3] == "failed"
        await pilot.press("r")
        await fresh_load(pilot)
        row = await db.fetchone("SELECT qb_state, error FROM orders WHERE id = ?", (int(key),))
        assert (row["qb_state"], row["error"]) == ("new", None)
        assert cells(app, key)[3] == "new"


async def test_r_does_not_apply_to_a_posted_order(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "4", "orders")
        assert "r" in app.screen.active_bindings  # on a failed order: offered
        index = next(i for i, key in enumerate(table(app).keys) if cells(app, key)[3] == "posted")
        table(app).move_cursor(row=index)
        await pilot.pause()
        assert "r" not in app.screen.active_bindings  # the footer does not offer it
        before = await db.fetchall("SELECT id, qb_state, updated_at FROM orders ORDER BY id")
        await pilot.press("r")
        await pilot.pause()
        assert [tuple(r) for r in await db.fetchall("SELECT id, qb_state, updated_at FROM orders ORDER BY id")] == [
            tuple(r) for r in before
        ]


async def test_enter_runs_the_selected_task_now(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "5", "tasks")
        await pilot.press("down")
        name = table(app).cursor_key
        assert name == "cleanup"
        assert await db.fetchval("SELECT next_run FROM tasks WHERE name = ?", (name,)) != stamp(FIXED_NOW)
        await pilot.press("enter")
        await fresh_load(pilot)
        # Due "now" by the interface's clock (the engine's one), not by the machine's wall clock.
        assert await db.fetchval("SELECT next_run FROM tasks WHERE name = ?", (name,)) == stamp(FIXED_NOW)
        other = await db.fetchval("SELECT next_run FROM tasks WHERE name = 'catalog'")
        assert parse_stamp(other) > FIXED_NOW


# ---------------------------------------------------------------------- pause, palette


async def test_p_pauses_and_resumes(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "dashboard")
        await wait_for(pilot, lambda: app.paused is False)
        await pilot.press("p")
        await wait_for(pilot, lambda: app.paused is True)
        assert await db.get_meta("inventory.paused") == "1"
        await fresh_load(pilot)
        assert "PAUSED" in screen_text(app)
        assert app.screen.active_bindings["p"].binding.description == "Resume"
        assert await db.fetchval("SELECT next_run FROM tasks WHERE name = 'inventory'") != stamp(FIXED_NOW)
        await pilot.press("p")
        await wait_for(pilot, lambda: app.paused is False)
        assert await db.get_meta("inventory.paused") == "0"
        # Resuming nudges the inventory task (admin_commands.set_paused): it runs now.
        assert await db.fetchval("SELECT next_run FROM tasks WHERE name = 'inventory'") == stamp(FIXED_NOW)


async def test_pause_flag_set_elsewhere_shows_up(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path, refresh_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "dashboard")
        async with db.transaction() as conn:
            await db.set_meta(conn, "inventory.paused", "1")
        await wait_for(pilot, lambda: app.paused is True and "PAUSED" in screen_text(app), what="paused shown")


async def test_command_palette_lists_every_action(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "dashboard")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        options = app.screen.query_one(OptionList)
        await wait_for(pilot, lambda: options.option_count > 10, what="commands listed")
        titles = {str(options.get_option_at_index(i).prompt).split("\n")[0] for i in range(options.option_count)}
        expected = {
            "Go to Dashboard",
            "Go to Pending",
            "Go to SKU log",
            "Go to Orders",
            "Go to Tasks",
            "Go to Events",
            "Pause pushing",
            "Show keys",
            "Quit",
            "Pending: Retry",
            "Pending: Retry all failed",
            "Pending: Drop",
            "Pending: Filter",
            "Pending: Detail",
            "SKU log: Failed only",
            "SKU log: Filter",
            "Orders: Re-queue",
            "Tasks: Run now",
        }
        assert expected <= titles, expected - titles
        # Choosing one runs it.
        await pilot.press(*"go to tasks")
        await pilot.pause(0.2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "tasks", what="palette switched screens")


async def test_palette_action_runs_on_its_screen(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "dashboard")
        await app.run_screen_action("sku_log", "failed_only")
        await settled(pilot, "sku_log")
        assert app.screen.failed_only


# ---------------------------------------------------------------------- bindings, secrets


async def test_every_binding_has_an_id_and_a_description(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "dashboard")
        nodes: list[Any] = [app]
        for key, mode in zip("123456", SCREEN_CLASSES):
            screen = await go(pilot, key, mode)
            nodes.append(screen)
            nodes.extend(screen.query(DiffTable))
        for dialog in (ConfirmDialog("t", "q"), DetailDialog("t", []), KeysDialog("t", [])):
            nodes.append(dialog)
        missing = [
            (type(node).__name__, key, binding.action)
            for node in nodes
            for key, binding in node._bindings
            if not binding.id or not binding.description
        ]
        assert not missing, missing
        ids = [binding.id for binding in app._bindings.key_to_bindings.get("1", [])]
        assert ids == ["screen.dashboard"]
        app_ids = {binding.id for _key, binding in app._bindings}
        assert {"screen.dashboard", "screen.events", "sync.pause", "app.help", "app.quit", "app.palette"} <= app_ids


async def test_secrets_never_appear(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await go(pilot, "4", "orders")
        assert LEAKED_KEY not in screen_text(app)
        assert "consumer_key=***" in screen_text(app)
        await pilot.press("enter")  # the untruncated reason
        await wait_for(pilot, lambda: isinstance(app.screen, DetailDialog))
        assert LEAKED_KEY not in screen_text(app)
        assert "consumer_key=***" in screen_text(app)


# ---------------------------------------------------------------------- [interface] keymap


async def test_a_remapped_key_runs_the_action_and_the_old_one_does_not(seeded_path: Path, db: Database) -> None:
    app = make_app(seeded_path, keymap=check_keymap([("pending.retry", "t"), ("screen.pending", "f2")]))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "dashboard")
        await go(pilot, "f2", "pending")  # the screen key comes from the keymap too
        sku = table(app).cursor_key
        assert sku == FAILED_SKUS[0]
        await pilot.press("r")  # no longer retry
        await fresh_load(pilot)
        assert (await db.fetchone("SELECT state FROM pending WHERE sku = ?", (sku,)))["state"] == "failed"
        await pilot.press("t")
        await fresh_load(pilot)
        row = await db.fetchone("SELECT state, attempts FROM pending WHERE sku = ?", (sku,))
        assert (row["state"], row["attempts"]) == ("pending", 0)


async def test_the_keys_screen_and_the_palette_show_the_remapped_key(seeded_path: Path) -> None:
    app = make_app(seeded_path, keymap=check_keymap([("pending.retry", "t")]))
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot, "2", "pending")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, KeysDialog))
        dialog = app.screen
        assert isinstance(dialog, KeysDialog)
        shown = {description: keys for _heading, rows in dialog.groups for keys, description, _ in rows}
        assert shown["Retry"] == "t" and shown["Retry all failed"] == "R"  # the others keep theirs
        assert "t  Retry" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, KeysDialog))
        entries = {title: help_text for title, help_text, _ in ConnexCommands(app.screen).entries()}
        assert "(key t on Pending)" in entries["Pending: Retry"]


def test_a_bad_keymap_entry_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as unknown:
        check_keymap([("pending.retyr", "t")], label="shop.toml")
    assert str(unknown.value) == (
        "shop.toml: [interface] keymap.pending.retyr: unknown binding id (did you mean 'pending.retry'?)"
    )
    with pytest.raises(ConfigError) as name:
        check_keymap([("pending.retry", "ctrl+enterr")], label="shop.toml")
    assert str(name.value).startswith("shop.toml: [interface] keymap.pending.retry: malformed key 'ctrl+enterr'")
    assert "'enter'" in str(name.value)
