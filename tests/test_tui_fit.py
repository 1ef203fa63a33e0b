"""Fits 80x24, grows at 160 columns, tells the truth (issue 21.6), through Textual's Pilot: the Label header keeps
where the post is in the queue and the tally keeps `skip N` at 80 columns, the Jobs list's "what" column grows
with the terminal, and `t` on a terminated pod answers one line instead of a dialog."""

from __future__ import annotations

from collections import Counter

import pytest
from bizsent.core.pods.views import Account, PodView, combined, list_note
from bizsent.core.store import now, open_db
from bizsent.core.store.summary import spend
from bizsent.jobs import pool_status, rows
from bizsent.tui.app import BizsentApp
from bizsent.tui.screens.confirm import ConfirmModal, NewJobModal
from bizsent.tui.screens.job_format import WIDTHS
from bizsent.tui.style import LABEL_COLORS
from bizsent.tui.widgets.label_bars import LabelTally, tally_line
from bizsent.tui.widgets.post_table import PostTable
from bizsent.tui.widgets.status_bar import StatusBar
from fakes.label_posts import make_posts
from fakes.runpod_server import FakeRunpod
from fakes.tui import build_store, until
from rich.color import Color
from test_tui_batches import fake_openai, world  # noqa: F401  (the fake OpenAI server and its config)
from test_tui_keys import SIZES, config
from textual.widgets import DataTable, Select, Static


def shown(widget) -> str:
    return str(widget.render())


def app_on_store(tmp_path, extra: str = "") -> BizsentApp:
    """The console on a dozen-post store under `tmp_path` (tests.fakes.tui.build_store); `extra`: more [tui]
    settings."""
    settings = config(tmp_path, extra)
    db = open_db(settings.db_path)
    build_store(db, settings.image_dir)
    db.close()
    return BizsentApp(settings=settings, db_path=settings.db_path)


@pytest.mark.parametrize("size", SIZES)
async def test_label_header_tally_and_status_bar_keep_their_facts(tmp_path, size):
    app = app_on_store(tmp_path)
    async with app.run_test(size=size) as pilot:
        await app.switch_mode("label")
        meta = app.screen.query_one("#label-meta", Static)
        await until(pilot, lambda: "in queue" in shown(meta))
        await pilot.press("x", "1")  # a skip and a label: the tally counts both
        await pilot.pause()
        header = meta.render_line(0).text
        assert "in queue" in header, header
        counts = app.screen.query_one("#label-counts", Static)
        line = counts.render_line(0).text
        assert "skip 1" in line and "bear 1" in line, line
        bar = app.screen.query_one(StatusBar)
        assert "spent $" in bar.render_line(0).text


def test_the_tally_drops_shares_before_skip():
    counts = Counter(bearish=12, neutral=30, bullish=8, skip=4)
    assert tally_line(counts, 50, 80).plain == "50/50 bear 12 24% · neut 30 60% · bull 8 16% · skip 4"
    narrow = tally_line(counts, 50, 45).plain
    assert narrow == "50/50 bear 12 · neut 30 · bull 8 · skip 4"
    assert tally_line(counts, 50, 38).plain.endswith("skip 4")
    assert LabelTally  # the widget redraws the line on resize with the pane's own width


