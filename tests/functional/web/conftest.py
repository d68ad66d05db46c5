"""The console in a real browser: the demo's world served by uvicorn, driven by Playwright.

Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it) is driven through
Playwright's own driver; no browser is downloaded. The server is the real one (uvicorn on a
free loopback port, in a thread) over a copy of the run's small demo world
(tests/demo_world.py: built once a run by ``run_demo``, and read by tests/integration/test_demo.py
too), so every page shows the demo's story.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from sqlalchemy import select

from strongroom.access import people
from strongroom.access.context import Settings
from strongroom.access.models import Institution, Person, Project
from strongroom.access.states import Vetting
from strongroom.access.totp import STEP_SECONDS
from strongroom.demo import DemoResult
from strongroom.demo.world import DemoLogin
from strongroom.platform import Platform
from strongroom.server.app import create_app
from tests.demo_world import demo_world
from tests.totp_codes import Codes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as the machine's notes advise: no background traffic to hosts this network cannot reach
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PASSWORD = "a long web console passphrase"
# The demo's story as the pages show it, on a world no larger than they need
# (tests/demo_world.py: 1,500 participants, for the story's extract, alert and suspension; 500
# markers, for a released GWAS page with its plots), its people acting with the test worlds'
# settings as it was made. The server's settings: as in every world the tests build
# (tests/access_world.py), argon2-cffi's CHEAPEST profile for the passwords made here (the
# tests' own), and no timing floors on answers (a definition's 2 s, an analysis's, a withheld
# output's); the floors are tests/integration/test_timing_channel.py's and
# test_answer_ration.py's. Every test signs in from 127.0.0.1: the per-source limit (10 a
# minute) would refuse the suite's sign-ins, so it is raised; test_signin checks wrong codes
# still fail.
SETTINGS = Settings(attempts_per_minute=1_000, password_profile="CHEAPEST",
                    withheld_seconds=0.0, definition_seconds=0.0, analysis_seconds=0.0)
# `make screenshots` sets this to docs/screenshots; an ordinary test run leaves the tree alone
SCREENSHOTS = os.environ.get("STRONGROOM_SCREENSHOTS")


WORLD_TEST = "test_world.py::"  # the world's own test: the first of the browser tests


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the world's own test (test_world.py) before every other browser test, whatever
    order they were collected or shuffled in: the session's world is then built in it, and
    charged to it (tests/budget.py), not to the page test that happens to come first. Under
    xdist the browser tests are one scope (tests/conftest.py), run in this order."""
    here = Path(__file__).parent
    world = [item for item in items
             if Path(str(item.fspath)).parent == here and WORLD_TEST in item.nodeid]
    if not world:
        return
    rest = [item for item in items if item not in world]
    at = next((i for i, item in enumerate(rest) if Path(str(item.fspath)).parent == here),
              len(rest))
    items[:] = rest[:at] + world + rest[at:]


@dataclass
class Console:
    base: str
    demo: DemoResult
    platform: Platform

    def login_of(self, role: str) -> DemoLogin:
        return next(x for x in self.demo.world.logins if role in x.roles)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does)")
    root, demo = demo_world(tmp_path_factory, "web")  # no jobs: test_workspace runs one
    _demo_signed_in(demo)
    platform = Platform.open(root, demo.key_file, settings=SETTINGS)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(platform), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    _SERVED[:] = [platform]
    try:
        yield Console(f"http://127.0.0.1:{port}", demo, platform)
    finally:
        _SERVED.clear()
        server.should_exit = True
        thread.join(timeout=10)
        platform.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def refusals() -> list[int]:
    """HTTP statuses a test provokes on purpose (a wrong code is a 401): Chromium logs each
    as a console error, which is then expected, once per status listed."""
    return []


@dataclass
class _Tab:
    browser: Browser
    page: Page | None = None

    def clean(self) -> Page:
        """The tab, made anew if the last test left it closed (emptying it failed)."""
        if self.page is None or self.page.is_closed():
            self.page = self.browser.new_context().new_page()
        self.page.context.clear_cookies()
        return self.page


@pytest.fixture(scope="session")
def tab(browser: Browser) -> Iterator[_Tab]:
    """The session's browser context and tab, lent to each test in turn: a context costs
    Chromium half a second of CPU to make (a test of its own each, 60 of them), and its cache
    of the console's stylesheet and scripts starts empty."""
    held = _Tab(browser)
    yield held
    if held.page is not None and not held.page.is_closed():
        held.page.context.close()


