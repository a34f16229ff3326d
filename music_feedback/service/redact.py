"""Link tokens never reach a log line. A token in a log is a working link to a listener's feedback form or
unsubscribe button for as long as it lives (a year for unsubscribe), readable by whoever reads the logs.

`redact` replaces the token segment of `/f/`, `/u/`, `/o/` and `/c/` paths (also percent-encoded, as in a
click link's `to=%2Ff%2F...`) with `<token>`. `RedactTokens` is a logging filter applying it to a record's
message, its arguments (uvicorn's access formatter reads them one by one) and its traceback; `install` puts
it on the service's loggers and uvicorn's.
"""
from __future__ import annotations

import logging
import re

TOKEN_PATH = re.compile(r"(/|%2F)([fuoc])(/|%2F)[^/?&#\s\"'<>]+", re.IGNORECASE)
PLACEHOLDER = "<token>"
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "fastapi", "music_feedback.service")


def redact(text: str) -> str:
    return TOKEN_PATH.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{PLACEHOLDER}", text)


def _clean(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value)  # a URL or request object: its text, only when it holds a token
    cleaned = redact(text)
    return cleaned if cleaned != text else value


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            # Formatted here, once: the handler's formatter reuses exc_text rather than the exception.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install() -> None:
    """The filter on uvicorn's loggers and on every logger of the service's modules (a logger's filter sees
    only the records made on it, so each gets one). Idempotent."""
    names = set(LOGGERS) | {n for n in logging.root.manager.loggerDict if n.startswith("music_feedback.service")}
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
