"""The arithmetic of the budgets of answers (strongroom.outputs.answers): the near-miss band,
the fixed periods (so that renewal depends on nothing asked), which limit applies to which
budget, and what a refusal says."""

from __future__ import annotations

import datetime as dt

import pytest

from strongroom.access.context import Settings
from strongroom.outputs import answers
from strongroom.outputs.answers import Budget, Limits, Ration, Scope, Spent, Window
from strongroom.outputs.rules import load_rules
from strongroom.outputs.verdicts import Verdict

UTC = dt.UTC


@pytest.mark.parametrize(("sizes", "k", "near"), [
    ([10], 10, True),  # at the threshold: a draw of margin 0 shows it, any other hides it
    ([18], 10, True),  # the highest line a margin draws is 2k - 1 = 19
    ([19], 10, False),  # never short of any line: nothing the check could decide
    ([9], 10, False),  # below k a shown group is not a near miss (the check hides those)
    ([500, 3000, 12], 10, True),  # any shown group
    ([], 10, False),
    ([1], 1, False),  # no margins when k < 2
    ([5, 6], 5, True),
    ([9], 5, False),
])
def test_the_near_miss_band_is_where_a_margin_could_have_acted(sizes: list[int], k: int,
                                                               near: bool) -> None:
    assert answers.near(sizes, k) is near


def test_a_day_is_the_utc_day_and_a_year_a_fixed_period_from_the_epoch() -> None:
    ration = Ration(20, 24, Verdict.REVIEW)
    now = dt.datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    assert ration.period(Window.DAY, now) == (dt.datetime(2026, 6, 1, tzinfo=UTC),
                                              dt.datetime(2026, 6, 2, tzinfo=UTC))
    start, end = ration.period(Window.YEAR, now)
    assert end - start == dt.timedelta(days=365) and start <= now < end
    assert (start - answers.EPOCH) % dt.timedelta(days=365) == dt.timedelta(0)
    # the same period for every moment in it: renewal says nothing of when answers were spent
    later = dt.datetime(2026, 6, 1, 23, 59, 59, tzinfo=UTC)
    assert ration.period(Window.DAY, later) == ration.period(Window.DAY, now)
    # a project that rations over three days gets fixed three-day periods
    three = Ration(20, 72, Verdict.REVIEW)
    s, e = three.period(Window.DAY, now)
    assert e - s == dt.timedelta(hours=72) and s <= now < e


def test_each_budget_has_its_limit() -> None:
    limits = Limits(person_year=1, project_day=2, project_year=3, institution_day=4,
                    institution_year=5)
    ration = Ration(7, 24, Verdict.REVIEW, limits)
    assert [ration.limit(s, w) for s in Scope for w in Window] == [7, 1, 2, 3, 4, 5]


def test_the_limits_are_the_custodian_s_settings_and_the_shipped_ones_nest() -> None:
    settings = Settings(answers_project_day=11, answers_institution_year=99)
    limits = Limits.of(settings)
    assert (limits.project_day, limits.institution_year) == (11, 99)
    shipped = Ration.strictest([load_rules()], Limits.of(Settings()))
    day = {s: shipped.limit(s, Window.DAY) for s in Scope}
    year = {s: shipped.limit(s, Window.YEAR) for s in Scope}
    # a person's day fits in their project's, which fits in an institution's; likewise years
    assert day[Scope.PERSON] <= day[Scope.PROJECT] <= day[Scope.INSTITUTION]
    assert year[Scope.PERSON] <= year[Scope.PROJECT] <= year[Scope.INSTITUTION]
    assert all(day[s] <= year[s] for s in Scope)
    assert Limits() == Limits.of(Settings())  # one set of defaults


def test_a_ration_takes_the_strictest_of_a_person_s_projects() -> None:
    from strongroom.outputs.rules import tighten

    base = load_rules()
    strict = tighten(base, {"answers": {"max_acted": 5, "window_hours": 48}})
    ration = Ration.strictest([base, strict])
    assert (ration.max_acted, ration.window_hours) == (5, 48)


def test_a_refusal_names_the_spent_budgets_their_renewal_and_whom_to_ask() -> None:
    day = dt.datetime(2026, 6, 2, tzinfo=UTC)
    year = dt.datetime(2026, 12, 31, tzinfo=UTC)
    spent = Spent((Budget(Scope.PROJECT, "prj_1", Window.DAY, 30, 31, day),
                   Budget(Scope.INSTITUTION, "ins_1", Window.YEAR, 1000, 1000, year,
                          "yours")))
    assert spent.renews == year
    text = spent.explain()
    assert "project prj_1: budget of 30 answers a day (0 left; it renews at 2026-06-02 00:00" \
        in text
    assert "institution ins_1 (yours): budget of 1000 answers a year (0 left" in text
    assert "2026-12-31 00:00 UTC" in text and "custodian" in text
    finding = spent.finding(Verdict.REVIEW)
    assert finding.rule == answers.RULE and finding.verdict is Verdict.REVIEW
    assert "'" not in finding.reason  # quoted spans are taken for labels
    assert Budget(Scope.PERSON, "p", Window.DAY, 20, 3, day).left == 17
