"""Logging: text or JSON lines, request and case ids on every record, personal data redacted.

`configure_logging` is called by the entry points (`butler run`, `butler web`, `butler worker`),
never by the app factory, so tests and embedding programs keep their own logging.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.context import CASE_ID, REQUEST_ID
from bot.settings import Settings

REDACTED = "[redacted]"
# Phone numbers: international (+86 138 0013 8000), Chinese mobiles (13800138000), and numbers
# written in groups (138-0013-8000, (555) 123-4567). Plain ids (Telegram chat ids, row ids) are
# not touched: they have no plus sign, no grouping and are not 11 digits starting with 1[3-9].
PHONE = re.compile(
    r"\+\d[\d\s().-]{5,18}\d"
    r"|(?<!\d)1[3-9]\d{9}(?!\d)"
    r"|(?<![\d.])\(?\d{3}\)?[\s.-]\d{3,4}[\s.-]\d{4}(?![\d.])"
)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# Secrets are removed whatever the settings say: Bot API tokens in URLs, bearer tokens.
SECRET = re.compile(r"(bot)\d{5,}:[\w-]{20,}|(Bearer\s+)[\w.~+/=-]{16,}")
# `extra=` keys that carry customer content; their values never reach a log line by default.
SENSITIVE_KEYS = frozenset({"text", "body", "phone", "message_text", "display_name", "payload"})
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "case_id"}


def redact(text: str, *, personal_data: bool = False) -> str:
    """Remove secrets always, and phone numbers and e-mail addresses unless personal data is allowed."""
    text = SECRET.sub(lambda m: (m.group(1) or m.group(2) or "") + REDACTED, text)
    if not personal_data:
        text = EMAIL.sub(REDACTED, PHONE.sub(REDACTED, text))
    return text


class ContextFilter(logging.Filter):
    """Adds request_id / case_id and redacts the message, its traceback and sensitive extras."""

    def __init__(self, *, personal_data: bool = False) -> None:
        super().__init__()
        self.personal_data = personal_data
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (always keeps it)."""
        record.request_id = REQUEST_ID.get()
        record.case_id = CASE_ID.get()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message, personal_data=self.personal_data), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, personal_data=self.personal_data)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, personal_data=self.personal_data)
        if not self.personal_data:
            for key in SENSITIVE_KEYS & record.__dict__.keys():
                setattr(record, key, REDACTED)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, case_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record (the ContextFilter has already redacted it)."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key in ("request_id", "case_id"):
            if getattr(record, key, None) is not None:
                out[key] = getattr(record, key)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render the record (the ContextFilter has already redacted it)."""
        ids = [f"{k}={getattr(record, k)}" for k in ("request_id", "case_id") if getattr(record, k, None)]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


def make_handler(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler with the configured format and the redaction filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter(personal_data=settings.log_personal_data))
    return handler


def configure_logging(
    settings: Settings, *, stream: TextIO | None = None, access_log: bool = True
) -> logging.Handler:
    """Route every logger through one redacting handler at BUTLER_LOG_LEVEL; returns the handler."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_handler(settings, stream)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # SQL statements and HTTP client URLs carry message texts and tokens: warnings only.
    for noisy in ("sqlalchemy", "httpx", "httpcore", "aiohttp", "aiosqlite", "asyncio", "multipart"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Our access log (butler.access) replaces uvicorn's, which prints raw query strings.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("butler.access").setLevel(logging.NOTSET if access_log else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler
