"""A world for job tests: a platform with a 3,000-participant cohort, a project with a
dataset definition ``cohort``, and helpers to submit a repository of files and run it
(``pipeline`` and ``archive`` are shared with the benchmark's job attacks)."""

from __future__ import annotations

import json
from pathlib import Path

from strongroom.access.context import Principal
from strongroom.attacks.observables import archive as archive
from strongroom.attacks.observables import pipeline as pipeline
from strongroom.jobs.models import JobRow
from strongroom.jobs.sandbox import Limits
from tests.access_world import World, build_world

FIELDS = [31, 34, 21001, 4080, 20116, 2443]
COHORT = ("SELECT pid, p31 AS sex, p34 AS birth_year, p21001_i0 AS bmi, p4080_i0_a0 AS sbp, "
          "p20116_i0 AS smoking, CASE WHEN p2443_i0 = 1 THEN 1 ELSE 0 END AS diabetes "
          "FROM participants WHERE p21001_i0 IS NOT NULL")
# small enough that a hostile job meets them in seconds; its share of the cores even, as
# the walls are seconds beside a busy test run (the lowest priority, the platform's own:
# tests/integration/test_sandbox_walls.py)
LIMITS = Limits(wall_seconds=60, cpu_seconds=60, memory_bytes=1 << 30, processes=48,
                file_bytes=16 << 20, output_bytes=32 << 20, tmp_bytes=64 << 20, low_priority=False)


def build_jobs_world(root: Path) -> World:
    """Close it with ``world.platform.close()``."""
    world = build_world(root, cohort=3000, fields=FIELDS)
    world.platform.jobs.limits = LIMITS
    world.platform.jobs.end_ladder = ()  # no wait for the end's moment (tests/…/test_jobs.py)
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    world.platform.outputs.define(me, world.project_id, "cohort", COHORT)
    return world


def planned(*items: tuple[str, dict[str, object]]) -> str:
    """plans/ACTION.json as `strongroom jobs run --dummy` writes it: (output, analysis)."""
    return json.dumps([{"output": o, "analysis": a} for o, a in items])


def run_job(world: World, files: dict[str, str | bytes], action: str = "study",
            who: Principal | None = None) -> JobRow:
    """Submit and run ``files``; with no plan among them, the plan submitted is empty (the
    script asks for no sdc output)."""
    assert world.researcher is not None
    me = who or world.sign_in(world.researcher)
    jobs = world.platform.jobs
    files = {f"plans/{action}.json": "[]", **files}
    job = jobs.submit(me, world.project_id, archive(files), action)
    return jobs.run(job.id, me)
