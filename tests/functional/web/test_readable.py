"""Every page of the screenshot set is read for codes and IDs where labels and names belong
(issue 55): ``screenshot`` reads each page it takes; these tests hold that it is every page of
docs/screenshots, and that what it reads for finds what it should (and only that)."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Page

from tests.functional.web.conftest import Console, ids_without_names, raw_codes
from tests.functional.web.test_links import ROLES, _links

HERE = Path(__file__).parent
SHOTS = HERE.parents[2] / "docs" / "screenshots"


def _taken() -> set[str]:
    """The names the browser tests pass to ``screenshot`` (each a page they read)."""
    names = set()
    for module in HERE.glob("test_*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "screenshot" and len(node.args) == 2
                    and isinstance(node.args[1], ast.Constant)):
                names.add(str(node.args[1].value))
    return names


def test_every_screenshot_in_the_docs_is_a_page_the_tests_read() -> None:
    kept = {p.stem for p in SHOTS.glob("*.png")}
    taken = _taken()
    assert kept - taken == set(), f"screenshots no browser test takes (and reads): " \
                                  f"{sorted(kept - taken)}"
    assert taken - kept == set(), f"pages read but missing from docs/screenshots (run " \
                                  f"`make screenshots`): {sorted(taken - kept)}"


def test_codes_where_labels_belong_are_found_and_what_is_typed_is_left_alone(
        page: Page) -> None:
    page.set_content("""<main>
      <p>threshold: row "-3", column "Female (0)" is small</p>
      <p>Verdict: release_with_suppression</p>
      <p>sex=1 is the strongest term; smoking=Current (smoking=2) is not</p>
      <table><thead><tr><th>sex</th><th>0</th><th>1</th></tr></thead></table>
      <p>Download crosstab-adults-sex_group.json · <code>secondary_suppression</code></p>
      <form><select><option>kaplan_meier</option></select><input value="min_events"></form>
      <p data-raw>p21001_i0 AS body_mass</p>
    </main>""")
    found = raw_codes(page)
    assert any("bare code 'row \"-3\"'" in f for f in found), found
    assert any("tag 'release_with_suppression'" in f for f in found), found
    assert any("bare term 'sex=1'" in f for f in found), found
    assert "a column headed '0'" in found and "a column headed '1'" in found
    # the labelled term, a file's name, code, a form's choices and what is marked as typed
    matched = [f.split("'")[1] for f in found]
    assert not [m for m in matched if any(ok in m for ok in (
        "smoking=", "sex_group", "secondary_suppression", "kaplan_meier", "min_events",
        "body_mass"))], found
    assert len(found) == 5, found


# an id in a page's address: pages that differ only by it are one kind of page
_ID_IN_PATH = re.compile(r"/[a-z]{2,4}_[0-9a-f]{6,}|/\d+(?=/|$)")
KINDS_READ = 40  # kinds of page per role, at most (every kind the crawl meets, today)


def _kind_of(url: str) -> str:
    parts = urlsplit(url)
    tab = dict(parse_qsl(parts.query)).get("tab", "")
    return _ID_IN_PATH.sub("/{id}", parts.path) + (f"?tab={tab}" if tab else "")


@pytest.mark.parametrize("role", ROLES)
def test_every_kind_of_page_a_role_reaches_reads_as_names_and_labels(
        console: Console, role: str, as_role: Callable[[str], Page]) -> None:
    """Beyond the screenshots: one page of every kind each role reaches by its links (four
    links deep from home: a result is, from a project's tab), opened in the browser and read as
    ``screenshot`` reads its pages."""
    page = as_role(role)
    start = console.base + "/ui/"
    kinds: dict[str, str] = {}
    frontier, seen = [(start, 0)], {start}
    while frontier and len(kinds) < KINDS_READ:
        url, depth = frontier.pop(0)
        kind = _kind_of(url)
        if kind in kinds:
            continue
        answer = page.request.get(url, max_redirects=0)
        if answer.status != 200 or "text/html" not in answer.headers.get("content-type", ""):
            continue
        kinds[kind] = url
        if depth < 4:
            for link in _links(answer.text(), url, console.base):
                if link not in seen:
                    seen.add(link)
                    frontier.append((link, depth + 1))
    problems = []
    for kind, url in kinds.items():
        page.goto(url)
        problems += [f"{kind}: {p}" for p in ids_without_names(page.inner_text("body"))]
        problems += [f"{kind}: {p}" for p in raw_codes(page)]
    assert len(kinds) >= 3, kinds  # an output checker's: home, the queue, an output
    assert not problems, f"{role}'s pages show codes or ids where labels and names belong: " \
                         f"{problems}"
