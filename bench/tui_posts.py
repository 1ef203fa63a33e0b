"""Console responsiveness with 100,000 posts: first paint, key-to-screen latency, label-to-next-post, memory.

    .venv/bin/python bench/tui_posts.py [--posts 100000]

The database is built in a child process (bulk SQL, a few dozen Pillow images shared by many posts) so the
memory figure is the console's own. First paint is timed as a user waits for it: from starting the real
`bizsent tui` process in a tmux pane (interpreter start and every import included) until the newest post's row
is on the pane, the median of three launches. Key latencies are measured inside the app, from the key event to
the first screen refresh after the widget changed (Pilot's own press() waits for idle, ~60 ms, so it is not
timed). Label keys come one after another without waiting for the prefetch of the next posts, so a key that
lands before its post is ready is timed until that post and its image are on screen (the slow path); a label
key's mark waits for the frame that drew the post's picture cells, since Textual may run after-refresh
callbacks before the changed widgets have asked for a frame. Zoom (`z` on
the Label screen) is timed from the key to the first refresh after the full-terminal picture (decoded from the
original file and drawn for the whole pane, in a worker) is shown; `z` again closes it before the next one.
Targets (issue 21 section 7): first paint <= 1.0 s, p95 key <= 50 ms, p95 label <= 30 ms with the slow path on 1 key
in 5, p95 zoom <= 100 ms, memory <= 200 MB.
Last line: one JSON object with first_paint_s, p95_key_ms, p95_label_ms, p95_zoom_ms, rss_mb.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N_IMAGES = 48
MARKER = "first paint marker"  # the newest post's text: the top row of the list once it is drawn
BIZSENT = Path(sys.executable).with_name("bizsent")
WORDS = ["wagmi", "ngmi", "moon", "rekt", "hodl", "cope", "fud", "ser", "fren", "anon", "bags", "pump", "dump",
         "btc", "eth", "link", "xmr", "sol", "chart", "it's", "over", "we're", "so", "back", "buy", "the", "dip",
         "exit", "liquidity", "rope", "up", "only", "lfg"]


def build(db_path: Path, image_dir: Path, n_posts: int) -> None:
    """100k posts in one transaction: ~1 s. Every 10th image row is corrupt, every 20th post has none."""
    from bizsent.core.store import now, open_db
    from PIL import Image, ImageDraw

    rng = random.Random(7)
    image_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(N_IMAGES):
        img = Image.new("RGB", (480, 360), (20 + i * 4 % 200, 30, 60))
        draw = ImageDraw.Draw(img)
        points = [(x * 40, 180 + rng.randint(-150, 150)) for x in range(13)]
        draw.line(points, fill=(0, 220, 90) if i % 2 else (230, 40, 60), width=6)
        full, thumb = image_dir / f"{i}.jpg", image_dir / f"{i}.thumb.jpg"
        img.save(full, "JPEG", quality=85)
        img.thumbnail((320, 320))
        img.save(thumb, "JPEG", quality=85)
        files.append((str(full), str(thumb)))
    db = open_db(db_path)
    stamp = now()
    conn = db.conn
    conn.execute("BEGIN")
    images = []
    for i in range(n_posts):
        full, thumb = files[i % N_IMAGES]
        status, reason = ("corrupt", "truncated (bench)") if i % 10 == 9 else ("ok", None)
        images.append((i + 1, f"http://bench/{i}.jpg", full, thumb, status, reason))
    conn.executemany("INSERT INTO images (id, url, path, thumb_path, status, reason, width, height)"
                     " VALUES (?, ?, ?, ?, ?, ?, 480, 360)", images)
    posts = []
    for i in range(n_posts):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))
        if i % 7 == 0:
            text = ">be me\n>" + text
        if i == n_posts - 1:
            text = f"{MARKER} {text}"
        posts.append(("biz", 1000 + i // 50, 10_000_000 + i, 1_700_000_000 + i * 37, text,
                      None if i % 20 == 19 else i + 1, "live", stamp))
    conn.executemany("INSERT INTO posts (board, thread_no, post_no, time, text, image_id, source, scraped_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", posts)
    labels = [(pid, rng.choice(("bearish", "neutral", "bullish")), "api", "openai:gpt-bench@p3", 0.8, "train", stamp)
              for pid in range(1, n_posts + 1, 2)]
    conn.executemany("INSERT INTO labels (post_id, label, source, labeler, confidence, split, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", labels)
    conn.execute("COMMIT")
    db.close()


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def first_paint_from_start(db_path: Path, config: Path) -> float:
    """Seconds from starting `bizsent tui` in a 100x32 tmux pane to the newest post's row being on the pane."""
    session = f"bizsent-bench-{time.time_ns()}"
    # A tmux server started from here would inherit COLUMNS/LINES; the console must size itself from the pane.
    command = f"env -u COLUMNS -u LINES {BIZSENT} --config {config} --db {db_path} tui"
    started = time.perf_counter()
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "32", command)
    try:
        deadline = started + 60
        while MARKER not in tmux("capture-pane", "-p", "-t", session):
            if time.perf_counter() > deadline:
                raise SystemExit("the console never painted the list within 60 s")
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else (values[0] if values else float("nan"))