@pytest.fixture
def page(tab: _Tab, refusals: list[int]) -> Iterator[Page]:
    """A clean tab: nobody signed in (no cookies) and nothing stored; any console error or
    failed page script fails the test. It is the session's tab, emptied before and after each
    test (a test that needs a second person at once opens a context of its own)."""
    opened = tab.clean()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        for status in refusals:
            if f"status of {status} " in message.text:
                refusals.remove(status)
                return
        problems.append(f"console error: {message.text}")

    def on_error(exc: Exception) -> None:
        problems.append(f"page error: {exc}")

    opened.on("console", on_console)
    opened.on("pageerror", on_error)
    try:
        yield opened
    finally:
        opened.remove_listener("console", on_console)
        opened.remove_listener("pageerror", on_error)
        _empty(opened)
    assert not problems, problems


def _empty(opened: Page) -> None:
    """Leave the tab as the next test should find it: on a blank page, its storage and cookies
    gone (a tab that cannot be emptied, crashed or stuck, is closed: the next test gets a new
    one)."""
    try:
        if opened.url.startswith("http"):
            opened.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
        opened.goto("about:blank")
        opened.context.clear_cookies()
    except Exception:  # whatever broke it, the next test gets a new context and tab
        with contextlib.suppress(Exception):
            opened.context.close()
        with contextlib.suppress(Exception):
            opened.close()


# the authenticator's code for a step not used yet (tests/totp_codes.py): a person signed in
# to the services and then in the browser waits for nothing; a browser fills the form well
# inside the margin
CODES = Codes(margin=15.0)
fresh_code = CODES.fresh


