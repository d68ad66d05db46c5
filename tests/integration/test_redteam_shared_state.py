"""Red team: state shared across projects that one project's free requests can read.

The guarantee attacked: what a researcher sees of their own requests (moments, status,
reasons, refusals, latency, counts) depends only on their own requests and data they may
see, never on what another project (or institution) is doing or on the answers another
project received; anything not bounded that way is paid from the requester's own ration or
refused.

Two projects: a victim, whose request's outcome or running time hangs on one participant's
value (the truth read custodian-side), and an attacker in ANOTHER project who times or reads
only free requests of their own (nothing spent from their ration, asserted). Leaks found are
plain failing tests: each fails while the leak is there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from strongroom.attacks import runner
from strongroom.attacks.catalogue import BASE
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service
from strongroom.errors import Conflict
from tests.redteam_world import (
    SUBSET,
    answers_spent,
    colleagues,
    dp_project,
    module_cast,
    module_world,
    settings_fixture,
)

pytestmark = pytest.mark.slow

world = module_world()
cast = module_cast()
settings = settings_fixture()




# -- lead 1: the institution's day of answers -------------------------------------------------


def test_another_projects_kept_answer_moves_no_refusal_of_this_one(
        world: AttackWorld, cast: runner.Cast, settings: Callable[..., None]) -> None:
    """The institution's day of answers counts every project it leads. The victim's project
    defines "four accomplices, and the target if obese": five participants (a size verdict a
    margin draws: the answer it reserved stays spent, Outputs.define) when the target is
    obese, four (nothing drawn: given back) when lean. The attacker, a colleague leading
    another project of the same institution, then asks for a definition of their own: refused
    at once ("answers spent", nothing built, nothing spent) when the institution's last
    answer is gone, built (its reservation given back) when not. Guessing "obese" when
    refused must do no better than chance; nothing may be spent from the attacker's ration."""
    # the institution's day of three: a third colleague asks for two answers first. Pooled,
    # both were given, so the victim's kept answer spent the last. Split among its three
    # projects, each has one of its own (the colleague's second is refused), which no other
    # project's answers move
    settings(answers_institution_day=3)
    targets = [*cast.obese, *cast.lean]
    hits, spent = 0, 0
    for k, target in enumerate(targets):
        others = [t for t in targets if t is not target][:4]
        (victim, theirs), (spy, mine) = colleagues(world)
        third, project = world.researcher(institution_id=victim.institution_id)
        for _ in range(2):
            with world.platform.access.transaction() as db:
                world.platform.outputs.rations.reserve(db, third, project, "definition")
        world.platform.outputs.define(
            victim, theirs, "v", "SELECT * FROM base WHERE " + " OR ".join(
                [t.condition for t in others] + [f"({target.condition} AND bmi > 30)"]))
        assert answers_spent(world, theirs) == int(target.obese)  # the truth: kept only if obese
        try:
            world.platform.outputs.define(spy, mine, f"probe{k}", SUBSET)
            guess = False
        except Conflict:
            guess = True
        hits += guess == target.obese
        spent += answers_spent(world, mine)
    assert spent == 0  # the attacker paid nothing
    assert hits <= len(targets) // 2 + 2, (
        f"another project's kept answer read from this project's free definitions: "
        f"{hits} of {len(targets)}")


# -- lead 2: the shared pool of DP engines ----------------------------------------------------



