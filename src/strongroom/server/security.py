"""Who is asking: an API token (``Authorization: Bearer srt_…``) or a session cookie + CSRF."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from strongroom.access.auth import resume_session, resume_token
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import Action
from strongroom.errors import Unauthenticated

SESSION_COOKIE = "strongroom_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ACTION_KEY = "x-strongroom-action"
PUBLIC = "public"


def access(request: Request) -> AccessContext:
    ctx: AccessContext = request.app.state.platform.access
    return ctx


def source_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def _resolve(request: Request) -> Principal:
    ctx = access(request)
    source = source_of(request)
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("send an API token as 'Authorization: Bearer srt_…'")
        return resume_token(ctx, value.strip(), source)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return resume_session(ctx, cookie, request.headers.get(CSRF_HEADER),
                              request.method not in SAFE_METHODS, source)
    raise Unauthenticated("sign in first (POST /auth/login), or send an API token as "
                          "'Authorization: Bearer srt_…'")


def principal(request: Request) -> Principal:
    found = _resolve(request)
    request.state.principal = found  # the meter reads who asked once the answer is sent
    return found


def measure(request: Request, **counts: object) -> None:
    """What a route's service measured (participants, cells, rows…), for the meter."""
    request.state.measures = {**getattr(request.state, "measures", {}), **counts}


Caller = Annotated[Principal, Depends(principal)]
Ctx = Annotated[AccessContext, Depends(access)]


def acts(action: Action | None) -> dict[str, Any]:
    """Route metadata naming the action it takes (``None``: public); the matrix test reads it."""
    return {ACTION_KEY: action.value if action else PUBLIC}


