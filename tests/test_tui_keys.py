"""One way to move, everywhere (issue 21.4), through Textual's Pilot at 80x24 and 160x45: the same moving keys on
every list (Posts, Jobs, Eval, Spot-check, Pods), Spot-check keeping its post while scores land, Tab reaching the
Posts detail pane and the keys scrolling it, a user keymap from config.toml rebinding any action, and help and
the footer listing the keys (ctrl+p and ctrl+q included; help and quit kept at 80 columns)."""

from __future__ import annotations

import pytest
from bizsent.core.config import load_settings
from bizsent.core.store import now, open_db
from bizsent.core.store.posts import add_note
from bizsent.jobs import pool_status, rows
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens import SCREENS
from bizsent.tui.screens.help import HelpModal, help_markdown
from bizsent.tui.screens.spotcheck import SpotCheckScreen
from bizsent.tui.widgets.key_bar import KeyBar
from bizsent.tui.widgets.post_detail import PostDetailView
from bizsent.tui.widgets.post_table import PostTable
from bizsent.tui.widgets.status_bar import StatusBar
from fakes.eval_runs import add_predictions, add_run, probs
from fakes.tui import build_store, until
from textual.widgets import DataTable

SIZES = [(80, 24), (160, 45)]
LISTS = {"batches": "#jobs", "eval": "#eval-runs", "pods": "#pods"}  # the DataTable lists, by screen


def config(tmp_path, extra: str = "", refresh_s: float = 3600) -> object:
    """Every screen reads the store when it is shown, and only the test that changes the store behind the console's
    back needs its poll: a console polling every 50 ms is never idle, and Pilot's press waits for idle (up to 1 s,
    twice a key)."""
    cfg = tmp_path / "config.toml"
    # read_text off: the console would start a background OCR job (a row in Jobs' list) on these images.
    cfg.write_text('[data]\ndir = "data"\n[labeling]\ntest_reserve = 0.0\n[images]\nread_text = false\n'
                   f'[tui]\nrefresh_s = {refresh_s}\n'
                   'image_renderer = "halfcell"\n' + extra, encoding="utf-8")
    return load_settings(cfg, environ={})


def fill(settings, n_rows: int = 30) -> dict[int, int]:
    """12 posts, `n_rows` jobs, runs and pods, and a run's predictions on every post (Spot-check's list)."""
    db = open_db(settings.db_path)
    ids = build_store(db, settings.image_dir)
    for k in range(n_rows):
        rows.create(db, pool_status.KIND, {"run_id": 1}, 10, {})
        add_run(db, f"run-{k}")
        db.execute("INSERT INTO pods (pod_id, name, run_name, gpu, cloud, usd_per_hour, state, created_at,"
                   " updated_at) VALUES (?, ?, NULL, 'RTX 4090', 'SECURE', 0.69, 'terminated', ?, ?)",
                   [f"pod{k:03}", f"bizsent-p{k}", now(), now()])
    add_predictions(db, 1, {pid: probs(0.2 + 0.01 * k, 0.3, 0.5 - 0.01 * k) for k, pid in enumerate(ids.values())})
    db.conn.commit()
    db.close()
    return ids


async def press_and_read(pilot, key: str, read) -> int:
    await pilot.press(key)
    await pilot.pause()
    return read()


@pytest.mark.parametrize("size", SIZES)
async def test_the_same_keys_move_every_list(tmp_path, size):
    settings = config(tmp_path)
    fill(settings)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=size) as pilot:
        for mode, selector in LISTS.items():
            await app.switch_mode(mode)
            table = app.screen.query_one(selector, DataTable)
            await until(pilot, lambda table=table: table.row_count == 30)
            table.focus()
            read = lambda table=table: table.cursor_row  # noqa: E731
            assert [await press_and_read(pilot, k, read) for k in ("j", "j", "k", "G", "g", "end", "home")] \
                == [1, 2, 1, 29, 0, 29, 0], mode
            assert await press_and_read(pilot, "pagedown", read) > 1, mode
        await app.switch_mode("posts")
        posts = app.screen.query_one(PostTable)
        detail = app.screen.query_one(PostDetailView)
        await until(pilot, lambda: len(posts.ids) == 12 and detail.detail is not None)
        posts.focus()
        read = lambda: posts.cursor  # noqa: E731
        assert [await press_and_read(pilot, k, read) for k in ("j", "G", "g", "end", "home")] == [1, 11, 0, 11, 0]
        await app.switch_mode("spotcheck")
        spot = app.screen
        assert isinstance(spot, SpotCheckScreen)
        await until(pilot, lambda: len(spot.items) == 12)
        read = lambda: spot.pos  # noqa: E731
        assert [await press_and_read(pilot, k, read) for k in ("j", "k", "G", "g", "pagedown", "pageup", "end",
                                                                "home")] == [1, 0, 11, 0, 10, 0, 11, 0]


