"""Signing in and out of the console, and the home page each role lands on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from strongroom.access import auth
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import Action
from strongroom.errors import ServiceError
from strongroom.server.security import SESSION_COOKIE, acts, source_of
from strongroom.server.web import checks, custodian, security, workspace
from strongroom.server.web.pages import (
    CSRF_COOKIE,
    PREFIX,
    Access,
    Viewer,
    Waiting,
    render,
    sections_for,
)

router = APIRouter(include_in_schema=False)
NOTICES = {
    "signin": "Sign in to continue (you were not signed in, or your session ended).",
    "signed-out": "You are signed out.",
}


def _safe_next(target: str | None) -> str:
    """Only a path of the console itself: never another site (an open redirect)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return PREFIX + "/"


@router.get(PREFIX + "/login", openapi_extra=acts(None))
def login_form(request: Request, next: str | None = None, why: str | None = None) -> Response:
    # the notice is chosen from fixed sentences: a link must not put words on this page
    return render(request, "login.html", next=_safe_next(next), notice=NOTICES.get(why or ""),
                  email="")


@router.post(PREFIX + "/login", openapi_extra=acts(None))
def login(request: Request, ctx: Access, email: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", code: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "") -> Response:
    missing = [name for name, value in (("email", email), ("password", password),
                                        ("authenticator code", code)) if not value.strip()]
    if missing:
        return render(request, "login.html", status=400, next=_safe_next(next), email=email,
                      errors=[f"enter your {', '.join(missing)}"])
    try:
        new = auth.login(ctx, email, password, code.strip().replace(" ", ""),
                         source_of(request))
    except ServiceError as exc:
        return render(request, "login.html", status=401 if exc.status == "unauthenticated"
                      else 429 if exc.status == "rate-limited" else 403,
                      next=_safe_next(next), email=email, errors=exc.reasons)
    answer = RedirectResponse(_safe_next(next), status_code=303)
    secure = request.url.scheme == "https"
    age = ctx.settings.session_absolute_hours * 3600
    for name, value in ((SESSION_COOKIE, new.secret), (CSRF_COOKIE, new.csrf)):
        answer.set_cookie(name, value, httponly=True, samesite="strict", secure=secure,
                          path="/", max_age=age)
    return answer


@router.post(PREFIX + "/logout", openapi_extra=acts(Action.SELF_READ))
def logout(who: Viewer, ctx: Access) -> Response:
    auth.logout(ctx, who)
    answer = RedirectResponse(PREFIX + "/login?why=signed-out", status_code=303)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        answer.delete_cookie(name, path="/")
    return answer


# each section's card: what it is for, and what waits there for this person
PURPOSES: dict[str, str] = {
    "Custodian": "Institutions, people, projects and their field grants, export approvals, "
                 "pauses, extracts and attribution.",
    "Output checks": "The review queue: outputs the automated check held, with its reasons; "
                     "two checkers decide each.",
    "Workspace": "Your projects: dataset definitions, analyses and their verdicts, release "
                 "requests, released files, dummy data and the privacy budget.",
    "Security": "Alerts and their timelines, partners' transfers against their baselines, "
                "suspensions and appeals, the audit log's verification, exports.",
}
WAITING: dict[str, Callable[[AccessContext, Principal], list[Waiting]]] = {
    "Custodian": custodian.waiting, "Output checks": checks.waiting,
    "Workspace": workspace.waiting, "Security": security.waiting,
}


@dataclass(frozen=True)
class Card:
    title: str
    href: str
    purpose: str
    waiting: list[Waiting]


def _card(ctx: AccessContext, who: Principal, title: str, href: str) -> Card:
    try:
        lines = WAITING[title](ctx, who)
    except ServiceError:  # a role may open the section but not read every count in it
        lines = []
    return Card(title, href, PURPOSES[title], lines)


@router.get(PREFIX + "/", openapi_extra=acts(Action.SELF_READ))
def home(request: Request, who: Viewer, ctx: Access) -> Response:
    """The landing page: where each of the person's roles works, and what waits there."""
    auth.whoami(ctx, who)  # a revoked or paused account learns it here
    cards = [_card(ctx, who, title, href) for title, href in sections_for(who.roles)]
    return render(request, "home.html", who, cards=cards)


@router.get(PREFIX, openapi_extra=acts(None))
@router.get("/", openapi_extra=acts(None))
def root() -> Response:
    return RedirectResponse(PREFIX + "/", status_code=303)
