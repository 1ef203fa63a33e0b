"""The log file: tracebacks and job details go here, never onto the user's screen; and `redact`, the one scrubber.

`redact` replaces the value of every secret environment variable with its name. Every way text leaves a
process goes through it: this log (a filter on the handler), the database (jobs rows, the ledger), the raw
responses kept under responses/, console notifications and the CLI's stdout/stderr (a wrapper that `main`
installs). A key an SDK echoes in an exception or a server quotes in an error body never reaches any of them.
"""

from __future__ import annotations

import logging
import os
import re
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, TextIO

from bizsent.core.config import secret_variables

LOG_NAME = "bizsent.log"


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        text = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            text = redact(text + "\n" + logging.Formatter().formatException(record.exc_info))
            record.exc_info, record.exc_text = None, None
        if text != message:
            record.msg, record.args = text, None
        return True


class QuietFileHandler(RotatingFileHandler):
    """The log file's handler: a record it cannot write (a full disk, a folder gone) is dropped. logging's
    default prints the failure's traceback on stderr, once per record: a screen of them for one full disk."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802  (logging's name)
        pass


SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")


SHORT_SECRET = 8  # below this a value could be an everyday word: replaced only where it stands alone


def secret_values() -> list[tuple[str, str]]:
    """(variable, value) of every secret in the environment: the providers' keys (whatever their length) and
    anything named like one (from SHORT_SECRET characters: a short value of an unknown variable is not a key)."""
    declared = secret_variables()
    names = declared | {n for n in os.environ if n.upper().endswith(SECRET_SUFFIXES)}
    out = [(n, os.environ.get(n, "").strip()) for n in sorted(names)]
    # Longest first, so a key that contains another is replaced whole.
    return sorted(((n, v) for n, v in out if v and (n in declared or len(v) >= SHORT_SECRET)),
                  key=lambda nv: -len(nv[1]))


def redact(text: str) -> str:
    for var, value in secret_values():
        if len(value) >= SHORT_SECRET:
            text = text.replace(value, f"<{var}>")
        else:  # a short key: as a token of its own ("Bearer abc"), not inside words ("abc" in "abcde")
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", f"<{var}>", text)
    return text


class RedactingStream:
    """A text stream that scrubs secrets from everything written to it (the CLI's stdout and stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # a text stream refuses bytes (click probes streams this way)
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def setup_logging(data_dir: Path) -> Path | None:
    """Send the `bizsent` loggers (and library warnings) to <data_dir>/bizsent.log; return its path.

    If the file cannot be written (a read-only or missing data folder), records are dropped and None comes back:
    the command then reports the folder problem in one line. A NullHandler keeps logging's last-resort handler
    from printing tracebacks on the screen instead.
    """
    path = data_dir / LOG_NAME
    root = logging.getLogger()
    if any(isinstance(h, RotatingFileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        return path
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handler = QuietFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        root.addHandler(logging.NullHandler())
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"))
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # libraries' deprecation warnings go to the log, not between a command's lines
    return path


def log_file() -> Path | None:
    """The file setup_logging sends records to; None before it ran (a test, an embedding program)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RotatingFileHandler):
            return Path(handler.baseFilename)
    return None
