"""What every console page shares: who is signed in, the templates, forms and their CSRF token.

Pages sit on the same services as the API: a page calls the service with the signed-in
person's principal and the service decides (deny by default), so a page a role may not see
fails exactly as the API would, with its reasons, rendered as HTML.

Sessions are the API's (``strongroom_session``, HttpOnly, SameSite=Strict). The CSRF token is
kept beside it in a second cookie (also HttpOnly and strict) so that the server can put it into
every form it renders; a state-changing request must carry it back as the form field
``csrf_token`` or the ``X-CSRF-Token`` header (htmx sends the header), and the session's
digest of it is what it is checked against.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from sqlalchemy import select

from strongroom.access.auth import resume_session
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import Pause
from strongroom.access.permissions import Action, who_may
from strongroom.access.roles import Role
from strongroom.access.states import PauseLevel
from strongroom.errors import Refused, ServiceError, Unauthenticated
from strongroom.outputs.verdicts import SHORT_WORDS, Verdict, rule_words
from strongroom.server.console_paths import PREFIX, is_page
from strongroom.server.security import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, access, source_of
from strongroom.server.web.names import Names

T = TypeVar("T")
__all__ = ["PREFIX", "is_page"]  # re-exported: the console's modules take them from here
CSRF_COOKIE = "strongroom_csrf"
CSRF_FIELD = "csrf_token"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["prefix"] = PREFIX


@functools.cache
def asset(path: str) -> str:
    """A static file's address, named by its content's digest: a changed file is a new
    address, so browsers may keep each one for good (web.Assets)."""
    digest = hashlib.sha256((HERE / "static" / path).read_bytes()).hexdigest()[:16]
    return f"{PREFIX}/static/{path}?v={digest}"


templates.env.globals["asset"] = asset

# Each role's place in the console: (title, path, roles allowed). Navigation shows a person
# only what their roles may open; the services behind each page refuse everyone else anyway.
SECTIONS: tuple[tuple[str, str, frozenset[Role]], ...] = (
    ("Custodian", f"{PREFIX}/custodian",
     frozenset({Role.CUSTODIAN_ADMIN, Role.ACCESS_COMMITTEE})),
    ("Output checks", f"{PREFIX}/checks", frozenset({Role.OUTPUT_CHECKER})),
    ("Workspace", f"{PREFIX}/workspace", frozenset({Role.RESEARCHER})),
    ("Security", f"{PREFIX}/security",
     frozenset({Role.SECURITY_ANALYST, Role.CUSTODIAN_ADMIN, Role.AUDITOR})),
)


@dataclass(frozen=True)
class Waiting:
    """One line of a section's card on the home page: what waits there, and where."""

    label: str
    count: int
    href: str


def sections_for(roles: Iterable[Role]) -> list[tuple[str, str]]:
    mine = set(roles)
    return [(title, path) for title, path, allowed in SECTIONS if mine & allowed]


def _principal(request: Request) -> Principal:
    """The signed-in person (a page never takes an API token: tokens are for programs)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthenticated("sign in to use the console")
    changes = request.method not in SAFE_METHODS
    csrf = request.headers.get(CSRF_HEADER) or getattr(request.state, "form_csrf", None)
    found = resume_session(access(request), cookie, csrf, changes, source_of(request))
    request.state.principal = found  # the meter reads who asked
    return found


async def _form_csrf(request: Request) -> None:
    """Read the form's CSRF field before the session is resumed (forms post it as a field)."""
    if request.method not in SAFE_METHODS and CSRF_HEADER not in request.headers:
        content = request.headers.get("content-type", "")
        if content.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            request.state.form_csrf = value if isinstance(value, str) else None


def page_principal(request: Request, _: None = Depends(_form_csrf)) -> Principal:
    return _principal(request)


Viewer = Annotated[Principal, Depends(page_principal)]
Access = Annotated[AccessContext, Depends(access)]


# Pages that more than one section opens (path: sections): the extracts and attribution are
# the custodian's records and the security analyst's tool alike.
SHARED: dict[str, tuple[str, ...]] = {
    f"{PREFIX}/custodian/extracts": ("Custodian", "Security"),
    f"{PREFIX}/custodian/attribution": ("Custodian", "Security"),
}


def roles_of_sections(*titles: str) -> frozenset[Role]:
    return frozenset().union(*(roles for name, _, roles in SECTIONS if name in titles))


def section(*titles: str) -> Callable[[Principal], Principal]:
    """A dependency: the signed-in person, if one of their roles may open a page of one of
    ``titles``.

    Pages check the section first (deny by default) and the services they call check each
    action again, so a page never shows what its API route would refuse."""
    allowed = roles_of_sections(*titles)
    if not allowed:
        raise ValueError(f"no section is called {titles}")

    def check(who: Viewer) -> Principal:
        if not who.roles & allowed:
            raise Refused(f"the {' and '.join(titles)} pages are for "
                          f"{', '.join(sorted(r.value for r in allowed))}; your roles are "
                          f"{', '.join(sorted(r.value for r in who.roles)) or 'none'}")
        return who

    return check


