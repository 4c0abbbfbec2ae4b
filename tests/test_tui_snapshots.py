"""Snapshots of every screen (100x30) and the dashboard at 80x24, from fixed data and a fixed clock.

SVGs live in the top-level `snapshots/test_tui_snapshots/` (see the end of conftest.py).
Regenerate with `python -m pytest tests/test_tui_snapshots.py --snapshot-update` and look at them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tui_fixtures import (  # noqa: F401 - fixtures
    SIZE,
    SMALL,
    _template_dir,
    make_app,
    seeded_path,
    wait_for,
)

KEYS = {"dashboard": "1", "pending": "2", "sku_log": "3", "orders": "4", "tasks": "5", "events": "6"}


def ready(mode: str, *then: str):
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        app.animation_level = "none"
        if mode != "dashboard":
            await pilot.press(KEYS[mode])
        await wait_for(
            pilot,
            lambda: (
                app.current_mode == mode
                and app.harness.counted(app.screen, "loads") > 0
                and app.screen.idle
                and app.paused is not None
            ),
            what=f"{mode} loaded",
        )
        if then:
            await pilot.press(*then)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("mode", list(KEYS))
def test_screen(snap_compare: Any, seeded_path: Path, mode: str) -> None:
    assert snap_compare(make_app(seeded_path), run_before=ready(mode), terminal_size=SIZE)


def test_dashboard_80x24(snap_compare: Any, seeded_path: Path) -> None:
    assert snap_compare(make_app(seeded_path), run_before=ready("dashboard"), terminal_size=SMALL)


def test_pending_80x24(snap_compare: Any, seeded_path: Path) -> None:
    assert snap_compare(make_app(seeded_path), run_before=ready("pending"), terminal_size=SMALL)


def test_pending_detail(snap_compare: Any, seeded_path: Path) -> None:
    assert snap_compare(make_app(seeded_path), run_before=ready("pending", "enter"), terminal_size=SIZE)


def test_keys_80x24(snap_compare: Any, seeded_path: Path) -> None:
    assert snap_compare(make_app(seeded_path), run_before=ready("pending", "question_mark"), terminal_size=SMALL)


def test_snapshots_live_in_top_level_folder() -> None:
    """The conftest override is what puts SVGs in snapshots/, not tests/__snapshots__/."""
    root = Path(__file__).resolve().parents[1]
    folder = root / "snapshots" / "test_tui_snapshots"
    assert folder.is_dir()
    assert (folder / "test_screen[dashboard].svg").is_file()
    assert not (Path(__file__).parent / "__snapshots__" / "test_tui_snapshots").exists()
