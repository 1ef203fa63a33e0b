"""The Label screen reads on a light background (issue 21.6): each label's colour in the tally and each split
word of the flags line (TRAIN, TEST, REPEAT) has a WCAG contrast of at least 4.5:1 against what is behind it,
measured on the line as the screen paints it (after the app's colour filters). The split words are checked in
the dark theme too: their colours follow the theme's palette in both."""

from __future__ import annotations

import pytest
from bizsent.tui.widgets.label_bars import LabelFlags
from fakes.tui import until
from test_tui_fit import app_on_store, contrast
from textual.widgets import Static

LABEL_WORDS = ("bear", "neut", "bull")
SPLIT_WORDS = ("TRAIN", "TEST", "REPEAT")


def painted(app, widget) -> dict[str, float]:
    """Text -> its contrast with its background, for each coloured run of the widget's first line as drawn."""
    strip = widget.render_line(0)
    for line_filter in app.get_line_filters():
        strip = strip.apply_filter(line_filter, widget.background_colors[1])
    out = {}
    for segment in strip:
        style = segment.style
        if style is None or style.color is None or not segment.text.strip():
            continue
        fg = style.color.get_truecolor(app.ansi_theme)
        bg = (style.bgcolor or widget.background_colors[1].rich_color).get_truecolor(app.ansi_theme)
        out[segment.text.strip()] = contrast(fg, bg)
    return out


@pytest.mark.parametrize("theme", ["dark", "light"])
async def test_label_colours_and_the_flags_line_read_well(tmp_path, theme):
    app = app_on_store(tmp_path, f'theme = "{theme}"\n')
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("label")
        meta, counts = app.screen.query_one("#label-meta", Static), app.screen.query_one("#label-counts", Static)
        await until(pilot, lambda: "in queue" in str(meta.render()) and "bull" in str(counts.render()))
        seen = painted(app, counts)
        flags = app.screen.query_one(LabelFlags)
        for split in ("train", "test", "repeat"):  # the line as the screen draws it for each split
            flags.show(sarcastic=False, unsure=False, split=split, why="", order="random")
            await pilot.pause()
            seen.update(painted(app, flags))
        for word in SPLIT_WORDS + (LABEL_WORDS if theme == "light" else ()):
            assert seen[word] >= 4.5, (theme, word, seen[word])
