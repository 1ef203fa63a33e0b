"""The `bizsent` command line (floor 10, the top): a thin layer over core and jobs (the console calls the same
functions); it may import every floor.

Commands live in modules by stage (data, labeling, model, pods) and jobs (every kind); importing them registers
them on `app`.
Exit codes: 0 ok, 1 user error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys

import typer
from bizsent.cli import compare, data, jobs, labeling, live, model, pods, remote  # noqa: F401  (registers the commands)
from bizsent.cli.app import _opened, app
from bizsent.core.errors import BizsentError
from bizsent.core.log import RedactingStream, log_file, redact

__all__ = ["app", "main"]

INTERRUPTED = "interrupted; everything already written is kept"


def main() -> None:
    # The commands draw their own progress; the Hugging Face libraries' bars ("Loading weights") would only
    # interleave with it. Read when transformers is first imported, so it is set before any command runs.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Everything the CLI prints goes through the same scrubber as the log, the database and the responses files.
    sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
    try:
        # Not standalone: Typer would turn Ctrl-C into a silent exit 130 (and a Ctrl-C at a prompt into
        # "Aborted!" and exit 1) before the handlers below could say anything.
        code = app(standalone_mode=False)
    except typer.Abort as exc:  # Ctrl-C or end of input at a prompt
        if isinstance(exc.__context__, EOFError):
            typer.echo("no answer (end of input); nothing was done", err=True)
            sys.exit(1)
        _interrupted()
    except typer.TyperException as exc:  # usage errors
        _show_usage_error(exc)
        sys.exit(exc.exit_code)
    except BizsentError as exc:
        typer.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        _interrupted()
    except BrokenPipeError:
        sys.exit(1)
    except OSError as exc:
        from bizsent.core.store import disk_full, is_disk_full

        if is_disk_full(exc):
            typer.echo(f"error: {disk_full(exc.filename or (_opened[-1] if _opened else '.'))}", err=True)
            sys.exit(1)
        if exc.filename is None:  # not a file problem (a socket, say): a bug until shown otherwise
            _internal_error(exc)
        # A file or folder that cannot be written or read is the user's to fix: one line, traceback in the log.
        logging.getLogger("bizsent").exception("file system error")
        typer.echo(f"error: cannot use {exc.filename} ({exc.strerror or exc}); check that it exists and that "
                   "you may write there, or choose another data folder with --db", err=True)
        sys.exit(1)
    except sqlite3.DatabaseError as exc:
        from bizsent.core.store import usage_error

        problem = usage_error(exc, _opened[-1] if _opened else "(none opened)")
        if problem is None:
            _internal_error(exc)
        logging.getLogger("bizsent").exception("database error")
        typer.echo(f"error: {problem}", err=True)
        sys.exit(1)
    except Exception as exc:
        _internal_error(exc)
    if code == 130:  # Typer's own answer to a Ctrl-C inside a command
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> None:
    typer.echo(INTERRUPTED, err=True)
    sys.exit(130)


def _internal_error(exc: BaseException) -> None:
    logging.getLogger("bizsent").exception("internal error")
    typer.echo(f"internal error: {type(exc).__name__}: {redact(str(exc))} (traceback in the log: "
               f"{log_path()})", err=True)
    sys.exit(1)


def _show_usage_error(exc: typer.TyperException) -> None:
    """What Typer prints for a usage error in standalone mode (a framed message, or plain without rich)."""
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"Error: {exc.format_message()}", err=True)


def log_path() -> str:
    path = log_file()
    return str(path) if path else "none: it could not be written, or the config was not read yet"
