"""The demo's people and projects: institutions (one abroad), a person for every role, projects.

Everyone signs in from localhost in the demo, so each institution registers 127.0.0.0/8 beside
its (documentation-range) campus network. Beside the two main research projects, which the
console's tests use and nothing here pauses, there are two for the story
(:mod:`strongroom.demo.story`): a commercial partner's linkage project whose researcher,
Mallory, takes a record-level extract and is then suspended for a bulk one; and a project in
differential-privacy mode. Then two more:

- the demo researcher's study project (:data:`STUDY_PROJECT`), granted every field the
  how-tos read (docs/how-to/run-a-study.md, analyse-in-the-enclave.md, run-a-gwas.md,
  run-a-job.md) and a genotype grant, which nothing in the demo touches: a newcomer follows
  the how-tos there, with the researcher's ration of answers all but whole;
- the custodian's red team (:data:`RED_TEAM`), a researcher at the custodian's own
  institution with a project of its own (:data:`RED_TEAM_PROJECT`), who runs the tour's
  attacks on the output check and the job that tries the network, so that what they spend
  (answers, alerts) is charged to nobody a newcomer signs in as.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from strongroom.access import institutions, people, projects, totp
from strongroom.access.auth import verify_credentials
from strongroom.access.bootstrap import bootstrap
from strongroom.access.context import AccessContext, Principal, Via
from strongroom.access.roles import Role
from strongroom.access.states import Vetting

LOCAL = ["127.0.0.0/8", "::1/128"]
DEMO_SOURCE = "127.0.0.2"  # where the demo's own people act from (inside LOCAL)


@dataclass(frozen=True)
class DemoLogin:
    """A demo person's sign-in, shown once when the demo is made."""

    email: str
    name: str
    institution: str
    roles: list[str]
    password: str
    totp_secret: str


@dataclass(frozen=True)
class DemoWorld:
    logins: list[DemoLogin]
    projects: list[tuple[str, str]]  # (id, title)

    def login(self, email: str) -> DemoLogin:
        return next(p for p in self.logins if p.email == email)


def sign_in(ctx: AccessContext, login: DemoLogin) -> Principal:
    """Sign a demo person in as the console does, leaving the console free for the next one.

    A code's time step is good once, so the demo uses the previous step's code (still inside
    the drift window) and leaves the current one to the person, or a browser test, signing in
    next. Sign-ins are rate-limited per source address, so the demo acts from its own
    loopback address, not the browser's 127.0.0.1.
    """
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=totp.STEP_SECONDS)
    return verify_credentials(ctx, login.email, login.password,
                              totp.code_at(login.totp_secret, earlier), DEMO_SOURCE,
                              Via.SESSION)


INSTITUTIONS = [
    # name, country, jurisdiction, networks
    ("Northbridge University", "GB", "UK GDPR", ["198.51.100.0/24", *LOCAL]),
    ("Institut Lumière de Santé", "FR", "EU GDPR", ["192.0.2.0/24", *LOCAL]),
    ("Eastgate Health Analytics Ltd", "GB", "UK GDPR", ["203.0.113.0/24", *LOCAL]),
]
STAFF = [
    # email, name, roles (the custodian's own people)
    ("grace.admin@custodian.example", "Grace Hopper-Admin", [Role.CUSTODIAN_ADMIN]),
    ("access@custodian.example", "Ada Committee", [Role.ACCESS_COMMITTEE]),
    ("checker@custodian.example", "Olu Checker", [Role.OUTPUT_CHECKER]),
    # a second checker: a review needs two different ones (Kofi has started one, Olu ends it)
    ("kofi.checker@custodian.example", "Kofi Mensah", [Role.OUTPUT_CHECKER]),
    ("security@custodian.example", "Sam Watch", [Role.SECURITY_ANALYST]),
    ("auditor@custodian.example", "Aud Itor", [Role.AUDITOR]),
]
COMMITTEE = "access@custodian.example"  # grants the first project its genotypes
RESEARCHERS = [
    # email, name, institution index
    ("priya@northbridge.example", "Priya Raman", 0),
    ("tom@northbridge.example", "Tom Okafor", 0),
    ("camille@lumiere.example", "Camille Bernard", 1),
    ("mallory@eastgate.example", "Mallory Vance", 2),  # the story's suspended researcher
]
# the custodian's red team: a researcher at the custodian's own institution, created after the
# researchers (so that the demo's first researcher, whom the console's tests sign in as, is
# still the first of that role)
RED_TEAM = ("red.team@custodian.example", "Rowan Reyes (red team)")
# every field the researchers' how-tos read: run-a-study.md (31, 34, 53, 189, 2443, 20116,
# 21001, 40000, 40001), analyse-in-the-enclave.md (31, 34, 21001, 41270/41280: diagnoses),
# run-a-gwas.md (31, 34, 21001, 4080, 2443), run-a-job.md (as run-a-study's)
HOW_TO_FIELDS = [31, 34, 53, 189, 2443, 4080, 20116, 21001, 21003, 40000, 40001, 41270, 41280]
ATTACK_FIELDS = [31, 34, 20116, 21001, 4080]  # the tour's base definition (demo/enclave.py)
LINKAGE_FIELDS = [31, 34, 48, 50, 4079, 4080, 21001, 21002, 30000, 30020, 30690, 30700, 30710,
                  30740, 30750, 30760, 30780, 30870]
