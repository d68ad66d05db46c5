"""The access rules as data: every role, state, action and transition is declared and sound."""

from __future__ import annotations

from enum import StrEnum

import pytest

from strongroom.access.permissions import RULES, Action, Kind, who_may
from strongroom.access.roles import ROLE_DESCRIPTIONS, Role
from strongroom.access.states import TRANSITIONS, ProjectStatus, Vetting, advance
from strongroom.audit import EventType
from strongroom.errors import Conflict


def test_every_role_is_described() -> None:
    assert set(ROLE_DESCRIPTIONS) == set(Role)
    assert all(len(text) > 30 for text in ROLE_DESCRIPTIONS.values())


def test_every_action_has_a_rule_with_at_least_one_role() -> None:
    assert set(RULES) == set(Action)
    for action, rule in RULES.items():
        assert rule.roles, action
        assert rule.description, action


@pytest.mark.parametrize("table", list(TRANSITIONS), ids=lambda t: t.__name__)
def test_each_state_table_is_complete(table: type[StrEnum]) -> None:
    rows = TRANSITIONS[table]
    assert set(rows) == set(table), f"{table.__name__}: a state has no row"
    for state, moves in rows.items():
        for action, target in moves.items():
            assert isinstance(target, table), f"{state} --{action}--> {target} is not a state"
    # every state but the first is reachable from the first
    start = next(iter(table))
    seen, frontier = {start}, [start]
    while frontier:
        for target in rows[frontier.pop()].values():
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(table), f"{table.__name__}: unreachable {set(table) - seen}"


def test_a_transition_that_does_not_exist_says_what_can_happen() -> None:
    assert advance(Vetting.PENDING, "approve", "vetting") is Vetting.APPROVED
    with pytest.raises(Conflict, match="final"):
        advance(ProjectStatus.ENDED, "revoke", "project p")
    with pytest.raises(Conflict, match="approve, reject"):
        advance(Vetting.PENDING, "lapse", "vetting")


def test_who_may_names_the_roles_needed() -> None:
    assert who_may(Action.INSTITUTION_WRITE, frozenset({Role.CUSTODIAN_ADMIN})) == []
    (reason,) = who_may(Action.INSTITUTION_WRITE, frozenset({Role.RESEARCHER}))
    assert "custodian admin" in reason
    assert who_may(Action.EXPORT_APPROVE, frozenset({Role.CUSTODIAN_ADMIN}))  # committee only


def test_only_the_committee_approves_export_and_only_researchers_touch_data() -> None:
    assert RULES[Action.EXPORT_APPROVE].roles == {Role.ACCESS_COMMITTEE}
    for action, rule in RULES.items():
        if rule.kind is Kind.DATA and action is not Action.OUTPUT_REVIEW:
            assert rule.roles == {Role.RESEARCHER}, action
    # output checkers see outputs (aggregates) under the same conditions as data, never rows
    assert RULES[Action.OUTPUT_REVIEW].roles == {Role.OUTPUT_CHECKER}
    auditor_writes = [a for a, r in RULES.items() if Role.AUDITOR in r.roles
                      and r.kind in (Kind.ADMIN, Kind.DATA) and not a.value.endswith(".read")]
    assert auditor_writes == []


def test_audit_event_types_cover_the_access_changes() -> None:
    values = {e.value for e in EventType}
    for needed in ("institution.revoked", "pause.set", "pause.lifted", "access.refused",
                   "project.key.destroyed", "auth.login.locked", "auth.token.refused"):
        assert needed in values


def test_the_apis_token_actions_are_exactly_those_a_rule_allows_by_token() -> None:
    from strongroom.server.schemas import TokenAction

    assert {a.value for a in TokenAction} == {a.value for a, r in RULES.items() if r.by_token}


def test_the_apis_token_presets_are_the_services_and_carry_only_token_actions() -> None:
    from strongroom.access.presets import PRESETS
    from strongroom.server.schemas import TokenPreset

    assert {p.value for p in TokenPreset} == set(PRESETS)
    for preset in PRESETS.values():
        assert preset.actions and all(RULES[a].by_token for a in preset.actions), preset.name