@pytest.mark.parametrize("size", SIZES)
async def test_the_jobs_list_grows_with_the_terminal(tmp_path, size):
    settings = config(tmp_path)
    db = open_db(settings.db_path)
    build_store(db, settings.image_dir)
    job = rows.create(db, pool_status.KIND, {"run_id": 1, "run_name": "a-long-run-name-for-the-pool"}, 10, {})
    db.close()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=size) as pilot:
        await app.switch_mode("batches")
        table = app.screen.query_one("#jobs", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        cells = [str(getattr(cell, "plain", cell)) for cell in table.get_row(str(job))]
        # a pool-scoring row says what it does with its run (an eval row of the same run read "run 1" too)
        assert cells[list(app.screen.columns).index("labeler")].strip() == "score pool, run 1"
        room = app.screen.what_room
        # every other column at its widest plus "what" fits the terminal; at 160 "what" has room for a long
        # provider/model name (it was cut at 20 whatever the width)
        assert room + sum(WIDTHS[c] for c in app.screen.columns if c != "labeler") <= size[0]
        assert room >= (40 if size[0] >= 160 else 14)


async def test_t_on_a_terminated_pod_says_one_line(tmp_path, monkeypatch):
    settings = config(tmp_path)
    with FakeRunpod("canary-key", root=tmp_path / "pods", boot_delay_s=0.05) as fake:
        monkeypatch.setenv("RUNPOD_API_KEY", "canary-key")
        settings.runpod.api_base = fake.url
        db = open_db(settings.db_path)
        db.execute("INSERT INTO pods (pod_id, name, run_name, gpu, cloud, usd_per_hour, state, created_at,"
                   " updated_at) VALUES ('gone1', 'bizsent-old', NULL, 'RTX 4090', 'SECURE', 0.69, 'terminated',"
                   " ?, ?)", [now(), now()])
        db.close()
        app = BizsentApp(settings=settings, db_path=settings.db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.switch_mode("pods")
            await until(pilot, lambda: "gone1" in app.screen.pods)
            await pilot.press("t")
            await until(pilot, lambda: any("nothing to terminate" in n.message for n in app._notifications))
            assert not isinstance(app.screen, ConfirmModal)


@pytest.mark.parametrize("size", SIZES)
async def test_toasts_hide_neither_the_tally_nor_the_status_bar(tmp_path, size):
    app = app_on_store(tmp_path)
    async with app.run_test(size=size, notifications=True) as pilot:
        for mode, bottom_lines in (("label", ("#label-flags", "#label-progress", "#label-review")), ("posts", ())):
            await app.switch_mode(mode)
            app.notify("a notification that is long enough to need two lines at eighty columns, or nearly")
            await until(pilot, lambda: bool(app.screen.query("Toast")))
            await pilot.pause()
            toast = app.screen.query_one("Toast").region
            for selector in (*bottom_lines, "StatusBar", "KeyBar"):
                widget = app.screen.query_one(selector).region
                assert toast.bottom <= widget.y, (mode, selector, toast, widget)
            app.clear_notifications()


def pod(pod_id: str, uptime: int | None, usd: float, rate: float = 3.6, state: str = "running") -> PodView:
    return PodView(pod_id, f"bizsent-{pod_id}", None, "RTX 4090", state, uptime, rate, usd, False, state, None)


def test_uptime_and_cost_move_on_together_and_the_order_is_stable():
    account = Account([pod("zz", 100, 1.0), pod("aa", 50, 0.5)], "", at=1000.0)
    stored = [pod("new", 7, 0.2), pod("zz", 90, 0.9), pod("old", None, 1.4, rate=0.0, state="terminated")]
    listed = combined(stored, account, now=1010.0)
    # unknown to the database first, then the database's rows in their order: the same before and after a survey
    assert [p.pod_id for p in listed] == ["aa", "new", "zz", "old"]
    zz = listed[2]
    assert zz.uptime_s == 110 and zz.usd_so_far == pytest.approx(1.0 + 3.6 * 10 / 3600)
    later = combined(stored, account, now=1020.0)[2]
    assert later.uptime_s - zz.uptime_s == 10
    assert later.usd_so_far - zz.usd_so_far == pytest.approx(3.6 * 10 / 3600)
    assert list_note(account, listed) == ("4 pod(s) listed: 2 on the RunPod account, 2 known only to the database"
                                          " (finished or gone)")


async def test_pods_header_counts_the_rows_the_cursor_stays_and_an_orphans_cost_is_spent(tmp_path, monkeypatch):
    settings = config(tmp_path)
    with FakeRunpod("canary-key", root=tmp_path / "pods", boot_delay_s=0.05) as fake:
        monkeypatch.setenv("RUNPOD_API_KEY", "canary-key")
        settings.runpod.api_base = fake.url
        ghost = fake.add_pod("bizsent-ghost")
        db = open_db(settings.db_path)
        for k in range(3):
            db.execute("INSERT INTO pods (pod_id, name, gpu, usd_per_hour, state, total_usd, created_at, updated_at)"
                       " VALUES (?, ?, 'RTX 4090', 0.69, 'terminated', 1.0, ?, ?)", [f"old{k}", f"bizsent-o{k}",
                                                                                     now(), now()])
        db.conn.commit()
        app = BizsentApp(settings=settings, db_path=settings.db_path)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await app.switch_mode("pods")
            screen = app.screen
            note = screen.query_one("#pods-note", Static)
            await until(pilot, lambda: ghost in screen.pods and "listed" in shown(note))
            table = screen.query_one("#pods", DataTable)
            assert table.row_count == 4 and shown(note).startswith("4 pod(s) listed: 1 on the RunPod account")
            table.focus()
            await pilot.press("g", "j", "j")
            await until(pilot, lambda: screen.selected == "old1")
            await pilot.press("r")  # a survey and a poll: the cursor stays on its row and its pod
            await pilot.pause(0.3)
            assert table.cursor_row == 2 and screen.selected == "old1"
            await pilot.press("g", "t")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await until(pilot, lambda: db.execute("SELECT state FROM pods WHERE pod_id = ?", [ghost]).fetchone()
                        == ("terminated",))
        usd = db.execute("SELECT total_usd FROM pods WHERE pod_id = ?", [ghost]).fetchone()[0]
        assert usd > 0 and spend(db).total_usd == pytest.approx(3.0 + usd)
        db.close()


async def test_the_new_job_dialog_answers_y_and_n_like_every_question(world):  # noqa: F811
    fake, settings, db = world
    make_posts(db, settings.image_dir, 3)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("batches")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewJobModal) and app.screen.view is not None)
        await pilot.press("n")  # no Tabs to a Cancel button
        await until(pilot, lambda: not isinstance(app.screen, NewJobModal))
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewJobModal) and app.screen.view is not None
                    and not app.screen.query_one("#newjob-start").disabled)
        await pilot.press("y")
        await until(pilot, lambda: db.execute("SELECT count(*) FROM jobs WHERE kind = 'label'").fetchone()[0] == 1)
        await until(pilot, lambda: len(app.screen.jobs) == 1)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "done at" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")


