"""The HTTP status of each kind of service error, shared by the API's answers and the pages."""

from __future__ import annotations

from strongroom.errors import ServiceError

HTTP_STATUS = {
    "invalid": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not-found": 404,
    "conflict": 409,
    "rate-limited": 429,
    "unavailable": 503,
}


def status_of(exc: ServiceError) -> int:
    return HTTP_STATUS.get(exc.status, 400)
