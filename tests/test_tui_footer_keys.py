"""Every screen's footer lists the keys that work on it (issue 21.4): each key it shows runs the action it names
there, and `enter`, wherever it does something (opening a post in Label, accepting a prediction, a coin's
posts), is on the footer at 80 columns too. Through Textual's Pilot on every screen of the console."""

from __future__ import annotations

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens import SCREENS
from bizsent.tui.widgets.key_bar import KeyBar
from test_tui_keys import SIZES, config, fill


def enter_works(screen) -> bool:
    """The screen binds enter itself, or acts when its list's row is chosen (a DataTable takes enter)."""
    bound = any("enter" in b.key.split(",") for b in screen.BINDINGS)
    return bound or hasattr(screen, "on_data_table_row_selected")


@pytest.mark.parametrize("size", SIZES)
async def test_every_footer_shows_keys_that_work_and_enter_where_it_does_something(tmp_path, size):
    settings = config(tmp_path)
    fill(settings, n_rows=3)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    with_enter = set()
    async with app.run_test(size=size) as pilot:
        for spec in SCREENS:
            await app.switch_mode(spec.mode)
            await pilot.pause()
            screen, bar = app.screen, app.screen.query_one(KeyBar)
            footer = str(bar.render())
            for binding in bar._current_bindings():
                if not binding.show or f" {binding.description}" not in footer:
                    continue
                for key in binding.key.split(","):  # the key on the footer runs what it says there
                    assert screen.active_bindings[key].binding.action == binding.action, (spec.mode, key)
            if enter_works(screen):
                with_enter.add(spec.mode)
                assert "enter" in footer, (spec.mode, footer)
    assert with_enter == {"posts", "spotcheck", "trends"}
