"""Red team 3: state shared across projects after the DP pool's warming and replacement, the
lazy room of approved jobs, and the institution's budgets split into shares plus a whole.

The guarantee attacked: what a researcher sees of their own requests (moments, latency,
status, reasons, refusals, counts) depends only on their own requests and the data they may
see, never on what another project (a colleague's in the same institution, or another
institution's) does or was answered.

Leaks found are plain failing tests: each fails while the leak is there. All three found
(a colleague's kept answers and requests read through the institution's whole, and another
project's release time through the shared release engines) are fixed: the shares keep an
ended project's share and are never rounded up (access/shares.py), and each project's
releases run on engines of their own (privacy/dp_runtime.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.attacks.world import AttackWorld
from strongroom.errors import Conflict
from tests.redteam_world import (
    SUBSET,
    answers_spent,
    colleagues,
    dp_project,
    module_world,
    settings_fixture,
)

pytestmark = pytest.mark.slow

world = module_world()
settings = settings_fixture()


def _spend(world: AttackWorld, who: Principal, project: str, n: int) -> int:
    """``who`` tries to keep ``n`` answers in ``project`` (as outputs the check acted on);
    how many their budgets let them keep."""
    for kept in range(n):
        with world.platform.access.transaction() as db:
            if world.platform.outputs.rations.reserve(db, who, project, "definition") is None:
                return kept
    return n


# -- lead 1: the institution's whole, beside its shares ---------------------------------------


@pytest.mark.parametrize("case", ["a-project-ended", "a-share-at-its-floor"])
def test_a_colleagues_answers_move_no_refusal_within_this_projects_share(
        world: AttackWorld, settings: Callable[..., None], case: str) -> None:
    """An institution's day of answers is split into per-project shares, and its whole is
    checked beside them (outputs/answers.py ``budgets``: the whole's ``used`` counts every
    project's answers). The shares do not add up to the whole once a project has ended
    within the day (its answers stay counted, the shares grow among fewer projects), nor
    at a share's floor of one (more projects than the limit). Then whether this project's
    request, well within its own share, is refused says how many answers a colleague's
    project kept (which hangs on their data: a kept answer is a size verdict drawn).

    a-project-ended: day limit 6, three active projects (shares of 2): a third colleague
    keeps 2, their project ends (shares of 3). The victim keeps 2 or 3 (the truth; both
    within their share), the attacker keeps 1 of their own, then asks for a definition
    (free: built, given back, or refused at once). a-share-at-its-floor: day limit 2, three
    projects (shares of max(1, 0) = 1): the third keeps 1, the victim 0 or 1, the attacker
    asks. The refusal is the ration's ("no new dataset definitions until your ration of
    answers comes back"), drawn by the institution's whole (answers.py ``budgets``, the
    subjects with ``shared_by`` 1, line 245) though the project's share has room. Measured:
    8 of 8 read in each case; the attacker's probes spent nothing (asserted: built and
    given back, or refused at once)."""
    limit, third_keeps, truth, mine_keeps = (
        (6, 2, (2, 3), 1) if case == "a-project-ended" else (2, 1, (0, 1), 0))
    settings(answers_institution_day=limit)
    admin = world.staff("custodian-admin")
    hits, trials, spent = 0, 8, 0
    seen: list[tuple[bool, str]] = []
    for n in range(trials):
        high = n % 2 == 1
        (victim, theirs), (spy, mine) = colleagues(world)
        third, ended = world.researcher(institution_id=victim.institution_id)
        _spend(world, third, ended, third_keeps)
        if case == "a-project-ended":
            projects.close(world.platform.access, admin, ended, revoke=False,
                           reason="the study finished")
        _spend(world, victim, theirs, truth[high])
        assert _spend(world, spy, mine, mine_keeps) == mine_keeps
        before = answers_spent(world, mine)
        try:
            world.platform.outputs.define(spy, mine, f"probe{n}", SUBSET)
            guess, said = False, "built"
        except Conflict as refused:
            guess, said = True, " | ".join(refused.reasons)[:140]
        seen.append((high, said))
        spent += answers_spent(world, mine) - before
        hits += guess == high
    assert spent == 0  # the attacker's probes paid nothing
    assert hits <= trials // 2 + 2, (
        f"a colleague's kept answers read from a free request within this project's own "
        f"share ({case}): {hits} of {trials} ({seen[:2]})")


# -- lead 2: the shared pool of DP release engines, after the charge --------------------------



def test_another_projects_dp_releases_move_no_moment_of_a_dp_answer_here(
        world: AttackWorld, settings: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Releases run on two engine processes shared by every project (dp_runtime.WORKERS),
    taken after the charge (``_Slots.call``: ``self._free.get()``), and a DP answer's step
    is reckoned from the charge (service.py ``_answer_at``: ``took`` includes the wait for a
    free engine). The victim (another institution's project) asks two DP counts at once;
    how long their releases hold both engines is the truth (0.05 s or 3 s: a release over
    more rows, or a slower plan, takes longer; the victim's own schedule hides it from
    them). The attacker asks a DP count of their own 0.3 s later (ε 0.001): its answer's
    moment (the spend's finished_at − charged_at, what any member of the project reads)
    and whether it spent an answer of the ration say whether the victim's releases were
    long. Floor 1 s (analysis_seconds 4). Measured: 8 of 8 read; spent: ε 0.001 a probe,
    and one answer of the attacker's ration each time the victim's releases were long."""
    from strongroom.privacy import dp_runtime

    settings(analysis_seconds=4.0, analysis_ladder=2.0)  # a quarter at 3,000: 1 s
    privacy = world.platform.privacy
    victim, theirs = dp_project(world, "10")
    held = {"seconds": 0.0}
    real = dp_runtime._Worker.call
    victims = {0.01, 0.02}

    def call(self: Any, header: dict[str, Any], payload: bytes, timeout: float
             ) -> dict[str, Any]:
        if header.get("op") == "release" and round(header["epsilon"], 6) in victims:
            time.sleep(held["seconds"])  # the truth: the victim's release's running time
        return real(self, header, payload, timeout)
    monkeypatch.setattr(dp_runtime._Worker, "call", call)

    def ask(epsilon: str) -> None:
        privacy.query(victim, theirs, {"kind": "count", "epsilon": epsilon})

    privacy.warm()
    hits, trials, kept = 0, 8, 0
    seen = []
    spy, mine = dp_project(world, "1")  # one attacker project: one engine started, not 8
    for n in range(trials):
        slow = n % 2 == 1
        held["seconds"] = 3.0 if slow else 0.05
        before = answers_spent(world, mine)
        both = [threading.Thread(target=ask, args=(e,)) for e in ("0.01", "0.02")]
        for thread in both:
            thread.start()
        time.sleep(0.3)
        answer = privacy.query(spy, mine, {"kind": "count", "epsilon": "0.001"})
        for thread in both:
            thread.join(60)
        spend, = (s for s in privacy.budget_of(spy, mine).spends if s.id == answer.spend_id)
        assert spend.finished_at is not None
        shown = (spend.finished_at - spend.charged_at).total_seconds()
        paid = answers_spent(world, mine) - before
        kept += paid
        seen.append((slow, shown, paid))
        hits += (shown > 1.0 or paid > 0) == slow
    assert hits <= trials // 2 + 2, (
        f"another project's DP release time read from this project's DP answer's moment "
        f"(and ration): {hits} of {trials}; (slow, shown, spent): {seen}")


