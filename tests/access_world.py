"""A small platform with a person of every role, for access tests: real DB, real crypto.

Time is a :class:`Clock` the test moves, so expiry, lockout and TOTP steps are exercised
without waiting.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.access import institutions, people, projects
from strongroom.access.auth import verify_credentials
from strongroom.access.bootstrap import bootstrap
from strongroom.access.context import AccessContext, Principal, Settings, Via
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.access.states import ExportStatus, Vetting
from strongroom.access.totp import code_at
from strongroom.cohort.store import init_store
from strongroom.cohort.synth.generator import synthesise
from strongroom.platform import Platform

PASSWORD = "a long test passphrase"
INSIDE = "10.1.2.3"  # in every test institution's registered networks
OUTSIDE = "203.0.113.9"
FIELDS = [31, 34, 21001, 4080]
# The settings of every world the tests build: argon2-cffi's CHEAPEST profile keeps tests quick
# (production hashes are checked in tests/unit/test_credentials.py), and answers have no timing
# floors (a definition's 2 s, an analysis's, a withheld output's: tests/integration/
# test_timing_channel.py and test_answer_ration.py hold them)
SETTINGS = Settings(password_profile="CHEAPEST", withheld_seconds=0.0, definition_seconds=0.0,
                    analysis_seconds=0.0)


class Clock:
    def __init__(self, start: dt.datetime | None = None):
        self.now = start or dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Member:
    person_id: str
    email: str
    totp_secret: str
    institution_id: str


@dataclass
class World:
    platform: Platform
    clock: Clock
    staff: dict[Role, Member] = field(default_factory=dict)
    researcher: Member | None = None
    outsider: Member | None = None  # a researcher of another institution, no project
    partner_id: str = ""
    project_id: str = ""

    @property
    def ctx(self) -> AccessContext:
        return self.platform.access

    def code(self, member: Member) -> str:
        """A fresh TOTP code: the clock moves a step on, as a code is accepted once."""
        self.clock.advance(seconds=31)
        return code_at(member.totp_secret, self.clock())

    def sign_in(self, member: Member, source: str = INSIDE) -> Principal:
        return verify_credentials(self.ctx, member.email, PASSWORD, self.code(member), source,
                                  Via.SESSION)

    def export_project(self, title: str, purpose: str, fields: list[int]) -> str:
        """A project of the researcher's with ``fields`` granted and the export permission
        already approved (set directly: the tests that use it are about extracts)."""
        assert self.researcher is not None
        today = self.clock().date()
        project = projects.create(self.ctx, None, title=title, purpose=purpose,
                                  lead_id=self.researcher.person_id, starts_on=today,
                                  expires_on=today.replace(year=2027), fields=fields).project.id
        with self.ctx.transaction() as db:
            row = db.get(Project, project)
            assert row is not None
            row.export = ExportStatus.APPROVED
        return project

    def member(self, role: Role) -> Member:
        if role is Role.RESEARCHER:
            assert self.researcher is not None
            return self.researcher
        return self.staff[role]


def _add(ctx: AccessContext, institution_id: str, email: str, roles: list[Role],
         today: dt.date) -> Member:
    new = people.create(ctx, None, institution_id=institution_id, email=email, name=email,
                        roles=[r.value for r in roles], password=PASSWORD,
                        vetting=Vetting.APPROVED)
    people.record_training(ctx, None, new.person.id, course="Safe Researcher",
                           completed_on=today - dt.timedelta(days=30),
                           expires_on=today + dt.timedelta(days=300))
    return Member(new.person.id, new.person.email, new.totp_secret, institution_id)


def build_world(root: Path, database_url: str | None = None, *, project: bool = True,
                checkpoint_every: int = 1000, cohort: int = 0,
                fields: list[int] | None = None,
                engine: dict[str, Any] | None = None) -> World:
    """``cohort``: synthesise and store that many participants first (for enclave tests);
    ``engine``: strongroom.yaml's ``engine:`` section (DuckDB when None)."""
    store = init_store(root / "data", key_file=root / "master.key", database_url=database_url)
    if cohort:
        store.write_version(synthesise(cohort, seed=7))
    if engine is not None:
        dataclasses.replace(store.config, engine=engine).save(store.root)
    store.close()
    clock = Clock()
    platform = Platform.open(root / "data", root / "master.key", clock=clock,
                             checkpoint_every=checkpoint_every, settings=SETTINGS)
    world = World(platform, clock)
    ctx = platform.access
    today = clock().date()
    admin = bootstrap(ctx, institution="Custodian", country="GB", jurisdiction="UK GDPR",
                      networks=["10.0.0.0/8"], email="admin@custodian.test", name="Admin",
                      password=PASSWORD)
    home = admin.person.institution_id
    world.staff[Role.CUSTODIAN_ADMIN] = Member(admin.person.id, admin.person.email,
                                               admin.totp_secret, home)
    for role in Role:
        if role not in (Role.CUSTODIAN_ADMIN, Role.RESEARCHER):
            world.staff[role] = _add(ctx, home, f"{role.value}@custodian.test", [role], today)
    partner = institutions.create(ctx, None, name="Partner University", country="GB",
                                  jurisdiction="UK GDPR", networks=["10.0.0.0/8"])
    other = institutions.create(ctx, None, name="Institut Ailleurs", country="FR",
                                jurisdiction="EU GDPR", networks=["10.0.0.0/8"])
    world.partner_id = partner.id
    world.researcher = _add(ctx, partner.id, "researcher@partner.test", [Role.RESEARCHER],
                            today)
    world.outsider = _add(ctx, other.id, "outsider@ailleurs.test", [Role.RESEARCHER], today)
    if project:
        world.project_id = projects.create(
            ctx, None, title="Blood pressure", purpose="Blood pressure and later disease, by sex",
            lead_id=world.researcher.person_id, starts_on=today - dt.timedelta(days=10),
            expires_on=today + dt.timedelta(days=365),
            fields=FIELDS if fields is None else fields).project.id
    return world