async def test_spot_check_keeps_its_post_while_scores_land(tmp_path):
    settings = config(tmp_path, refresh_s=0.05)
    ids = list(fill(settings).values())
    db = open_db(settings.db_path)
    late = ids[:5]  # scored by the next batch
    db.execute(f"DELETE FROM predictions WHERE post_id IN ({','.join(map(str, late))})")
    job = rows.create(db, pool_status.KIND, {"run_id": 1}, 20, {})
    db.conn.commit()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("spotcheck")
        spot = app.screen
        assert isinstance(spot, SpotCheckScreen)
        await until(pilot, lambda: len(spot.items) == 7 and spot.job is not None)
        await pilot.press("G", "k", "k")
        kept = spot.current.post_id
        # A batch of scores lands, all more uncertain than the post on screen: they sort before it.
        add_predictions(db, 1, {pid: probs(0.34, 0.33, 0.33) for pid in late})
        rows.progress(db, job, done=12, failed=0, total=20, counts={})
        db.conn.commit()
        await until(pilot, lambda: len(spot.items) == 12)
        assert spot.current.post_id == kept
        assert f"post {kept}" in str(spot.query_one("#spot-head").render())
    db.close()


@pytest.mark.parametrize("size", SIZES)
async def test_tab_reaches_the_posts_detail_pane_and_the_keys_scroll_it(tmp_path, size):
    settings = config(tmp_path)
    ids = fill(settings)
    db = open_db(settings.db_path)
    newest = ids[12]  # the list's first row
    for k in range(40):
        add_note(db, newest, f"note line {k}")
    db.conn.commit()
    db.close()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=size) as pilot:
        pane = app.screen.query_one(PostDetailView)
        await until(pilot, lambda: pane.detail is not None and pane.detail.id == newest)
        for _ in range(4):
            if app.focused is pane:
                break
            await pilot.press("tab")
        assert app.focused is pane
        await pilot.press("j")
        assert pane.top == 1
        await pilot.press("G")
        await pilot.pause()
        shown = "\n".join(pane.render_line(y).text for y in range(pane.content_size.height))
        assert "note line 39" in shown and "more lines" not in shown
        await pilot.press("g")
        assert pane.top == 0
        assert app.screen.query_one(PostTable).cursor == 0  # the list did not move


def chain_ids(app) -> dict[str, str]:
    """id -> the key that runs it now, over the current screen's binding chain."""
    return {active.binding.id: key for key, active in app.screen.active_bindings.items() if active.binding.id}


async def test_every_action_can_be_rebound_from_config(tmp_path):
    """Every binding of every screen and of the app has an id; mapping each id to a new key in [tui.keymap]
    makes that key run it, on every screen."""
    ids: set[str] = set()
    for spec in SCREENS:
        screen_ids = [b.id for b in spec.load().BINDINGS]
        assert None not in screen_ids, spec.mode
        assert len(screen_ids) == len(set(screen_ids)), spec.mode
        ids.update(screen_ids)
    ids.update(b.id for b in BizsentApp.BINDINGS)
    ids.update(["nav.down", "nav.up", "nav.page_down", "nav.page_up", "nav.top", "nav.bottom"])
    new_key = {binding_id: f"ctrl+shift+f{k}" for k, binding_id in enumerate(sorted(ids), start=1)}
    lines = "".join(f'"{binding_id}" = "{key}"\n' for binding_id, key in new_key.items())
    settings = config(tmp_path, "[tui.keymap]\n" + lines)
    fill(settings)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    seen: set[str] = set()
    async with app.run_test(size=(80, 24)) as pilot:
        for spec in SCREENS:
            await app.switch_mode(spec.mode)
            await pilot.pause()
            for widget in [None, *app.screen.query("*")]:  # the screen's keys, then each pane's
                if widget is not None and not widget.focusable:
                    continue
                app.screen.set_focus(widget)
                await pilot.pause()
                for binding_id, key in chain_ids(app).items():
                    if binding_id in new_key:
                        assert key == new_key[binding_id], (spec.mode, binding_id)
                        seen.add(binding_id)
    assert seen == ids - {"app.quit_anywhere"} or seen == ids