# -- lead 3: a failed release's engine, replaced in the background -------------------------


def test_another_projects_failed_release_moves_no_latency_of_a_dp_refusal_here(
        world: AttackWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that fails a release is retired and a fresh one started in its slot in a
    background thread (dp_runtime ``_Slots._replace``: seconds, importing Polars and
    OpenDP), and every DP query warms the pool before its charge (``EnginePool.warm``). The
    victim (another institution's project) asks a DP count whose release fails (its worker
    killed mid-answer, as its time or memory wall would: the truth) or answers. The
    attacker, their ration spent, asks a DP query 0.1 s later: refused for the ration
    (nothing read or charged) after a warm and a plan. Its latency, judged against the
    median of the trials (a threshold the attacker can calibrate), must not say whether
    the victim's release failed. Held: the slot being replaced is not in the queue warm()
    reads, and the plan engine is apart; only the replacement's CPU is shared."""
    from strongroom.privacy import dp_runtime

    privacy = world.platform.privacy
    victim, theirs = dp_project(world, "10")
    spy, mine = dp_project(world, "10")
    with world.platform.access.transaction() as db:  # the attacker's ration: spent
        while privacy.rations.reserve(db, spy, mine, "dp") is not None:
            pass
    before = answers_spent(world, mine)
    fail = {"now": False}
    real = dp_runtime._Worker.call

    def call(self: Any, header: dict[str, Any], payload: bytes, timeout: float
             ) -> dict[str, Any]:
        if header.get("op") == "release" and fail["now"]:
            self.kill()  # the truth: its release ran into a wall
            self.wait(30)
        return real(self, header, payload, timeout)
    monkeypatch.setattr(dp_runtime._Worker, "call", call)
    privacy.warm()
    took: list[tuple[bool, float]] = []
    trials = 12
    for n in range(trials):
        fail["now"] = n % 2 == 1
        victim_asks = threading.Thread(target=lambda n=n: _quietly(lambda: privacy.query(
            victim, theirs, {"kind": "count", "epsilon": f"0.00{n + 11}"})))
        victim_asks.start()
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(Conflict):  # refused for the ration: nothing read, nothing charged
            privacy.query(spy, mine, {"kind": "count", "epsilon": f"0.0{n + 11}"})
        took.append((fail["now"], time.monotonic() - started))
        victim_asks.join(60)
        fail["now"] = False
        privacy.warm()  # the replacement, if any, done before the next trial
        time.sleep(2.5)
    median = sorted(t for _, t in took)[trials // 2]
    hits = sum((t > median) == failed for failed, t in took)
    with world.platform.access.transaction() as db:
        from strongroom.privacy import budget as dp_budget
        spent = len(dp_budget.spends(db, mine, 100))
    assert spent == 0 and answers_spent(world, mine) == before
    assert hits <= trials // 2 + 3, (
        f"another project's failed DP release read from this project's refusals: "
        f"{hits} of {trials}: {[(f, round(t, 3)) for f, t in took]}")


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # the victim's failure is the truth, not ours
        call()


# -- lead 4: the institution's whole rate of requests, beside its shares ----------------------


@pytest.mark.parametrize("case", ["a-project-ended", "a-share-at-its-floor"])
def test_a_colleagues_requests_move_no_rate_refusal_within_this_projects_share(
        world: AttackWorld, case: str) -> None:
    """The watch limits have the same shape as the answers' budgets (watch/limits.py
    ``breaches``: each institution's share, then its whole, ``within=None``, whose ``used``
    is every project's): an institution's data requests a minute, split into shares, and
    the whole counted over all its projects beside them. A project ended within the
    minute, or shares at their floor of one, leave the shares adding up to more than the
    whole. a-project-ended: 6 a minute, three active projects (shares of 2): a third
    colleague makes 2 requests and their project ends (shares of 3); the victim makes 3 or
    2 (the truth, within their share); the attacker makes 1, then a second (within their
    share of 3): refused with 429 or let through. a-share-at-its-floor: 2 a minute, three
    projects (shares of 1): the third makes 1, the victim 0 or 1, the attacker 1. A 429
    runs nothing and suspends no one; the attacker's requests take no data. Measured: 6 of
    6 read each case."""
    from strongroom.errors import RateLimited

    watch, admin = world.platform.watch, world.staff("custodian-admin")
    limit, third_makes, truth, mine_makes = (
        (6, 2, (2, 3), 1) if case == "a-project-ended" else (2, 1, (0, 1), 0))
    hits, trials, seen = 0, 6, []
    for n in range(trials):
        high = n % 2 == 1
        (victim, theirs), (spy, mine) = colleagues(world)
        third, ended = world.researcher(institution_id=victim.institution_id)
        watch.set_limits(admin, "institution", victim.institution_id, {"requests": limit})
        def tries(who: Principal, project: str, n: int) -> None:
            for _ in range(n):  # as many as their share lets through
                with contextlib.suppress(RateLimited):
                    watch.hold(who, project, "data.analyse")

        tries(third, ended, third_makes)
        if case == "a-project-ended":
            projects.close(world.platform.access, admin, ended, revoke=False,
                           reason="the study finished")
        tries(victim, theirs, truth[high])
        tries(spy, mine, mine_makes)
        try:
            watch.hold(spy, mine, "data.analyse")
            said = "let through"
        except RateLimited as refused:
            said = " | ".join(refused.reasons)[:160]
        seen.append((high, said))
        hits += (said != "let through") == high
        world.clock.advance(120)  # the minute's window: gone
    assert hits <= trials // 2 + 1, (
        f"a colleague's requests read from this project's rate refusals within its own "
        f"share ({case}): {hits} of {trials} ({seen})")


def test_an_institutions_whole_names_no_count_of_other_projects_use() -> None:
    """Where the institution's whole refuses (a project approved, or a member moved, within
    the window), what it counts is every project's use: its refusal names the limit only."""
    from strongroom.watch.limits import Breach
    from strongroom.watch.policy import Meter

    whole = Breach("institution", "ins_x", Meter.REQUESTS, 6, 5, 2, 1, True)
    share = Breach("institution", "ins_x", Meter.REQUESTS, 2, 1, 2, 3, False)
    assert "5" not in whole.sentence() and "over all its projects" in whole.sentence()
    assert "(1 already, 2 more asked)" in share.sentence()
