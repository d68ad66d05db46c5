"""Many researchers at once against a real server: mixed work, then the ground truth read
custodian-side, and the races aimed at the last unit of a limit (issue 52).

The server is the application ``strongroom serve`` runs, on a loopback port, over an
:class:`AttackWorld`'s platform; the caller gives the ASGI application (this package imports
nothing of the server: the benchmark and the test compose it). Each client is one researcher
in a thread with its own HTTP connection and its own loopback address (a desk of its own:
sign-in attempts are counted per source address). Two in three sign in with password and
authenticator code and work in their session (the CSRF header on every change); the others
work with an API token, as a script would. Institutions, projects and members are mixed so
that most members work in a project led at another institution.

After the load, the database is read directly (never the API): one ``watch_meter`` row per
request served is the server's invariant, so served and metered are compared per route; the
exposure rows against the extracts served; the cells metered against the cells of the
outputs downloaded. The overshoot scenarios aim N requests, released together by a barrier,
at a limit with room for exactly one or K more, and count what was served and metered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import uvicorn
from sqlalchemy import func, select

from strongroom.access import auth, people, projects
from strongroom.access import institutions as registry
from strongroom.access.context import Principal, Via
from strongroom.access.states import Vetting
from strongroom.access.totp import code_at
from strongroom.attacks.catalogue import BASE
from strongroom.attacks.world import PASSWORD, SOURCE, AttackWorld
from strongroom.outputs.models import OutputRow
from strongroom.platform import Platform
from strongroom.watch.models import ExposureRow, MeterRow

AppFactory = Callable[[Platform], Any]  # the server's create_app
CSRF = "X-CSRF-Token"  # the server's CSRF header (strongroom.server.security.CSRF_HEADER)
OPEN = 10**9  # a limit out of the way (this measures the server, not the limits)
OPEN_LIMITS = {"requests": OPEN, "cells": OPEN, "record_participants": OPEN,
               "lifetime_participants": OPEN, "bytes": 2**40}
ACTIONS = ["self.read", "project.read", "data.analyse", "data.export", "output.read",
           "output.request", "output.download"]
FREQUENCY = {"kind": "frequency", "definition": "base", "variable": "sex"}
CENTRES = {"kind": "frequency", "definition": "base", "variable": "centre"}
# a sum of ones: winsorised, every contribution is the same, so the check blocks it as
# identical values: it acts on the output every time (an answer of the ration)
ACTED = {"kind": "aggregate_sql",
         "sql": "SELECT sum(CASE WHEN sbp > 10000 THEN 1000 ELSE 1 END) AS s FROM base"}
JUSTIFY = "Needed for the load study of issue 52, aggregated counts only."

# what each kind of work is, as the meter names its route
ROUTES = {
    "sign-in": "POST /auth/login",
    "who-am-I": "GET /auth/me",
    "limits": "GET /projects/{project_id}/limits",
    "analysis": "POST /projects/{project_id}/analyses",
    "extract": "POST /projects/{project_id}/extracts",
    "output request": "POST /outputs/{output_id}/request",
    "download": "GET /outputs/{output_id}/download",
    "table": "GET /outputs/{output_id}/table",
}
KINDS = tuple(ROUTES)
# how often a client picks each kind of work (sign-in is taken when a new code is due)
WEIGHTS = {"who-am-I": 15, "limits": 10, "analysis": 25, "output request": 10, "extract": 10,
           "download": 18, "table": 12}
SIGN_IN_AGAIN = 0.15  # the chance, once a new code is due, that a session client signs in
DROPPED = (httpx.TransportError,)  # connection refused, reset, closed mid-answer, timed out


# -- the clock ---------------------------------------------------------------------------------

@contextmanager
def real_time(world: AttackWorld) -> Iterator[None]:
    """The world's clock runs in real time from where it stands (sessions, codes and windows
    move as they would), as well as when the world moves it (``Clock.advance``)."""
    stop = threading.Event()

    def tick() -> None:
        last = time.monotonic()
        while not stop.wait(0.02):
            now = time.monotonic()
            world.clock.advance(now - last)
            last = now

    thread = threading.Thread(target=tick, daemon=True, name="load-clock")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# -- the server --------------------------------------------------------------------------------

class ServerLog(logging.Handler):
    """The server's warnings and errors while it runs: counted by message, and the first
    traceback of each kind kept (the lead's reproduction)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.tracebacks: dict[str, str] = {}
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is still counted
            message = str(record.msg)
        text = message
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{message}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        # counted by kind: numbers (process ids, tuple and transaction numbers) left out
        key = re.sub(r"\d+", "#", " ".join(text.split()))[:160]
        with self._lock:
            self.counts[key] += 1
            if record.exc_info and key not in self.tracebacks:
                self.tracebacks[key] = "".join(traceback.format_exception(*record.exc_info))

    def mentions(self, words: str) -> int:
        return sum(n for key, n in self.counts.items() if words in key)


@contextmanager
def serving(world: AttackWorld, app_factory: AppFactory,
            server_log: ServerLog | None = None) -> Iterator[str]:
    """Serve the world's platform on a free loopback port (uvicorn, as ``strongroom serve``);
    yields its base URL; stops it once every answer has gone out."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        app_factory(world.platform), host="127.0.0.1", port=port, log_level="warning",
        access_log=False, timeout_graceful_shutdown=30, log_config=None))
    root = logging.getLogger()
    if server_log is not None:
        root.addHandler(server_log)
    thread = threading.Thread(target=server.run, daemon=True, name="load-server")
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        if server_log is not None:
            root.removeHandler(server_log)


def source_address(n: int) -> str:
    """The ``n``-th client's own loopback address (127.0.1.1, 127.0.1.2, …)."""
    return f"127.0.{1 + n // 250}.{1 + n % 250}"


@functools.cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every client: each new one reads the CA bundle (tens of
    milliseconds of the load's own CPU per client, beside the server it measures)."""
    return httpx.create_ssl_context()


def client(base: str, n: int, timeout: float, headers: dict[str, str] | None = None
           ) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=timeout, headers=headers or {},
                        transport=httpx.HTTPTransport(local_address=source_address(n),
                                                      verify=_tls()))


# -- the people and their projects -------------------------------------------------------------

@dataclass
class Researcher:
    n: int
    principal: Principal
    email: str
    totp: str
    institution_id: str
    project_id: str = ""
    output_id: str = ""  # a released output of their project, to download
    cells: int = 0  # the cells it shows
    token: str = ""
    session: bool = True  # signs in (else works with the token, as a script)


@dataclass
class Scene:
    world: AttackWorld
    admin: Principal
    researchers: list[Researcher]
    institutions: list[str]
    projects: dict[str, str]  # project id: its lead's institution
    cohort: int

    @property
    def led_elsewhere(self) -> int:
        """Members of a project led at another institution than their own."""
        return sum(1 for r in self.researchers
                   if self.projects[r.project_id] != r.institution_id)


def person(world: AttackWorld, institution_id: str, label: str) -> tuple[Principal, str, str]:
    """A vetted, trained researcher of ``institution_id``: signed in once (custodian-side,
    for the setting up) and their authenticator's secret, to sign in as they would."""
    ctx = world.platform.access
    today = world.clock().date()
    new = people.create(ctx, None, institution_id=institution_id,
                        email=f"{label}@load.test", name=label.replace("-", " ").title(),
                        roles=["researcher"], password=PASSWORD, vetting=Vetting.APPROVED)
    people.record_training(ctx, None, new.person.id, course="Safe Researcher",
                           completed_on=today - dt.timedelta(days=30),
                           expires_on=today + dt.timedelta(days=300))
    world.clock.advance(31)
    who = auth.verify_credentials(ctx, new.person.email, PASSWORD,
                                  code_at(new.totp_secret, world.clock()), SOURCE,
                                  Via.SESSION)
    return who, new.person.email, new.totp_secret


def open_limits(world: AttackWorld, admin: Principal, **targets: str) -> None:
    """Raise every limit of the given project, person and institution out of the way."""
    for scope, target in targets.items():
        world.platform.watch.set_limits(admin, scope, target, dict(OPEN_LIMITS))


def build_scene(world: AttackWorld, clients: int, seed: int, cohort: int) -> Scene:
    """``clients`` researchers at ``max(2, clients // 8)`` institutions (up to 6), in
    ``max(2, clients // 5)`` projects; each project's lead is one of them, and its members
    are drawn so most work in a project led at another institution. Each defines the base
    dataset, releases an output of their own, and has an API token; they download their
    project's released output that gives away most cells."""
    rng = random.Random(seed)
    admin = world.staff("custodian-admin")
    committee = world.staff("access-committee")
    ctx = world.platform.access
    n_inst = min(6, max(2, clients // 8))
    n_proj = min(clients, max(2, clients // 5))
    institutions = [registry.create(ctx, None, name=f"Load institution {seed}-{i}",
                                    country="GB", jurisdiction="UK GDPR",
                                    networks=["127.0.0.0/8", "10.0.0.0/8"]).id
                    for i in range(n_inst)]
    researchers: list[Researcher] = []
    for n in range(clients):
        # leads (the first n_proj) go round the institutions; members are shifted by one, so
        # a member's project is led at another institution unless the rounds meet
        inst = institutions[n % n_inst] if n < n_proj else institutions[(n + 1) % n_inst]
        who, email, secret = person(world, inst, f"load-{seed}-{n}")
        researchers.append(Researcher(n, who, email, secret, inst, session=n % 3 != 2))
    projects_of: dict[str, str] = {}
    for p in range(n_proj):
        lead = researchers[p]
        pid = world.project(lead.principal)
        projects.request_export(ctx, lead.principal, pid,
                                "registry linkage for the study population, record-level")
        projects.decide_export(ctx, committee, pid, True)
        projects_of[pid] = lead.institution_id
        lead.project_id = pid
        open_limits(world, admin, project=pid)
    ids = list(projects_of)
    for r in researchers[n_proj:]:
        r.project_id = ids[rng.randrange(n_proj)]
        projects.add_member(ctx, admin, r.project_id, r.principal.person_id)
    for inst in institutions:
        open_limits(world, admin, institution=inst)
    outputs = world.platform.outputs
    for r in researchers:
        open_limits(world, admin, person=r.principal.person_id)
        outputs.define(r.principal, r.project_id, "base", BASE)
        view = outputs.analyse(r.principal, r.project_id, CENTRES if r.n % 2 else FREQUENCY)
        released = outputs.request_release(r.principal, view.output.id, JUSTIFY)
        if released.status.value != "released":
            raise RuntimeError(f"the setting-up output was not released: {released.status}")
        r.output_id = view.output.id
        r.cells = outputs.shown_cells(r.project_id, r.output_id)
        r.token = auth.issue_token(ctx, r.principal, r.project_id, ACTIONS, 1).secret
    # everyone downloads their project's output that gives away most cells: an output whose
    # cells its institution already released gives away none, and cells are what is counted
    best: dict[str, tuple[int, str]] = {}
    for r in researchers:
        if r.cells > best.get(r.project_id, (-1, ""))[0]:
            best[r.project_id] = (r.cells, r.output_id)
    for r in researchers:
        r.cells, r.output_id = best[r.project_id]
    return Scene(world, admin, researchers, institutions, projects_of, cohort)


# -- what the clients saw ----------------------------------------------------------------------

@dataclass
class Seen:
    """One kind of request, as the clients saw it."""

    statuses: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)  # exception type: count
    served: int = 0  # answered 2xx
    cells: int = 0  # downloads: the cells of the outputs served
    rows: int = 0  # extracts: the rows received
    examples: dict[int, str] = field(default_factory=dict)  # status: the first such answer

    @property
    def count(self) -> int:
        return sum(self.statuses.values()) + sum(self.dropped.values())

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def ms(self, q: float) -> float | None:
        return float(np.percentile(self.seconds, q)) * 1000 if self.seconds else None


class Tally:
    def __init__(self) -> None:
        self.kinds = {kind: Seen() for kind in KINDS}
        self.lock = threading.Lock()

    def answer(self, kind: str, response: httpx.Response, seconds: float, *,
               cells: int = 0, rows: int = 0) -> None:
        with self.lock:
            seen = self.kinds[kind]
            seen.statuses[response.status_code] += 1
            seen.seconds.append(seconds)
            if 200 <= response.status_code < 300:
                seen.served += 1
                seen.cells += cells
                seen.rows += rows
            else:
                seen.examples.setdefault(response.status_code, response.text[:300])

    def drop(self, kind: str, exc: BaseException, seconds: float) -> None:
        with self.lock:
            self.kinds[kind].dropped[type(exc).__name__] += 1
            self.kinds[kind].seconds.append(seconds)


class Desk:
    """One client: a researcher's own connection, session or token, and their work."""

    def __init__(self, scene: Scene, r: Researcher, base: str, tally: Tally, seed: int,
                 timeout: float):
        self.scene, self.r, self.base, self.tally = scene, r, base, tally
        self.rng = random.Random(seed * 100_003 + r.n)
        self.timeout = timeout
        self.step = -1  # the last code's time step used to sign in
        self.csrf = ""
        self.session = r.session
        self.http = self._connect()
        self.mine: list[str] = []  # own outputs not yet asked for release

    def _connect(self, cookies: httpx.Cookies | None = None) -> httpx.Client:
        headers = {} if self.session else {"Authorization": f"Bearer {self.r.token}"}
        made = client(self.base, self.r.n, self.timeout, headers)
        if cookies is not None:
            made.cookies = cookies
        return made

    def _headers(self) -> dict[str, str]:
        return {CSRF: self.csrf} if self.session and self.csrf else {}

    def _call(self, kind: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = self.http.request(method, path, **kwargs)
        except DROPPED as exc:
            self.tally.drop(kind, exc, time.perf_counter() - started)
            cookies = self.http.cookies
            self.http.close()
            self.http = self._connect(cookies)  # a new connection, the same session
            return None
        took = time.perf_counter() - started
        if kind == "download" or kind == "table":
            self.tally.answer(kind, response, took, cells=self.r.cells)
        elif kind == "extract" and response.is_success:
            self.tally.answer(kind, response, took, rows=max(0, response.text.count("\n") - 1))
        else:
            self.tally.answer(kind, response, took)
        return response

    def sign_in(self) -> None:
        """Password and the authenticator's code, as at the sign-in page; once per code."""
        now = self.scene.world.clock()
        self.step = int(now.timestamp()) // 30
        answer = self._call("sign-in", "POST", "/auth/login", json={
            "email": self.r.email, "password": PASSWORD, "code": code_at(self.r.totp, now)})
        if answer is not None and answer.status_code == 200:
            self.csrf = answer.json()["csrf_token"]
        elif not self.csrf:  # never signed in: work as a script does, with the token
            self.session = False
            self.http.headers["Authorization"] = f"Bearer {self.r.token}"

    def work(self, stop: float) -> None:
        try:
            if self.session:
                self.sign_in()
            kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
            # each kind once first, from a different one at each desk (so that a short run
            # has them all), then at random
            first = kinds[self.r.n % len(kinds):] + kinds[:self.r.n % len(kinds)]
            while time.monotonic() < stop:
                step = int(self.scene.world.clock().timestamp()) // 30
                if self.session and step > self.step and self.rng.random() < SIGN_IN_AGAIN:
                    self.sign_in()
                    continue
                self.one(first.pop(0) if first else self.rng.choices(kinds, weights)[0])
        finally:
            self.http.close()

    def one(self, kind: str) -> None:
        r, p = self.r, self.r.project_id
        if kind == "output request" and not self.mine:
            kind = "analysis"
        if kind == "who-am-I":
            self._call(kind, "GET", "/auth/me")
        elif kind == "limits":
            self._call(kind, "GET", f"/projects/{p}/limits")
        elif kind == "analysis":
            spec = FREQUENCY if self.rng.random() < 0.5 else CENTRES
            answer = self._call(kind, "POST", f"/projects/{p}/analyses",
                                json={"analysis": spec}, headers=self._headers())
            if answer is not None and answer.is_success:
                self.mine.append(answer.json()["id"])
        elif kind == "extract":
            limit = self.rng.randint(20, 40)  # small, but enough for the k-anonymity check
            offset = self.rng.randrange(0, max(1, self.scene.cohort - limit))
            self._call(kind, "POST", f"/projects/{p}/extracts",
                       json={"format": "csv", "offset": offset, "limit": limit},
                       headers=self._headers())
        elif kind == "output request":
            self._call(kind, "POST", f"/outputs/{self.mine.pop()}/request",
                       json={"justification": JUSTIFY}, headers=self._headers())
        elif kind == "download":
            self._call(kind, "GET", f"/outputs/{r.output_id}/download")
        elif kind == "table":
            self._call(kind, "GET", f"/outputs/{r.output_id}/table", params={"format": "csv"})


# -- the ground truth, custodian-side ----------------------------------------------------------

@dataclass
class Truth:
    """What the database holds of the load (rows after ``since``, the last meter id before)."""

    metered: dict[str, Counter[int]]  # kind: status: meter rows
    exposures: int
    exposure_participants: int
    extract_participants_metered: int
    cells_metered: int


def meter_mark(platform: Platform) -> int:
    with platform.access.transaction() as db:
        return int(db.scalar(select(func.coalesce(func.max(MeterRow.id), 0))) or 0)


def exposure_mark(platform: Platform) -> int:
    with platform.access.transaction() as db:
        return int(db.scalar(select(func.coalesce(func.max(ExposureRow.id), 0))) or 0)


def read_truth(platform: Platform, meter_since: int, exposure_since: int,
               projects_of: set[str]) -> Truth:
    by_route = {route: kind for kind, route in ROUTES.items()}
    metered: dict[str, Counter[int]] = {kind: Counter() for kind in KINDS}
    with platform.access.transaction() as db:
        for route, status, n in db.execute(
                select(MeterRow.route, MeterRow.status, func.count())
                .where(MeterRow.id > meter_since).group_by(MeterRow.route, MeterRow.status)):
            if route in by_route:
                metered[by_route[route]][int(status)] += int(n)
        served = (MeterRow.id > meter_since, MeterRow.status >= 200, MeterRow.status < 300)
        cells = db.scalar(select(func.coalesce(func.sum(MeterRow.cells), 0)).where(
            *served, MeterRow.route.in_([ROUTES["download"], ROUTES["table"]])))
        participants = db.scalar(select(func.coalesce(func.sum(MeterRow.participants), 0))
                                 .where(*served, MeterRow.route == ROUTES["extract"]))
        exposures = db.execute(select(func.count(), func.coalesce(
            func.sum(ExposureRow.participants), 0)).where(
            ExposureRow.id > exposure_since, ExposureRow.project_id.in_(projects_of))).one()
    return Truth(metered, int(exposures[0]), int(exposures[1]), int(participants or 0),
                 int(cells or 0))


# -- the mixed load ----------------------------------------------------------------------------

@dataclass
class LoadResult:
    database: str
    clients: int
    seconds: float  # asked
    wall: float  # from the first request to the last answer
    seed: int
    kinds: dict[str, Seen]
    truth: Truth
    server_log: ServerLog
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    cpus: int
    institutions: int
    projects: int
    led_elsewhere: int
    sessions: int
    setup: float  # seconds to set the scene up (people, projects, outputs, tokens)

    def served(self, kind: str) -> int:
        return self.kinds[kind].served

    def metered(self, kind: str) -> int:
        return sum(n for s, n in self.truth.metered[kind].items() if 200 <= s < 300)

    def lost(self, kind: str) -> int:
        """Served 2xx without a meter row (a dropped answer may be metered and not seen)."""
        return max(0, self.served(kind) - self.metered(kind))

    def duplicated(self, kind: str) -> int:
        """Meter rows beyond the answers served (and beyond those dropped in flight)."""
        dropped = sum(self.kinds[kind].dropped.values())
        return max(0, self.metered(kind) - self.served(kind) - dropped)

    @property
    def requests(self) -> int:
        return sum(s.count for s in self.kinds.values())

    @property
    def server_errors(self) -> int:
        return sum(s.server_errors for s in self.kinds.values())

    @property
    def dropped(self) -> int:
        return sum(sum(s.dropped.values()) for s in self.kinds.values())

    @property
    def cells_served(self) -> int:
        return self.kinds["download"].cells + self.kinds["table"].cells

    @property
    def extracts_served(self) -> int:
        return self.kinds["extract"].served


def run_load(world: AttackWorld, app_factory: AppFactory, *, database: str, clients: int,
             seconds: float, seed: int, cohort: int, timeout: float = 120.0) -> LoadResult:
    """Build the scene, serve it, run ``clients`` desks for ``seconds``, read the truth."""
    began = time.monotonic()
    scene = build_scene(world, clients, seed, cohort)
    setup = time.monotonic() - began
    tally = Tally()
    server_log = ServerLog()
    meter_since, exposure_since = meter_mark(world.platform), exposure_mark(world.platform)
    world.clock.advance(31)  # past the code of the last setting-up sign-in
    load_before = os.getloadavg()
    with real_time(world), serving(world, app_factory, server_log) as base:
        desks = [Desk(scene, r, base, tally, seed, timeout) for r in scene.researchers]
        started = time.monotonic()
        stop = started + seconds
        threads = [threading.Thread(target=d.work, args=(stop,), name=f"desk-{d.r.n}")
                   for d in desks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
    load_after = os.getloadavg()
    truth = read_truth(world.platform, meter_since, exposure_since, set(scene.projects))
    return LoadResult(database, clients, seconds, wall, seed, tally.kinds, truth, server_log,
                      load_before, load_after, os.cpu_count() or 1, len(scene.institutions),
                      len(scene.projects), scene.led_elsewhere,
                      sum(1 for r in scene.researchers if r.session), setup)


# -- the races at the last unit ----------------------------------------------------------------

@dataclass
class Overshoot:
    scenario: str  # downloads | extracts | answers
    database: str
    racers: int
    allowed: int  # served at most (downloads: K; extracts: 1; answers: those left)
    served: int
    unit: str  # what is metered: cells | participants | answers
    limit: int  # of that unit
    metered: int
    statuses: Counter[int]
    dropped: int
    detail: str = ""

    @property
    def over(self) -> int:
        """By how much it overshot: served beyond the allowed, or metered beyond the limit."""
        return max(0, self.served - self.allowed, self.metered - self.limit)


def _race(base: str, racers: int, token: str,
          request: Callable[[httpx.Client, int], httpx.Response], timeout: float
          ) -> tuple[list[httpx.Response], int]:
    """``racers`` clients, each connected first, released together by a barrier."""
    barrier = threading.Barrier(racers)
    answers: list[httpx.Response] = []
    dropped = [0]
    lock = threading.Lock()

    def one(n: int) -> None:
        with client(base, n, timeout, {"Authorization": f"Bearer {token}"}) as http:
            http.get("/health")  # the connection is made before the race
            barrier.wait()
            try:
                answer = request(http, n)
            except DROPPED:
                with lock:
                    dropped[0] += 1
                return
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, dropped[0]


def _racer(world: AttackWorld, admin: Principal) -> tuple[Principal, str, str]:
    """A fresh researcher and project (fresh institution), every limit open but the one raced;
    the base dataset defined; a token for the race."""
    who, project = world.researcher()
    open_limits(world, admin, project=project, person=who.person_id,
                institution=who.institution_id)
    world.platform.outputs.define(who, project, "base", BASE)
    token = auth.issue_token(world.platform.access, who, project, ACTIONS, 1).secret
    return who, project, token


def race_downloads(world: AttackWorld, base: str, database: str, *, racers: int = 30,
                   room: int = 5, timeout: float = 120.0) -> Overshoot:
    """One released output of C cells; the project's daily cells limit leaves room for exactly
    ``room`` more downloads; ``racers`` downloads at once."""
    admin = world.staff("custodian-admin")
    who, project, token = _racer(world, admin)
    outputs = world.platform.outputs
    view = outputs.analyse(who, project, CENTRES)
    if outputs.request_release(who, view.output.id, JUSTIFY).status.value != "released":
        raise RuntimeError("the raced output was not released")
    cells = outputs.shown_cells(project, view.output.id)
    used = _sum(world.platform, MeterRow.cells, project)
    limit = used + room * cells
    world.platform.watch.set_limits(admin, "project", project, {"cells": limit})
    since = meter_mark(world.platform)
    answers, dropped = _race(base, racers, token,
                             lambda h, _: h.get(f"/outputs/{view.output.id}/download"), timeout)
    served = sum(1 for a in answers if a.is_success)
    metered = _sum(world.platform, MeterRow.cells, project)
    return Overshoot("downloads", database, racers, room, served, "cells", limit, metered,
                     Counter(a.status_code for a in answers), dropped,
                     f"{cells} cells an output; {_sum_since(world.platform, project, since)} "
                     f"meter rows")


def race_extracts(world: AttackWorld, base: str, database: str, *, racers: int = 30,
                  size: int = 20, timeout: float = 120.0) -> Overshoot:
    """A record-participants allowance with room for exactly one more extract of ``size``
    participants; ``racers`` extracts of different participants at once."""
    admin = world.staff("custodian-admin")
    who, project, token = _racer(world, admin)
    world.grant_export(who, project)
    used = _exposed(world.platform, project)
    limit = used + size
    world.platform.watch.set_limits(admin, "project", project, {"record_participants": limit})
    answers, dropped = _race(base, racers, token, lambda h, n: h.post(
        f"/projects/{project}/extracts",
        json={"format": "csv", "offset": size * n, "limit": size}), timeout)
    served = sum(1 for a in answers if a.is_success)
    return Overshoot("extracts", database, racers, 1, served, "participants", limit,
                     _exposed(world.platform, project),
                     Counter(a.status_code for a in answers), dropped,
                     f"{size} participants an extract")


def race_answers(world: AttackWorld, base: str, database: str, *, racers: int = 30,
                 budget: int = 3, timeout: float = 120.0) -> Overshoot:
    """The project's daily answer budget (Settings.answers_project_day) set to ``budget``,
    all but one spent by analyses the check acts on; ``racers`` such analyses at once."""
    who, project, token = _racer(world, world.staff("custodian-admin"))
    ctx = world.platform.access
    was = ctx.settings
    ctx.settings = dataclasses.replace(was, answers_project_day=budget)
    try:
        for _ in range(budget - 1):
            world.platform.outputs.analyse(who, project, ACTED)
        before = _acted(world.platform, project)
        answers, dropped = _race(base, racers, token, lambda h, _: h.post(
            f"/projects/{project}/analyses", json={"analysis": ACTED}), timeout)
    finally:
        ctx.settings = was
    acted = _acted(world.platform, project)
    return Overshoot("answers", database, racers, budget - before, acted - before, "answers",
                     budget, acted, Counter(a.status_code for a in answers), dropped,
                     f"{before} spent before the race; "
                     f"{sum(1 for a in answers if a.is_success)} outputs made")


def _sum(platform: Platform, column: Any, project: str) -> int:
    with platform.access.transaction() as db:
        return int(db.scalar(select(func.coalesce(func.sum(column), 0))
                             .where(MeterRow.project_id == project)) or 0)


def _sum_since(platform: Platform, project: str, since: int) -> int:
    with platform.access.transaction() as db:
        return int(db.scalar(select(func.count()).where(
            MeterRow.project_id == project, MeterRow.id > since)) or 0)


def _exposed(platform: Platform, project: str) -> int:
    with platform.access.transaction() as db:
        return int(db.scalar(select(func.coalesce(func.sum(ExposureRow.participants), 0))
                             .where(ExposureRow.project_id == project)) or 0)


def _acted(platform: Platform, project: str) -> int:
    with platform.access.transaction() as db:
        return int(db.scalar(select(func.count()).where(
            OutputRow.project_id == project, OutputRow.acted.is_(True))) or 0)


def race_all(world: AttackWorld, app_factory: AppFactory, database: str, *, racers: int = 30,
             timeout: float = 120.0, server_log: ServerLog | None = None) -> list[Overshoot]:
    """The three races, each on a fresh researcher, project and institution."""
    with real_time(world), serving(world, app_factory, server_log) as base:
        return [race_downloads(world, base, database, racers=racers, timeout=timeout),
                race_extracts(world, base, database, racers=racers, timeout=timeout),
                race_answers(world, base, database, racers=racers, timeout=timeout)]


# -- tables ------------------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _statuses(statuses: Counter[int], dropped: Counter[str] | int) -> str:
    """``200×12 500×2 ReadError×1``: the answers by status, then the dropped by exception."""
    parts = [f"{s}×{n}" for s, n in sorted(statuses.items())]
    if isinstance(dropped, int):
        parts += [f"dropped×{dropped}"] if dropped else []
    else:
        parts += [f"{name}×{n}" for name, n in sorted(dropped.items())]
    return " ".join(parts) or "–"


def load_table(results: list[LoadResult]) -> str:
    """Per run and kind: requests, statuses, p50/p99, served/metered, lost/duplicated."""
    lines = ["| database | clients | kind | requests | statuses | p50 / p99 ms | served / "
             "metered | lost / dup. |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for kind in KINDS:
            s = r.kinds[kind]
            lines.append(f"| {r.database} | {r.clients} | {kind} | {s.count:,} | "
                         f"{_statuses(s.statuses, s.dropped)} | {_ms(s.ms(50))} / "
                         f"{_ms(s.ms(99))} | {r.served(kind):,} / {r.metered(kind):,} | "
                         f"{r.lost(kind)} / {r.duplicated(kind)} |")
    return "\n".join(lines)


def summary_table(results: list[LoadResult]) -> str:
    lines = ["| database | clients × s | requests | 5xx | dropped | lost / dup. meter rows | "
             "extracts served / exposure rows | cells downloaded / metered | server log: "
             "locked / could not meter | load (1 min) before → after, CPUs | setup s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lost = sum(r.lost(k) for k in KINDS)
        dup = sum(r.duplicated(k) for k in KINDS)
        lines.append(
            f"| {r.database} | {r.clients} × {r.seconds:g} | {r.requests:,} "
            f"({r.requests / r.wall:.1f}/s) | {r.server_errors} | {r.dropped} | {lost} / {dup} "
            f"| {r.extracts_served:,} / {r.truth.exposures:,} | {r.cells_served:,} / "
            f"{r.truth.cells_metered:,} | {r.server_log.mentions('database is locked')} / "
            f"{r.server_log.mentions('could not meter')} | {r.load_before[0]:.1f} → "
            f"{r.load_after[0]:.1f}, {r.cpus} | {r.setup:.0f} |")
    return "\n".join(lines)


def overshoot_table(races: list[Overshoot]) -> str:
    lines = ["| database | scenario | racers | served (allowed) | metered (limit) | statuses | "
             "overshoot | note |", "|---|---|---|---|---|---|---|---|"]
    for o in races:
        lines.append(f"| {o.database} | {o.scenario} | {o.racers} | {o.served} ({o.allowed}) "
                     f"| {o.metered:,} {o.unit} ({o.limit:,}) | "
                     f"{_statuses(o.statuses, o.dropped)} | {o.over} | {o.detail} |")
    return "\n".join(lines)


def refusals(results: list[LoadResult]) -> str:
    """The first answer of each status that was not a success, per run and kind."""
    return "\n".join(f"{r.database}, {r.clients} clients, {kind}: {status} {body}"
                     for r in results for kind, seen in r.kinds.items()
                     for status, body in sorted(seen.examples.items()))


def server_log_report(log_: ServerLog, top: int = 8) -> str:
    lines = [f"{n:>6} × {key}" for key, n in log_.counts.most_common(top)]
    for key, text in list(log_.tracebacks.items())[:3]:
        lines += ["", f"first traceback of: {key}", text.rstrip()]
    return "\n".join(lines)
