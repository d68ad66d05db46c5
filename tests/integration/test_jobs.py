"""Honest jobs: what a researcher's study needs works, and every step is on the record."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from sqlalchemy import select

from strongroom.audit.tables import ENTRIES
from strongroom.errors import Invalid
from strongroom.jobs import runner, sandbox
from strongroom.jobs.models import JobRow
from strongroom.jobs.service import STOPPED
from strongroom.outputs.models import OutputRow
from tests.access_world import World
from tests.jobs_world import archive, build_jobs_world, pipeline, planned, run_job

# one action writing one note, reading nothing
NOTES = pipeline("notes: {path: output/notes.txt, kind: text}", inputs="[]")

pytestmark = pytest.mark.skipif(sandbox.unavailable() is not None,
                                reason=str(sandbox.unavailable()))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = build_jobs_world(tmp_path_factory.mktemp("honest-jobs"))
    yield found
    found.platform.close()


def notebook(*cells: str) -> bytes:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nbformat.writes(book).encode()


def events(world: World, kind: str) -> list[dict[str, object]]:
    with world.ctx.engine.connect() as con:
        return [json.loads(p)["details"] for p in con.execute(
            select(ENTRIES.c.payload).where(ENTRIES.c.type == kind)).scalars()]


def test_a_notebook_runs_headless_and_its_cells_go_to_the_checkers(world: World) -> None:
    row = run_job(world, {
        "project.yaml": """
            version: 1
            actions:
              study:
                run: notebook analysis/study.ipynb
                inputs: [cohort]
                outputs:
                  smokers: {path: output/smokers.csv, kind: table}
                  cells: {path: output/study.md, kind: text}
            """,
        "analysis/study.ipynb": notebook(
            "from strongroom import sdc\nframe = sdc.read('cohort')\nprint(len(frame) > 0)",
            "sdc.frequency('smokers', 'cohort', 'smoking')"),
        "plans/study.json": planned(("smokers", {"kind": "frequency", "definition": "cohort",
                                                 "variable": "smoking"}))})
    assert row.status == "finished", row.reasons
    assert row.walls == []  # the kernel it starts is no try at a wall
    with world.ctx.transaction() as db:
        cells = db.get(OutputRow, row.outputs["cells"])
        smokers = db.get(OutputRow, row.outputs["smokers"])
        assert cells is not None and smokers is not None
        assert (cells.kind, cells.verdict, cells.media_type) == ("job_file", "review",
                                                                  "text/markdown")
        assert smokers.kind == "frequency"


def test_an_action_reads_what_the_actions_it_needs_wrote(world: World) -> None:
    row = run_job(world, {
        "project.yaml": """
            version: 1
            actions:
              prepare:
                run: python analysis/prepare.py
                inputs: [cohort]
                outputs:
                  frame: {path: output/frame.parquet, kind: internal}
              study:
                run: python analysis/study.py
                needs: [prepare]
                outputs:
                  notes: {path: output/notes.txt, kind: text}
            """,
        "analysis/prepare.py": """
            from strongroom import sdc
            sdc.read("cohort")[["bmi"]].to_parquet("output/frame.parquet")
            """,
        "analysis/study.py": """
            import pandas as pd
            frame = pd.read_parquet("output/frame.parquet")
            open("output/notes.txt", "w").write("read a frame of one column"
                                                if list(frame.columns) == ["bmi"] else "no")
            """})
    assert row.status == "finished", row.reasons
    assert set(row.outputs) == {"notes"}  # the internal frame never becomes an output


def test_the_audit_log_holds_each_files_and_each_outputs_digest(world: World) -> None:
    files = {"project.yaml": NOTES,
             "analysis/study.py": "open('output/notes.txt', 'w').write('hello')\n"}
    row = run_job(world, files)
    submitted = [e for e in events(world, "job.submitted") if e["code_sha256"] == row.code_sha256]
    assert submitted and submitted[0]["files"]["analysis/study.py"] == hashlib.sha256(
        archive_files(files)["analysis/study.py"]).hexdigest()
    ended = [e for e in events(world, "job.ended") if e["code_sha256"] == row.code_sha256]
    assert ended[0]["status"] == "finished" and ended[0]["outputs"] == row.outputs
    assert ended[0]["output_sha256"] == {"notes": hashlib.sha256(b"hello").hexdigest()}
    with world.ctx.transaction() as db:
        out = db.get(OutputRow, row.outputs["notes"])
        assert out is not None and out.sha256 == hashlib.sha256(b"hello").hexdigest()


def archive_files(files: dict[str, str]) -> dict[str, bytes]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(archive(files))) as z:  # type: ignore[arg-type]
        return {n: z.read(n) for n in z.namelist()}


def test_a_bad_project_yaml_is_refused_before_anything_runs(world: World) -> None:
    with pytest.raises(Invalid) as refused:
        run_job(world, {"project.yaml": """
            version: 1
            actions:
              study:
                run: python analysis/missing.py
                inputs: [nowhere]
                outputs:
                  notes: {path: notes.txt, kind: text}
            """})
    reasons = " | ".join(refused.value.reasons)
    assert "not in the code submitted" in reasons and "outside the output folder" in reasons
    with world.ctx.transaction() as db:
        assert not list(db.scalars(select(JobRow).where(JobRow.action == "nothing")))


def test_a_job_left_running_by_a_stopped_platform_is_ended_on_recovery(world: World) -> None:
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    job = world.platform.jobs.submit(me, world.project_id, archive({
        "plans/study.json": "[]", "project.yaml": NOTES, "analysis/study.py": "pass\n"}),
        "study")
    world.platform.jobs.recover()
    ended = world.platform.jobs.get(me, job.id)
    assert ended.status == "refused" and "submit it again" in ended.reasons[0]


def test_scratch_a_stopped_platform_left_is_destroyed_on_recovery_and_recorded(
        world: World) -> None:
    """Where scratch could not be kept in a vault (a platform that is not root), a killed
    platform leaves its folder: start-up destroys those of its own store's jobs that no live
    process holds, and says so in the audit log; anyone else's it leaves alone."""
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    job = world.platform.jobs.submit(me, world.project_id, archive({
        "plans/study.json": "[]", "project.yaml": NOTES, "analysis/study.py": "pass\n"}),
        "study")
    parent = runner.SCRATCH or Path(tempfile.gettempdir())
    left = Path(tempfile.mkdtemp(prefix=f"strongroom-{job.id}-", dir=parent))
    (left / "real" / "study" / "inputs").mkdir(parents=True)
    (left / "real" / "study" / "inputs" / "cohort.parquet").write_bytes(b"PAR1 rows")
    strangers = Path(tempfile.mkdtemp(prefix="strongroom-job_notthisstore-", dir=parent))
    running = Path(tempfile.mkdtemp(prefix=f"strongroom-{job.id}-", dir=parent))
    held = os.open(running, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a live platform's running job holds it
    try:
        world.platform.jobs.recover()
        assert not left.exists()
        assert strangers.exists() and running.exists()
        destroyed = events(world, "job.scratch_destroyed")
        assert [(e["folder"], e["files"]) for e in destroyed] == [(str(left), 1)]
    finally:
        os.close(held)
        for folder in (strangers, running):
            folder.rmdir()


def test_a_jobs_end_is_seen_when_expected_or_else_spends_an_answer(world: World) -> None:
    """How long the real run took is not on the clock for free: a job done within its
    expected time (``expected_seconds``, else the ladder's first step, here 3 s) ends then,
    whatever it did, and gives its answer back; one past it ends at the ladder's next step,
    which the real run decides, so its answer stays spent and it says so."""
    import time

    from strongroom.jobs.service import LATE
    from strongroom.outputs.models import AnswerRow

    def spent() -> int:
        with world.ctx.transaction() as db:
            return len(list(db.scalars(select(AnswerRow).where(
                AnswerRow.what == "job", AnswerRow.spent.is_(True)))))

    def timed(expected: str, script: str) -> tuple[JobRow, float]:
        yaml = NOTES.replace("    run:", f"    {expected}\n    run:") if expected else NOTES
        started = time.monotonic()
        row = run_job(world, {"project.yaml": yaml, "analysis/study.py": script})
        return row, time.monotonic() - started

    quick = "open('output/notes.txt', 'w').write('quick')"
    slow = "import time\ntime.sleep(2)\n" + quick
    world.platform.jobs.end_ladder = (3.0, 6.0)
    before = spent()
    try:
        plain, took = timed("", quick)
        assert plain.status == "finished" and 3.0 <= took < 5.0 and spent() == before
        declared, took = timed("expected_seconds: 4", quick)
        assert declared.status == "finished" and 4.0 <= took < 6.0 and spent() == before
        assert declared.usage["expected_seconds"] == 4
        late, took = timed("expected_seconds: 1", slow)  # two runs of 2 s each: past 1 s
    finally:
        world.platform.jobs.end_ladder = ()
    assert late.status == "finished" and LATE in late.reasons
    assert took >= 4.0 and spent() == before + 1
    assert LATE not in plain.reasons + declared.reasons


def test_a_jobs_planned_outputs_wait_for_no_other_job(world: World) -> None:
    """Jobs' sandboxed runs go one at a time, each to its end's moment; a second job's
    planned outputs are made at once, whenever the first job's real run ended or its end
    was due. (A red-team pair timed the first job's real run, slept for a participant's
    value, off the second's outputs, spending no answer, when they were made once the
    second job's runs could start at the first's real end; made then at the first's due
    moment, they told another project's late step for free: 18 of 18.)"""
    import threading
    import time

    from strongroom.outputs.models import OutputRow

    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    jobs = world.platform.jobs
    first = jobs.submit(me, world.project_id, archive({
        "project.yaml": NOTES.replace("    run:", "    expected_seconds: 6\n    run:"),
        "analysis/study.py": "open('output/notes.txt', 'w').write('quick')",
        "plans/study.json": "[]"}), "study")
    second = jobs.submit(me, world.project_id, archive({
        "project.yaml": pipeline("smokers: {path: output/smokers.csv, kind: table}"),
        "analysis/study.py": "from strongroom import sdc\n"
                             "sdc.frequency('smokers', 'cohort', 'sex')\n",
        "plans/study.json": planned(("smokers", {"kind": "frequency", "definition": "cohort",
                                                 "variable": "sex"}))}), "study")

    def frequencies() -> int:
        with world.ctx.transaction() as db:
            return len(list(db.scalars(select(OutputRow.id).where(
                OutputRow.kind == "frequency"))))

    before = frequencies()
    jobs.end_ladder = (3.0, 6.0)
    try:
        started = time.monotonic()
        runs = [threading.Thread(target=jobs.run, args=(job.id, me)) for job in (first, second)]
        runs[0].start()
        time.sleep(0.2)  # the second waits behind the first
        runs[1].start()
        appeared = None
        while runs[1].is_alive():
            if appeared is None and frequencies() > before:
                appeared = time.monotonic() - started
            time.sleep(0.05)
        for run in runs:
            run.join()
    finally:
        jobs.end_ladder = ()
    # made before the first job's end was due (6 s; its real run took ~1 s)
    assert appeared is not None and appeared < 6.0, appeared


def test_the_plans_outputs_come_first_and_a_dummy_failure_says_no_exit_status(
        world: World) -> None:
    """The submitted plan is carried out before either run (each output an analysis the
    researcher could ask for by hand); a dummy run that then fails is told by the wall it met
    only, never by the exit status it chose (it could say what an earlier job left behind)."""
    row = run_job(world, {
        "project.yaml": pipeline("smokers: {path: output/smokers.csv, kind: table}"),
        "analysis/study.py": """
            import sys
            from strongroom import sdc
            sdc.frequency("smokers", "cohort", "smoking")
            sys.exit(173)
            """,
        "plans/study.json": planned(("smokers", {"kind": "frequency", "definition": "cohort",
                                                 "variable": "smoking"}))})
    assert row.status == "failed"
    assert any("failed on the dummy data" in r for r in row.reasons), row.reasons
    assert not any("173" in r or "status" in r for r in row.reasons), row.reasons
    assert set(row.outputs) == {"smokers"}  # made first, and it stands
    with world.ctx.transaction() as db:
        smokers = db.get(OutputRow, row.outputs["smokers"])
        assert smokers is not None and smokers.kind == "frequency"
    assert row.usage["checked_seconds"] > 0


def test_a_job_over_the_request_rate_says_so_and_when_to_submit_again(world: World) -> None:
    """The request rate is met at the start of a job's run or part way through its plan: the
    job ends with the rate's own reasons (slow down, when), never 'see the server log'; what
    the rate left unrun is named, not asked for again one refusal at a time."""
    import time

    from strongroom.access.roles import Role
    from strongroom.watch.policy import PROJECT_DEFAULT

    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    watch, jobs = world.platform.watch, world.platform.jobs
    variables = ["sex", "smoking", "diabetes"]
    files = {"project.yaml": pipeline("\n".join(f"v{i}: {{path: output/v{i}.csv, kind: table}}"
                                                for i in range(3))),
             "analysis/study.py": "from strongroom import sdc\n" + "".join(
                 f"sdc.frequency('v{i}', 'cohort', '{v}')\n" for i, v in enumerate(variables)),
             "plans/study.json": planned(*[(f"v{i}", {"kind": "frequency", "definition":
                                                      "cohort", "variable": v})
                                           for i, v in enumerate(variables)])}
    try:
        world.clock.advance(hours=1)
        watch.set_limits(admin, "project", world.project_id, {"requests": 3})
        row = run_job(world, files)  # submitted (1), run (2), v0 (3): v1 is over
        assert row.status == "finished" and list(row.outputs) == ["v0"], row.reasons
        assert any("sdc output 'v1'" in r and "slow down and try again in" in r
                   for r in row.reasons), row.reasons
        assert row.reasons[-1].startswith("sdc outputs 'v2' were not run (the same rate "
                                          "limit)"), row.reasons

        world.clock.advance(hours=1)
        watch.set_limits(admin, "project", world.project_id, {"requests": 1})
        job = jobs.start(me, world.project_id, archive(files), "study")  # the server's way
        deadline = time.monotonic() + 60
        while jobs.get(me, job.id).status in ("queued", "running") \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = jobs.get(me, job.id)
        assert ended.status == "refused", ended.reasons
        assert any("slow down and try again in" in r for r in ended.reasons), ended.reasons
        assert "server log" not in json.dumps(ended.reasons)
    finally:
        watch.set_limits(admin, "project", world.project_id,
                         {"requests": PROJECT_DEFAULT.requests})
        world.clock.advance(hours=1)


def test_two_runs_at_home_of_one_action_at_once_each_have_their_own_group(
        tmp_path: Path) -> None:
    """`jobs run ACTION --dummy` in two terminals at once (or by two people on one machine):
    each run's control group is its own, so neither is refused for the other's (CI met
    'File exists: /sys/fs/cgroup/pids/strongroom-local-study-study')."""
    import threading

    from strongroom.jobs import local

    repo = tmp_path / "repo"
    (repo / "analysis").mkdir(parents=True)
    (repo / "dummy").mkdir()  # the action reads no table
    (repo / "project.yaml").write_text(NOTES)
    (repo / "analysis" / "study.py").write_text(
        "import time\ntime.sleep(1.5)\nopen('output/notes.txt', 'w').write('done')\n")
    reports: list[local.Report] = []

    def run() -> None:
        reports.append(local.run(repo, "study", repo / "dummy"))

    both = [threading.Thread(target=run) for _ in range(2)]
    for t in both:
        t.start()
    for t in both:
        t.join(60)
    assert len(reports) == 2 and all(r.ok for r in reports), [r.log for r in reports]


def test_the_dummy_inputs_are_made_once_and_again_when_a_definition_is_saved_again(
        world: World) -> None:
    """A job's dummy run reads the project's dummy inputs made once (synthesising them cost
    as much CPU as the run), made again once a definition is saved again."""
    from strongroom.enclave import service as enclave_service

    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    jobs = world.platform.jobs
    where = enclave_service.scope(jobs.enclave, me, world.project_id)
    world.platform.outputs.define(me, world.project_id, "lean",
                                  "SELECT pid, p21001_i0 AS bmi FROM participants")
    first = jobs._dummy_tables(where)
    assert jobs._dummy_tables(where) is first
    assert first["lean"].columns == ["pid", "bmi"]
    made = enclave_service.dummy_inputs(jobs.enclave, where, jobs.dummy_participants)
    assert sorted(first) == sorted(made) and all(first[n].equals(made[n]) for n in made)
    world.platform.outputs.define(me, world.project_id, "lean",
                                  "SELECT pid, p34 AS birth_year FROM participants")
    again = jobs._dummy_tables(where)
    assert again is not first and again["lean"].columns == ["pid", "birth_year"]


def test_a_closing_platform_does_not_wait_out_a_jobs_due_moment(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job done early waits for its due moment (its declared time: an hour, or a late step
    of hours); a platform told to stop ends it as stopped at once, instead of waiting that
    out (a red team's close() took the job's whole wait)."""
    jobs = world.platform.jobs
    monkeypatch.setattr(jobs, "end_ladder", (600.0, 1200.0))
    yaml = pipeline("note: {path: output/note.txt, kind: text}").replace(
        "    run:", "    expected_seconds: 600\n    run:")
    closing = threading.Timer(3.0, jobs._closing.set)
    closing.start()
    began = time.monotonic()
    try:
        row = run_job(world, {"project.yaml": yaml,
                              "analysis/study.py": "open('output/note.txt', 'w').write('x')"})
    finally:
        closing.cancel()
        jobs._closing.clear()
    assert row.status == "refused" and row.reasons == [STOPPED], row.reasons
    assert time.monotonic() - began < 120  # not the 600 s it was due at
