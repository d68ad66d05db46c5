"""The output release workflow as data: complete, sound, and drawn from the one table."""

from __future__ import annotations

import pytest

from strongroom.audit import EventType
from strongroom.errors import Conflict
from strongroom.outputs.states import (
    AWAITING_REVIEW,
    FINAL,
    TRANSITIONS,
    Actor,
    OutputAction,
    OutputStatus,
    advance,
    diagram,
    refusal,
)
from strongroom.outputs.verdicts import Verdict


def test_every_status_has_a_row_and_every_target_is_a_status() -> None:
    assert set(TRANSITIONS) == set(OutputStatus)
    for moves in TRANSITIONS.values():
        for action, options in moves.items():
            assert isinstance(action, OutputAction)
            for move in options:
                assert isinstance(move.target, OutputStatus)
                assert move.events, f"{action} records nothing"


def test_every_status_is_reachable_from_checked() -> None:
    seen, frontier = {OutputStatus.CHECKED}, [OutputStatus.CHECKED]
    while frontier:
        for options in TRANSITIONS[frontier.pop()].values():
            for move in options:
                if move.target not in seen:
                    seen.add(move.target)
                    frontier.append(move.target)
    assert seen == set(OutputStatus)


def test_final_statuses_have_no_exits_and_say_why() -> None:
    terminal = {s for s, moves in TRANSITIONS.items() if not moves}
    assert terminal == set(FINAL)
    assert terminal == {OutputStatus.RELEASED, OutputStatus.REJECTED, OutputStatus.BLOCKED,
                        OutputStatus.WITHDRAWN}
    assert all(len(reason) > 30 for reason in FINAL.values())


@pytest.mark.parametrize("status", list(OutputStatus))
def test_every_status_action_and_verdict_is_allowed_once_or_refused_with_a_reason(
        status: OutputStatus) -> None:
    for action in OutputAction:
        for verdict in Verdict:
            matching = [m for m in TRANSITIONS[status].get(action, ())
                        if m.verdict in (None, verdict)]
            reason = refusal(status, action, verdict, "output out_x")
            assert len(matching) <= 1, f"{status} {action} {verdict}: ambiguous"
            if matching:
                assert reason is None
                assert advance(status, action, verdict) == matching[0]
            else:
                assert reason is not None and status.value in reason and action.value in reason
                with pytest.raises(Conflict) as caught:
                    advance(status, action, verdict, "output out_x")
                assert caught.value.reasons == [reason]


def test_a_request_goes_where_the_verdict_says() -> None:
    def target(verdict: Verdict) -> OutputStatus:
        return advance(OutputStatus.CHECKED, OutputAction.REQUEST, verdict).target

    assert target(Verdict.RELEASE) is OutputStatus.RELEASED
    assert target(Verdict.SUPPRESS) is OutputStatus.RELEASED
    assert target(Verdict.REVIEW) is OutputStatus.UNDER_REVIEW
    assert target(Verdict.BLOCK) is OutputStatus.BLOCKED


def test_review_takes_two_approvals_and_one_rejection() -> None:
    first = advance(OutputStatus.UNDER_REVIEW, OutputAction.APPROVE, Verdict.REVIEW)
    assert first.target is OutputStatus.APPROVED_ONCE and first.by is Actor.CHECKER
    second = advance(first.target, OutputAction.APPROVE, Verdict.REVIEW)
    assert second.target is OutputStatus.RELEASED
    for status in AWAITING_REVIEW:
        assert advance(status, OutputAction.REJECT, Verdict.REVIEW).target \
            is OutputStatus.REJECTED
        withdrawal = advance(status, OutputAction.WITHDRAW, Verdict.REVIEW)
        assert withdrawal.target is OutputStatus.WITHDRAWN
        assert withdrawal.by is Actor.REQUESTER


def test_every_move_into_released_records_the_release() -> None:
    for moves in TRANSITIONS.values():
        for options in moves.values():
            for move in options:
                released = EventType.OUTPUT_RELEASED in move.events
                assert released == (move.target is OutputStatus.RELEASED)


def test_refusals_say_what_can_be_done_instead() -> None:
    with pytest.raises(Conflict, match="can approve, reject, withdraw"):
        advance(OutputStatus.UNDER_REVIEW, OutputAction.REQUEST, Verdict.REVIEW)
    with pytest.raises(Conflict, match="cannot be undone"):
        advance(OutputStatus.RELEASED, OutputAction.WITHDRAW, Verdict.RELEASE)
    with pytest.raises(Conflict, match="can request"):
        advance(OutputStatus.CHECKED, OutputAction.APPROVE, Verdict.REVIEW)


def test_the_diagram_draws_every_move_from_the_table() -> None:
    drawn = diagram()
    assert drawn.startswith("stateDiagram-v2\n")
    arrows = [line for line in drawn.splitlines() if "-->" in line]
    moves = sum(len(options) for actions in TRANSITIONS.values()
                for options in actions.values())
    assert len(arrows) == 1 + moves + len(FINAL)  # the start, each move, each end
    assert "    under_review --> approved_once: approve by output checker / output.reviewed" \
        in drawn
    assert "    checked --> blocked: request [block] by requester" in drawn


def test_every_verdict_has_words_for_its_badge() -> None:
    from strongroom.outputs.verdicts import SHORT_WORDS, Verdict, rule_words

    assert set(SHORT_WORDS) == set(Verdict)
    assert all("_" not in words for words in SHORT_WORDS.values())
    assert rule_words("secondary_suppression") == "secondary suppression"
