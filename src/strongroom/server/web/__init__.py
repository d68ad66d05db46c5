"""The web console: server-rendered pages (Jinja2, htmx) over the same services as the API.

``mount(app)`` adds the pages under ``/ui`` and their static files (vendored from the npm
registry, see ``static/vendor/VENDOR.json``); nothing is loaded from the internet.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from strongroom.server.web import checks, custodian, security, signin, workspace
from strongroom.server.web.pages import HERE, PREFIX, error_page, is_page

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
ROUTERS = (signin.router, custodian.router, checks.router, workspace.router, security.router)

__all__ = ["PAGE_CSP", "error_page", "is_page", "mount"]


class Assets(StaticFiles):
    """The console's style sheets, scripts and icon: nothing in them is anyone's data, and
    pages name each by its content's digest (``pages.asset``), so a browser keeps them
    rather than fetching 140 kB again for every page (the API's ``no-store`` is for data)."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        answer = super().file_response(full_path, stat_result, scope, status_code)
        answer.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return answer


def mount(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount(PREFIX + "/static", Assets(directory=HERE / "static"), name="static")
