"""Honest work against the ration of answers (strongroom.outputs.answers): how many of its
outputs are released automatically, and how many answers it spends, counted custodian-side
from the database (outputs the check acted on or that sat near its line, and definitions).

The how-to's study (benchmarks/workbench.py, seven outputs) is run ``--repeats`` times, each
by a researcher of a new institution in a new project, then the 31 honest analyses of the
disclosure benchmark (strongroom.attacks.runner.HONEST) in one more project.

    python benchmarks/answers.py [--participants 100000] [--seed 3] [--repeats 3]

Runs against earlier commits too (``PYTHONPATH=<their src>``): it reads only what every
version has (the outputs' ``acted`` flag and the ``outputs_answers`` rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))
import workbench
from strongroom.access import projects
from strongroom.attacks import runner
from strongroom.attacks.world import AttackWorld
from strongroom.outputs.models import AnswerRow, OutputRow

AUTOMATIC = ("release", "release_with_suppression")


def spent(world: AttackWorld, project_id: str) -> dict[str, int]:
    """The project's outputs, those released automatically, and its answers spent."""
    with world.platform.access.transaction() as db:
        rows = db.scalars(select(OutputRow).where(OutputRow.project_id == project_id)).all()
        others = db.scalar(select(func.count()).select_from(AnswerRow).where(
            AnswerRow.project_id == project_id, AnswerRow.spent.is_(True))) or 0
    automatic = sum(1 for r in rows if r.verdict in AUTOMATIC
                    and not r.report.get("withheld"))
    return {"outputs": len(rows), "automatic": automatic,
            "answers": sum(1 for r in rows if r.acted) + int(others)}


def study(world: AttackWorld) -> dict[str, int]:
    platform = world.platform
    who = world._person("researcher", "researcher", None)
    today = world.clock().date()
    project_id = projects.create(
        platform.access, None, title="Smoking, adiposity and survival",
        purpose="The researcher how-to's study", lead_id=who.person_id, starts_on=today,
        expires_on=today.replace(year=today.year + 1), fields=workbench.FIELDS).project.id
    platform.outputs.define(who, project_id, "study", workbench.STUDY_SQL)
    for _, spec in workbench.STUDY:
        view = platform.outputs.analyse(who, project_id, {**spec, "definition": "study"})
        if view.report.verdict.value in AUTOMATIC:
            platform.outputs.request_release(who, view.output.id)
    return spent(world, project_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strongroom-answers-") as tmp:
        started = time.perf_counter()
        world = AttackWorld.build(Path(tmp), cohort=args.participants, seed=args.seed)
        print(f"platform with {args.participants:,} participants: "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        studies = [study(world) for _ in range(args.repeats)]
        for n, got in enumerate(studies, 1):
            print(f"how-to study {n}: {got}", flush=True)
        before = {r.analysis.name: r for r in runner.honest(world)}
        with world.platform.access.transaction() as db:
            last = db.scalars(select(OutputRow.project_id).order_by(
                OutputRow.created_at.desc()).limit(1)).one()
        honest = spent(world, last)
        print(f"31 honest analyses: {honest}; automatic by the runner: "
              f"{sum(r.automatic for r in before.values())} of {len(before)}", flush=True)
        total = {key: sum(s[key] for s in studies) for key in ("outputs", "automatic")}
        print(json.dumps({
            "study_automatic_rate": round(total["automatic"] / max(1, total["outputs"]), 4),
            "study_answers_max": max(s["answers"] for s in studies),
            "honest_automatic": sum(r.automatic for r in before.values()),
            "honest_outputs": len(before), "honest_answers": honest["answers"]}))
        world.close()


if __name__ == "__main__":
    main()
