"""The console's background workers: a failure is reported, never fatal.

Textual's `@work` exits the app when a worker raises (`WorkerFailed`, a traceback with local variables on the
user's terminal). `background` is `@work(thread=True)` that instead posts `BackgroundFailed` to the app, which
shows one line, logs the traceback (BizsentApp.on_background_failed) and runs the same call again once the
database answers after having been unavailable. Every thread worker of the console is a `background` one, and
reads the store on a connection of its own (`reading`), never the event loop's: WAL lets these readers run while
jobs and the console's writer thread write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from bizsent.core.store import open_db
from textual import work
from textual.dom import DOMNode
from textual.message import Message


@dataclass
class BackgroundFailed(Message):
    """A worker of `node` raised `error` while doing `what`; `retry` starts the same call again."""

    node: DOMNode
    what: str
    error: BaseException
    retry: Callable[[], Any] | None = None


def background(what: str, *, group: str, exclusive: bool = False) -> Callable:
    """Run the decorated method in a thread worker; `what` ("reading the jobs") names it in the one-line
    notification if it fails."""

    def decorate(method: Callable[..., None]) -> Callable:
        @functools.wraps(method)
        def guarded(node: DOMNode, *args: Any, **kwargs: Any) -> None:
            try:
                method(node, *args, **kwargs)
            except Exception as exc:
                # On the worker thread: post_message is thread-safe. Looked up by name, so a retry goes through
                # this decorator again (a new worker, same group and exclusivity).
                retry = functools.partial(getattr(node, method.__name__), *args, **kwargs)
                node.app.post_message(BackgroundFailed(node, what, exc, retry))
                raise  # the worker still ends in the ERROR state; exit_on_error=False keeps the app up

        return work(thread=True, exclusive=exclusive, group=group, exit_on_error=False)(guarded)

    return decorate


@contextmanager
def reading(db_path: Path) -> Iterator[sqlite_utils.Database]:
    """A short-lived connection for one worker run (sqlite3 connections must not hop threads casually)."""
    db = open_db(db_path, create=False)
    try:
        yield db
    finally:
        db.close()


def store_action(db_path: Path, action: Callable[[sqlite_utils.Database], str], what: str) -> tuple[str, bool]:
    """Run a user's action (cancel a job, terminate a pod) on a connection of its own, in a worker thread: it may
    wait on the network, and the console's writer stays free for labels. Returns (one line for the user, failed):
    a BizsentError is the user's line; anything else is logged with its trace and named, never raised into the
    console."""
    import logging

    from bizsent.core.errors import BizsentError

    try:
        db = open_db(db_path, create=False)
        try:
            return action(db), False
        finally:
            db.close()
    except BizsentError as exc:
        return str(exc), True
    except Exception as exc:
        logging.getLogger(__name__).exception("%s failed", what)
        return f"failed: {type(exc).__name__}: {exc}", True
