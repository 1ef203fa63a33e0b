"""The log file: tracebacks and job details go here, never onto the user's screen.

A filter scrubs the values of the secret environment variables from every record, so a key that ends up in an
exception message (an SDK echoing a header, say) never reaches the file.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from core.config import SECRET_ENV

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


def redact(text: str) -> str:
    for var in SECRET_ENV.values():
        value = os.environ.get(var, "").strip()
        if len(value) >= 8:
            text = text.replace(value, f"<{var}>")
    return text


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
        handler = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        root.addHandler(logging.NullHandler())
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"))
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path
