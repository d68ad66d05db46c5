"""R jobs (issue 58): an action that runs an R script, in the same sandbox as Python's.

The guarantees: **an R script's sdc calls plan exactly what the same calls plan from Python,
and those outputs go through the same check** (the same analyses, verdicts and bytes), and
**every wall a Python job meets, an R job meets**: no network (and the try is an alert), no
file of the platform's or the host's, nothing writable but its output and scratch (R's
library path read-only), its processes and memory held. Each runs as a real job (bubblewrap,
cgroups, real R) against the real platform; the ground truth is read custodian-side.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from strongroom import sdc
from strongroom.enclave import service as enclave_service
from strongroom.errors import Invalid
from strongroom.jobs import local, sandbox
from strongroom.jobs.models import JobRow
from strongroom.jobs.pipeline import parse
from strongroom.jobs.service import DUMMY_FAILED
from strongroom.outputs import files
from strongroom.outputs.models import OutputRow
from strongroom.watch.models import AlertRow
from tests.access_world import World
from tests.jobs_world import LIMITS, build_jobs_world, pipeline, planned, run_job

R_LIBRARY = Path(sandbox.R_LIBRARY)
HOW_TO = Path(__file__).parents[2] / "docs" / "how-to" / "run-an-r-job.md"
NO_R = shutil.which("Rscript") is None

NOTES = "notes: {path: output/notes.txt, kind: text}"
# the planned outputs both languages ask for, each a declared table
TABLES = "\n".join(f"{name}: {{path: output/{name}.csv, kind: table}}"
                   for name in ("smokers", "by_sex", "bmi", "bmi_bins", "model"))

R_STUDY = """
cohort <- sdc$read("cohort")
stopifnot(nrow(cohort) > 0, "bmi" %in% names(cohort))
sdc$frequency("smokers", "cohort", "smoking")
sdc$crosstab("by_sex", "cohort", rows = "smoking", columns = "sex")
sdc$summary("bmi", "cohort", "bmi", statistics = c("n", "mean", "sd"), quantiles = 0.5)
sdc$histogram("bmi_bins", "cohort", "bmi", bins = 8)
sdc$logistic("model", "cohort", diabetes ~ bmi + sbp + factor(sex))
"""
PY_CALLS = """
sdc.frequency("smokers", "cohort", "smoking")
sdc.crosstab("by_sex", "cohort", rows="smoking", columns="sex")
sdc.summary("bmi", "cohort", ["bmi"], statistics=["n", "mean", "sd"], quantiles=[0.5])
sdc.histogram("bmi_bins", "cohort", "bmi", bins=8)
sdc.logistic("model", "cohort", outcome="diabetes", covariates=["bmi", "sbp", "sex"],
             categorical=["sex"])
"""
PY_STUDY = """
from strongroom import sdc
cohort = sdc.read("cohort")
assert len(cohort) > 0 and "bmi" in cohort.columns
""" + PY_CALLS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if sandbox.unavailable() is not None:
        pytest.skip(str(sandbox.unavailable()))
    if NO_R:
        pytest.skip("Rscript is not installed (.ci/run installs it)")
    found = build_jobs_world(tmp_path_factory.mktemp("r-jobs"))
    yield found
    found.platform.close()


def r_job(world: World, script: str, outputs: str = NOTES, plan: str = "[]") -> JobRow:
    return run_job(world, {"project.yaml": pipeline(outputs, run="Rscript analysis/study.R"),
                           "analysis/study.R": script, "plans/study.json": plan})


def python_plan(calls: str, folder: Path) -> list[dict[str, Any]]:
    """The plan the Python library writes for the sdc ``calls`` (run here, on nothing: the
    calls compute nothing)."""
    plan = folder / "plan.jsonl"
    before = os.environ.get(sdc.PLAN_ENV)
    os.environ[sdc.PLAN_ENV] = str(plan)
    try:
        exec(calls, {"sdc": sdc})  # the test's own lines
    finally:
        if before is None:
            os.environ.pop(sdc.PLAN_ENV)
        else:
            os.environ[sdc.PLAN_ENV] = before
    return [json.loads(line) for line in plan.read_text().splitlines()]


def outputs_of(world: World, row: JobRow) -> dict[str, OutputRow]:
    with world.ctx.transaction() as db:
        found = {name: db.get(OutputRow, oid) for name, oid in row.outputs.items()}
        for out in found.values():
            db.expunge(out)
    return found  # type: ignore[return-value]


def notes(world: World, row: JobRow) -> str:
    """The job's own note, custodian-side."""
    project = world.platform.jobs._project(world.project_id)
    out = outputs_of(world, row)["notes"]
    return files.load(world.ctx, project, out.sha256).decode()


