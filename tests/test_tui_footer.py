"""The footer does not keep the keys of earlier screens alive (Textual 8.2.8 leaks them through
data_bind watchers; every full garbage collection then walks them, stalling the endpoint)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets._footer import FooterKey

from connex_tui.widgets.footer import ConnexFooter

from .test_tui_keys import go
from .tui_fixtures import SIZE, _template_dir, make_app, seeded_path  # noqa: F401 - fixtures


def watchers_of(footer: ConnexFooter) -> int:
    return sum(len(entries) for entries in getattr(footer, "__watchers", {}).values())


async def test_switching_screens_many_times_keeps_the_footer_bounded(seeded_path: Path) -> None:
    app = make_app(seeded_path)
    async with app.run_test(size=SIZE) as pilot:
        counts = []
        for round_ in range(8):
            for key, mode in (
                ("1", "dashboard"),
                ("2", "pending"),
                ("3", "sku_log"),
                ("4", "orders"),
                ("5", "tasks"),
                ("6", "events"),
            ):
                await go(pilot, key, mode)
                await pilot.pause()
            footer = app.screen.query_one(ConnexFooter)
            mounted = len(footer.query(FooterKey))
            counts.append(watchers_of(footer))
            assert watchers_of(footer) <= mounted + 2, (round_, watchers_of(footer), mounted)
        assert max(counts) == min(counts) or max(counts) - min(counts) <= 2