PROJECTS = [
    # title, purpose, lead index, member indexes, fields
    ("Blood pressure and incident cardiovascular disease",
     "Estimate how baseline systolic and diastolic blood pressure relate to later hospital "
     "diagnoses of cardiovascular disease, by sex, age and ethnic background.",
     0, [1], [31, 34, 21003, 21000, 4079, 4080, 21001, 20116, 41270, 41280, 40000]),
    ("Deprivation, HbA1c and diabetes",
     "Describe how glycated haemoglobin and diagnosed diabetes vary with Townsend "
     "deprivation across assessment centres.",
     2, [], [31, 34, 54, 189, 2443, 30750, 30740, 21001]),
    # the story's: record-level export (measurements carry the extract's fingerprints)
    ("Cardiometabolic biomarkers for registry linkage",
     "Link baseline biomarkers and blood pressure to a regional cardiac registry to validate "
     "a commercial risk score; record-level export approved by the access committee.",
     3, [], LINKAGE_FIELDS),
    # the story's: differentially private questions only, on the fields
    # query-with-differential-privacy.md asks of (BMI, and the diagnoses' ICD-10 chapters)
    ("Sleep, adiposity and blood pressure (differential privacy)",
     "Describe body mass index and blood pressure across the cohort with differentially "
     "private counts and means, without exact analyses.",
     0, [1], [31, 34, 21001, 4080, 41270, 41280]),
    # the demo researcher's study: the how-tos' fields, untouched by the demo
    ("Smoking, diabetes and survival (follow the how-tos here)",
     "Describe smoking, diabetes and mortality by sex and deprivation: table 1, a logistic "
     "model of diabetes, survival and competing risks by smoking status, a GWAS of BMI.",
     0, [], HOW_TO_FIELDS),
    # the red team's: the tour's attacks on the output check
    ("Red team: attacks on the output check",
     "The custodian's own red team tries, as an approved researcher could, to read single "
     "participants' values through the output check and the job sandbox.",
     4, [], ATTACK_FIELDS),
]
MAIN_PROJECTS = 2  # the first two: the console's tests work in them; the story never pauses them
STUDY_PROJECT = 4  # index in PROJECTS: the demo researcher's how-to project
RED_TEAM_PROJECT = 5  # index in PROJECTS: the red team's


def populate(ctx: AccessContext) -> DemoWorld:
    today = ctx.clock().date()
    logins: list[DemoLogin] = []

    def remember(new: people.NewPerson, institution: str) -> None:
        assert new.password is not None
        logins.append(DemoLogin(new.person.email, new.person.name, institution,
                                [r.value for r in new.roles], new.password, new.totp_secret))

    first = bootstrap(ctx, institution="Strongroom Custodian (demo)", country="GB",
                      jurisdiction="UK GDPR", networks=LOCAL,
                      email="ada.admin@custodian.example", name="Ada Lovelace-Admin")
    remember(first, "Strongroom Custodian (demo)")
    home = first.person.institution_id
    for email, name, roles in STAFF:
        new = people.create(ctx, None, institution_id=home, email=email, name=name,
                            roles=[r.value for r in roles], vetting=Vetting.APPROVED)
        _train(ctx, new.person.id, today)
        remember(new, "Strongroom Custodian (demo)")
    partner_ids = []
    for name, country, jurisdiction, networks in INSTITUTIONS:
        partner_ids.append(institutions.create(ctx, None, name=name, country=country,
                                               jurisdiction=jurisdiction,
                                               networks=networks).id)
    researcher_ids = []
    for email, name, where in RESEARCHERS:
        new = people.create(ctx, None, institution_id=partner_ids[where], email=email,
                            name=name, roles=[Role.RESEARCHER.value], vetting=Vetting.APPROVED)
        _train(ctx, new.person.id, today)
        researcher_ids.append(new.person.id)
        remember(new, INSTITUTIONS[where][0])
    red = people.create(ctx, None, institution_id=home, email=RED_TEAM[0], name=RED_TEAM[1],
                        roles=[Role.RESEARCHER.value], vetting=Vetting.APPROVED)
    _train(ctx, red.person.id, today)
    researcher_ids.append(red.person.id)  # index 4: the red team's project's lead
    remember(red, "Strongroom Custodian (demo)")
    made = []
    for title, purpose, lead, members, fields in PROJECTS:
        view = projects.create(ctx, None, title=title, purpose=purpose,
                               lead_id=researcher_ids[lead],
                               members=[researcher_ids[m] for m in members],
                               starts_on=today - dt.timedelta(days=30),
                               expires_on=today + dt.timedelta(days=3 * 365), fields=fields)
        made.append((view.project.id, title))
    return DemoWorld(logins, made)


def _train(ctx: AccessContext, person_id: str, today: dt.date) -> None:
    people.record_training(ctx, None, person_id, course="Safe Researcher Training",
                           completed_on=today - dt.timedelta(days=60),
                           expires_on=today + dt.timedelta(days=305))
