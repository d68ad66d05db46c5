"""The alert lifecycle and appeals through the services, on SQLite and PostgreSQL, with the
audit trail they leave; races between two people settled by the database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.access.authorize import authorize
from strongroom.access.context import Principal
from strongroom.access.models import Pause
from strongroom.access.permissions import Action
from strongroom.access.roles import Role
from strongroom.access.states import PauseState
from strongroom.audit import EventType
from strongroom.errors import Conflict, Invalid, NotFound, Refused, ServiceError
from strongroom.watch import alerts, appeals
from strongroom.watch.appeals import AppealStatus
from strongroom.watch.models import AlertRow
from strongroom.watch.raising import raise_alert
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import AlertStatus, Severity
from tests.access_world import World, _add, build_world

# Races are settled by row locks and conditional updates, shown on PostgreSQL (SQLite runs
# one writer at a time, so it has no race to show).


@pytest.fixture
def world(tmp_path: Path, database_url: str | None) -> Iterator[World]:
    built = build_world(tmp_path, database_url)
    yield built
    built.platform.close()


def audited(world: World, kind: EventType) -> list[Any]:
    return [e for e in world.platform.audit.entries() if e.type == kind.value]


def signal(world: World, detector: str = "behaviour.off-hours", *, person: str | None = None,
           suspend: bool = False, dedup: str = "", severity: Severity = Severity.HIGH) -> Signal:
    assert world.researcher is not None
    return Signal(detector=detector, severity=severity,
                  subject=Subject(person or world.researcher.person_id, world.partner_id,
                                  world.project_id),
                  title=f"{detector} on {world.project_id}",
                  reasons=["140 queries between 02:00 and 03:00 UTC; the usual is 0 to 3"],
                  evidence={"queries": 140, "source": "10.1.2.3"}, suspend=suspend, dedup=dedup)


def raise_one(world: World, **options: Any) -> AlertRow:
    with world.ctx.transaction() as db:
        alert, new = raise_alert(db, signal(world, **options), world.clock())
        assert new
    return alert


def second_admin(world: World) -> Principal:
    other = _add(world.ctx, world.staff[Role.CUSTODIAN_ADMIN].institution_id,
                 "admin2@custodian.test", [Role.CUSTODIAN_ADMIN], world.clock().date())
    return world.sign_in(other)


def test_acknowledge_resolve_reopen_with_the_audit_trail(world: World) -> None:
    analyst = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    alert = raise_one(world)
    assert alert.id in [v.alert.id for v in alerts.list_alerts(world.ctx, analyst)]

    acked = alerts.acknowledge(world.ctx, analyst, alert.id, "looking at it")
    assert acked.status is AlertStatus.ACKNOWLEDGED
    assert acked.alert.acknowledged_by == analyst.person_id
    with pytest.raises(Conflict) as again:
        alerts.acknowledge(world.ctx, analyst, alert.id)
    assert any("acknowledged it at" in r for r in again.value.reasons), again.value.reasons

    with pytest.raises(Invalid, match="say why"):
        alerts.resolve(world.ctx, analyst, alert.id, "ok")
    done = alerts.resolve(world.ctx, analyst, alert.id, "explained: a declared large job")
    assert done.status is AlertStatus.RESOLVED
    assert done.alert.resolution == "explained: a declared large job"
    reopened = alerts.reopen(world.ctx, analyst, alert.id, "the job had ended; look again")
    assert reopened.status is AlertStatus.OPEN and reopened.alert.resolution is None
    assert alerts.get(world.ctx, analyst, alert.id).alert.status == "open"

    kinds = [EventType.WATCH_ALERT_ACKNOWLEDGED, EventType.WATCH_ALERT_RESOLVED,
             EventType.WATCH_ALERT_REOPENED]
    trail = [audited(world, k)[0] for k in kinds]
    assert all(e.subject == alert.id and e.actor == analyst.person_id for e in trail)
    assert trail[1].details["reason"] == "explained: a declared large job"
    assert (trail[1].details["from"], trail[1].details["to"]) == ("acknowledged", "resolved")


def test_who_may_read_and_respond(world: World) -> None:
    alert = raise_one(world)
    auditor = world.sign_in(world.staff[Role.AUDITOR])
    assert alerts.get(world.ctx, auditor, alert.id).alert.id == alert.id
    with pytest.raises(Refused) as refused:
        alerts.acknowledge(world.ctx, auditor, alert.id)
    assert any("acknowledge, resolve or reopen" in r for r in refused.value.reasons)
    assert world.researcher is not None
    researcher = world.sign_in(world.researcher)
    with pytest.raises(Refused):
        alerts.list_alerts(world.ctx, researcher)
    assert len(audited(world, EventType.ACCESS_REFUSED)) == 2
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    assert alerts.acknowledge(world.ctx, admin, alert.id).status is AlertStatus.ACKNOWLEDGED
    with pytest.raises(NotFound):
        alerts.get(world.ctx, admin, "alr_missing")


def test_filters_and_paging(world: World) -> None:
    analyst = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    # the platform's own detectors raise alerts too (sign-ins, new accounts): the probes
    # here are told apart by their detector family
    first = raise_one(world, detector="probe.limit", severity=Severity.CRITICAL)
    world.clock.advance(minutes=5)
    second = raise_one(world, detector="probe.drip")
    world.clock.advance(minutes=5)
    third = raise_one(world, detector="probe.night", severity=Severity.LOW)
    alerts.resolve(world.ctx, analyst, third.id, "a known night shift; expected")

    def ids(**filters: Any) -> list[str]:
        paging = {k: filters.pop(k) for k in ("limit", "offset") if k in filters}
        filters.setdefault("detector", "probe.")
        return [v.alert.id for v in alerts.list_alerts(
            world.ctx, analyst, alerts.parse_filter(**filters), **paging)]

    assert ids() == [third.id, second.id, first.id]  # most recently seen first
    assert ids(status="open") == [second.id, first.id]
    assert ids(severity="critical") == [first.id]
    assert ids(detector="probe.limit") == [first.id]
    assert ids(detector="probe.d") == []  # a family ends in "."; otherwise the exact name
    assert ids(since=second.last_at) == [third.id, second.id]
    assert ids(project_id=world.project_id, limit=1, offset=1) == [second.id]
    assert ids(institution_id="ins_elsewhere") == []
    with pytest.raises(Invalid) as bad:
        alerts.parse_filter(status="closed", severity="apocalyptic")
    assert len(bad.value.reasons) == 2 and "open, acknowledged, resolved" in bad.value.reasons[0]
    with pytest.raises(Invalid, match="limit"):
        alerts.list_alerts(world.ctx, analyst, limit=0)


def test_a_reopen_never_makes_two_open_alerts_for_one_finding(world: World) -> None:
    analyst = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    old = raise_one(world, dedup="same")
    alerts.resolve(world.ctx, analyst, old.id, "dealt with by phone call")
    new = raise_one(world, dedup="same")  # the finding again: a new alert
    with pytest.raises(Conflict, match=f"work on {new.id} instead"):
        alerts.reopen(world.ctx, analyst, old.id)


def _together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at the same moment; each result is a value or the error it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except ServiceError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_analysts_at_once_one_wins(world: World, database_url: str | None) -> None:
    analyst = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    for _ in range(3):
        alert_id = raise_one(world, dedup=f"race-{world.clock()}").id
        results = _together([
            lambda a=alert_id: alerts.acknowledge(world.ctx, analyst, a),
            lambda a=alert_id: alerts.resolve(world.ctx, admin, a,
                                              "resolved while another acknowledged")])
        errors = [r for r in results if isinstance(r, ServiceError)]
        final = alerts.get(world.ctx, admin, alert_id)
        # both may succeed one after the other (ack, then resolve), or the ack loses
        assert final.status is AlertStatus.RESOLVED
        assert all(isinstance(e, Conflict) for e in errors)
        assert len(audited(world, EventType.WATCH_ALERT_RESOLVED)) >= 1
        world.clock.advance(minutes=1)
    results = []
    for _ in range(3):
        alert_id = raise_one(world, dedup=f"ack-{world.clock()}").id
        results = _together([lambda a=alert_id: alerts.acknowledge(world.ctx, analyst, a),
                             lambda a=alert_id: alerts.acknowledge(world.ctx, admin, a)])
        wins = [r for r in results if not isinstance(r, ServiceError)]
        assert len(wins) == 1, results
        loser = next(r for r in results if isinstance(r, ServiceError))
        assert isinstance(loser, Conflict) and "acknowledged it at" in str(loser)
        world.clock.advance(minutes=1)


def suspended(world: World, person: str | None = None) -> AlertRow:
    raised = world.platform.watch.respond([signal(world, "drip.coverage", suspend=True,
                                                  person=person)])
    assert raised[0].suspensions, "the responder set no pause"
    return raised[0]


def pause_states(world: World, alert: AlertRow) -> list[PauseState]:
    from strongroom.access.pauses import state_of

    with world.ctx.transaction() as db:
        return [state_of(p) for p in db.query(Pause).filter(Pause.id.in_(alert.suspensions))]


def test_appeal_and_a_lift_by_two_admins(world: World) -> None:
    assert world.researcher is not None and world.outsider is not None
    alert = suspended(world)
    person = world.sign_in(world.researcher)
    with world.ctx.transaction() as db, pytest.raises(Refused, match="paused"):
        authorize(world.ctx, db, person, Action.DATA_ANALYSE, world.project_id)

    with pytest.raises(Refused, match="only the suspended person"):
        appeals.appeal(world.ctx, world.sign_in(world.outsider), alert.id,
                       "I would like this lifted for my colleague please")
    with pytest.raises(Invalid, match="20 to"):
        appeals.appeal(world.ctx, person, alert.id, "please")
    filed = appeals.appeal(world.ctx, person, alert.id,
                           "The queries were one cohort definition run in pages; see ticket 42")
    assert filed.status is AppealStatus.PENDING and filed.by == person.person_id
    with pytest.raises(Conflict, match="appeal"):
        appeals.appeal(world.ctx, person, alert.id, "And once more, with feeling, please")

    first = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    asked = appeals.review(world.ctx, first, alert.id, True, "paging explains the volume")
    assert asked.status is AppealStatus.LIFTING
    assert set(pause_states(world, alert)) == {PauseState.LIFT_REQUESTED}
    with pytest.raises(Conflict, match="different custodian admin"):
        appeals.review(world.ctx, first, alert.id, True, "confirming my own lift request")
    with pytest.raises(Conflict, match="it cannot uphold"):
        appeals.review(world.ctx, first, alert.id, False, "changed my mind about it")

    second = second_admin(world)
    lifted = appeals.review(world.ctx, second, alert.id, True, "agreed: explained by paging")
    assert lifted.status is AppealStatus.LIFTED
    assert lifted.decision is not None and lifted.decision.confirmed_by == second.person_id
    assert set(pause_states(world, alert)) == {PauseState.LIFTED}
    with world.ctx.transaction() as db:  # the person works again
        authorize(world.ctx, db, world.sign_in(world.researcher), Action.DATA_ANALYSE,
                  world.project_id)

    filed_event = audited(world, EventType.WATCH_APPEAL_FILED)[0]
    assert filed_event.details["as"] == "person" and "ticket 42" in filed_event.details["text"]
    decisions = audited(world, EventType.WATCH_APPEAL_LIFTED)
    assert [d.details["confirmed"] for d in decisions] == [False, True]
    assert len(audited(world, EventType.PAUSE_LIFT_REQUESTED)) == len(alert.suspensions)
    assert len(audited(world, EventType.PAUSE_LIFTED)) == len(alert.suspensions)
    view = alerts.get(world.ctx, first, alert.id)
    assert view.appeal.status is AppealStatus.LIFTED


def test_the_project_lead_appeals_and_the_admin_upholds(world: World) -> None:
    assert world.researcher is not None and world.outsider is not None
    alert = suspended(world, person=world.outsider.person_id)
    lead = world.sign_in(world.researcher)
    filed = appeals.appeal(world.ctx, lead, alert.id,
                           "As the lead: this colleague's work was approved in March")
    assert filed.status is AppealStatus.PENDING
    assert audited(world, EventType.WATCH_APPEAL_FILED)[0].details["as"] == "lead"
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    upheld = appeals.review(world.ctx, admin, alert.id, False,
                            "the colleague is not a project member; the pause stays")
    assert upheld.status is AppealStatus.UPHELD
    assert set(pause_states(world, alert)) == {PauseState.ACTIVE}
    with pytest.raises(Conflict, match="final"):
        appeals.review(world.ctx, second_admin(world), alert.id, True, "lift it after all")
    event = audited(world, EventType.WATCH_APPEAL_UPHELD)[0]
    assert event.actor == admin.person_id and "not a project member" in event.details["reason"]
    analyst = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    with pytest.raises(Refused, match="decide an appeal"):
        appeals.review(world.ctx, analyst, alert.id, False, "analysts cannot decide it")


def test_nothing_to_appeal_without_a_suspension(world: World) -> None:
    assert world.researcher is not None
    alert = raise_one(world)
    with pytest.raises(Conflict, match="nothing to appeal"):
        appeals.appeal(world.ctx, world.sign_in(world.researcher), alert.id,
                       "Nothing was suspended but I appeal anyway")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_admins_deciding_at_once_one_decision_stands(world: World,
                                                          database_url: str | None) -> None:
    assert world.researcher is not None
    alert = suspended(world)
    appeals.appeal(world.ctx, world.sign_in(world.researcher), alert.id,
                   "The volume was one paged cohort definition; please lift")
    first = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    second = second_admin(world)
    results = _together([
        lambda: appeals.review(world.ctx, first, alert.id, False, "upheld: policy breach"),
        lambda: appeals.review(world.ctx, second, alert.id, False, "upheld: agreed, breach")])
    assert sum(not isinstance(r, ServiceError) for r in results) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, ServiceError))
    assert len(audited(world, EventType.WATCH_APPEAL_UPHELD)) == 1


def test_an_offset_past_what_a_database_holds_is_refused_not_a_crash(world: World) -> None:
    analyst = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    with pytest.raises(Invalid, match="offset is 0 to"):
        alerts.list_alerts(world.ctx, analyst, offset=2**63)
    assert alerts.list_alerts(world.ctx, analyst, offset=alerts.MAX_OFFSET) == []
