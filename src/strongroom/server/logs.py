"""Structured logs: one JSON object per line, each with the request id of the request it
belongs to (also sent back as ``X-Request-ID``), so a platform team can follow one request
through the access log and the application's own lines. Never a value or a secret: the
access log names the method, the path and the status; application lines are the services'
own sentences, written without participants' values.

Lines are plain text: uvicorn passes a coloured copy of its messages (``color_message``, with
ANSI escapes) beside the plain one, and anything may put escapes in a message (a library's
coloured output, a client's request line); :class:`PlainText` drops the copy and strips
terminal control sequences from every string of the record, so no line carries one."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from typing import Any

REQUEST_ID = contextvars.ContextVar("strongroom_request_id", default="-")
HEADER = "X-Request-ID"


ACCESS = logging.getLogger("strongroom.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def access(method: str, route: str, status: int, seconds: float) -> None:
    """One line per request, by route template (an ID in a path is not logged)."""
    ACCESS.info("%s %s %d", method, route, status,
                extra={"method": method, "route": route, "status": status,
                       "duration_ms": round(seconds * 1000, 1)})


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


# CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \), and any other ESC-led pair; then any
# other C0 or C1 control left but tab
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """``text`` without terminal control sequences or control characters (newlines become
    spaces: a record is one line)."""
    return CONTROLS.sub(lambda m: " " if m.group() in "\n\r" else "", ANSI.sub("", text))


class PlainText(logging.Filter):
    """Makes every record plain text: uvicorn's coloured copy of a message dropped, and
    escapes and control characters stripped from the message and every string field."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        message = record.getMessage()
        cleaned = plain(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in list(vars(record).items()):
            if (isinstance(value, str) and key not in ("msg", "exc_text", "stack_info")
                    and value != (stripped := plain(value))):
                setattr(record, key, stripped)
        return True


def config(level: str = "INFO", stream: Any = "ext://sys.stderr") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (uvicorn's ``log_config``): JSON lines on ``stream``
    (stderr) for uvicorn's loggers and Strongroom's."""
    fields = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "filters": ["request_id", "plain_text"], "stream": stream}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}, "plain_text": {"()": PlainText}},
        "formatters": {"json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": fields,
                                "rename_fields": {"asctime": "time", "levelname": "level",
                                                  "name": "logger"}}},
        "handlers": {"json": handler},
        "loggers": {name: {"handlers": ["json"], "level": level, "propagate": False}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "strongroom")},
    }
