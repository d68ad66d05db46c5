"""A platform to attack: a synthetic cohort, a custodian, and a fresh researcher and project
for each attack (so no attack is stopped by another's releases)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from strongroom.access import institutions, people, projects
from strongroom.access.auth import verify_credentials
from strongroom.access.bootstrap import bootstrap
from strongroom.access.context import Principal, Settings, Via
from strongroom.access.states import Vetting
from strongroom.access.totp import code_at
from strongroom.cohort.store import init_store
from strongroom.cohort.synth.generator import synthesise
from strongroom.platform import Platform

PASSWORD = "an attack-suite passphrase"
SOURCE = "10.1.2.3"
# sex, birth year, centre, smoking, BMI, systolic BP, diagnoses (code, date)
FIELDS = [31, 34, 54, 20116, 21001, 4080, 41270, 41280]


@dataclass
class Clock:
    """Time the runner moves on, so each TOTP code is fresh without waiting."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def _settings(withheld_seconds: float) -> Settings:
    """Cheap password hashes, and the withheld floor where the platform has one (the
    disclosure benchmark runs this package against earlier commits too)."""
    settings = Settings(password_profile="CHEAPEST")
    if hasattr(settings, "withheld_seconds"):
        settings = dataclasses.replace(settings, withheld_seconds=withheld_seconds)
    if hasattr(settings, "definition_seconds"):  # the timing test sets its own
        settings = dataclasses.replace(settings, definition_seconds=0.0)
    if hasattr(settings, "analysis_seconds"):  # the timing channel's suite sets its own
        settings = dataclasses.replace(settings, analysis_seconds=0.0)
    return settings


@dataclass
class AttackWorld:
    platform: Platform
    clock: Clock
    serial: itertools.count[int] = field(default_factory=itertools.count)
    networks: tuple[str, ...] = ("10.0.0.0/8",)  # each new institution's

    @classmethod
    def build(cls, root: Path, cohort: int = 3000, seed: int = 7,
              withheld_seconds: float = 0.0, database_url: str | None = None,
              networks: tuple[str, ...] = ("10.0.0.0/8",)) -> AttackWorld:
        """``withheld_seconds``: the platform's floor on a withheld output's answer (none by
        default, so the suite runs quickly; the timing test sets one); ``database_url``: the
        metadata database (default SQLite in the data directory)."""
        store = init_store(root / "data", key_file=root / "master.key",
                           database_url=database_url)
        store.write_version(synthesise(cohort, seed=seed))
        store.close()
        clock = Clock()
        platform = Platform.open(root / "data", root / "master.key", clock=clock,
                                 settings=_settings(withheld_seconds))
        bootstrap(platform.access, institution="Custodian", country="GB",
                  jurisdiction="UK GDPR", networks=["10.0.0.0/8"],
                  email="admin@custodian.test", name="Admin", password=PASSWORD)
        return cls(platform, clock, networks=networks)

    def researcher(self, institution_id: str | None = None,
                   name: str | None = None) -> tuple[Principal, str]:
        """A new vetted, trained researcher of a new institution (or of ``institution_id``),
        leading a new project; signed in. (The ledger of released outputs spans a partner
        institution, so each attack starts from an empty one.) ``name``: theirs, when a
        campaign registers one human twice."""
        who = self._person("researcher", "researcher", institution_id, name)
        return who, self.project(who)

    def person(self, role: str, institution_id: str | None = None) -> Principal:
        """A new vetted, trained person with ``role`` and no project; signed in."""
        return self._person(role, role, institution_id)

    def project(self, lead: Principal) -> str:
        """Another project led by ``lead``."""
        today = self.clock().date()
        return str(projects.create(
            self.platform.access, None, title=f"Attack {lead.person_id} {next(self.serial)}",
            purpose="Trying the output check as an attacker", lead_id=lead.person_id,
            starts_on=today - dt.timedelta(days=10),
            expires_on=today + dt.timedelta(days=365), fields=FIELDS).project.id)

    def grant_export(self, lead: Principal, project_id: str) -> None:
        """Record-level export asked for by the lead and approved by an access committee."""
        ctx = self.platform.access
        projects.request_export(ctx, lead, project_id,
                                "registry linkage for the study population, record-level")
        projects.decide_export(ctx, self.staff("access-committee"), project_id, True)

    def checker(self) -> Principal:
        """A new output checker of a new institution, signed in."""
        return self._person("checker", "output-checker")

    def staff(self, role: str) -> Principal:
        """A new member of staff with ``role`` (of a new institution), signed in."""
        return self._person("staff", role)

    def _person(self, kind: str, role: str, institution_id: str | None = None,
                name: str | None = None) -> Principal:
        n = next(self.serial)
        today = self.clock().date()
        ctx = self.platform.access
        if institution_id is None:
            institution_id = institutions.create(
                ctx, None, name=f"Partner {n}", country="GB", jurisdiction="UK GDPR",
                networks=list(self.networks)).id
        new = people.create(ctx, None, institution_id=institution_id,
                            email=f"{kind}{n}@partner.test", name=name or f"{kind.title()} {n}",
                            roles=[role], password=PASSWORD, vetting=Vetting.APPROVED)
        people.record_training(ctx, None, new.person.id, course="Safe Researcher",
                               completed_on=today - dt.timedelta(days=30),
                               expires_on=today + dt.timedelta(days=300))
        self.clock.advance(31)
        return verify_credentials(ctx, new.person.email, PASSWORD,
                                  code_at(new.totp_secret, self.clock()), SOURCE, Via.SESSION)

    def close(self) -> None:
        self.platform.close()