@pytest.mark.parametrize("size", SIZES)
async def test_posts_header_explains_the_labels_column_and_a_search_is_a_filter(tmp_path, size):
    app = app_on_store(tmp_path)
    async with app.run_test(size=size) as pilot:
        header = app.screen.query_one("#posts-header", Static)
        filters = app.screen.query_one("#filters", Static)
        await until(pilot, lambda: "12 posts" in shown(filters))
        line = header.render_line(0).text
        assert "▲=bull" in line and "▼=bear" in line and "H=human" in line, line
        if size[0] >= 160:
            assert "O=openai" in line and "G=gemini" in line
        assert "no filter" in shown(filters)
        await pilot.press("slash", "m", "o", "o", "n")
        await until(pilot, lambda: "1 posts" in shown(filters))
        assert "no filter" not in shown(filters) and "text moon" in shown(filters)


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG contrast ratio of two colours."""
    def luminance(rgb: tuple[int, int, int]) -> float:
        lin = [(c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", ["dark", "light"])
async def test_selected_rows_and_the_goal_bar_read_well_in_both_themes(tmp_path, theme):
    app = app_on_store(tmp_path, f'theme = "{theme}"\n')
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.current_theme.dark is (theme == "dark")
        posts = app.screen.query_one(PostTable)
        await until(pilot, lambda: len(posts.ids) == 12)
        cursor = posts.get_component_rich_style("post-table--cursor").bgcolor.get_truecolor()
        screen_bg = app.screen.rich_style.bgcolor.get_truecolor()
        glyph_green = Color.parse(LABEL_COLORS["bullish"]).get_truecolor()
        assert contrast(glyph_green, cursor) >= 2.0, (theme, cursor)
        assert contrast(cursor, screen_bg) >= 1.2  # and the selected row still stands out
        await app.switch_mode("label")
        bar = app.screen.query_one("#goal Bar")
        todo = bar.get_component_rich_style("bar--bar").bgcolor.get_truecolor()
        assert contrast(todo, screen_bg) >= 1.8, (theme, todo)  # the part still to do is a visible line


@pytest.mark.parametrize("size", SIZES)
async def test_the_pods_list_drops_the_gpu_first_at_80_columns(tmp_path, size):
    settings = config(tmp_path)
    db = open_db(settings.db_path)
    db.execute("INSERT INTO pods (pod_id, name, gpu, usd_per_hour, state, total_usd, created_at, updated_at)"
               " VALUES ('abc123def456gh', 'bizsent-a-long-run-name', 'NVIDIA GeForce RTX 4090', 0.69, 'terminated',"
               " 1.4, ?, ?)", [now(), now()])
    db.conn.commit()
    db.close()
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=size) as pilot:
        await app.switch_mode("pods")
        table = app.screen.query_one("#pods", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        cells = [str(getattr(c, "plain", c)).strip() for c in table.get_row("abc123def456gh")]
        assert "$1.400" in cells and "terminated" in cells  # what it cost is on screen at any width
        assert ("RTX 4090" in cells) is (size[0] >= 100)
        assert sum(column.get_render_width(table) for column in table.columns.values()) <= size[0]


async def test_a_list_drawn_before_its_columns_are_measured_is_drawn_again_after():
    """Textual's DataTable measures new rows when idle and keeps the lines it drew before (cached by an update count,
    not the widths): a list refilled by a worker could stay cut to its old widths (Eval's metrics table, one start in
    five on a loaded machine). The console's NavTable draws them again."""
    from bizsent.tui.widgets.nav_table import NavTable
    from textual.app import App

    class OneList(App):
        def compose(self):
            yield NavTable(cursor_type="none", zebra_stripes=True)

    app = OneList()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(NavTable)
        table.add_columns("id", "what")
        table.add_rows([(str(k), "short") for k in range(3)])
        await pilot.pause()
        table.clear()
        table.add_rows([(str(k), "a long description") for k in range(3)])
        app.screen._compositor.render_update(full=True)  # a frame drawn before the idle pass measures the rows
        await pilot.pause()
        await pilot.pause()
        lines = [table.render_line(y).text for y in (1, 2, 3)]
        assert all("a long description" in line for line in lines), lines


