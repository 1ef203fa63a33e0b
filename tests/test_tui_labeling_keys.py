"""Issue 21.1: on every screen where digits write labels, no digit switches screens and the status bar offers the
keys that really do (F1-F7)."""

from __future__ import annotations

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens import SCREENS
from bizsent.tui.screens.label import LabelScreen
from bizsent.tui.screens.spotcheck import SpotCheckScreen
from bizsent.tui.widgets.status_bar import StatusBar
from fakes.tui import build_store, open_screen


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    return build_store(db, settings.image_dir)


@pytest.mark.parametrize(("mode", "kind"), [("label", LabelScreen), ("spotcheck", SpotCheckScreen)])
async def test_digits_never_switch_screens_where_digits_label(settings, db, store, mode, kind):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_screen(app, pilot, mode, kind)
        await pilot.pause()
        bar = str(screen.query_one(StatusBar).render())
        assert "F2 Label" in bar and f"F{len(SCREENS)} {SCREENS[-1].title}" in bar
        for digit in "4567":
            await pilot.press(digit)
            assert app.screen is screen, f"{digit} switched screens"
        await pilot.press("f4")
        assert app.current_mode == "eval"
    assert db.execute("SELECT count(*) FROM labels WHERE source = 'human'").fetchone()[0] == 0
