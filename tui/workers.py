"""The console's background workers: a failure is reported, never fatal.

Textual's `@work` exits the app when a worker raises (`WorkerFailed`, a traceback with local variables on the
user's terminal). `background` is `@work(thread=True)` that instead posts `BackgroundFailed` to the app, which
shows one line, logs the traceback (BizsentApp.on_background_failed) and runs the same call again once the
database answers after having been unavailable. Every thread worker of the console is a `background` one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
