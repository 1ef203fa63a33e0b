"""The Posts screen and the app frame through Pilot: filters, search, detail pane, image fallback, navigation."""

from __future__ import annotations

import io

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.commands import _entries
from bizsent.tui.screens.help import HelpModal
from bizsent.tui.screens.label import LabelScreen
from bizsent.tui.screens.posts import PostsScreen
from bizsent.tui.widgets.image_preview import ImagePreview, load_picture
from bizsent.tui.widgets.post_detail import PostDetailView, post_text
from bizsent.tui.widgets.post_table import PostTable
from fakes.tui import build_store, until
from rich.console import Console
from textual.geometry import Region


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    return build_store(db, settings.image_dir)


def plain(renderable) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()




def table(app: BizsentApp) -> PostTable:
    return app.screen.query_one(PostTable)


async def started(app: BizsentApp, pilot, expected: int = 12) -> PostTable:
    await until(pilot, lambda: len(table(app).ids) == expected)
    return table(app)


async def test_filters_narrow_the_list(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        posts = await started(app, pilot)
        assert posts.ids == [store[n] for n in range(12, 0, -1)]  # newest first
        await pilot.press("l")  # label: bearish
        await until(pilot, lambda: posts.ids == [store[4]])
        await pilot.press("o")  # source: human (no human labels yet)
        await until(pilot, lambda: posts.ids == [])
        await pilot.press("c", "t", "t")  # clear, then split: train
        await until(pilot, lambda: posts.ids == [store[4]])
        await pilot.press("c", "i")  # image: ok
        await until(pilot, lambda: len(posts.ids) == 11 and store[2] not in posts.ids)
        await pilot.press("i", "i")  # image: corrupt
        await until(pilot, lambda: posts.ids == [store[2]])
        await pilot.press("c", "l", "l", "l")  # label: bullish (the odd post numbers)
        await until(pilot, lambda: sorted(posts.ids) == sorted(store[n] for n in range(1, 13, 2)))


async def test_search_narrows_the_list_as_you_type(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        posts = await started(app, pilot)
        await pilot.press("slash", *"moon")
        await until(pilot, lambda: posts.ids == [store[3]])
        await pilot.press("escape")
        assert app.focused is posts
        await pilot.press("c")
        await until(pilot, lambda: len(posts.ids) == 12)


async def test_rows_and_detail_show_labels_text_and_image(settings, db, store):
    from bizsent.core.store.posts import add_note

    add_note(db, store[11], "bogdanoff pump")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        posts = await started(app, pilot)
        await pilot.press("down")  # post 11: openai bullish, a note
        await until(pilot, lambda: app.screen.query_one(ImagePreview).picture.image is not None
                    and posts.row(store[11]) is not None)
        assert posts.row(store[11]).labels[0].source == "openai"
        detail = app.screen.query_one(PostDetailView)
        await until(pilot, lambda: "bogdanoff pump" in plain(detail.renderable))
        shown = plain(detail.renderable)
        assert "openai" in shown and "gpt-test" in shown and "bullish" in shown and "0.90" in shown
        assert ">be me" in shown
        await pilot.pause()
        drawn = "".join(strip.text for strip in detail.lines)  # what the pane actually draws
        assert "bogdanoff pump" in drawn and "gpt-test" in drawn


async def test_detail_shows_a_human_labels_earlier_values_and_who_changed_them(settings, db, store):
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    for label, who in (("neutral", "alice via bizsent import"), ("bullish", "bob via console Spot-check")):
        set_label(db, store[12], NewLabel(label=label, source="human", split="test", labeler="human"),
                  changed_by=who)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)  # the cursor starts on post 12, the newest
        detail = app.screen.query_one(PostDetailView)
        await until(pilot, lambda: "earlier human labels" in plain(detail.renderable))
        assert "neutral (test) → bullish (test) by bob via console Spot-check" in plain(detail.renderable)


async def test_corrupt_image_falls_back_to_a_placeholder(settings, db, store):
    # Post 4's file on disk gets garbled after caching: status says ok, decoding fails.
    path = db.execute("SELECT i.path FROM posts p JOIN images i ON i.id = p.image_id WHERE p.id = ?",
                      [store[4]]).fetchone()[0]
    thumb = db.execute("SELECT i.thumb_path FROM posts p JOIN images i ON i.id = p.image_id WHERE p.id = ?",
                       [store[4]]).fetchone()[0]
    for file in (path, thumb):
        with open(file, "wb") as out:
            out.write(b"\x89PNG\r\n\x1a\n garbage")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        posts = await started(app, pilot)
        preview = app.screen.query_one(ImagePreview)
        posts.cursor = posts.ids.index(store[2])  # recorded as corrupt at download
        await until(pilot, lambda: "truncated or corrupt image (test)" in preview.placeholder_text)
        assert preview.placeholder_text.startswith("image missing/corrupt: ")
        assert preview.showing == "placeholder"
        posts.cursor = posts.ids.index(store[4])  # garbled on disk
        await until(pilot, lambda: preview.placeholder_text.startswith("image missing/corrupt: corrupt"))
        posts.cursor = posts.ids.index(store[5])  # a good one again: the image comes back
        await until(pilot, lambda: preview.picture.image is not None)
        assert preview.showing == "cells"  # pre-drawn in the worker for this pane's size
        await pilot.pause()
        assert preview.query_one("#cells").region.height > 0  # and actually on screen
        assert app.is_running


def test_load_picture_reasons(tmp_path):
    assert load_picture(None).reason.startswith("missing")
    assert "not on disk" in load_picture(str(tmp_path / "nope.png")).reason
    assert load_picture("x", status="unsupported", reason="webm").reason == "unsupported: webm"
    (tmp_path / "zero.png").write_bytes(b"")
    assert load_picture(str(tmp_path / "zero.png")).reason.startswith("corrupt")


def test_greentext_is_green_and_quote_links_are_not():
    text = post_text(">be me\n>>12345\nplain\n> also green", subject="subj")
    styles = {text.plain[span.start:span.end]: str(span.style) for span in text.spans}
    assert styles[">be me"] == "green"
    assert styles["> also green"] == "green"
    assert styles[">>12345"] != "green"
    assert "plain" not in styles


async def test_number_keys_switch_screens_and_question_mark_opens_help(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await started(app, pilot)
        assert isinstance(app.screen, PostsScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpModal)
        assert "/ search" in app.screen._markdown or "`/`" in app.screen._markdown
        await pilot.press("escape")
        await pilot.press("2")
        assert isinstance(app.screen, LabelScreen) and app.current_mode == "label"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpModal)
        assert "Bearish (1)" in app.screen._markdown  # the labeling rules ship with the help
        await pilot.press("escape")  # close help; escape does not leave Label (a slip there must not either)
        assert isinstance(app.screen, LabelScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, PostsScreen)
        await pilot.press("2", "f4")  # F-keys leave the Label screen, where 1-3 are labels
        assert app.current_mode == "eval"
        await pilot.press("f2")
        assert app.current_mode == "label"


async def test_palette_lists_every_action_and_runs_it_on_its_screen(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await started(app, pilot)
        texts = [text for text, _, _ in _entries(app)]
        for screen_cls, title in ((PostsScreen, "Posts"), (LabelScreen, "Label")):
            for binding in screen_cls.BINDINGS:
                if not binding.action.startswith("app."):
                    assert f"{title}: {binding.description}" in texts
        await app.run_screen_action("label", "toggle('sarcastic')")
        assert isinstance(app.screen, LabelScreen) and app.screen.sarcastic


async def test_status_bar_shows_running_jobs_and_spend(settings, db, store):
    from bizsent.core.store import now

    # A job beating now counts; one whose heartbeat stopped long ago is dead, however its row reads.
    db.execute("INSERT INTO jobs (kind, state, created_at, heartbeat_at) VALUES ('label', 'running', ?, ?)",
               [now(), now()])
    db.execute("INSERT INTO jobs (kind, state, created_at, heartbeat_at) VALUES ('train', 'running', ?,"
               " '2020-01-01T00:00:00+00:00')", [now()])
    db.execute("INSERT INTO api_calls (request_key, provider, model, usd, created_at)"
               " VALUES ('k', 'openai', 'm', 1.25, ?)", [now()])
    db.execute("INSERT INTO pods (name, created_at, total_usd) VALUES ('bizsent-x', ?, 0.5)", [now()])
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await until(pilot, lambda: app.status.running_jobs == 1)
        assert app.status.spend_usd == pytest.approx(1.75)
        bar = str(app.screen.query_one("StatusBar").render())
        assert "jobs 1" in bar and "$1.75" in bar and "Posts" in bar


async def test_labelers_disagree_filter_narrows_to_the_right_posts(settings, db, store):
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    # Disagree: 3 (openai bullish, gemini bearish), 9 (two openai labelers), 12 (gemini vs compatible).
    # Not: 5 (both bullish), 7 (the other label is human's), 4 (one API label only).
    set_label(db, store[3], NewLabel(label="bearish", source="api", split="unassigned", labeler="gemini:flash-test"))
    set_label(db, store[9], NewLabel(label="neutral", source="api", split="unassigned", labeler="openai:gpt-other"))
    set_label(db, store[12], NewLabel(label="neutral", source="api", split="unassigned", labeler="gemini:flash-test"))
    set_label(db, store[12], NewLabel(label="bearish", source="api", split="unassigned", labeler="compatible:qwen"))
    set_label(db, store[5], NewLabel(label="bullish", source="api", split="unassigned", labeler="gemini:flash-test"))
    set_label(db, store[7], NewLabel(label="bearish", source="human", split="test", labeler="human"))
    expected = [store[12], store[9], store[3]]  # newest first
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        posts = await started(app, pilot)
        await pilot.press("d")
        await until(pilot, lambda: posts.ids == expected)
        assert app.screen.filter.label == "disagree"
        await pilot.press("d")
        await until(pilot, lambda: len(posts.ids) == 12)
        await pilot.press(*"lllll")  # the label cycle ends with disagree
        await until(pilot, lambda: posts.ids == expected)
        await pilot.press("t", "t")  # and it combines with the others: a train label among them
        await until(pilot, lambda: posts.ids == [])
        await app.run_screen_action("posts", "toggle_disagree")  # the palette's entry: back to no label filter
        await until(pilot, lambda: app.screen.filter.label is None and posts.ids == [store[4]])
        assert "Posts: labelers disagree" in [text for text, _, _ in _entries(app)]


async def test_enter_opens_the_post_in_the_label_screen(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        posts = await started(app, pilot)
        posts.cursor = posts.ids.index(store[6])
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        await until(pilot, lambda: screen.current == store[6] and store[6] in screen.items)
        assert screen.query_one(ImagePreview).picture.image is not None
        await pilot.press("2")
        await app.writer.drained()
        assert db.execute("SELECT post_id, label FROM labels WHERE source = 'human'").fetchall() == [
            (store[6], "neutral")]
        assert screen.current != store[6]
        await pilot.press("f1")  # back in Posts, another post opens the same way even now the queue is loaded
        posts = table(app)
        posts.cursor = posts.ids.index(store[8])
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.current == store[8])


async def test_filter_line_keeps_every_field_at_80_columns(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        screen = app.screen
        screen.set_filter(label="unlabeled", source="compatible", split="unassigned", image="unsupported")
        await pilot.pause(0.2)
        await pilot.pause()
        filters = screen.query_one("#filters")
        region = filters.region
        lines = [strip.text for strip in filters.render_lines(Region(0, 0, region.width, region.height))]
        drawn = " ".join(" ".join(line.split()) for line in lines)
        for shown in ("label unlabeled", "src compatible", "split unassigned", "img unsupported"):
            assert shown.split()[-1] in drawn, drawn  # wrapped onto a second line if need be, never cut
        assert drawn.endswith("img unsupported")
        assert region.right <= 80 and region.height == 2
