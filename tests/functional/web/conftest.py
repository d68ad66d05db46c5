"""The console in a real browser: the demo's world served by uvicorn, driven by Playwright.

Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it) is driven through
Playwright's own driver; no browser is downloaded. The server is the real one (uvicorn on a
free loopback port, in a thread) over a demo data directory made by ``run_demo`` with a small
cohort, so every page shows the demo's story.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from sqlalchemy import select

from strongroom.access import people
from strongroom.access.context import Settings
from strongroom.access.models import Person
from strongroom.access.states import Vetting
from strongroom.demo import DemoResult, run_demo
from strongroom.demo_world import DemoLogin
from strongroom.platform import Platform
from strongroom.server.app import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as the machine's notes advise: no background traffic to hosts this network cannot reach
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PASSWORD = "a long web console passphrase"
# `make screenshots` sets this to docs/screenshots; an ordinary test run leaves the tree alone
SCREENSHOTS = os.environ.get("STRONGROOM_SCREENSHOTS")


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
    root = tmp_path_factory.mktemp("web") / "demo"
    demo = run_demo(root, participants=3_000, seed=11, jobs=False)  # test_workspace runs one
    # every test signs in from 127.0.0.1: the per-source limit (10 a minute) would refuse
    # the suite's sign-ins, so it is raised here; test_signin checks wrong codes still fail
    platform = Platform.open(root, demo.key_file,
                             settings=Settings(attempts_per_minute=1_000))
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
    try:
        yield Console(f"http://127.0.0.1:{port}", demo, platform)
    finally:
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


@pytest.fixture
def page(browser: Browser, refusals: list[int]) -> Iterator[Page]:
    """A fresh browser context; any console error or failed page script fails the test."""
    context = browser.new_context()
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        for status in refusals:
            if f"status of {status} " in message.text:
                refusals.remove(status)
                return
        problems.append(f"console error: {message.text}")

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    yield opened
    context.close()
    assert not problems, problems


_used_steps: dict[str, int] = {}  # a code is good once: the last time step used per secret


def fresh_code(secret: str) -> str:
    """The authenticator's code, waiting for the next 30 s step if this one was used."""
    step = int(time.time() // 30)
    if _used_steps.get(secret, -1) >= step:
        time.sleep((step + 1) * 30 - time.time() + 0.2)
        step += 1
    _used_steps[secret] = step
    return pyotp.TOTP(secret).at(step * 30)


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
def states(browser: Browser, console: Console) -> dict[str, Any]:
    """Each demo role signed in once (its browser storage), for tests that only read."""
    return {}


@pytest.fixture
def as_role(browser: Browser, console: Console, states: dict[str, Any],
            page: Page) -> Callable[[str], Page]:
    """``as_role("researcher")``: the test's page, signed in as the demo's person of that
    role (one sign-in per role per test session; the cookies are reused)."""
    def open_as(role: str) -> Page:
        if role not in states:
            with browser.new_context() as context:
                first = context.new_page()
                sign_in(first, console, console.login_of(role))
                states[role] = context.storage_state()
        page.context.add_cookies(states[role]["cookies"])
        return page
    return open_as


def screenshot(page: Page, name: str) -> None:
    """A screenshot of a main page: taken on every run (the whole page must render), kept as
    NAME.png in $STRONGROOM_SCREENSHOTS when set (`make screenshots`: docs/screenshots)."""
    image = page.screenshot(full_page=True)
    assert image.startswith(b"\x89PNG"), name
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.png").write_bytes(image)