def test_another_projects_dp_release_moves_no_latency_of_a_refusal_here(
        world: AttackWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenDP runs on one pool of two engine processes, shared by every project. The victim
    (another institution's project) asks two DP queries at once; how long their releases
    hold the engines is the truth (held here 0.05 s or 1.5 s, as a release over more rows
    takes longer: its schedule hides it from the victim). The attacker, their ration spent,
    asks a DP query 0.3 s later: refused for the ration (DP_SPENT) before anything is read
    or charged, but only after its plan is built over no rows, on an engine of that pool.
    The refusal's latency must not say whether the victim's releases were long."""
    from strongroom.privacy import dp_runtime

    privacy = world.platform.privacy
    victim, theirs = dp_project(world, "10")
    spy, mine = dp_project(world, "10")
    with world.platform.access.transaction() as db:  # the attacker's ration: spent
        while privacy.rations.reserve(db, spy, mine, "dp") is not None:
            pass
    mine_before = answers_spent(world, mine)
    held = {"seconds": 0.0}
    real = dp_runtime._Worker.call

    def call(self: Any, header: dict[str, Any], payload: bytes, timeout: float
             ) -> dict[str, Any]:
        if header.get("op") == "release":
            time.sleep(held["seconds"])  # the truth: the release's running time
        return real(self, header, payload, timeout)
    monkeypatch.setattr(dp_runtime._Worker, "call", call)

    def ask(epsilon: str) -> None:
        privacy.query(victim, theirs, {"kind": "count", "epsilon": epsilon})

    both = [threading.Thread(target=ask, args=(e,)) for e in ("0.01", "0.02")]
    for thread in both:  # both engines started (their first start takes seconds)
        thread.start()
    for thread in both:
        thread.join(60)
    hits, trials = 0, 12
    for n in range(trials):
        slow = n % 2 == 1
        held["seconds"] = 1.5 if slow else 0.05
        both = [threading.Thread(target=ask, args=("0.01",)) for _ in range(2)]
        for thread in both:
            thread.start()
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(Conflict):  # refused for the ration: nothing read, nothing charged
            privacy.query(spy, mine, {"kind": "count", "epsilon": f"0.0{n + 11}"})
        took = time.monotonic() - started
        for thread in both:
            thread.join(60)
        hits += (took > 0.5) == slow
    with world.platform.access.transaction() as db:
        from strongroom.privacy import budget as dp_budget
        spent = len(dp_budget.spends(db, mine, 100))
    assert spent == 0 and answers_spent(world, mine) == mine_before  # no ε, no answer charged
    assert hits <= trials // 2 + 2, (
        f"another project's DP release time read from this project's refusals: "
        f"{hits} of {trials}")


# -- lead 4: the institution's lock, held through another project's release -------------------


@pytest.mark.parametrize("same", [True, False], ids=["colleague", "other-institution"])
def test_another_projects_release_moves_no_latency_of_a_refusal_here(
        world: AttackWorld, monkeypatch: pytest.MonkeyPatch, same: bool) -> None:
    """A release is differenced once more against the institution's ledger under the
    institution's lock (a no-op write on its row, held to the commit: Outputs.
    _differenced_again), and every ration read takes the same lock first (answers.lock). The
    victim releases an output; how long its differencing takes is the truth (held here 0.05 s
    or 1.5 s, as differencing more cells against a fuller ledger takes longer). The attacker,
    a colleague leading another project, their ration spent, asks for a definition 0.3 s
    later: refused at once for the ration, nothing built or spent. The refusal's latency must
    not say how long the victim's release took."""
    from strongroom.outputs.render import Format

    outputs = world.platform.outputs
    held = {"seconds": 0.0, "slowed": 0}
    real = outputs.ledger.sealed

    def sealed(*args: Any, **kwargs: Any) -> Any:
        held["slowed"] += 1
        time.sleep(held["seconds"])  # the truth: the differencing's and sealing's time
        return real(*args, **kwargs)
    monkeypatch.setattr(outputs.ledger, "sealed", sealed)
    hits, trials = 0, 8
    for n in range(trials):
        slow = n % 2 == 1
        held["seconds"] = 1.5 if slow else 0.05
        (victim, theirs), (spy, mine) = colleagues(world, same)
        with world.platform.access.transaction() as db:  # the attacker's ration: spent
            while outputs.rations.reserve(db, spy, mine, "definition") is not None:
                pass
        before = answers_spent(world, mine)
        view = outputs.analyse(victim, theirs, {"kind": "aggregate_sql", "sql": (
            "SELECT sex, count(*) AS n FROM base GROUP BY sex")}, Format.JSON)
        release = threading.Thread(target=outputs.request_release,
                                   args=(victim, view.output.id))
        release.start()
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(Conflict):  # refused for the ration: nothing built, nothing spent
            outputs.define(spy, mine, "probe", SUBSET)
        took = time.monotonic() - started
        release.join(60)
        assert answers_spent(world, mine) == before
        assert held["slowed"] == n + 1  # the release's work was slowed, every time
        hits += (took > 0.5) == slow
    assert hits <= trials // 2 + 2, (
        f"another project's release (its differencing) timed by this project's refusals: "
        f"{hits} of {trials}")


# -- lead 3: the enclave's views, one cache and one lock for every project --------------------


