"""Seeing your own labeling (issue 21.8), through Pilot on the real Label screen: the last answers and the pace
are shown, `b` opens an earlier answer to change it (the section-1 rules), and a blind repeat is recorded
beside the stored label without changing it, with the session's self-agreement shown."""

from __future__ import annotations

import pytest
from bizsent.core.label.repeats import MIN_GAP, pace, repeats, self_agreement, session_answers
from bizsent.core.store.history import actor
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.label import LabelScreen
from bizsent.tui.screens.label_review import WRITER, AnswersModal, LabelReview
from fakes.tui import build_store, until

EVERY = MIN_GAP + 1  # the first repeat comes after this many answers


@pytest.fixture
def store(settings, db):
    settings.tui.image_renderer = "halfcell"
    settings.labeling.repeat_every = EVERY
    return build_store(db, settings.image_dir, n_posts=14)


async def open_label(app: BizsentApp, pilot) -> LabelScreen:
    await pilot.press("2")
    screen = app.screen
    assert isinstance(screen, LabelScreen)
    await until(pilot, lambda: screen.current is not None and screen.current in screen.items)
    return screen


def human(db) -> dict[int, tuple[str, str]]:
    return {pid: (label, split) for pid, label, split in
            db.execute("SELECT post_id, label, split FROM labels WHERE source = 'human'")}


def review_line(screen: LabelScreen) -> str:
    return str(screen.query_one(LabelReview).render())


async def test_blind_repeat_is_recorded_and_never_changes_the_label(settings, db, store):
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        answered = []
        for _ in range(EVERY):
            answered.append(screen.current)
            await pilot.press("3")  # bullish
            await until(pilot, lambda: screen.current in screen.items)
        await app.writer.drained()
        assert screen.current == answered[0] == screen.repeat_post  # shown again, blind
        assert "REPEAT" in str(screen.query_one("#label-flags").render())
        await pilot.press("1")  # the repeat answers bearish: recorded, label untouched
        await app.writer.drained()
        assert human(db)[answered[0]] == ("bullish", "test")
        found = repeats(db, screen.started_at)
        assert [(r.post_id, r.stored_label, r.label) for r in found] == [(answered[0], "bullish", "bearish")]
        assert self_agreement(found)[0] == 1
        assert screen.current not in answered  # back to new posts
        await until(pilot, lambda: "κ 0.00 (1 rep, 1 differ)" in review_line(screen))
        assert "/h" in review_line(screen) and f"{answered[-1]} bull" in review_line(screen)

        await pilot.press("u")  # undo takes the repeat back, not the label
        await app.writer.drained()
        assert repeats(db, screen.started_at) == [] and human(db)[answered[0]] == ("bullish", "test")
        assert screen.current == answered[0] and screen.repeat_post == answered[0]


async def test_b_opens_an_earlier_answer_and_a_correction_keeps_its_split(settings, db, store):
    settings.labeling.repeat_every = 0
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        first = screen.current
        await pilot.press("3", "2")
        await app.writer.drained()
        await until(pilot, lambda: len(screen.answers) == 2)
        await pilot.press("b")
        modal = app.screen
        assert isinstance(modal, AnswersModal)
        await pilot.press("down", "enter")  # newest first: the second row is the first answer
        assert app.screen is screen and screen.current == first
        await pilot.press("1")  # a test label changes only after a confirmation
        await pilot.press("y")
        await app.writer.drained()
        assert human(db)[first] == ("bearish", "test")  # one human label, same split
        assert db.execute("SELECT count(*) FROM labels WHERE post_id = ? AND source = 'human'",
                          [first]).fetchone()[0] == 1
        answers = session_answers(db, screen.started_at, actor(WRITER))
        assert [a.post_id for a in answers][0] == first and pace(answers).answers == 2


def test_label_review_lists_self_agreement_and_disagreements(settings, db, store):
    from bizsent.cli import app as cli
    from bizsent.core.label.repeats import record_repeat
    from bizsent.core.store.posts import set_label
    from bizsent.core.store.records import NewLabel
    from typer.testing import CliRunner

    for post, label in ((store[1], "bullish"), (store[3], "bearish")):
        set_label(db, post, NewLabel(label=label, source="human", split="test", labeler="human"))
    record_repeat(db, "2026-12-07T10:00:00+00:00", store[1], "bullish", False, False, "me")
    record_repeat(db, "2026-12-07T10:00:00+00:00", store[3], "neutral", False, False, "me")
    result = CliRunner().invoke(cli, ["--db", str(settings.db_path), "label-review"])
    assert result.exit_code == 0, result.output
    assert "session 2026-12-07T10:00:00+00:00: self-agreement κ" in result.output
    assert "(2 rep, 1 differ)" in result.output
    assert f"post {store[3]}: stored bearish, repeat said neutral" in result.output
    assert f"post {store[1]}:" not in result.output


async def test_undo_takes_the_answer_off_the_last_answers_line(settings, db, store):
    """Found doing the whole day in tmux: after `u` the line still listed the undone answer as the last one."""
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        first = screen.current
        await pilot.press("1")
        await until(pilot, lambda: screen.current in screen.items)
        second = screen.current
        await pilot.press("3")
        await until(pilot, lambda: review_line(screen).startswith(f"last {second} bull, {first} bear"))
        await pilot.press("u")
        await until(pilot, lambda: review_line(screen).startswith(f"last {first} bear (b)"))
        await app.writer.drained()