def alerts(world: World) -> int:
    with world.ctx.transaction() as db:
        return sum(a.count for a in db.scalars(select(AlertRow)
                                               .where(AlertRow.detector == "jobs.sandbox")))


# -- the command and the library, before anything runs -----------------------------------------


@pytest.mark.parametrize("run", ["Rscript -e 'q()'", "Rscript --vanilla analysis/study.R",
                                 "R -f analysis/study.R", "Rscript analysis/study.r",
                                 "Rscript /etc/R/Rprofile.site", "Rscript ../study.R",
                                 "rscript analysis/study.R"])
def test_only_rscript_and_a_script_of_the_code_is_run(run: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse(pipeline(NOTES, run=run), {"project.yaml", "analysis/study.R"})
    said = " | ".join(refused.value.reasons)
    assert "'Rscript <script>.R'" in said or "runs a .R file" in said or "relative" in said \
        or "'.' or '..'" in said, said


def test_the_r_library_writes_lists_where_the_analyses_take_lists() -> None:
    """The R library's list fields are the analyses' (a list of one must stay a list)."""
    import typing

    from pydantic import BaseModel

    from strongroom.enclave.analyses import spec

    def listed(annotation: Any) -> bool:
        if typing.get_origin(annotation) in (list, tuple, set):
            return True
        return any(listed(a) for a in typing.get_args(annotation))

    lists = {name for model in vars(spec).values()
             if isinstance(model, type) and issubclass(model, BaseModel)
             for name, info in model.model_fields.items() if listed(info.annotation)}
    held = R_LIBRARY.read_text().split("LISTS <- c(", 1)[1].split(")", 1)[0]
    assert {w.strip(' "\n') for w in held.split(",")} == lists


R_CALLS = """
sdc$ols("o1", "cohort", "sbp", c("bmi", "sex"), categorical = "sex")
sdc$ols("o2", "cohort", sbp ~ bmi + factor(sex))
sdc$logistic("l", "cohort", diabetes ~ bmi)
sdc$cox("c1", "cohort", Surv(days, died) ~ bmi + factor(sex), unit = "days")
sdc$cox("c2", "cohort", "days", "died", "bmi")
sdc$kaplan_meier("k1", "cohort", Surv(days, died) ~ smoking, interval = 365.25)
sdc$kaplan_meier("k2", "cohort", Surv(days, died) ~ 1)
sdc$cumulative_incidence("ci", "cohort", "days", "cause", group = "sex")
sdc$correlation("r", "cohort", c("bmi", "sbp"))
sdc$sql("q", "SELECT sex, COUNT(*) AS n FROM cohort GROUP BY sex")
sdc$glm("g", "cohort", diabetes ~ cr(bmi, df = 4) + factor(sex), family = "binomial")
sdc$histogram("h", "cohort", "bmi", edges = c(10, 20.5, 30))
sdc$summary("s", "cohort", c("bmi", "sbp"), quantiles = c(0.1, 0.9))
sdc$crosstab("x", "cohort", "smoking", "sex", margins = TRUE)
sdc$analysis("a", "frequency", definition = "cohort", variable = "sex")
"""
PY_TWINS = """
sdc.ols("o1", "cohort", "sbp", ["bmi", "sex"], categorical=["sex"])
sdc.ols("o2", "cohort", "sbp", ["bmi", "sex"], categorical=["sex"])
sdc.logistic("l", "cohort", outcome="diabetes", covariates=["bmi"])
sdc.cox("c1", "cohort", "days", "died", ["bmi", "sex"], categorical=["sex"], unit="days")
sdc.cox("c2", "cohort", "days", "died", ["bmi"])
sdc.kaplan_meier("k1", "cohort", "days", "died", group="smoking", interval=365.25)
sdc.kaplan_meier("k2", "cohort", "days", "died")
sdc.cumulative_incidence("ci", "cohort", "days", "cause", group="sex")
sdc.correlation("r", "cohort", ["bmi", "sbp"])
sdc.sql("q", "SELECT sex, COUNT(*) AS n FROM cohort GROUP BY sex")
sdc.analysis("g", "glm", definition="cohort", formula="diabetes ~ cr(bmi, df = 4) + C(sex)",
             family="binomial")
sdc.histogram("h", "cohort", "bmi", edges=[10, 20.5, 30])
sdc.summary("s", "cohort", ["bmi", "sbp"], quantiles=[0.1, 0.9])
sdc.crosstab("x", "cohort", "smoking", "sex", margins=True)
sdc.analysis("a", "frequency", definition="cohort", variable="sex")
"""
R_REFUSED = """
said <- function(call) tryCatch({ call; "planned" }, error = function(e) conditionMessage(e))
writeLines(c(said(sdc$frequency("2bad", "cohort", "sex")),
             said(sdc$ols("i", "cohort", sbp ~ bmi:sex)),
             said(sdc$ols("n", "cohort", sbp ~ splines::ns(bmi, 3))),
             said(sdc$ols("z", "cohort", sbp ~ bmi - 1)),
             said(sdc$frequency("v", "cohort", c("sex", "smoking"))),
             said(sdc$read("nowhere"))))
"""


@pytest.mark.skipif(NO_R, reason="Rscript is not installed (.ci/run installs it)")
def test_every_r_call_plans_the_line_its_python_twin_plans(tmp_path: Path) -> None:
    """The R library outside any job (the plan is all it writes): each call's line is the
    same call's from Python, and a call the platform would refuse is refused in the script,
    saying what to do."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "R_PROFILE_USER": str(R_LIBRARY),
           sdc.PLAN_ENV: str(tmp_path / "r.jsonl")}
    (tmp_path / "calls.R").write_text(R_CALLS)
    (tmp_path / "refused.R").write_text(R_REFUSED)
    for script in ("calls.R", "refused.R"):
        done = subprocess.run(["Rscript", script], cwd=tmp_path, env=env, capture_output=True,
                              check=False, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
    plan = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert plan == python_plan(PY_TWINS, tmp_path)
    said = done.stdout.decode().splitlines()
    assert "is not an output name" in said[0]
    assert all("for splines or interactions use sdc$glm" in s for s in said[1:3]), said
    assert "keeps its intercept" in said[3]
    assert "variable must be one value, not 2" in said[4]
    assert "list it under the action's inputs in project.yaml" in said[5]


# -- the same plan, the same check ---------------------------------------------------------------


def test_an_r_jobs_outputs_are_planned_and_checked_as_the_same_python_calls(
        world: World, tmp_path: Path) -> None:
    plan = python_plan(PY_CALLS, tmp_path)
    submitted = planned(*((i["output"], i["analysis"]) for i in plan))
    in_r = r_job(world, R_STUDY, TABLES, submitted)
    # failed had R planned otherwise than Python's plan, on the dummy data or the real
    assert in_r.status == "finished", in_r.reasons
    assert in_r.plan == plan and in_r.walls == []
    in_python = run_job(world, {"project.yaml": pipeline(TABLES), "analysis/study.py": PY_STUDY,
                                "plans/study.json": submitted})
    assert in_python.status == "finished", in_python.reasons
    r_outputs, py_outputs = outputs_of(world, in_r), outputs_of(world, in_python)
    assert list(r_outputs) == list(py_outputs) == ["smokers", "by_sex", "bmi", "bmi_bins",
                                                   "model"]
    for name, out in r_outputs.items():
        twin = py_outputs[name]
        assert (out.kind, out.verdict, out.sha256) == (twin.kind, twin.verdict, twin.sha256), name
        assert out.kind != "job_file"  # made and checked by the platform, not the script


def test_an_r_job_planning_otherwise_on_the_dummy_data_fails_with_the_one_reason(
        world: World) -> None:
    row = r_job(world, 'sdc$frequency("notes", "cohort", "sex")\n'
                'writeLines("x", "output/notes.txt")\n')
    assert row.status == "failed" and row.reasons == [DUMMY_FAILED], row.reasons
    assert "planned otherwise" in row.usage["dummy"]["ended"]


# -- the walls -----------------------------------------------------------------------------------


def test_an_r_socket_or_url_finds_no_network_and_raises_an_alert(world: World) -> None:
    before = alerts(world)
    row = r_job(world, """
        tried <- function(f) tryCatch({ f(); "connected" }, error = function(e) "refused",
                                      warning = function(w) "refused")
        said <- c(tried(function() socketConnection("93.184.216.34", 80, timeout = 3)),
                  tried(function() readLines(url("http://example.com/"))),
                  tried(function() utils::nsl("example.com")),
                  tried(function() download.file("https://example.com/", tempfile(),
                                                 quiet = TRUE)))
        writeLines(said, "output/notes.txt")
        """)
    assert row.status == "finished", row.reasons
    assert "network" in row.walls and alerts(world) > before
    assert set(notes(world, row).split()) == {"refused"}


def test_starting_a_program_from_r_raises_an_alert(world: World) -> None:
    before = alerts(world)
    row = r_job(world, """
        said <- system("id -u", intern = TRUE)
        writeLines(said, "output/notes.txt")
        """)
    assert "program" in row.walls and alerts(world) > before
    assert notes(world, row).strip() != "0"  # never root


def test_r_reads_no_host_or_platform_file_and_writes_only_its_output(world: World) -> None:
    root = world.platform.store.root
    hidden = [str(root.parent / "master.key"), str(root), str(root / "strongroom.db"),
              "/etc/shadow", "/etc/ssh", "/home", "/var/lib/postgresql"]
    writes = ["/job/evil.R", "/job/analysis/study.R", "/job/inputs/cohort.csv",
              "/job-lib/strongroom.R", "/etc/R/Rprofile.site", "/usr/lib/R/site-library/evil",
              "/usr/local/lib/R/site-library/evil", "/evil", "/etc/evil"]
    row = r_job(world, f"""
        seen <- function(p) tryCatch(
          if (dir.exists(p)) paste("listed", length(list.files(p, all.files = TRUE)))
          else if (file.exists(p)) paste("read", length(readBin(p, "raw", 16)))
          else "absent", error = function(e) "refused", warning = function(w) "refused")
        wrote <- function(p) tryCatch({{ cat("x", file = p, append = TRUE); "wrote" }},
                                      error = function(e) "refused",
                                      warning = function(w) "refused")
        libraries <- .libPaths()
        writeLines(c(vapply(c({", ".join(map(repr, hidden))}), seen, ""),
                     vapply(c({", ".join(map(repr, writes))}), wrote, ""),
                     paste("library", libraries, file.access(libraries, 2) == 0, sep = "\t"),
                     paste("own", wrote("output/scratch.txt"), wrote(tempfile()), sep = "\t")),
                   "output/notes.txt")
        """)
    assert row.status == "finished", row.reasons
    said = notes(world, row).splitlines()
    found = dict(zip(hidden, said[:len(hidden)], strict=True))
    assert all(v in ("absent", "refused") for v in found.values()), list(found.values())
    assert found["/etc/shadow"] == "absent"
    assert said[len(hidden):len(hidden) + len(writes)] == ["refused"] * len(writes), said
    libraries = [line.split("\t") for line in said if line.startswith("library\t")]
    assert libraries and all(writable == "FALSE" for _, _, writable in libraries), libraries
    assert said[-1] == "own\twrote\twrote"  # its output folder and its own scratch


def test_an_r_fork_bomb_is_held_and_the_next_job_runs(world: World) -> None:
    row = r_job(world, """
        library(parallel)
        n <- 0
        repeat {
          job <- tryCatch(mcparallel(Sys.sleep(30)), error = function(e) NULL)
          if (is.null(job) || n >= 10000) break
          n <- n + 1
        }
        # no tidy end, as a bomb has none (parallel's would wait ten seconds for children)
        tools::pskill(Sys.getpid(), tools::SIGKILL)
        """)
    assert row.status == "failed" and "processes" in row.walls, (row.walls, row.reasons)
    assert row.reasons == [DUMMY_FAILED], row.reasons  # the wall: the custodian's
    assert "more processes than its limit" in row.usage["dummy"]["ended"]
    after = r_job(world, 'writeLines("fine", "output/notes.txt")\n')
    assert after.status == "finished", after.reasons


def test_r_filling_memory_is_stopped(world: World) -> None:
    row = r_job(world, """
        blocks <- list()
        repeat blocks[[length(blocks) + 1L]] <- numeric(8e6)
        """)
    assert row.status == "failed" and "memory" in row.walls, (row.walls, row.reasons)


def test_a_huge_file_from_r_is_refused_by_the_file_size_limit(world: World) -> None:
    row = r_job(world, """
        out <- file("output/notes.txt", "wb")
        for (i in 1:64) writeBin(raw(1 * 2^20), out)
        close(out)
        """)
    assert row.status == "failed" and "file_size" in row.walls, (row.walls, row.reasons)


def test_an_r_job_past_its_cpu_time_is_stopped_and_named(world: World) -> None:
    world.platform.jobs.limits = replace(LIMITS, cpu_seconds=2)
    try:
        row = r_job(world, "repeat {}\n")
    finally:
        world.platform.jobs.limits = LIMITS
    assert row.status == "failed" and "cpu" in row.walls, (row.walls, row.reasons)
    assert row.reasons == [DUMMY_FAILED], row.reasons  # the wall: the custodian's
    assert "more CPU time than its limit" in row.usage["dummy"]["ended"]


# -- at home: the dummy data, read unchanged ------------------------------------------------


def test_the_how_tos_r_study_runs_at_home_on_the_dummy_data_as_downloaded(
        world: World, tmp_path: Path) -> None:
    """docs/how-to/run-an-r-job.md as written: `jobs dummy` puts the dummy zip's files in
    dummy/ (a CSV per table beside its Parquet); `jobs run --dummy` gives the R script that
    same CSV, byte for byte, writes its figure and its plan."""
    how_to = HOW_TO.read_text()
    project, script = (how_to.split(f"```{tag}\n", 1)[1].split("```", 1)[0]
                       for tag in ("yaml", "r"))
    me = world.sign_in(world.researcher)
    payload = enclave_service.dummy_data(world.platform.enclave, me, world.project_id)
    repo = tmp_path / "repo"
    (repo / "analysis").mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (repo / "dummy").mkdir()
        for name in archive.namelist():
            (repo / "dummy" / name).write_bytes(archive.read(name))
    (repo / "project.yaml").write_text(project + "      notes: {path: output/notes.txt, "
                                       "kind: text}\n")
    (repo / "analysis" / "study.R").write_text(script + """
writeLines(unname(tools::md5sum(sdc$input_path("cohort"))), "output/notes.txt")
""")
    report = local.run(repo, "study", repo / "dummy")
    assert report.ok, report.log
    downloaded = (repo / "dummy" / "cohort.csv").read_bytes()
    assert (repo / "output" / "notes.txt").read_text().strip() == hashlib.md5(
        downloaded).hexdigest()
    assert (repo / "output" / "bmi.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((repo / "plans" / "study.json").read_text()) == report.plan
    assert report.plan == python_plan(PY_CALLS, tmp_path)  # the page's calls are these
