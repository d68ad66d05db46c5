"""Structured logs: one JSON object per line, each with the request id of the request it
belongs to (also sent back as ``X-Request-ID``), so a platform team can follow one request
through the access log and the application's own lines. Never a value or a secret: the
access log names the method, the path and the status; application lines are the services'
own sentences, written without participants' values."""

from __future__ import annotations

import contextvars
import logging
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


def config(level: str = "INFO", stream: Any = "ext://sys.stderr") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (uvicorn's ``log_config``): JSON lines on ``stream``
    (stderr) for uvicorn's loggers and Strongroom's."""
    fields = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "filters": ["request_id"], "stream": stream}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": fields,
                                "rename_fields": {"asctime": "time", "levelname": "level",
                                                  "name": "logger"}}},
        "handlers": {"json": handler},
        "loggers": {name: {"handlers": ["json"], "level": level, "propagate": False}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "strongroom")},
    }
