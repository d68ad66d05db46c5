"""The four console how-tos walked as written (issue 55): every control, heading and column a
page names (in **bold** or *italics*) is on the console's pages that it names, as the person it
is written for sees them, and every console address it names opens for them.

A how-to names what to press and where to look; a button renamed, a tab dropped or an address
moved leaves a newcomer lost while every flow test still passes (those find their controls by
role, not by the page's words). The flows themselves, pressing those controls, are
test_workspace, test_checks, test_custodian, test_security and test_tokens; this test holds the
pages' words to the console.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from tests.functional.web.conftest import Console
from tests.functional.web.test_links import _links

HOW_TO = Path(__file__).parents[3] / "docs" / "how-to"

# page → (whom it is written for, the console's rooms it walks)
PAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "use-the-console-as-researcher.md": (("researcher",), ("/ui/workspace",)),
    "use-the-console-as-output-checker.md": (("output-checker",), ("/ui/checks",)),
    "use-the-console-as-custodian.md": (("custodian-admin", "access-committee"),
                                        ("/ui/custodian",)),
    "use-the-console-for-security.md": (("security-analyst", "custodian-admin"),
                                        ("/ui/security",)),
}

# What a page sets in bold or italics that is not a control, heading or column: its own
# emphasis, a rule stated in bold, a word it explains.
EMPHASIS: dict[str, set[str]] = {
    "use-the-console-as-researcher.md": {"preset", "once", "verdict", "justification"},
    "use-the-console-as-output-checker.md": {"different", "rejection needs a comment"},
    "use-the-console-as-custodian.md": {
        "once", "add a person", "grant or revoke a role", "set vetting", "deactivate",
        "create a project", "field grants",
        "platform or institution pause, or any suspension set by watch, takes two different "
        "custodian admins"},
    "use-the-console-for-security.md": {
        "Resolving never lifts a suspension.", "Lifting a suspension takes two custodian admins",
        "different", "lifting", "record participants", "delivery destinations"},
}
# What a page names that the console shows only in a state the demo's world does not hold
# when the pages are read (a second page of results, a request not yet made, a pause waiting
# for its second admin, an attribution's verdict): the flow tests beside this one press them
# (test_workspace, test_checks, test_custodian, test_security, test_tokens); here each must
# still be in the console's pages and code (or the verdict an attribution returns), as the
# how-to spells it.
IN_STATE: dict[str, set[str]] = {
    "use-the-console-as-researcher.md": {
        "Newer", "Older", "all the released ones",  # past 25 results
        "Request release", "release with suppression",  # a result not yet asked for
        "Withdraw the request", "Download",  # a request waiting, a released file
        "Revoke"},  # a token in force
    "use-the-console-as-output-checker.md": {
        "Term",  # a model waiting for review
        "The code that made it",  # a job's own file waiting for review
        "approved once", "You", "An output checker"},  # after a first approval
    "use-the-console-as-custodian.md": {
        "Revoke…", "Reinstate",  # an institution's state
        "needs two custodian admins: approvals 0 of 2",
        "approval 1 of 2: NAME asked to lift it; still needed: a different custodian admin",
        "one custodian admin can lift it", "Ask to lift", "Confirm lift", "Lift",
        "Recently lifted",  # pauses and their lifts
        "Approve export", "Refuse",  # an export request waiting
        "verdict", "attributed", "inconclusive", "false-accusation bound", "decoys found",
        "evidence pack"},  # after an upload
    "use-the-console-for-security.md": {
        "← Newer", "Older →",  # past a page of alerts
        "Broken",  # the audit chain broken
        "Confirm the lift", "Lift (asks a second admin)", "Uphold the suspension",
        "Ask to lift", "Reopen"},  # an appeal's, a lift's and a resolved alert's states
}
# the console's pages and code, and the attribution whose verdict its page shows as returned
SOURCES = [Path(__file__).parents[3] / "src" / "strongroom" / part
           for part in ("server/web", "extracts")]

_SPAN = r"(?:[^*\n]|\n(?!\n))"  # within a paragraph
_EMPHASIS = re.compile(rf"(?<![*\w])\*\*({_SPAN}+?)\*\*(?![*\w])"
                       rf"|(?<![*\w])\*([^*\s]{_SPAN}*?)\*(?![*\w])")
_ADDRESS = re.compile(r"`(/ui/[^`?\s]*)")
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S)
_ATTRIBUTES = re.compile(r'\b(?:value|placeholder|title|aria-label|alt)="([^"]*)"')
MOST = 80  # pages per person: every kind of page of a room, and a few of each


def _prose(text: str) -> str:
    """A page's words without its code: fenced blocks, inline code and image captions."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)
    return re.sub(r"`[^`]*`", " ", text)