def _demo_signed_in(demo: DemoResult) -> None:
    """The demo signed its people in with the previous step's code (demo.world.sign_in): a
    browser test's first code for one of them, made within the same window, is the next."""
    step = int(time.time() // STEP_SECONDS) - 1
    for login in demo.world.logins:
        CODES.used[login.totp_secret] = max(CODES.used.get(login.totp_secret, step), step)


def sign_in(page: Page, console: Console, login: DemoLogin) -> None:
    page.goto(console.base + "/ui/login")
    page.get_by_label("Email").fill(login.email)
    page.get_by_label("Password").fill(login.password)
    page.get_by_label("Authenticator code").fill(fresh_code(login.totp_secret))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(console.base + "/ui/**")


_people = itertools.count(1)


def new_person(console: Console, role: str) -> DemoLogin:
    """A person of their own for a test that signs in and out (codes are single-use)."""
    ctx = console.platform.access
    admin = console.login_of("custodian-admin")
    with ctx.transaction() as db:
        home = db.scalar(select(Person.institution_id).where(Person.email == admin.email))
    assert home is not None
    n = next(_people)
    made = people.create(ctx, None, institution_id=home, email=f"web{n}@custodian.example",
                         name=f"Web Tester {n}", roles=[role], password=PASSWORD,
                         vetting=Vetting.APPROVED)
    people.record_training(ctx, None, made.person.id, course="Safe Researcher Training",
                           completed_on=dt.date.today() - dt.timedelta(days=1),
                           expires_on=dt.date.today() + dt.timedelta(days=300))
    return DemoLogin(made.person.email, made.person.name, "", [role], PASSWORD,
                     made.totp_secret)


@pytest.fixture(scope="session")
def states(console: Console) -> dict[str, Any]:
    """Each demo role signed in once (its cookies), for tests that only read."""
    return {}


@pytest.fixture
def as_role(console: Console, states: dict[str, Any], page: Page) -> Callable[[str], Page]:
    """``as_role("researcher")``: the test's page, signed in as the demo's person of that
    role (one sign-in per role per test session, in the test's own tab; the cookies are
    reused)."""
    def open_as(role: str) -> Page:
        page.context.clear_cookies()
        if role in states:
            page.context.add_cookies(states[role])
        else:
            sign_in(page, console, console.login_of(role))
            states[role] = page.context.cookies()
        return page
    return open_as


# the platform the console serves, to read who and what each id on a page is (set by console)
_SERVED: list[Platform] = []
NEAR = 2  # lines of text above an id its name may stand on (a card's title, its purpose)


def ids_without_names(text: str) -> list[str]:
    """The lines of a page's ``text`` that show a person's, project's or institution's id
    with no name of it on that line or the ``NEAR`` lines of text above (a name beside an id
    is fine; an id in place of its name is not; a command to type must hold the id)."""
    from strongroom.server.web.names import ID

    names = _names_by_id()
    lines = [line for line in text.splitlines() if line.strip()]
    found = []
    for i, line in enumerate(lines):
        if "strongroom " in line:  # a command shown to copy: it takes the id
            continue
        for some_id in ID.findall(line):
            name = names.get(some_id)
            if name and not any(name in near for near in lines[max(0, i - NEAR):i + 1]):
                found.append(f"{some_id} ({name}) in {line.strip()[:120]!r}")
    return found


def _names_by_id() -> dict[str, str]:
    if not _SERVED:
        return {}
    # a plain read (WAL: beside the server's writers), not a transaction, which would take
    # the write lock the served pages are waiting for
    with _SERVED[0].access.engine.connect() as db:
        return {some_id: name
                for query in (select(Person.id, Person.name), select(Project.id, Project.title),
                              select(Institution.id, Institution.name))
                for some_id, name in db.execute(query)}


# what a page's words may not hold where a label exists: a stable tag in snake_case (a
# verdict "release_with_suppression", a rule "secondary_suppression", a status
# "under_review"); a dictionary code standing alone where the check's reasons quote a row or
# column ("row \"-3\"" where "Prefer not to answer (-3)" is meant); a model's coded term alone
# ("sex=1", not "sex=Male (sex=1)")
TAG = re.compile(r"\b[a-z]{2,}(?:_[a-z]{2,})+\b")
BARE_CODE = re.compile(r"\b(?:row|column)s? \"-?\d+\"")
BARE_TERM = re.compile(r"(?<![(\w:])([a-z]\w*)=-?\d+\b(?! \()")
# what a person copies or types, shown as it is: code, commands, a form's fields and choices
AS_TYPED = "code, pre, kbd, samp, select, textarea, input, script, style, [data-raw]"
# a file's name is the researcher's (or made from their request): shown as it is
FILE_NAME = re.compile(r"[\w.-]+\.(?:json|csv|tsv|txt|png|svg|pdf|zip|parquet|html|md|yaml|"
                       r"py|R|ipynb)\b")
# the words a person reads on a page (what is shown as typed hidden while they are read: the
# screenshot is taken), and its tables' column headings
_READ = """(skip) => {
  const hidden = [...document.querySelectorAll(skip)].filter(e => !e.hidden);
  hidden.forEach(e => { e.hidden = true; });
  const text = document.body.innerText;
  hidden.forEach(e => { e.hidden = false; });
  const heads = [...document.querySelectorAll("thead th")].map(th => th.innerText.trim());
  return [text, heads];
}"""


def raw_codes(page: Page) -> list[str]:
    """What a page shows as a code where a label exists: snake_case tags, a row's or
    column's bare code in a reason, a model's bare coded term, a table's column headed by a
    bare number (a crosstab's "0" and "1" where "Female (0)" belongs). What is shown as typed
    (code, commands, form fields, ``data-raw``) is left alone."""
    text, heads = page.evaluate(_READ, AS_TYPED)
    found = [f"tag {m.group(0)!r} in {line.strip()[:100]!r}"
             for line in text.splitlines() for m in TAG.finditer(FILE_NAME.sub("", line))
             if not ID_LIKE.fullmatch(m.group(0))]
    found += [f"bare code {m.group(0)!r} in {line.strip()[:100]!r}"
              for line in text.splitlines() for m in BARE_CODE.finditer(line)]
    found += [f"bare term {m.group(0)!r} in {line.strip()[:100]!r}"
              for line in text.splitlines() for m in BARE_TERM.finditer(line)]
    found += [f"a column headed {h!r}" for h in heads if re.fullmatch(r"-?\d+", h)]
    return found


ID_LIKE = re.compile(r"[a-z]{2,4}_[0-9a-f]{6,}")


def screenshot(page: Page, name: str) -> None:
    """A screenshot of a main page: taken on every run (the whole page must render), kept as
    NAME.png in $STRONGROOM_SCREENSHOTS when set (`make screenshots`: docs/screenshots).
    Every id of a person, project or institution on it stands beside its name, and no code
    stands where its label belongs (``raw_codes``)."""
    # a whole long page on a loaded 2-core machine can take past Playwright's 30 s default
    image = page.screenshot(full_page=True, timeout=120_000)
    assert image.startswith(b"\x89PNG"), name
    unnamed = ids_without_names(page.inner_text("body"))
    assert not unnamed, f"{name}: ids shown where their names belong: {unnamed}"
    coded = raw_codes(page)
    assert not coded, f"{name}: codes shown where their labels belong: {coded}"
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.png").write_bytes(image)
