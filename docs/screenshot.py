"""Redraw docs/console.svg, the README's screenshot: the console on the built-in demo data, through Textual's own
SVG export. Run it after a change to the console's looks:

    .venv/bin/python docs/screenshot.py

It seeds a fresh demo database in a temporary folder (the same data `scripts/demo` shows), opens the console
headless at 110x32, waits until the Posts screen has drawn the post list and the first post, and saves the SVG.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "console.svg"


async def shoot(workdir: Path) -> None:
    from bizsent.core.coins import catalog
    from bizsent.core.coins.tags import tag_posts
    from bizsent.core.config import load_settings
    from bizsent.core.demo import seed_demo
    from bizsent.core.store import open_db
    from bizsent.tui.app import BizsentApp
    from bizsent.tui.widgets.post_table import PostTable

    settings = load_settings(overrides={"data.dir": str(workdir), "tui.image_renderer": "halfcell"})
    db = open_db(settings.db_path)
    seed_demo(db, settings.image_dir, n_posts=300, seed=7)
    tag_posts(db, catalog(settings.coins))
    db.close()
    app = BizsentApp(settings, settings.db_path)
    async with app.run_test(size=(110, 32)) as pilot:
        for _ in range(200):  # the post list and the detail pane fill in from background workers
            await pilot.pause(0.05)
            tables = app.screen.query(PostTable)
            if tables and tables.first().ids:
                break
        await pilot.press("down")
        await pilot.pause(1.0)
        OUT.write_text(app.export_screenshot(title="bizsent"), encoding="utf-8")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(shoot(Path(tmp)))
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