def test_another_projects_view_build_moves_no_latency_of_a_refusal_here(
        world: AttackWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The enclave kept every project's view in one cache of eight (now each project's own:
    enclave/workspace.py, ProjectCaches). The attacker's DP query that its budget cannot pay
    is refused for free, but only after enclave.tables has read its view from that cache.
    Other institutions' four new projects make their first requests (their views built: the
    truth), or none, between two of the attacker's probes. Shared, their views evicted the
    attacker's, and its next probe, slower by the rebuild (11-16 ms against 7), told which
    (12 of 12). Judged custodian-side, from what the probes built: the attacker's view is
    built once, whatever the others do (the latency that remains, a fraction of a
    millisecond after others' writes, some on a loaded machine, is the shared machine's
    and database's, not a rebuild). Activity only: a view is the project's fields and
    pseudonyms."""
    from strongroom.enclave import workspace
    from strongroom.errors import Conflict as Refusal

    privacy = world.platform.privacy
    spy, mine = dp_project(world, "0.5")
    probe = {"kind": "count", "epsilon": "1"}  # more than the budget holds: refused free
    builds: list[str] = []
    real = workspace.project_view

    def counted(cohort: Any, mapping: Any, *args: Any, **kwargs: Any) -> Any:
        pids = set(mapping["pid"].to_list()) if "pid" in mapping.columns else set()
        builds.append("mine" if pids == _pids(world, mine) else "theirs")
        return real(cohort, mapping, *args, **kwargs)
    monkeypatch.setattr(workspace, "project_view", counted)

    def timed() -> float:
        started = time.monotonic()
        with pytest.raises(Refusal):
            privacy.query(spy, mine, probe)
        return time.monotonic() - started
    timed()
    seen: dict[bool, list[float]] = {True: [], False: []}
    for n in range(12):
        active = n % 2 == 1
        timed()  # the attacker's view cached
        if active:  # the victims' first analyses: their views built (the truth)
            for _ in range(4):
                victim, theirs = world.researcher()
                service.define(world.platform.enclave, victim, theirs, "base", BASE)
        seen[active].append(timed())
    assert builds.count("mine") == 1, (
        f"other projects' view builds evicted this project's view: built "
        f"{builds.count('mine')} times for 25 probes (ms, idle and busy: "
        f"{[round(t * 1000, 1) for t in seen[False]]}, "
        f"{[round(t * 1000, 1) for t in seen[True]]})")
    assert builds.count("theirs") >= 24  # the truth happened: their views were built


def _pids(world: AttackWorld, project: str) -> set[int]:
    """Custodian-side: the project's pseudonyms."""
    enclave = world.platform.enclave
    with world.platform.access.transaction() as db:
        from strongroom.access.models import Project
        row = db.get(Project, project)
        assert row is not None
        db.expunge(row)
    return set(enclave.pseudonym_map(row)["pid"].to_list())


# -- lead 5: the institution's request rate -------------------------------------------------


def test_another_projects_requests_move_no_rate_refusal_here(world: AttackWorld) -> None:
    """The institution's limit of data requests a minute counts every project it leads. The
    custodian sets it to 6. The victim, a colleague leading another project, makes 0 or 3
    data requests (definitions; the truth). The attacker then makes data requests of their
    own until one is refused for the rate (429: nothing run, nothing suspended): how many
    got through, the refusal's words and its Retry-After must not say which."""
    from strongroom.errors import RateLimited

    outputs, watch = world.platform.outputs, world.platform.watch
    admin = world.staff("custodian-admin")
    seen: dict[int, list[tuple[int, str, int]]] = {0: [], 3: []}
    for n in range(8):
        asked = 3 if n % 2 else 0
        (victim, theirs), (spy, mine) = colleagues(world)
        watch.set_limits(admin, "institution", victim.institution_id, {"requests": 6})
        with world.platform.access.transaction() as db:  # the attacker's ration: spent
            while outputs.rations.reserve(db, spy, mine, "definition") is not None:
                pass
        before = answers_spent(world, mine)
        for k in range(asked):
            outputs.define(victim, theirs, f"v{k}", SUBSET)
            world.clock.advance(5)
        through = 0
        while True:
            try:
                outputs.define(spy, mine, f"p{through}", SUBSET)
            except RateLimited as refused:
                seen[asked].append((through, " | ".join(refused.reasons).replace(
                    spy.institution_id, "I").replace(mine, "P").replace(spy.person_id, "Y"),
                                    refused.retry_after))
                break
            except Conflict:  # refused for the ration: nothing built, nothing spent
                pass
            through += 1
        assert answers_spent(world, mine) == before
        world.clock.advance(120)
    hits = (sum(through < 6 for through, _, _ in seen[3])
            + sum(through >= 6 for through, _, _ in seen[0]))
    assert hits <= 6, (
        f"another project's data requests read from this project's rate refusals: {hits} of "
        f"8 (requests let through, reasons, Retry-After: {seen})")
