"""The `bizsent` Typer app, the context every command gets, and helpers the command modules share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from bizsent.core.config import Settings, load_settings
from bizsent.core.log import setup_logging

app = typer.Typer(
    name="bizsent",
    help="Multimodal /biz/ sentiment: collect, label, train, evaluate. Run without a command to open the console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_opened: list[Path] = []  # the database this command opened: what `main` names when SQLite fails later


@dataclass
class Context:
    settings: Settings
    db_path: Path

    def db(self, create: bool = True):
        from bizsent.core.store import open_db

        _opened.append(self.db_path)
        return open_db(self.db_path, create=create)


def ctx_of(ctx: typer.Context) -> Context:
    return ctx.obj


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    db: Annotated[Path | None, typer.Option("--db", help="SQLite database; its folder holds the image cache, "
                                            "runs and logs (default: from config.toml)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="config file (default: the repo's config.toml)")]
    = None,
) -> None:
    # A database given by path brings its data folder with it, so two projects never share one image cache.
    overrides = {"data.dir": str(db.resolve().parent), "data.db": db.name} if db else None
    settings = load_settings(config, overrides=overrides)
    setup_logging(settings.data_dir)
    ctx.obj = Context(settings=settings, db_path=settings.db_path)
    if ctx.invoked_subcommand is None:
        open_console(ctx.obj)


def open_console(context: Context) -> None:
    from bizsent.tui.terminal import load_textual_image

    load_textual_image(context.settings.tui.image_renderer)
    from bizsent.tui.app import BizsentApp

    console = BizsentApp(settings=context.settings, db_path=context.db_path)
    console.run()
    if console.crashed is not None:  # the CLI's handlers make it one line and put the traceback in the log
        raise console.crashed



def stamp() -> str:
    from datetime import datetime

    return datetime.now().strftime("%Y%m%d-%H%M%S")


def print_table(table) -> None:
    from rich.console import Console

    Console().print(table)


def count_progress(what: str):
    """A Rich progress bar on stderr: done/total, rate, ETA (the callback takes done, total)."""
    from contextlib import contextmanager

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    @contextmanager
    def bar():
        progress = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
        task = progress.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        with progress:
            yield update

    return bar()


def detach_or_run(c: Context, db, job_id: int, detach: bool) -> bool:
    """With --detach: start job row `job_id` in the background, say so, and return True (nothing left to do)."""
    if not detach:
        return False
    from bizsent.jobs.control import start
    from bizsent.jobs.rows import get

    pid = start(db, c.db_path, c.settings.source, job_id, c.settings.data_dir / "logs")
    typer.echo(f"job {job_id} ({get(db, job_id)['kind']}) started in the background (pid {pid}); follow it with"
               f" `bizsent jobs show {job_id}`")
    return True