def render(request: Request, template: str, who: Principal | None = None, *,
           status: int = 200, **context: Any) -> HTMLResponse:
    """A page with the layout's context: the person, their sections and the CSRF token."""
    # who and what by name beside their IDs, as far as the reader may read each (names.py)
    name_of = Names(access(request), who)
    base: dict[str, Any] = {
        "who": who,
        "name_of": name_of,
        "named": name_of.beside,
        "roles": sorted(r.value for r in who.roles) if who else [],
        "sections": sections_for(who.roles) if who else [],
        # allowed("attribute"): whether one of the person's roles may take that action, so
        # a page links only to what its reader may open
        "allowed": (lambda action: who is not None and not who_may(Action(action), who.roles)),
        "held": _holds(request) if who else (lambda *_: []),
        "csrf": request.cookies.get(CSRF_COOKIE, ""),
        "path": request.url.path,
    }
    return templates.TemplateResponse(request, template, {**base, **context},
                                      status_code=status)


@dataclass(frozen=True)
class Held:
    """A pause or suspension in force, as a page shows it."""

    level: str
    target_id: str | None
    kind: str  # "manual" or "suspension"
    reason: str
    set_by: str
    set_at: dt.datetime


def _holds(request: Request) -> Callable[..., list[Held]]:
    """``held(id, …)`` for templates: the pauses and suspensions in force on any of these
    (a project, a person, an institution) or on the whole platform, read once per page, so
    every page about a thing says when it is held (a suspended project is not "active")."""
    read: list[list[Held]] = []

    def held(*target_ids: str | None) -> list[Held]:
        if not read:
            with access(request).transaction() as db:
                read.append([Held(p.level, p.target_id, p.kind, p.reason, p.set_by, p.set_at)
                             for p in db.scalars(select(Pause).where(Pause.lifted_at.is_(None))
                                                 .order_by(Pause.set_at))])
        wanted = {t for t in target_ids if t}
        return [h for h in read[0] if h.level == PauseLevel.PLATFORM or h.target_id in wanted]
    return held


PER_PAGE = 50  # rows of a list a page shows; search narrows, links page through the rest


@dataclass(frozen=True)
class Paged(Generic[T]):
    """One page of a list that can grow, after a search: what the page shows, and where."""

    items: list[T]
    total: int  # before the search
    matched: int  # after it
    page: int
    pages: int
    q: str
    param: str = "page"  # the query parameter of this list's page (two lists on one page)
    keep: tuple[tuple[str, str], ...] = ()  # other parameters the links carry unchanged

    def link(self, page: int) -> str:
        search = [("q", self.q)] if self.q else []
        return "?" + urlencode([*search, *self.keep, (self.param, str(page))])


def paged(items: Sequence[T], text: Callable[[T], str], q: str = "", page: int = 1,
          per_page: int = PER_PAGE, *, param: str = "page",
          keep: Sequence[tuple[str, str]] = ()) -> Paged[T]:
    """The rows whose ``text`` holds every word of ``q`` (any case), page ``page`` of them."""
    words = q.lower().split()
    matched = [i for i in items if all(w in text(i).lower() for w in words)]
    pages = max(1, -(-len(matched) // per_page))
    page = min(max(page, 1), pages)
    return Paged(matched[(page - 1) * per_page:page * per_page], len(items), len(matched),
                 page, pages, q.strip(), param, tuple(keep))


def error_page(request: Request, exc: ServiceError, status: int) -> Response:
    """A service's refusal as a page; not signed in (or expired) goes to the sign-in form."""
    if isinstance(exc, Unauthenticated) and request.method in SAFE_METHODS:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/login?next={quote(target)}&why=signin",
                                status_code=303)
    return render(request, "error.html", getattr(request.state, "principal", None),
                  status=status, error=exc.status, reasons=exc.reasons)


def when(value: dt.datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def number(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def verdict(value: Any) -> str:
    """An output check's verdict (a Verdict or its value) as its badge says it."""
    try:
        return SHORT_WORDS[Verdict(str(value))]
    except ValueError:
        return str(value)


# each kind of analysis (and a job's own file) as a page names it; forms and the API keep
# the values
KIND_WORDS = {
    "frequency": "frequency table", "crosstab": "crosstab", "summary": "summary statistics",
    "histogram": "histogram", "ols": "linear regression", "logistic": "logistic regression",
    "kaplan_meier": "Kaplan–Meier survival", "cumulative_incidence": "cumulative incidence",
    "cox": "Cox regression", "glm": "generalised linear model", "correlation": "correlation",
    "aggregate_sql": "aggregate SQL", "gwas": "GWAS", "job_file": "a job's own file"}


def kind(value: Any) -> str:
    """An output's or analysis's kind in words ("kaplan_meier": "Kaplan–Meier survival")."""
    return KIND_WORDS.get(str(value), str(value).replace("_", " "))


# a name as a file or rules.yaml spells it (a figure's column "at_risk", a setting)
_AS_SPELT = re.compile(r"\b[a-z]{2,}(?:_[a-z0-9]+)+\b")


def reason(text: Any) -> Markup:
    """A check's reason with each name it quotes from the file or the rules (a column
    "at_risk") set as code: as it is spelt there, to be matched, not read as words."""
    said, parts, at = str(text), [], 0
    for found in _AS_SPELT.finditer(said):
        parts += [escape(said[at:found.start()]), Markup("<code>{}</code>").format(found[0])]
        at = found.end()
    return Markup("").join([*parts, escape(said[at:])])


templates.env.filters["reason"] = reason
templates.env.filters["kind"] = kind
templates.env.filters["when"] = when
templates.env.filters["number"] = number
templates.env.filters["verdict"] = verdict
templates.env.filters["rule"] = rule_words
