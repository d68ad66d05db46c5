"""What the gateway tells watch about each request: who, where, which route, what it took."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from fastapi import Request

from strongroom.access.context import Principal
from strongroom.outputs.service import Measures
from strongroom.server.console_paths import is_page
from strongroom.server.security import ACTION_KEY, PUBLIC, measure
from strongroom.watch.history import Observation

COUNTS = ("rows_scanned", "participants", "cells", "record_rows", "near_threshold",
          "differencing", "differencing_within", "late")
# what an analysis measures of itself, but the cells it shows: cells count when released
ANALYSIS_COUNTS = tuple(f.name for f in fields(Measures) if f.name != "cells")


def route_of(request: Request) -> tuple[str, str]:
    """The route's template (never the concrete path: ids stay out) and its action."""
    route = request.scope.get("route")
    template = getattr(route, "path", None) or "(no route)"
    extra = getattr(route, "openapi_extra", None) or {}
    return f"{request.method} {template}"[:120], str(extra.get(ACTION_KEY, PUBLIC))


def observation(request: Request, status: int, headers: Mapping[str, str],
                duration_ms: float, now: dt.datetime) -> Observation:
    who: Principal | None = getattr(request.state, "principal", None)
    measures: dict[str, Any] = getattr(request.state, "measures", {})
    route, action = route_of(request)
    # a console page names its project only through measure(): a custodian reading a
    # project's page is not that project's transfer
    params = {} if is_page(request) else (request.scope.get("path_params") or {})
    size = headers.get("content-length")
    return Observation(
        at=now, action=action, route=route, status=status,
        person_id=who.person_id if who else None,
        institution_id=who.institution_id if who else None,
        project_id=measures.get("project_id") or params.get("project_id")
        or (who.token_project if who else None),
        token_id=who.token_id if who else None,
        source=request.client.host if request.client else None,
        via=who.via.value if who else None,
        bytes_out=int(size) if size and size.isdigit() else 0,
        query_digest=measures.get("query_digest"), query_shape=measures.get("query_shape"),
        duration_ms=round(duration_ms, 3),
        **{name: int(measures.get(name, 0)) for name in COUNTS},
    )


def measuring(request: Request) -> Callable[[Measures], None]:
    """The callback an analysis reports its counts through, into this request's meter."""
    def measured(m: Measures) -> None:
        measure(request, **{name: getattr(m, name) for name in ANALYSIS_COUNTS})
    return measured
