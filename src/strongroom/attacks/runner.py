"""Run the catalogue against a real platform: every attack in a fresh project of a fresh
researcher, through the services the API calls; the truth read custodian-side."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.attacks.catalogue import BASE, TOLERANCE, Attack, Obs, Step, Target
from strongroom.attacks.honest import HONEST, Honest
from strongroom.attacks.world import FIELDS, AttackWorld
from strongroom.enclave import service
from strongroom.errors import Conflict, Invalid, NotFound
from strongroom.outputs import requests
from strongroom.outputs.render import Format
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.verdicts import SEVERITY, Verdict

NOTE = "the attack suite asks for every output it can get"  # the researcher's justification
PAIRS = 8  # bit attacks: pairs of targets (one obese, one not) the attacker must tell apart
AUTO = frozenset({Verdict.RELEASE.value, Verdict.SUPPRESS.value})  # no checker needed


@dataclass(frozen=True)
class Outcome:
    attack: Attack
    recovered: bool  # the value (or the bit) was given away
    detail: str  # what was seen: estimate and truth, or the fingerprints


@dataclass(frozen=True)
class Cast:
    """The participants the attacks aim at, chosen custodian-side."""

    value: Target  # the target of value attacks
    obese: list[Target]  # bit attacks: participants with a BMI over 30 …
    lean: list[Target]  # … and without, as many
    nines: list[str]  # SQL each true for exactly k - 1 = 9 participants, no target among them


def cast(world: AttackWorld) -> Cast:
    who, project_id = world.researcher()
    service.define(world.platform.enclave, who, project_id, "base", BASE)
    with world.platform.access.transaction() as db:
        project = db.get(Project, project_id)
        assert project is not None
    _, base = world.platform.enclave.definition(project, "base")
    unique = (base.drop_nulls(["bmi", "sbp", "birth_year", "sex"])
              .filter(pl.col("birth_year").is_between(1946, 1964))
              .filter(pl.len().over("sex", "birth_year", "sbp") == 1)
              .sort("sbp", "birth_year", "sex"))  # not by pid: pids are random
    people = [_target(r) for r in unique.iter_rows(named=True)]
    obese = [t for t in people if t.obese][:PAIRS]
    lean = [t for t in people if not t.obese][:PAIRS]
    value = people[len(people) // 2]
    targets = pl.concat([base.filter(pl.sql_expr(t.condition)) for t in (*obese, *lean)])
    nines: list[str] = []
    for keys in (["sex", "birth_year", "centre"], ["birth_year", "centre"],
                 ["sex", "birth_year", "smoking"]):
        groups = (base.drop_nulls(keys).group_by(keys).len().filter(pl.col("len") == 9)
                  .join(targets.select(keys).unique(), on=keys, how="anti").sort(keys))
        nines += [" AND ".join(f"{k} = {r[k]}" for k in keys)
                  for r in groups.iter_rows(named=True)]
    return Cast(value, obese, lean, nines[:2 * PAIRS])


def _target(row: dict[str, Any]) -> Target:
    return Target(f"(sex = {row['sex']} AND birth_year = {row['birth_year']} AND "
                  f"sbp = {row['sbp']})", int(row["sex"]), int(row["birth_year"]),
                  int(row["sbp"]), float(row["bmi"]), 1.0 if row["smoking"] == 2 else 0.0)


def attempt(world: AttackWorld, attack: Attack, cast: Cast,
            who: Principal | None = None, pairs: int = PAIRS,
            stop_early: bool = False) -> Outcome:
    """Run one attack (against ``pairs`` pairs of targets, for a bit attack) and judge it:
    each time as a new researcher, or all as ``who`` (one person's ration of answers, say).
    ``stop_early``: a bit attack stops at the first observation read wrong, from which it
    cannot tell the targets apart whatever follows; the verdict is the same, the detail
    counts only the pairs seen (the benchmark sees them all, for how many differed)."""
    if attack.bit:
        return _told_apart(world, attack, cast, who, pairs, stop_early)
    target = cast.value
    obs = observe(world, attack, target, cast.nines[0], who)
    estimate = attack.recover(obs, target)
    truth = float(getattr(target, attack.truth))
    hit = (isinstance(estimate, int | float) and math.isfinite(estimate)
           and abs(estimate - truth) <= TOLERANCE)
    return Outcome(attack, hit, f"estimate {estimate!r}; " + _seen(obs))


def spent(world: AttackWorld, cast: Cast) -> Principal | None:
    """A new researcher who has used their whole ration of answers (outputs acted on, see
    strongroom.outputs.answers), or None on a platform that has no ration."""
    who, project = world.researcher()
    service.define(world.platform.enclave, who, project, "base", BASE)
    limit = getattr(world.platform.outputs.rules_for(project), "answers_max_acted", None)
    if limit is None:
        return None
    for n in range(limit):  # a sum over one person: always acted on (suppressed)
        world.platform.outputs.analyse(who, project, {
            "kind": "aggregate_sql", "sql": f"SELECT sum(bmi) AS s FROM base WHERE "
                                           f"{cast.value.condition} AND {n} = {n}"},
            Format("json"))
    return who


def _told_apart(world: AttackWorld, attack: Attack, cast: Cast,
                who: Principal | None, count: int, stop_early: bool = False) -> Outcome:
    """A bit attack succeeds if what is seen tells obese targets from lean ones every time:
    the first pair shows the attacker which observation means which, and every later pair
    must then be read right (a noisy answer, such as the size verdict's, is not). With
    ``stop_early``, the targets are observed in the same order and the first observation
    that breaks this (the first pair alike, or a later target read unlike the first pair's)
    ends the attack: it has failed whatever the rest would show."""
    pairs = list(zip(cast.obese, cast.lean, strict=True))[:count]
    nines = cast.nines
    def nine(j: int) -> str:  # each target its own accomplices; two groups for {G18}
        return f"{nines[j % len(nines)]}\0{nines[(j + len(nines) // 2) % len(nines)]}"

    def read(i: int, j: int) -> Any:  # pair i's obese (j = 0) or lean (j = 1) target
        target = pairs[i][j]
        return attack.recover(observe(world, attack, target, nine(2 * i + j), who), target)

    seen: list[tuple[Any, Any]] = []
    wrong = None  # the pair read wrong, when stopped early
    for i in range(len(pairs)):
        fat = read(i, 0)
        if stop_early and seen and fat != seen[0][0]:
            wrong = i
            break
        thin = read(i, 1)
        seen.append((fat, thin))
        if stop_early and (thin == fat if not i else thin != seen[0][1]):
            wrong = i
            break
    yes, no = seen[0]
    apart = (wrong is None and yes != no
             and all(a == yes and b == no for a, b in seen[1:]))
    differed = f"{sum(a != b for a, b in seen)} of {len(seen)} pairs differed"
    return Outcome(attack, apart, f"told apart in all {len(pairs)} pairs" if apart else
                   f"not told apart ({differed})" if wrong is None else
                   f"not told apart (pair {wrong + 1} of {len(pairs)} read wrong; {differed})")


def _seen(obs: list[Obs]) -> str:
    return "; ".join(f"{o.step}: {o.refused or o.status or o.size_ok}"[:160] for o in obs)


def observe(world: AttackWorld, attack: Attack, target: Target, nine: str,
            who: Principal | None = None) -> list[Obs]:
    """What the researcher (a new one, or ``who``) sees, step by step, in a new project."""
    if who is None:
        who, project_id = world.researcher()
        service.define(world.platform.enclave, who, project_id, "base", BASE)
    else:
        project_id = another_project(world, who)
    fill = _filler(target, nine)
    obs: list[Obs] = []
    for step in attack.steps:
        if step.what == "project":
            project_id = another_project(world, who)
            obs.append(Obs("project", status="created"))
        elif step.what == "define":
            obs.append(_define(world, who, project_id, step, fill))
        else:
            obs.append(_analyse(world, who, project_id, step, fill, obs))
    return obs


def _filler(target: Target, nine: str) -> Callable[[str], str]:
    """``nine``: a condition for k − 1 others, and after a NUL, optionally, another."""
    first, _, second = nine.partition("\0")
    values = {"T": target.condition, "S": str(target.sex), "Y": str(target.birth_year),
              "P": str(target.sbp), "G9": first,
              "G18": f"({first}) OR ({second or first})"}
    return lambda text: text.format(**values)


def _define(world: AttackWorld, who: Principal, project_id: str, step: Step,
            fill: Callable[[str], str]) -> Obs:
    try:
        # the output service's entry, which rations refusals (enclave's at older commits)
        define = getattr(world.platform.outputs, "define", None)
        made = (define(who, project_id, step.name, fill(step.sql)) if define is not None
                else service.define(world.platform.enclave, who, project_id, step.name,
                                    fill(step.sql)))
    except (Invalid, Conflict) as refusal:
        return Obs("define", refused=refusal.reasons[0])
    return Obs("define", size_ok=made.size_ok)


def _analyse(world: AttackWorld, who: Principal, project_id: str, step: Step,
             fill: Callable[[str], str], obs: list[Obs]) -> Obs:
    request = step.request(obs) if callable(step.request) else dict(step.request or {})
    request = {k: fill(v) if isinstance(v, str) and k == "sql" else v
               for k, v in request.items()}
    return ask(world, who, project_id, request)


def ask(world: AttackWorld, who: Principal, project_id: str,
        request: dict[str, Any]) -> Obs:
    """Analyse, ask for release, and read what was released (if anything)."""
    outputs = world.platform.outputs
    try:
        view = outputs.analyse(who, project_id, request, Format("json"))
    except (Invalid, NotFound) as refusal:  # NotFound: a definition refused (the ration)
        return Obs("analyse", refused=refusal.reasons[0])
    verdict = view.report.verdict.value
    worst = [f for f in view.report.findings if f.verdict is view.report.verdict]
    why = f"{worst[0].rule}: {worst[0].reason}" if worst and SEVERITY[worst[0].verdict] > 1 \
        else None
    try:
        asked = outputs.request_release(who, view.output.id, NOTE)
    except (Conflict, Invalid) as clash:
        return Obs("analyse", verdict=verdict, status="refused at release",
                   refused=clash.reasons[0])
    body = None
    if asked.status is OutputStatus.RELEASED:
        body = json.loads(requests.download(world.platform.access, who,
                                            view.output.id).payload)
    return Obs("analyse", verdict=verdict, status=asked.status.value, body=body, why=why)


def another_project(world: AttackWorld, who: Principal) -> str:
    today = world.clock().date()
    made = projects.create(world.platform.access, None, title="A second project",
                           purpose="The same researcher, another project", lead_id=who.person_id,
                           starts_on=today - dt.timedelta(days=10),
                           expires_on=today + dt.timedelta(days=365), fields=FIELDS)
    service.define(world.platform.enclave, who, made.project.id, "base", BASE)
    return str(made.project.id)


# -- honest analyses ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HonestOutcome:
    analysis: Honest
    automatic: bool  # released without a checker (verdict release or suppress)
    detail: str


def honest(world: AttackWorld, analyses: Iterable[Honest] = HONEST) -> list[HonestOutcome]:
    """The safe analyses, in order, in one project, as a researcher would run them."""
    who, project_id = world.researcher()
    service.define(world.platform.enclave, who, project_id, "base", BASE)
    found = []
    for analysis in analyses:
        if analysis.define:
            name, sql = analysis.define
            service.define(world.platform.enclave, who, project_id, name, sql)
        seen = ask(world, who, project_id, analysis.request)
        automatic = seen.status == OutputStatus.RELEASED.value and seen.verdict in AUTO
        found.append(HonestOutcome(analysis, automatic, f"{seen.verdict} / {seen.status}: "
                                   f"{seen.refused or seen.why or ''}"))
    return found