async def test_a_rebound_key_really_runs_its_action(tmp_path):
    settings = config(tmp_path, '[tui.keymap]\n"nav.down" = "x"\n"jobs.cancel_job" = "ctrl+x"\n')
    fill(settings)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("batches")
        table = app.screen.query_one("#jobs", DataTable)
        await until(pilot, lambda: table.row_count == 30)
        table.focus()
        await pilot.press("x", "x", "j")  # j no longer moves: the keymap replaced nav.down's keys
        assert table.cursor_row == 2
        await pilot.press("ctrl+x")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmModal")
        await pilot.press("escape")
        await app.switch_mode("eval")
        runs = app.screen.query_one("#eval-runs", DataTable)
        await until(pilot, lambda: runs.row_count == 30)
        await pilot.press("x")
        assert runs.cursor_row == 1  # the same id moves every list


@pytest.mark.parametrize("size", SIZES)
async def test_help_and_footer_list_the_keys(tmp_path, size):
    settings = config(tmp_path, '[tui.keymap]\n"jobs.collect" = "ctrl+b"\n')
    fill(settings)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=size) as pilot:
        for spec in SCREENS:
            await app.switch_mode(spec.mode)
            await pilot.pause()
            screen = app.screen
            text = help_markdown(screen, list(app.BINDINGS), app.keymap)
            for binding in screen.BINDINGS:
                assert binding.description in text and binding.id in text, (spec.mode, binding.id)
            assert "ctrl+p" in text and "ctrl+q" in text, spec.mode
            if spec.mode in (*LISTS, "posts", "spotcheck"):
                assert "`down, j`" in text and "`home, g`" in text and "tab" in text, spec.mode
            footer = str(screen.query_one(KeyBar).render())
            assert "quit" in footer and "? " in footer, (spec.mode, footer)
            assert len(footer) <= size[0]
            bar = screen.query_one(StatusBar)
            assert "spent $" in str(bar.render()), spec.mode
        await app.switch_mode("batches")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpModal))
        assert "`ctrl+b` collect" in app.screen._markdown  # the keymap's key, not the default


async def test_reopening_returns_to_the_screen_and_rows_where_the_user_left(tmp_path):
    settings = config(tmp_path)
    ids = fill(settings, n_rows=5)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        posts = app.screen.query_one(PostTable)
        await until(pilot, lambda: len(posts.ids) == 12 and app.screen.query_one(PostDetailView).detail is not None)
        await pilot.press("j", "j", "j")
        left_post = posts.current_id
        await app.switch_mode("batches")
        jobs = app.screen.query_one("#jobs", DataTable)
        await until(pilot, lambda: jobs.row_count == 5)
        jobs.focus()
        await pilot.press("G")
        await until(pilot, lambda: app.screen.selected == min(app.screen.jobs))
        await app.switch_mode("spotcheck")
        spot = app.screen
        await until(pilot, lambda: len(spot.items) == 12)
        await pilot.press("j", "j")
        left_spot = spot.current.post_id
        await app.switch_mode("pods")
        table = app.screen.query_one("#pods", DataTable)
        await until(pilot, lambda: table.row_count == 5)
        table.focus()
        await pilot.press("j")
        await until(pilot, lambda: app.screen.selected == "pod003")
    reopened = BizsentApp(settings=settings, db_path=settings.db_path)
    async with reopened.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: reopened.current_mode == "pods")
        pods = reopened.screen
        await until(pilot, lambda: pods.loaded and pods.query_one("#pods", DataTable).row_count == 5)
        assert pods.selected == "pod003" and pods.query_one("#pods", DataTable).cursor_row == 1
        await reopened.switch_mode("posts")
        posts = reopened.screen.query_one(PostTable)
        await until(pilot, lambda: posts.current_id == left_post)
        assert posts.cursor == 3
        await reopened.switch_mode("batches")
        await until(pilot, lambda: reopened.screen.query_one("#jobs", DataTable).row_count == 5)
        assert reopened.screen.selected == min(reopened.screen.jobs)
        await reopened.switch_mode("spotcheck")
        await until(pilot, lambda: reopened.screen.current is not None and reopened.screen.loaded)
        assert reopened.screen.current.post_id == left_spot
    assert left_post in ids.values()