def _names(how_to: str) -> set[str]:
    found = set()
    for bold, italic in _EMPHASIS.findall(_prose((HOW_TO / how_to).read_text())):
        # "Overview · Alerts · Partners": a bar of links, each a name
        found |= {" ".join(name.split()) for name in (bold or italic).split(" · ")}
    return found


def _addresses(how_to: str) -> set[str]:
    return set(_ADDRESS.findall((HOW_TO / how_to).read_text()))


def _words(page_html: str) -> str:
    """What a person reads on a page: its text, and the words of its buttons, fields and
    images (a value, a placeholder, a title), run together, entities read."""
    extra = " ".join(_ATTRIBUTES.findall(page_html))
    return " ".join(html.unescape(_TAGS.sub(" ", page_html) + " " + extra).split()).casefold()


def _walk(page: Page, console: Console, rooms: tuple[str, ...]) -> dict[str, str]:
    """The pages of ``rooms`` a person reaches by links from their home: address → words."""
    base = console.base
    start = base + "/ui/"
    read: dict[str, str] = {}
    frontier, seen = [start, *(base + room for room in rooms)], {start}
    while frontier and len(read) < MOST:
        url = frontier.pop(0)
        answer = page.request.get(url, max_redirects=0)
        if answer.status != 200 or "text/html" not in answer.headers.get("content-type", ""):
            continue
        text = answer.text()
        path = urlsplit(url).path
        if any(path.startswith(room) for room in rooms):
            read[url] = _words(text)
        for link in _links(text, url, base):
            if link not in seen and any(urlsplit(link).path.startswith(r) for r in rooms):
                seen.add(link)
                frontier.append(link)
    return read


def _reached(address: str, read: dict[str, str]) -> bool:
    """An address the page names (``/ui/checks/outputs/<id>``) is among those read."""
    pattern = re.escape(address).replace(re.escape("<id>"), r"[^/?]+")
    return any(re.fullmatch(pattern, urlsplit(url).path) for url in read) or \
        address == "/ui/login"


def _console_source() -> str:
    """The words of the platform's templates (as ``_words`` reads a page) and of its code, a
    string written over several lines read as one ("a different " "custodian admin")."""
    files = sorted(f for source in SOURCES for f in source.rglob("*"))
    pages = _words(" ".join(f.read_text() for f in files if f.suffix == ".html"))
    code = re.sub(r"\"\s*\n\s*[rf]?\"", "",
                  " ".join(f.read_text() for f in files if f.suffix == ".py"))
    return pages + " " + " ".join(code.split()).casefold()


def _missing(names: set[str], words: str) -> list[str]:
    """The names not in ``words``; a how-to's NAME stands for a person's name (every piece
    around it must be there)."""
    return sorted(n for n in names
                  if any(piece.strip().rstrip(".:…").casefold() not in words
                         for piece in n.split("NAME")))


@pytest.mark.parametrize("how_to", sorted(PAGES))
def test_every_control_a_console_how_to_names_is_where_it_says(
        console: Console, how_to: str, as_role: Callable[[str], Page]) -> None:
    roles, rooms = PAGES[how_to]
    read: dict[str, str] = {}
    words = ""
    for role in roles:  # each reads their own page at an address
        walked = _walk(as_role(role), console, rooms)
        read |= walked
        words += " " + " ".join(walked.values())
    names = _names(how_to) - EMPHASIS[how_to]
    missing = _missing(names - IN_STATE[how_to], words)
    assert not missing, f"{how_to} names what its pages do not show ({len(read)} pages read " \
                        f"as {', '.join(roles)}): {missing}"
    unshown = _missing(IN_STATE[how_to], _console_source())
    assert not unshown, f"{how_to} names what no page of the console holds: {unshown}"
    unreached = sorted(a for a in _addresses(how_to) if not _reached(a, read))
    assert not unreached, f"{how_to} names addresses its readers cannot reach: {unreached}"


def test_the_walk_finds_a_missing_name_and_an_unknown_address() -> None:
    """The walk is not a sieve: a name no page shows and an address no link reached are both
    found; a page's words include its buttons' and fields' own; and every exception it is told
    is still named by its page (an exception outliving its word would hide a renamed one)."""
    read = {"http://x/ui/checks": _words('<h1>Output checks</h1><input value="Approve">'
                                         '<input placeholder="Search &amp; filter">')}
    assert _missing({"Approve", "Search & filter", "Reject"}, read["http://x/ui/checks"]) == \
        ["Reject"]
    assert not _reached("/ui/checks/outputs/<id>", read)
    assert _reached("/ui/checks", read)
    assert _names("use-the-console-as-output-checker.md") >= {"Approve", "Reject"}
    for how_to in PAGES:
        stale = (EMPHASIS[how_to] | IN_STATE[how_to]) - _names(how_to)
        assert not stale, f"{how_to} no longer names {sorted(stale)}: drop them here"
