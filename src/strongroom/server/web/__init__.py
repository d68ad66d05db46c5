"""The web console: server-rendered pages (Jinja2, htmx) over the same services as the API.

``mount(app)`` adds the pages under ``/ui`` and their static files (vendored from the npm
registry, see ``static/vendor/VENDOR.json``); nothing is loaded from the internet.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from strongroom.server.web import checks, custodian, security, signin, workspace
from strongroom.server.web.pages import HERE, PREFIX, error_page, is_page

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
ROUTERS = (signin.router, custodian.router, checks.router, workspace.router, security.router)

__all__ = ["PAGE_CSP", "error_page", "is_page", "mount"]


def mount(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="static")