async def measure_zoom(app, pilot, zooms: int) -> None:
    """`z` then `z` again, `zooms` times, on the post the Label screen shows (marks["zoom"] via _painted)."""
    from bizsent.tui.screens.zoom import ZoomScreen

    deadline = time.perf_counter() + 120
    for _ in range(zooms):
        await pilot.press("z")
        while not (isinstance(app.screen, ZoomScreen) and app.screen.shown):
            if time.perf_counter() > deadline:
                raise SystemExit("the zoomed image never showed within 120 s")
            await pilot.pause(0.005)
        await pilot.press("z")
        while isinstance(app.screen, ZoomScreen):
            await pilot.pause(0.005)


async def measure(db_path: Path, config: Path, presses: int, labels: int, zooms: int) -> dict:
    from bizsent.core.config import load_settings
    from bizsent.tui.app import BizsentApp
    from bizsent.tui.screens.label import LabelScreen
    from bizsent.tui.screens.zoom import ZoomScreen
    from bizsent.tui.widgets.post_table import PostTable
    from textual import events

    marks: dict[str, list[float]] = {"key": [], "page": [], "detail": [], "label": [], "zoom": []}
    state: dict = {"first_paint": None, "key_t": 0.0, "kind": None, "label_pending": False}

    class BenchApp(BizsentApp):
        async def on_event(self, event) -> None:
            if isinstance(event, events.Key):
                state["key_t"] = time.perf_counter()
                state["label_pending"] = event.key in ("1", "2", "3") and isinstance(self.screen, LabelScreen)
            await super().on_event(event)

    def record(kind: str) -> None:
        marks[kind].append((time.perf_counter() - state["key_t"]) * 1000)

    render_line = PostTable.render_line

    def timed_render_line(self, y):
        strip = render_line(self, y)
        if state["first_paint"] is None and self.ids and self.row(self.ids[0]) is not None:
            state["first_paint"] = -1.0  # rows are drawn; the paint completes at the next refresh
            self.call_after_refresh(lambda: state.update(first_paint=time.perf_counter() - state["t0"]))
        return strip

    watch_cursor = PostTable.watch_cursor

    def timed_watch_cursor(self, old, new):
        watch_cursor(self, old, new)
        if state["kind"]:
            self.call_after_refresh(record, state["kind"])

    show_current = LabelScreen._show_current

    def record_label_when_painted(screen) -> None:
        # Textual can run after-refresh callbacks before the widgets just changed have asked for their frame:
        # the mark waits until the compositor has drawn the post's picture cells (CellImage builds its rows then).
        cells = screen.query_one("#label-image #cells")
        if cells.display and cells._strips and cells._placed[1] != cells.content_size:
            screen.call_after_refresh(record_label_when_painted, screen)
            return
        record("label")

    def timed_show_current(self):
        show_current(self)
        if state["label_pending"] and self.current in self.items:
            state["label_pending"] = False
            self.call_after_refresh(record_label_when_painted, self)

    painted = ZoomScreen._painted

    def timed_painted(self):
        painted(self)
        record("zoom")

    ZoomScreen._painted = timed_painted
    PostTable.render_line = timed_render_line
    PostTable.watch_cursor = timed_watch_cursor
    LabelScreen._show_current = timed_show_current

    gc_pauses: list[float] = []
    gc_start = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append((time.perf_counter() - gc_start[0]) * 1000)

    gc.callbacks.append(on_gc)
    settings = load_settings(config, environ={})
    settings.tui.image_renderer = "halfcell"
    state["t0"] = time.perf_counter()
    app = BenchApp(settings=settings, db_path=db_path)
    async with app.run_test(size=(100, 32)) as pilot:
        deadline = time.perf_counter() + 60
        while state["first_paint"] in (None, -1.0):
            if time.perf_counter() > deadline:
                raise SystemExit("the Posts list never painted a row within 60 s")
            await asyncio.sleep(0.005)
        from bizsent.tui.screens.posts import PostsScreen

        posts_screen = app.screen
        assert isinstance(posts_screen, PostsScreen)
        detail_show = posts_screen._show_detail

        def timed_show_detail(detail, picture):
            detail_show(detail, picture)
            if state["kind"] == "key":
                posts_screen.call_after_refresh(record, "detail")

        posts_screen._show_detail = timed_show_detail
        state["kind"] = "key"
        for _ in range(presses):
            await pilot.press("down")
        state["kind"] = "page"
        for _ in range(max(presses // 5, 2)):
            await pilot.press("pagedown")
        state["kind"] = None
        await pilot.press("f2")
        screen = app.screen
        deadline = time.perf_counter() + 60
        while not (screen.current is not None and screen.current in screen.items):
            if time.perf_counter() > deadline:
                raise SystemExit("the Label screen never showed a post within 60 s")
            await pilot.pause(0.01)
        slow: list[bool] = []
        for i in range(labels):
            # No waiting for the prefetch. Every 5th key also finds nothing prefetched (as after a queue reload
            # or a resize): the slow path, timed until the next post and its image are on screen.
            if i % 5 == 4:
                screen.items.clear()
            nxt = screen.queue[screen.pos + 1] if screen.pos + 1 < len(screen.queue) else None
            slow.append(nxt is not None and nxt not in screen.items)
            await pilot.press("123"[i % 3])
        await app.writer.drained()
        await measure_zoom(app, pilot, zooms)
        current, peak = rss_mb()
    if "--verbose" in sys.argv:
        print({k: [round(v) for v in vals] for k, vals in marks.items()}, file=sys.stderr)
        print("gc pauses over 5 ms:", [round(p) for p in gc_pauses if p > 5], file=sys.stderr)
    return {"marks": marks, "in_app_paint_s": state["first_paint"], "rss_mb": current, "peak_rss_mb": peak,
            "slow_labels": slow}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=150)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--zooms", type=int, default=50)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="print every latency sample")
    args = parser.parse_args()
    if args.build:
        build(args.build / "bench.db", args.build / "images", args.posts)
        return

    if shutil.which("tmux") is None:
        raise SystemExit("bench/tui_posts.py needs tmux to time first paint as a user sees it: apt install tmux")
    with tempfile.TemporaryDirectory(prefix="bizsent-bench-") as tmp:
        work = Path(tmp)
        config = work / "config.toml"
        # No image-text job: reading images in the background would compete for the CPU being measured.
        config.write_text('[data]\ndir = "."\n[tui]\nimage_renderer = "halfcell"\n[images]\nread_text = false\n',
                          encoding="utf-8")
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", str(work), "--posts", str(args.posts)], check=True)
        build_s = time.perf_counter() - started
        paints = [first_paint_from_start(work / "bench.db", config) for _ in range(3)]
        result = asyncio.run(measure(work / "bench.db", config, args.presses, args.labels, args.zooms))
    marks = result["marks"]
    first_paint = statistics.median(paints)
    slow_marks = [ms for ms, was_slow in zip(marks["label"], result["slow_labels"], strict=False) if was_slow]

    rows = [
        ("posts in database", f"{args.posts:,}", ""),
        ("database build (child process)", f"{build_s:.1f} s", ""),
        ("process start to list on screen, median of 3", f"{first_paint:.3f} s", "<= 1.0 s"),
        ("  the three launches", " ".join(f"{p:.2f}" for p in paints) + " s", ""),
        ("  app start to list painted (imports excluded)", f"{result['in_app_paint_s']:.3f} s", ""),
        (f"down arrow -> list repainted, p95 (n={len(marks['key'])})", f"{p95(marks['key']):.1f} ms", "<= 50 ms"),
        ("down arrow -> list repainted, median", f"{statistics.median(marks['key']):.1f} ms", ""),
        (f"down arrow -> detail pane with image, p95 (n={len(marks['detail'])})",
         f"{p95(marks['detail']):.1f} ms", ""),
        (f"page down -> list repainted, p95 (n={len(marks['page'])})", f"{p95(marks['page']):.1f} ms", ""),
        ("label keys pressed before their post was ready", f"{sum(result['slow_labels'])}", ""),
        ("label key -> next post, p95 of those (slow path)", f"{p95(slow_marks):.1f} ms", ""),
        (f"label key -> next post + image shown, p95 (n={len(marks['label'])})",
         f"{p95(marks['label']):.1f} ms", "<= 30 ms"),
        ("label key -> next post, median", f"{statistics.median(marks['label']):.1f} ms", ""),
        (f"z -> zoomed image on the whole terminal, p95 (n={len(marks['zoom'])})",
         f"{p95(marks['zoom']):.1f} ms", "<= 100 ms"),
        ("resident memory at end (peak)", f"{result['rss_mb']:.0f} MB ({result['peak_rss_mb']:.0f} MB)", "<= 200 MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':>18}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>18}  {target}")
    print(json.dumps({
        "first_paint_s": round(first_paint, 3),
        "p95_key_ms": round(p95(marks["key"]), 1),
        "p95_label_ms": round(p95(marks["label"]), 1),
        "p95_zoom_ms": round(p95(marks["zoom"]), 1),
        "rss_mb": round(result["peak_rss_mb"], 1),
    }))


if __name__ == "__main__":
    main()
