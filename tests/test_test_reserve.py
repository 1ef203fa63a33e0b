"""The test reservation: a random draw from every candidate, made up front, that only the Label screen's random test
session walks, so active learning or any other order run first cannot take the hard posts out of the test sample."""

from __future__ import annotations

from bizsent.core.label.human import answer_target
from bizsent.core.label.queue import RESERVE_DONE, QueueSpec, label_queue
from bizsent.core.labels import reserved_for_test
from bizsent.core.store.posts import set_label
from bizsent.core.store.records import NewLabel
from fakes.tui import build_store, until

RESERVE = 0.3


def test_the_draw_is_a_fixed_share_of_every_post():
    drawn = [pid for pid in range(1, 20_001) if reserved_for_test(pid, 0.05)]
    assert 900 < len(drawn) < 1100  # 5% of 20,000, give or take its binomial noise
    assert drawn == [pid for pid in range(1, 20_001) if reserved_for_test(pid, 0.05)]  # the same draw each time
    assert not any(reserved_for_test(pid, 0.0) for pid in range(1, 1000))


def test_only_the_random_test_session_walks_the_reservation_whatever_ran_before(db, settings):
    ids = build_store(db, settings.image_dir, n_posts=40)
    test = QueueSpec(order="random", split="test", test_reserve=RESERVE)
    reserved = set(label_queue(db, test).ids)
    assert reserved and all(reserved_for_test(pid, RESERVE) for pid in reserved)
    for order in ("newest", "active", "random"):
        for split in ("train", "test"):
            if (order, split) == ("random", "test"):
                continue
            other = set(label_queue(db, QueueSpec(order=order, split=split, test_reserve=RESERVE)).ids)
            assert other and not other & reserved, (order, split)
    # another order labels every post it is shown first (as active learning would take the hard ones)
    for pid in label_queue(db, QueueSpec(order="newest", split="train", test_reserve=RESERVE)).ids:
        set_label(db, pid, NewLabel(label="bearish", source="human", split="train", labeler="human"))
    assert set(label_queue(db, test).ids) == reserved  # the test sample is untouched
    for pid in reserved:
        set_label(db, pid, NewLabel(label="bearish", source="human", split="test", labeler="human"))
    assert label_queue(db, test).notice == RESERVE_DONE and len(ids) == 40


def test_only_a_reserved_post_goes_to_test_and_says_so():
    kwargs = {"chosen_by_hand": False, "order": "random", "disagree_first": False, "split": "test"}
    assert answer_target(**kwargs, reserved=True) == ("test", "reserved")
    assert answer_target(**kwargs, reserved=False) == ("train", "random")
    assert answer_target(**kwargs) == ("test", "random")  # no reservation (labeling.test_reserve = 0)


async def test_the_label_screen_labels_the_reservation_into_test(settings, db):
    from bizsent.tui.app import BizsentApp
    from test_tui_label import open_label

    settings.tui.image_renderer = "halfcell"
    settings.labeling.test_reserve = RESERVE
    build_store(db, settings.image_dir, n_posts=40)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        assert screen.split == "test" and screen.queue and all(reserved_for_test(p, RESERVE) for p in screen.queue)
        first = screen.current
        await pilot.press("1")
        await pilot.press("t")  # the training pool: no reserved post
        await until(pilot, lambda: screen.split == "train" and screen.queue
                    and not any(reserved_for_test(p, RESERVE) for p in screen.queue))
        await app.writer.drained()
    row = db.execute("SELECT split, sampling FROM labels WHERE post_id = ? AND source = 'human'", [first]).fetchone()
    assert tuple(row) == ("test", "reserved")


async def test_answering_the_last_reserved_post_says_the_reservation_is_done_not_that_all_posts_are(settings, db):
    """Found doing the whole day in tmux: the random test session ran out of reserved posts and the screen said
    every candidate had a label (with an 'image missing/corrupt' placeholder), while most of the pool had none."""
    from bizsent.tui.app import BizsentApp
    from bizsent.tui.widgets.image_preview import ImagePreview
    from bizsent.tui.widgets.post_detail import TextPane
    from test_tui_label import open_label

    settings.tui.image_renderer = "halfcell"
    settings.labeling.test_reserve = RESERVE
    build_store(db, settings.image_dir, n_posts=40)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_label(app, pilot)
        for _ in range(len(screen.queue)):
            await pilot.press("2")
        await until(pilot, lambda: screen.current is None)
        said = str(screen.query_one(TextPane).renderable)
        assert RESERVE_DONE in said and "every candidate post has a human label" not in said
        assert screen.query_one(ImagePreview).placeholder_text == ""  # no post: nothing is missing or corrupt
        await app.writer.drained()
