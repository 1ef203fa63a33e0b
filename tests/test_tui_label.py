"""The Label screen through Textual's Pilot: keys write the right rows, undo takes them back, notes stay put."""

from __future__ import annotations

import json

import pytest
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.label import LabelScreen
from bizsent.tui.widgets.image_preview import ImagePreview
from fakes.tui import build_store, toasts, until
from textual.widgets import Static


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"  # explicit renderer: stable output whatever the terminal
    return build_store(db, settings.image_dir)




async def open_label(app: BizsentApp, pilot) -> LabelScreen:
    if not isinstance(app.screen, LabelScreen):  # a reopened console starts where it was left: on Label, 2 labels
        await pilot.press("2")
    screen = app.screen
    assert isinstance(screen, LabelScreen)
    await until(pilot, lambda: screen.current is not None and screen.current in screen.items)
    return screen


def human_rows(db):
    return db.execute(
        "SELECT post_id, label, split, sarcastic, unsure, labeler FROM labels WHERE source = 'human' ORDER BY id"
    ).fetchall()


async def test_label_keys_write_rows_and_undo_removes_them(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        first = screen.current
        await pilot.press("s", "w", "1")
        second = screen.current
        assert second != first
        await pilot.press("t", "3")
        await app.writer.drained()
        assert human_rows(db) == [
            (first, "bearish", "test", 1, 1, "human"),
            (second, "bullish", "train", 0, 0, "human"),
        ]
        assert dict(screen.counts) == {"bearish": 1, "bullish": 1}

        await pilot.press("u")
        await app.writer.drained()
        assert screen.current == second
        assert human_rows(db) == [(first, "bearish", "test", 1, 1, "human")]
        await pilot.press("u")
        await app.writer.drained()
        assert screen.current == first
        assert (screen.sarcastic, screen.unsure) == (True, True)  # the flags come back with the post
        assert human_rows(db) == []
        await pilot.press("2")
        await app.writer.drained()
        # the undone answer's split comes back with the post (issue 21.1), whatever `t` set since
        assert human_rows(db) == [(first, "neutral", "test", 1, 1, "human")]


async def test_skip_writes_a_skip_and_undo_removes_it(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        skipped = screen.current
        await pilot.press("x")
        await app.writer.drained()
        assert db.execute("SELECT post_id, source FROM skips").fetchall() == [(skipped, "human")]
        assert human_rows(db) == []
        await pilot.press("u")
        await app.writer.drained()
        assert db.execute("SELECT count(*) FROM skips").fetchone()[0] == 0
        assert screen.current == skipped


async def test_a_failed_write_is_shown_not_dropped(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await open_label(app, pilot)
        app.write(lambda db: db.execute("INSERT INTO no_such_table VALUES (1)"))
        await app.writer.drained()
        await until(pilot, lambda: any("could not save" in t for t in toasts(app)))


async def test_note_stays_with_its_post(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        noted = screen.current
        await pilot.press("n")
        await pilot.press(*"pink wojak", "enter")
        await pilot.press("1")
        next_post = screen.current
        await pilot.press("n", "escape")  # a cancelled note writes nothing
        await app.writer.drained()
        assert db.execute("SELECT post_id, text FROM notes").fetchall() == [(noted, "pink wojak")]
        assert next_post != noted
        assert human_rows(db)[0][:2] == (noted, "bearish")  # the `1` after the note labelled the noted post


async def test_queue_holds_only_unlabelled_candidates_and_hides_other_labels(settings, db, store):
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    set_label(db, store[5], NewLabel(label="neutral", source="human", split="test", labeler="human"))
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        assert store[2] not in screen.queue  # corrupt image: not a candidate
        assert store[5] not in screen.queue  # already has a human label
        assert sorted(screen.queue) == sorted(pid for no, pid in store.items() if no not in (2, 5))
        shown = " ".join(str(w.render()) for w in screen.query("Static"))
        assert "gpt-test" not in shown and "openai" not in shown  # no anchoring on other labellers
        preview = screen.query_one(ImagePreview)
        assert preview.picture.image is not None and preview.showing == "cells"
        await pilot.pause()
        assert preview.query_one("#cells").region.height > 5  # the large image really is drawn


async def test_filter_order_and_session_progress(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        await pilot.press("f", *"moon", "enter")
        await until(pilot, lambda: screen.queue == [store[3]])
        await pilot.press("3")
        assert screen.current is None
        await pilot.press("f", "ctrl+u", *"openai:bullish", "enter")
        await until(pilot, lambda: screen.order == "filter" and store[1] in screen.queue)
        assert store[3] not in screen.queue  # answered this session
        assert all(no % 2 for no, pid in store.items() if pid in screen.queue)
        assert screen.query_one("#goal").progress == 1


def add_disagreements(db, store) -> set[int]:
    """Post 3: openai bullish vs gemini bearish; post 9: two openai labelers disagree. Post 5 agrees (both
    bullish) and post 7's only other label is human: neither is an API disagreement."""
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    set_label(db, store[3], NewLabel(label="bearish", source="api", split="unassigned", labeler="gemini:flash-test"))
    set_label(db, store[9], NewLabel(label="neutral", source="api", split="unassigned", labeler="openai:gpt-other"))
    set_label(db, store[5], NewLabel(label="bullish", source="api", split="unassigned", labeler="gemini:flash-test"))
    set_label(db, store[7], NewLabel(label="bearish", source="human", split="train", labeler="human"))
    return {store[3], store[9]}


def shown_text(screen) -> str:
    from bizsent.tui.widgets.post_detail import TextPane

    statics = " ".join(str(w.render()) for w in screen.query("Static"))
    pane = "".join(strip.text for strip in screen.query_one(TextPane).lines)
    return f"{statics} {pane}"


async def test_disagreements_first_puts_those_posts_first_without_showing_labels(settings, db, store):
    disagreeing = add_disagreements(db, store)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        before = list(screen.queue)
        await pilot.press("d")
        await until(pilot, lambda: screen.disagree_first and set(screen.queue[:2]) == disagreeing)
        assert sorted(screen.queue) == sorted(before)  # the same posts, reordered
        rest = [pid for pid in before if pid not in disagreeing]
        assert screen.queue[2:] == rest  # the others keep the chosen (random) order
        await until(pilot, lambda: screen.current in screen.items)
        shown = shown_text(screen)
        assert "disagree first" in shown
        for hidden in ("gemini", "openai", "flash-test", "gpt-"):
            assert hidden not in shown  # which labels they disagree on stays hidden
        await pilot.press("1")
        await app.writer.drained()
        assert human_rows(db)[-1][:2] == (screen.queue[0], "bearish")


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    pytest.importorskip("torch")
    from fakes.pool_runs import fp32_run

    return fp32_run(tmp_path_factory)


async def test_active_learning_is_the_queue_bizsent_queue_prints(settings, db, store, shared_run):
    from bizsent.core.model.acquisition import human_queue, uncertainty
    from bizsent.core.model.pool import score_pool
    from fakes.pool_runs import bizsent, register_run

    db.execute("UPDATE posts SET text = ? WHERE id IN (?, ?)", ["WAGMI >>555 to the moon!", store[8], store[11]])
    db.execute("UPDATE posts SET text = ? WHERE id = ?", ["wagmi to the moon", store[3]])  # same as 8 and 11
    older = register_run(db, shared_run, name="older")
    score_pool(db, settings, older, limit=2)
    newer = register_run(db, shared_run, name="newer")
    score_pool(db, settings, newer)  # the newest run that scored the pool ranks it
    queue = human_queue(db)
    assert queue.run_id == newer
    ranked = sorted(queue.scores.values(), key=lambda s: (-uncertainty(s.probs), s.post_id))
    copies = [s.post_id for s in ranked if s.post_id in (store[3], store[8], store[11])]
    assert [pid for pid in queue.ids if pid in (store[3], store[8], store[11])] == copies[:1]
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        await pilot.press("o", "o")  # random -> newest -> active learning (no filter set: skipped)
        await until(pilot, lambda: screen.order == "active" and screen.queue == queue.ids)
        assert screen.notice == ""
        await until(pilot, lambda: screen.current in screen.items)
        assert "active learning" in shown_text(screen)
    printed = bizsent(settings, "queue", "--size", "5")
    assert printed.returncode == 0, printed.stderr
    assert [json.loads(line)["post_id"] for line in printed.stdout.splitlines()] == queue.ids[:5]


async def test_active_learning_without_predictions_says_so_and_falls_back_to_random(settings, db, store):
    from bizsent.core.label.queue import NO_PREDICTIONS

    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        screen = await open_label(app, pilot)
        random_queue = list(screen.queue)
        await pilot.press("o", "o")
        await until(pilot, lambda: screen.order == "active" and screen.notice == NO_PREDICTIONS)
        assert screen.queue == random_queue  # the same seeded random order
        assert any(NO_PREDICTIONS in t for t in toasts(app))
        assert "active learning → random" in shown_text(screen)


async def test_prefetched_pictures_are_redrawn_for_the_new_size_after_a_resize(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        preview = screen.query_one(ImagePreview)
        await until(pilot, lambda: len(screen.items) >= 4)
        await pilot.resize_terminal(130, 40)
        await until(pilot, lambda: preview.target_size.width > 60 and len(screen.items) >= 4 and all(
            picture.size == preview.target_size for _, picture, _ in screen.items.values()))
        await until(pilot, lambda: preview.showing == "cells")  # the current one, redrawn by the preview
        for _ in range(3):
            await pilot.press("3")
            assert preview.showing == "cells"  # never the slow widget with a picture drawn for the old size


def human_label(db, pid):
    return db.execute("SELECT label, split FROM labels WHERE post_id = ? AND source = 'human'", [pid]).fetchone()


async def test_4_and_5_stay_on_label_so_a_slip_never_rewrites_a_test_label(settings, db, store):
    # Before: `5` went to Spot-check and the `3` after it rewrote a human test label there.
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    set_label(db, store[5], NewLabel(label="neutral", source="human", split="test", labeler="human"))
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        for slip in ("5", "4"):
            answered = screen.current
            await pilot.press(slip)
            assert app.screen is screen and app.current_mode == "label"
            await pilot.press("3")
            await app.writer.drained()
            assert human_label(db, answered) == ("bullish", "test")  # the 3 labelled the post on screen
        assert human_label(db, store[5]) == ("neutral", "test")
        assert db.execute("SELECT count(*) FROM label_history WHERE post_id = ? AND source = 'human'",
                          [store[5]]).fetchone()[0] == 1
        await pilot.pause()
        bar = "".join(strip.text for strip in screen.query_one("StatusBar").render_lines(
            screen.query_one("StatusBar").region.reset_offset))
        assert "F4 Eval" in bar and "F5 Spot-check" in bar  # the bar names the keys that work here
        await pilot.press("f5")  # the F-keys still switch
        assert app.current_mode == "spotcheck"


async def test_q_on_label_asks_before_quitting(settings, db, store):
    from bizsent.tui.screens.confirm import ConfirmModal

    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmModal) and app.is_running
        await pilot.press("n")
        assert app.screen is screen and app.is_running
        await pilot.press("q", "escape")  # escape is "no" too
        assert app.screen is screen and app.is_running
        from bizsent.tui.screens.help import help_markdown

        everywhere = help_markdown(screen, list(app.BINDINGS)).split("## Everywhere")[1]
        assert "`f4` Eval" in everywhere and "`4" not in everywhere and "`q`" not in everywhere
        await pilot.press("q", "y")
        await pilot.pause()
        assert not app.is_running


async def test_session_progress_survives_closing_and_reopening(settings, db, store):
    first = BizsentApp(settings=settings, db_path=settings.db_path)
    async with first.run_test(size=(100, 32)) as pilot:
        screen = await open_label(first, pilot)
        await pilot.press("g", "o")  # goal 100, order newest
        await until(pilot, lambda: screen.queue[:1] == [store[12]])
        await pilot.press("1", "3", "x", "t", "2")
        answered = {store[12], store[11], store[10], store[9]}
        shown = str(screen.query_one("#label-counts", Static).content)
        await pilot.press("q", "y")
    assert db.execute("SELECT count(*) FROM labels WHERE source = 'human'").fetchone()[0] == 3

    second = BizsentApp(settings=settings, db_path=settings.db_path)
    async with second.run_test(size=(100, 32)) as pilot:
        screen = await open_label(second, pilot)
        assert dict(screen.counts) == {"bearish": 1, "bullish": 1, "neutral": 1, "skip": 1}
        assert (screen.goal, screen.order, screen.split) == (100, "newest", "train")
        assert str(screen.query_one("#label-counts", Static).content) == shown
        assert screen.query_one("#goal").progress == 3
        assert screen.current == store[8] and not answered & set(screen.queue)  # where it left off
        await pilot.press("ctrl+n")  # a new session starts from zero, with the same settings
        assert dict(screen.counts) == {} and screen.order == "newest"


async def test_an_answer_that_replaces_a_human_label_keeps_its_history_and_undo_restores_it(settings, db, store):
    from bizsent.core.store.history import label_history
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    set_label(db, store[6], NewLabel(label="neutral", source="human", split="test", labeler="human"),
              changed_by="alice via bizsent import")
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        screen.open_post(store[6])  # what `enter` in Posts does
        await until(pilot, lambda: screen.current == store[6] and store[6] in screen.items)
        await pilot.press("3")
        await until(pilot, lambda: app.screen is not screen)  # a test label changes only when confirmed
        await app.writer.drained()
        assert human_label(db, store[6]) == ("neutral", "test")
        await pilot.press("y")
        await app.writer.drained()
        assert human_label(db, store[6]) == ("bullish", "test")
        change = label_history(db, store[6], "human")[-1]
        assert (change.change, change.old.label, change.new.label) == ("update", "neutral", "bullish")
        assert change.changed_by.endswith("via console Label screen") and change.changed_at
        await pilot.press("u")
        await app.writer.drained()
        assert human_label(db, store[6]) == ("neutral", "test")  # put back, not deleted
        assert [c.change for c in label_history(db, store[6], "human")] == ["insert", "update", "update"]


def sampled_rows(db):
    return db.execute("SELECT post_id, split, sampling FROM labels WHERE source = 'human' ORDER BY id").fetchall()


async def test_only_the_random_order_adds_to_the_test_split(settings, db, store):
    """Issue 10.7: under newest, filter, active learning or disagreements first the test set would drift towards
    what is new or hard. Those orders label into the training pool (and say so); random writes test labels."""
    add_disagreements(db, store)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        assert screen.split == "test" and screen.order == "random"
        first = screen.current
        await pilot.press("1")  # random order: a test label
        await pilot.press("o")  # newest
        await until(pilot, lambda: screen.order == "newest" and screen.queue and screen.current in screen.items)
        assert screen.split == "test"  # the session's choice stays; the answers go to train meanwhile
        flags = str(screen.query_one("#label-flags", Static).content)
        assert "TRAIN" in flags and "random order only" in flags
        newest = screen.current
        await pilot.press("2")
        await pilot.press("o", "o")  # active learning (no predictions: random queue), then random again
        await until(pilot, lambda: screen.order == "random" and screen.current in screen.items)
        await pilot.press("d")  # disagreements first: not a random sample either
        await until(pilot, lambda: screen.disagree_first and screen.current in screen.items)
        disagreeing = screen.current
        await pilot.press("3")
        await pilot.press("d")
        await until(pilot, lambda: not screen.disagree_first and screen.current in screen.items)
        assert "TEST" in str(screen.query_one("#label-flags", Static).content)
        last = screen.current
        await pilot.press("1")
        await app.writer.drained()
    assert sampled_rows(db)[1:] == [
        (first, "test", "random"), (newest, "train", "newest"), (disagreeing, "train", "disagree-first"),
        (last, "test", "random"),
    ]  # [0] is add_disagreements' own human train label


async def test_a_post_opened_from_posts_goes_to_the_train_pool(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        screen.open_post(store[8])  # chosen by hand, not by the random order
        await until(pilot, lambda: screen.current == store[8] and store[8] in screen.items)
        await pilot.press("3")
        await app.writer.drained()
    assert sampled_rows(db) == [(store[8], "train", "picked")]


def test_the_report_says_how_the_test_set_was_sampled(db, settings):
    from bizsent.core.evaluate.report import build_report, render_markdown, sampling_line
    from bizsent.core.model.scoring import Scored
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel

    ids = build_store(db, settings.image_dir)
    posts = [ids[no] for no in (1, 3, 4, 5)]
    for pid, sampling in zip(posts, ("random", "random", "active", None), strict=True):
        set_label(db, pid, NewLabel(label="bearish", source="human", split="test", labeler="human",
                                    sampling=sampling))
    rows = [{"post_id": pid, "label": "bearish", "text": "it is over"} for pid in posts]  # an older bundle
    scored = [Scored(pid, "bearish", {"bearish": 0.8, "neutral": 0.1, "bullish": 0.1}, 1.0) for pid in posts]
    report = build_report("run", rows, scored, db=db)
    line = "test set: 4 posts, sampled: random 2 / other 1 / not recorded 1"
    assert sampling_line(report.info["test_sampling"]).startswith(line + " - WARNING")
    assert line in render_markdown(report)
    random_only = build_report("run", [{**r, "sampling": "random"} for r in rows], scored)
    assert sampling_line(random_only.info["test_sampling"]) == "test set: 4 posts, sampled: random 4 / other 0"
