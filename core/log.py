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


def setup_logging(data_dir: Path) -> Path:
    """Send the `bizsent` loggers (and library warnings) to <data_dir>/bizsent.log; return its path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOG_NAME
    root = logging.getLogger()
    if not any(isinstance(h, RotatingFileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        handler = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"))
        handler.addFilter(RedactSecrets())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    return path


def log_file() -> Path | None:
    """The file setup_logging sends records to; None before it ran (a test, an embedding program)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RotatingFileHandler):
            return Path(handler.baseFilename)
    return None
