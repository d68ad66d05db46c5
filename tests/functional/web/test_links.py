"""Every link a role is shown opens for that role: no page offers a link that answers 403.

The console is crawled as each of the demo's people, from the home page through the links on
every page it reaches (same origin, console pages, two links deep); each linked page is asked
for with that person's session. A link to a page their role may not open is a page that lies
about what they may do (an auditor was offered one that answered 403)."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import Page

from tests.functional.web.conftest import Console

ROLES = ["custodian-admin", "access-committee", "output-checker", "researcher",
         "security-analyst", "auditor"]
# links that act or hand over files rather than show a page: not followed
SKIP = ("/logout", "/download", "/released", "/dummy", "/export", "/content", "/code")
MOST = 60  # pages per role: enough to reach every kind of page, quick enough for CI


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _links(html: str, at: str, base: str) -> list[str]:
    """The console pages ``html`` (served at ``at``) links to."""
    anchors = _Anchors()
    anchors.feed(html)
    found = []
    for href in anchors.hrefs:
        parts = urlsplit(urljoin(at, href))
        if parts.geturl().startswith(base + "/ui") and not any(s in parts.path for s in SKIP):
            found.append(parts._replace(fragment="").geturl())
    return found


@pytest.mark.parametrize("role", ROLES)
def test_every_link_shown_to_a_role_opens_for_it(console: Console, role: str,
                                                 as_role: Callable[[str], Page]) -> None:
    page = as_role(role)
    start = console.base + "/ui/"
    seen = {start}
    frontier = [(start, 0)]
    broken: list[str] = []
    while frontier and len(seen) < MOST:
        url, depth = frontier.pop(0)
        answer = page.request.get(url, max_redirects=0)
        if answer.status in (401, 403, 404) or answer.status >= 500:
            broken.append(f"{answer.status} {url}")
            continue
        if depth >= 2 or "text/html" not in answer.headers.get("content-type", ""):
            continue
        for link in _links(answer.text(), url, console.base):
            if link not in seen:
                seen.add(link)
                frontier.append((link, depth + 1))
    assert len(seen) > 3, seen  # the crawl reached pages
    assert not broken, f"{role} is shown links it may not open: {broken}"