async def test_a_long_question_keeps_its_buttons_on_screen_and_scrolls_by_key(tmp_path):
    """Found doing the whole day in tmux: at 80x24 the pod plan's confirmation ran past the dialog, so its closing
    question ("Start this pod?") and its Yes/No buttons were cut off: the user answered a question never shown."""
    app = app_on_store(tmp_path)
    plan = "\n".join(f"plan line {k}: a GPU, its price and the time it takes" for k in range(40))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(ConfirmModal(plan + "\n\nStart this pod?", yes="Start pod"))
        await pilot.pause()
        modal = app.screen
        for button in ("#confirm-yes", "#confirm-no"):
            region = modal.query_one(button).region
            assert region.height == 1 and 0 < region.bottom <= 24, (button, region)
        scroll = modal.query_one("#confirm-scroll")
        assert scroll.max_scroll_y > 0 and scroll.scroll_y == 0
        await pilot.press("end")  # the moving keys scroll the question, as every pane
        await until(pilot, lambda: scroll.scroll_y == scroll.max_scroll_y)
        await pilot.press("k")
        await until(pilot, lambda: scroll.scroll_y == scroll.max_scroll_y - 1)
        await pilot.press("y")
        assert not isinstance(app.screen, ConfirmModal)


async def test_y_starts_what_the_form_says_not_the_estimate_before_its_last_change(world):  # noqa: F811
    """Found doing the whole day in tmux: right after a change of the form (mode live -> batch, a new limit) the
    estimate is being made again, and `y` then started the job the previous estimate was for (live, all posts)."""
    fake, settings, db = world
    make_posts(db, settings.image_dir, 3)
    app = BizsentApp(settings=settings, db_path=settings.db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("batches")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewJobModal) and app.screen.view is not None
                    and not app.screen.query_one("#newjob-start").disabled)
        modal = app.screen
        started: list = []
        modal.dismiss = started.append  # what the dialog would start, without starting a job
        modal.query_one("#newjob-mode", Select).value = "batch"
        await pilot.press("y")  # within the estimate's debounce: not the live plan on screen a moment ago
        assert started == []
        await until(pilot, lambda: not modal.query_one("#newjob-start").disabled)
        await pilot.press("y")
        assert [params.mode for params in started] == ["batch"]


async def test_pods_with_no_pod_name_the_key_that_starts_one_within_80_columns(tmp_path):
    """Found doing the whole day in tmux: the empty Pods screen named a shell command, cut at 80 columns, while
    `n` on the screen itself starts a run."""
    app = app_on_store(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("pods")
        title = app.screen.query_one("#pod-title", Static)
        await until(pilot, lambda: "no pods yet" in shown(title))
        assert "n starts a training run" in shown(title) and len(shown(title)) <= 78


async def test_a_run_not_scored_on_test_says_which_key_scores_it_within_80_columns(tmp_path):
    """Found doing the whole day in tmux: after the demo model the Eval note was cut at 80 columns before the key
    that scores the test split (`T`)."""
    from fakes.eval_runs import add_eval, add_run

    app = app_on_store(tmp_path)
    with open_db(app.db_path) as db:
        add_eval(db, add_run(db, name="demo"), [[1, 0, 0], [0, 1, 0], [0, 0, 1]], step=8, split="val")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.switch_mode("eval")
        note = app.screen.query_one("#eval-note", Static)
        await until(pilot, lambda: "not scored on the human test split" in shown(note))
        assert "T scores" in shown(note)[:78]


def test_a_small_spend_reads_as_spent_not_zero():
    """Found doing the whole day in tmux: a first batch of five labels cost $0.0006 and the status bar said
    `spent $0.00`, as if nothing had been spent."""
    from bizsent.tui.app import StatusInfo
    from bizsent.tui.widgets.status_bar import status_text

    for usd, says in ((0.0006, "spent $0.0006"), (0.37, "spent $0.37"), (0.0, "spent $0.00"), (12.3, "spent $12.30")):
        assert says in status_text(StatusInfo("x.db", spend_usd=usd), [("posts", "Posts")], "posts", 80).plain
