"""Where the web console lives beside the API: the gateway tells pages from API routes by it."""

from __future__ import annotations

from fastapi import Request

PREFIX = "/ui"


def is_page(request: Request) -> bool:
    """Whether a request is for a console page (or its static files), not the API."""
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")
