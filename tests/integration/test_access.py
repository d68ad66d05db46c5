"""Access services on SQLite and PostgreSQL: sign-in, tokens, revocation, pauses, keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sqlalchemy import select, text, update

from strongroom.access import auth, institutions, pauses, people, projects, pseudonyms
from strongroom.access.authorize import authorize
from strongroom.access.keys import open_project_key
from strongroom.access.models import ApiToken, Project, Training
from strongroom.access.permissions import Action
from strongroom.access.roles import Role
from strongroom.audit import EventType
from strongroom.cohort.crypto import DecryptionError, MasterKey, decrypt
from strongroom.errors import (
    Conflict,
    Invalid,
    RateLimited,
    Refused,
    Unauthenticated,
    Unavailable,
)
from tests.access_world import INSIDE, OUTSIDE, PASSWORD, Member, World, build_world


@pytest.fixture
def world(tmp_path: Path, database_url: str | None,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    built = build_world(tmp_path, database_url)
    yield built
    built.platform.close()


def events(world: World, kind: EventType) -> list[dict[str, object]]:
    return [e.details for e in world.platform.audit.entries() if e.type == kind.value]


def test_sign_in_needs_password_and_a_fresh_code(world: World) -> None:
    r = world.researcher
    assert r is not None
    code = world.code(r)
    who = auth.verify_credentials(world.ctx, r.email, PASSWORD, code, INSIDE, auth.Via.SESSION)
    assert who.roles == {Role.RESEARCHER}
    with pytest.raises(Unauthenticated, match="wrong"):  # the same code again: a replay
        auth.verify_credentials(world.ctx, r.email, PASSWORD, code, INSIDE, auth.Via.SESSION)
    assert events(world, EventType.AUTH_MFA_REPLAYED)
    with pytest.raises(Unauthenticated, match="wrong"):
        auth.verify_credentials(world.ctx, r.email, "not the password", world.code(r), INSIDE,
                                auth.Via.SESSION)
    with pytest.raises(Unauthenticated, match="wrong"):  # unknown account: the same answer
        auth.verify_credentials(world.ctx, "nobody@x.test", PASSWORD, "123456", INSIDE,
                                auth.Via.SESSION)


def test_brute_force_locks_the_account_and_an_admin_unlocks_it(world: World) -> None:
    r = world.researcher
    assert r is not None
    for _ in range(5):
        world.clock.advance(seconds=20)  # under the per-minute rate limit
        with pytest.raises(Unauthenticated):
            auth.verify_credentials(world.ctx, r.email, "guess " * 3, "000000", INSIDE,
                                    auth.Via.SESSION)
    with pytest.raises(Unauthenticated, match="locked"):  # the right password no longer works
        world.sign_in(r)
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    people.unlock(world.ctx, admin, r.person_id)
    assert world.sign_in(r).person_id == r.person_id
    assert events(world, EventType.AUTH_LOGIN_LOCKED)


def test_the_lock_lifts_by_itself_after_its_time(world: World) -> None:
    r = world.researcher
    assert r is not None
    for _ in range(5):
        world.clock.advance(seconds=20)
        with pytest.raises(Unauthenticated):
            auth.verify_credentials(world.ctx, r.email, "guess " * 3, "000000", INSIDE,
                                    auth.Via.SESSION)
    world.clock.advance(minutes=16)
    assert world.sign_in(r).person_id == r.person_id


def test_many_attempts_from_one_address_are_rate_limited(world: World) -> None:
    for i in range(10):
        with pytest.raises(Unauthenticated):
            auth.verify_credentials(world.ctx, f"nobody{i}@x.test", PASSWORD, "000000",
                                    "10.9.9.9", auth.Via.SESSION)
    with pytest.raises(RateLimited) as caught:
        auth.verify_credentials(world.ctx, "other@x.test", PASSWORD, "000000", "10.9.9.9",
                                auth.Via.SESSION)
    assert caught.value.retry_after == 60
    world.clock.advance(seconds=61)
    with pytest.raises(Unauthenticated):
        auth.verify_credentials(world.ctx, "other@x.test", PASSWORD, "000000", "10.9.9.9",
                                auth.Via.SESSION)


def test_sessions_end_after_15_minutes_idle_and_12_hours_in_all(world: World) -> None:
    r = world.researcher
    assert r is not None
    new = auth.login(world.ctx, r.email, PASSWORD, world.code(r), INSIDE)
    world.clock.advance(minutes=14)
    auth.resume_session(world.ctx, new.secret, None, False, INSIDE)
    world.clock.advance(minutes=16)
    with pytest.raises(Unauthenticated, match="idle"):
        auth.resume_session(world.ctx, new.secret, None, False, INSIDE)
    new = auth.login(world.ctx, r.email, PASSWORD, world.code(r), INSIDE)
    for _ in range(60):  # active all day: the absolute limit still ends it
        world.clock.advance(minutes=14)
        try:
            auth.resume_session(world.ctx, new.secret, new.csrf, True, INSIDE)
        except Unauthenticated as exc:
            assert "12 hours" in str(exc)
            break
    else:
        pytest.fail("the session outlived 12 hours")
    with pytest.raises(Refused, match="CSRF"):
        fresh = auth.login(world.ctx, r.email, PASSWORD, world.code(r), INSIDE)
        auth.resume_session(world.ctx, fresh.secret, "wrong", True, INSIDE)


def test_tokens_are_scoped_expiring_and_bound_to_the_network(world: World) -> None:
    r = world.researcher
    assert r is not None
    who = world.sign_in(r)
    with pytest.raises(Invalid, match="1 to 30 days"):
        auth.issue_token(world.ctx, who, world.project_id, ["data.analyse"], 31)
    with pytest.raises(Invalid, match="cannot be granted"):
        auth.issue_token(world.ctx, who, world.project_id, ["institution.write"], 5)
    new = auth.issue_token(world.ctx, who, world.project_id, ["data.analyse"], 7)
    with world.platform.store.engine.connect() as con:  # closed: PostgreSQL's teardown drops
        stored = con.execute(text("SELECT digest FROM access_tokens")).scalars().all()
    assert new.secret not in stored and len(stored) == 1
    via_token = auth.resume_token(world.ctx, new.secret, INSIDE)
    assert projects.schema(world.ctx, via_token, world.project_id)
    with pytest.raises(Refused, match=r"only: data\.analyse"):
        projects.read(world.ctx, via_token, world.project_id)
    with pytest.raises(Refused, match="outside"):
        auth.resume_token(world.ctx, new.secret, OUTSIDE)
    world.clock.advance(days=8)
    with pytest.raises(Unauthenticated, match="expired"):
        auth.resume_token(world.ctx, new.secret, INSIDE)
    assert len(events(world, EventType.AUTH_TOKEN_REFUSED)) == 2


def test_a_token_s_last_use_is_kept_to_the_minute_in_a_write_of_its_own(world: World) -> None:
    """Twenty clients on one token must not each write the token's row (on SQLite every write
    queues, and a busy one failed a request): its last use is written at most once a minute."""
    r = world.researcher
    assert r is not None
    new = auth.issue_token(world.ctx, world.sign_in(r), world.project_id, ["data.analyse"], 7)

    def last_used() -> dt.datetime | None:
        with world.ctx.transaction() as db:
            return db.scalar(select(ApiToken.last_used_at).where(ApiToken.id == new.token.id))

    auth.resume_token(world.ctx, new.secret, INSIDE)
    first = last_used()
    assert first is not None
    world.clock.advance(seconds=30)
    auth.resume_token(world.ctx, new.secret, INSIDE)
    assert last_used() == first
    world.clock.advance(seconds=31)
    auth.resume_token(world.ctx, new.secret, INSIDE)
    later = last_used()
    assert later is not None and later > first


def test_revoking_an_institution_cuts_people_sessions_tokens_and_projects(world: World) -> None:
    r = world.researcher
    assert r is not None
    who = world.sign_in(r)
    session = auth.login(world.ctx, r.email, PASSWORD, world.code(r), INSIDE)
    token = auth.issue_token(world.ctx, who, world.project_id, ["data.analyse"], 7)
    pseudonyms.issue(world.ctx, _project(world), np.arange(1_000_000, 1_000_100))
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    institutions.revoke(world.ctx, admin, world.partner_id, "the leak")
    with pytest.raises(Unauthenticated, match="revoked"):
        auth.resume_token(world.ctx, token.secret, INSIDE)
    with pytest.raises(Unauthenticated):
        auth.resume_session(world.ctx, session.secret, None, False, INSIDE)
    with pytest.raises(Refused, match="revoked"):
        world.sign_in(r)
    project = _project(world)
    assert project.status == "revoked" and project.key_sealed is None
    with pytest.raises(Refused, match="destroyed"):
        open_project_key(world.ctx.key, project)
    assert not world.ctx.project_dir(world.project_id).exists()
    with pytest.raises(Conflict, match="revoked"):
        institutions.revoke(world.ctx, admin, world.partner_id, "again")
    (event,) = events(world, EventType.INSTITUTION_REVOKED)
    assert event["projects_revoked"] == [world.project_id] and event["tokens_revoked"] == 1


def _project(world: World) -> Project:
    with world.ctx.transaction() as db:
        project = db.get(Project, world.project_id)
        assert project is not None
        return project


def test_a_closed_projects_key_is_destroyed_and_its_files_unreadable(
        world: World, tmp_path: Path) -> None:
    project = _project(world)
    eids = np.arange(2_000_000, 2_001_000)
    pseudonyms.issue(world.ctx, project, eids)
    sealed_file = world.ctx.project_dir(project.id) / pseudonyms.FILE
    kept = tmp_path / "copy.srenc"
    kept.write_bytes(sealed_file.read_bytes())  # someone kept a copy of the sealed file
    sealed_key = project.key_sealed
    assert sealed_key is not None
    committee = world.sign_in(world.staff[Role.ACCESS_COMMITTEE])
    projects.close(world.ctx, committee, project.id, revoke=False, reason="finished")
    closed = _project(world)
    assert closed.key_sealed is None
    with pytest.raises(Refused, match="destroyed"):
        pseudonyms.load(world.ctx, closed)
    for key in (world.ctx.key, MasterKey.generate()):  # the kept copy: no key opens it
        with pytest.raises(DecryptionError):
            decrypt(kept.read_bytes(), key, f"pseudonyms:{project.id}")
    if world.platform.store.config.database_url is None:  # SQLite: secure_delete zeroes it
        world.platform.store.engine.dispose()
        db_bytes = b"".join(p.read_bytes() for p in world.platform.store.root.glob("metadata*"))
        assert sealed_key[-32:] not in db_bytes


def test_pseudonyms_are_stable_within_and_unlinkable_across_projects(world: World) -> None:
    r = world.researcher
    assert r is not None
    other = projects.create(world.ctx, None, title="Second", purpose="A second approved use "
                            "of the same data", lead_id=r.person_id,
                            starts_on=world.clock().date(),
                            expires_on=world.clock().date() + dt.timedelta(days=30)).project
    eids = np.arange(3_000_000, 3_020_000)
    first = _project(world)
    assert pseudonyms.issue(world.ctx, first, eids) == 20_000
    assert pseudonyms.issue(world.ctx, other, eids) == 20_000
    a, b = pseudonyms.load(world.ctx, first), pseudonyms.load(world.ctx, other)
    assert pseudonyms.issue(world.ctx, first, eids[:50]) == 0  # nothing new
    assert pseudonyms.load(world.ctx, first).equals(a)  # stable
    more = np.arange(3_020_000, 3_020_010)
    assert pseudonyms.issue(world.ctx, first, more) == 10
    after = pseudonyms.load(world.ctx, first)
    assert after.height == 20_010
    assert after.filter(pl.col("eid").is_in(eids)).equals(a)  # existing IDs never change
    joined = a.join(b, on="eid", suffix="_b")
    assert (joined["pid"] == joined["pid_b"]).sum() < 5  # same ID only by chance
    assert abs(np.corrcoef(joined["pid"], joined["pid_b"])[0, 1]) < 0.05
    assert abs(np.corrcoef(a["eid"], a["pid"])[0, 1]) < 0.05  # order reveals nothing


def test_expired_training_blocks_data_but_not_reading_ones_account(world: World) -> None:
    r = world.researcher
    assert r is not None
    who = world.sign_in(r)
    assert projects.schema(world.ctx, who, world.project_id)
    with world.ctx.transaction() as db:
        db.execute(update(Training).where(Training.person_id == r.person_id)
                   .values(expires_on=world.clock().date() - dt.timedelta(days=1)))
    with pytest.raises(Refused) as caught:
        projects.schema(world.ctx, who, world.project_id)
    assert any("training expired" in reason for reason in caught.value.reasons)
    assert people.read(world.ctx, who, r.person_id)[0].id == r.person_id
    (refusal,) = events(world, EventType.ACCESS_REFUSED)
    assert refusal["action"] == "data.analyse"


def test_every_reason_is_given_not_only_the_first(world: World) -> None:
    r = world.researcher
    assert r is not None
    who = world.sign_in(r, source=OUTSIDE)
    world.clock.advance(days=400)  # project and training both expired
    with pytest.raises(Refused) as caught:
        projects.schema(world.ctx, who, world.project_id)
    text_ = " ".join(caught.value.reasons)
    for words in ("outside", "training expired", "expired on"):
        assert words in text_


def test_pause_at_each_level_and_the_two_person_lift(world: World) -> None:
    r = world.researcher
    assert r is not None
    researcher = world.sign_in(r)
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    security = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    second = _second_admin(world, admin)
    targets = {"platform": None, "institution": world.partner_id,
               "project": world.project_id, "person": r.person_id}
    for level, target in targets.items():
        pause = pauses.set_pause(world.ctx, security, level, target, f"drill: {level}")
        with pytest.raises(Refused, match="paused"):
            projects.schema(world.ctx, researcher, world.project_id)
        if level in ("platform", "institution"):
            with pytest.raises(Refused, match="custodian admin"):
                pauses.lift(world.ctx, security, pause.pause.id)  # security may not lift
            assert pauses.lift(world.ctx, admin, pause.pause.id).state == "lift-requested"
            with pytest.raises(Refused, match="paused"):  # still paused after one admin
                projects.schema(world.ctx, researcher, world.project_id)
            with pytest.raises(Conflict, match="different custodian admin"):
                pauses.lift(world.ctx, admin, pause.pause.id)
            assert pauses.lift(world.ctx, second, pause.pause.id).state == "lifted"
        else:
            assert pauses.lift(world.ctx, admin, pause.pause.id).state == "lifted"
        assert projects.schema(world.ctx, researcher, world.project_id)
    kinds = [e.type for e in world.platform.audit.entries()]
    assert kinds.count(EventType.PAUSE_SET.value) == 4
    assert kinds.count(EventType.PAUSE_LIFTED.value) == 4
    assert kinds.count(EventType.PAUSE_LIFT_REQUESTED.value) == 2


def _second_admin(world: World, first: auth.Principal) -> auth.Principal:
    new = people.create(world.ctx, first, institution_id=world.staff[Role.CUSTODIAN_ADMIN]
                        .institution_id, email="second.admin@custodian.test",
                        name="Second Admin", roles=["custodian-admin"], password=PASSWORD)
    member = Member(new.person.id, new.person.email, new.totp_secret,
                    new.person.institution_id)
    return world.sign_in(member)


def test_pause_fails_closed_when_the_control_state_cannot_be_read(world: World) -> None:
    r = world.researcher
    assert r is not None
    who = world.sign_in(r)
    with world.platform.store.engine.begin() as con:
        con.execute(text("ALTER TABLE access_pauses RENAME TO access_pauses_gone"))
    with pytest.raises(Unavailable, match="nothing runs"):
        projects.schema(world.ctx, who, world.project_id)
    with pytest.raises(Unavailable):
        projects.read(world.ctx, who, world.project_id)


def test_researchers_see_only_their_projects_and_export_needs_the_committee(
        world: World) -> None:
    r, o = world.researcher, world.outsider
    assert r is not None and o is not None
    outsider = world.sign_in(o)
    assert projects.list_visible(world.ctx, outsider) == []
    with pytest.raises(Refused, match="not a member"):
        projects.read(world.ctx, outsider, world.project_id)
    researcher = world.sign_in(r)
    with pytest.raises(Refused, match="export permission"), world.ctx.transaction() as db:
        authorize(world.ctx, db, researcher, Action.DATA_EXPORT, world.project_id)
    projects.request_export(world.ctx, researcher, world.project_id,
                            "Linkage to a registry held by the partner requires rows")
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    with pytest.raises(Refused, match="access committee"):
        projects.decide_export(world.ctx, admin, world.project_id, True)
    committee = world.sign_in(world.staff[Role.ACCESS_COMMITTEE])
    assert projects.decide_export(world.ctx, committee, world.project_id,
                                  True).project.export == "approved"
    with world.ctx.transaction() as db:
        authorize(world.ctx, db, researcher, Action.DATA_EXPORT, world.project_id)


def test_bad_input_is_refused_with_reasons_and_changes_nothing(world: World) -> None:
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    before = world.platform.audit.size()
    with pytest.raises(Invalid) as caught:
        institutions.create(world.ctx, admin, name="", country="gb", jurisdiction="")
    assert len(caught.value.reasons) == 3
    with pytest.raises(Invalid, match="CIDR"):
        institutions.create(world.ctx, admin, name="X", country="GB", jurisdiction="UK GDPR",
                            networks=["10.0.0.1/8"])
    with pytest.raises(Invalid, match="not in the data dictionary"):
        projects.set_fields(world.ctx, admin, world.project_id, [31, 999_999])
    with pytest.raises(Invalid, match="is not a role"):
        people.grant_role(world.ctx, admin, world.staff[Role.AUDITOR].person_id, "god")
    with world.ctx.transaction() as db:
        assert len(db.scalars(select(Project)).all()) == 1
    assert projects.read(world.ctx, admin, world.project_id).fields == [31, 34, 4080, 21001]
    assert world.platform.audit.size() == before  # refusals of bad input change nothing


def test_the_audit_log_holds_no_plain_emails_or_addresses(world: World) -> None:
    r = world.researcher
    assert r is not None
    world.sign_in(r, source="10.77.66.55")
    payloads = " ".join(e.payload for e in world.platform.audit.entries())
    assert "researcher@partner.test" not in payloads and "10.77.66.55" not in payloads
    hashed = world.platform.audit.hash_sensitive("email", "researcher@partner.test")
    assert hashed in payloads


def test_changing_ones_password_ends_other_sessions(world: World) -> None:
    r = world.researcher
    assert r is not None
    here = auth.login(world.ctx, r.email, PASSWORD, world.code(r), INSIDE)
    elsewhere = auth.login(world.ctx, r.email, PASSWORD, world.code(r), INSIDE)
    with pytest.raises(Refused, match="current password is wrong"):
        auth.change_password(world.ctx, here.principal, "not it", "a brand new passphrase")
    with pytest.raises(Invalid, match="12 characters"):
        auth.change_password(world.ctx, here.principal, PASSWORD, "short")
    auth.change_password(world.ctx, here.principal, PASSWORD, "a brand new passphrase")
    auth.resume_session(world.ctx, here.secret, None, False, INSIDE)  # this one goes on
    with pytest.raises(Unauthenticated):
        auth.resume_session(world.ctx, elsewhere.secret, None, False, INSIDE)
    with pytest.raises(Unauthenticated):
        world.sign_in(r)  # the old password no longer works
    assert events(world, EventType.AUTH_PASSWORD_CHANGED)


def test_nothing_runs_once_the_audit_log_cannot_record(world: World) -> None:
    r = world.researcher
    assert r is not None
    who = world.sign_in(r)
    world.platform.audit.close()  # the writer stops, as it would if its database were lost
    with pytest.raises(Unavailable, match="audit log"):
        projects.schema(world.ctx, who, world.project_id)
    with pytest.raises(Unavailable, match="audit log"):
        projects.read(world.ctx, who, world.project_id)


def test_a_genotype_grant_is_given_and_withdrawn_by_the_custodian_with_its_event(
        world: World) -> None:
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    assert projects.read(world.ctx, admin, world.project_id).genotypes is False
    assert projects.set_genotypes(world.ctx, admin, world.project_id, True).genotypes is True
    with pytest.raises(Conflict, match="already holds"):
        projects.set_genotypes(world.ctx, admin, world.project_id, True)
    assert projects.set_genotypes(world.ctx, admin, world.project_id, False).genotypes is False
    kinds = [e.type for e in world.platform.audit.entries() if "genotypes" in e.type]
    assert kinds == ["project.genotypes.granted", "project.genotypes.revoked"]
    assert world.researcher is not None
    researcher = world.sign_in(world.researcher)
    with pytest.raises(Refused):  # only the custodian's side grants genomes
        projects.set_genotypes(world.ctx, researcher, world.project_id, True)
