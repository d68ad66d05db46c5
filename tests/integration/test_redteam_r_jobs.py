"""Red team, R side (issue 58): what an attacker who read the Python fixes tries next from an R
script or an R Markdown document, against what the researcher sees of the real run.

The guarantees, one sentence each:

- **Failing on purpose from R says nothing**: whichever way an R script's real run fails on the
  target's row (an error carrying the value, an exit status that is the value, a warning made
  an error, ``options(error=)``, ``.Last``, a finaliser, ``q(save = "yes")``, a forked child
  killing its parent, a plan written by hand or through a rebound ``sdc``), the researcher
  reads the one failure, byte for byte the same, and the answer stays spent.
- **A finished R run's side effects say nothing**: messages, warnings, stderr, printed rows,
  ``Sys.setenv``, ``tempdir()`` files, ``saveRDS``/``Rprof``/``sink``/figures under undeclared
  names, as many files as the value, declared files in another order, size and time stamp,
  ``.Last`` and finalisers writing at exit: the same view as a run that did none of it, and
  the answer given back (the real run ended as the dummy run did).
- **An R Markdown document's rendering says nothing but through its checked content**: inline
  ``r`` values, printed rows, ``error = TRUE`` messages, ``results = "asis"``, a figure drawn
  on one side only, ``cache``, ``fig.path`` elsewhere and ``knitr::knit_exit()`` change the
  rendered Markdown (held for two output checkers) and nothing the researcher sees.
- **A document that fails on the real data fails as a script does**: a declared figure not
  drawn, or a chunk's error, is the one failure, the same view.
- **Tries at the walls from R on the real data are the custodian's**: a program started
  (``system``, a knitr ``bash`` chunk) or a socket tried on the target's row only raises the
  custodian's alerts and keeps the answer spent; the researcher's view is that of a plain run.
- **The dummy run's failure is its own**: an R script that fails on the dummy data with one
  exit status or another, having written some of its outputs, reads the same reason, naming
  neither status nor output.
- **The end is seen at the same moment**: an R real run that exits at once or one that sleeps
  into the time wall is seen to end at the job's expected time.
- **Whatever breaks once the real run has started is the one failure**: an error the
  platform raises while it gives the real run its inputs or reads what it left (a refusal
  whose words could carry the data) is told as :data:`REAL_FAILED`, never in its own words.
- **A try through a package's own C code is reported too**: the curl package's fetches reach
  for the network past base R's connections; on the real data alone they are still the
  custodian's try and alert.
- **Known gap (strict xfail)**: a program started from R through ``.Internal(system())``
  bypasses the R monitor (R code rebinding ``system``), so the custodian's alert is not
  raised and the answer is given back; the walls hold, the researcher sees nothing of it.

Each attack is run with the target's value on either side of its line, the ground truth read
custodian-side (the real run's facts, the kept files); one world for the module, real jobs
(bubblewrap, control groups, R, knitr).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from strongroom.attacks.observables import NAMES, OWN, R_SCRIPT, job_view
from strongroom.errors import Invalid, Refused
from strongroom.jobs import sandbox
from strongroom.jobs.models import JobRow
from strongroom.jobs.service import REAL_FAILED
from strongroom.outputs import files
from strongroom.outputs.models import AnswerRow, OutputRow
from strongroom.server.job_schemas import job_out
from strongroom.server.workbench_schemas import output_out
from strongroom.watch.models import AlertRow
from tests.access_world import World
from tests.jobs_world import LIMITS, build_jobs_world, pipeline, run_job

SHOWS = (lambda job: job_out(job).model_dump(mode="json"),
         lambda view: output_out(view).model_dump(mode="json"))
# small, so that every wall is met in a second or two (test_job_shape_channel's)
SHAPE_LIMITS = replace(LIMITS, wall_seconds=3, cpu_seconds=2, memory_bytes=512 << 20,
                       processes=32, file_bytes=2 << 20, output_bytes=4 << 20)


def _no_knitr() -> bool:
    return shutil.which("Rscript") is None or subprocess.run(
        ["Rscript", "-e", "library(knitr)"], capture_output=True, check=False,
        timeout=60).returncode != 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if sandbox.unavailable() is not None:
        pytest.skip(str(sandbox.unavailable()))
    if _no_knitr():
        pytest.skip("R or knitr is not installed (.ci/run installs r-base-core, r-cran-knitr)")
    found = build_jobs_world(tmp_path_factory.mktemp("redteam-r"))
    found.platform.jobs.limits = SHAPE_LIMITS
    yield found
    found.platform.close()


@pytest.fixture(autouse=True)
def whole(world: World) -> Iterator[None]:
    """Each test starts with the ration whole and the module's limits and ladder."""
    with world.ctx.transaction() as db:
        db.execute(delete(AnswerRow))
    world.platform.jobs.limits = SHAPE_LIMITS
    world.platform.jobs.end_ladder = ()
    yield
    world.platform.jobs.limits = SHAPE_LIMITS
    world.platform.jobs.end_ladder = ()


# -- ground truth and the researcher's view -------------------------------------------------------

def target(world: World) -> tuple[str, float]:
    """A real participant and their BMI, read custodian-side."""
    project = world.platform.jobs._project(world.project_id)
    frame = world.platform.enclave.definition(project, "cohort")[1]
    return min((str(p), float(b)) for p, b in zip(frame["pid"].to_list(),
                                                  frame["bmi"].to_list(), strict=True)
               if b is not None)


def seen(world: World, row: JobRow) -> str:
    """The researcher's view of a job as the API gives it (ids, digests and moments aside)."""
    assert world.researcher is not None
    return json.dumps(job_view(world.platform, world.sign_in(world.researcher), row, SHOWS))


def kept(world: World, row: JobRow, name: str) -> str:
    """A job's own file as it was kept, custodian-side."""
    project = world.platform.jobs._project(world.project_id)
    with world.ctx.transaction() as db:
        out = db.get(OutputRow, row.outputs[name])
        assert out is not None
        sha = out.sha256
    return files.load(world.ctx, project, sha).decode(errors="replace")


def spent(world: World) -> int:
    with world.ctx.transaction() as db:
        return len(list(db.scalars(select(AnswerRow).where(AnswerRow.what == "job",
                                                           AnswerRow.spent.is_(True)))))


def alerts(world: World, detector: str) -> int:
    with world.ctx.transaction() as db:
        return sum(a.count for a in db.scalars(select(AlertRow)
                                               .where(AlertRow.detector == detector)))


def facts(row: JobRow) -> dict[str, object]:
    """The real run's facts, the custodian's."""
    real = row.usage["real"]
    return {k: real.get(k) for k in ("problems", "walls", "exit_code", "signal")}


def both_sides(world: World, job: Callable[[str, float], JobRow]
               ) -> tuple[JobRow, JobRow, int, dict[str, int]]:
    """``job(target, line)`` with the target's value over its line, then under it: the two
    rows, the answers spent and the alerts raised by the two."""
    who, bmi = target(world)
    answers = spent(world)
    raised = {d: alerts(world, d) for d in ("jobs.shape", "jobs.sandbox")}
    high, low = job(who, bmi - 1.0), job(who, bmi + 1.0)
    return high, low, spent(world) - answers, {
        d: alerts(world, d) - n for d, n in raised.items()}


# -- R scripts: the branches a real run takes on the target's row only ---------------------------

BRANCHES: dict[str, str] = {
    "plain": "write_all()",
    "quit_value": "write_all()\nquit(save = 'no', status = as.integer(value))",
    "warn2": "options(warn = 2)\nwrite_all()\nwarning(paste('BMI was', value))",
    "last_removes": ("write_all()\n"
                     ".Last <- function() file.remove('output/b1.txt')"),
    "options_error": ("options(error = function() quit(save = 'no', status = 40L + "
                      "as.integer(value) %% 50L))\nwrite_all()\nstop('x')"),
    "rebind_sdc": (
        "sdc <- list(frequency = function(o, d, v) cat(sprintf(paste0(\n"
        "  '{\"analysis\": {\"definition\": \"%s\", \"kind\": \"frequency\", ',\n"
        "  '\"variable\": \"%s\"}, \"output\": \"%s\"}\\n'), d, v, o),\n"
        "  file = Sys.getenv('STRONGROOM_PLAN'), append = TRUE))\n"
        "write_all()\nsdc$frequency('b0', 'cohort', 'sex')"),
    "save_image": "write_all()\nq(save = 'yes')",
    "plan_garbage": ("write_all()\ncat(value, '\\n', file = Sys.getenv('STRONGROOM_PLAN'), "
                     "append = TRUE)"),
    "finalizer_quit": ("write_all()\nreg.finalizer(globalenv(), function(e) quit(save = 'no', "
                       "status = as.integer(value)), onexit = TRUE)"),
    "child_kills": ("write_all()\nparent <- Sys.getpid()\n"
                    "parallel::mcparallel(tools::pskill(parent, tools::SIGKILL))\n"
                    "Sys.sleep(2)"),
    "time": "Sys.sleep(60)",
    # everything a finished run may do besides writing its outputs, none of which may show
    "side_effects": """\
message("BMI was ", value)
warning("BMI was ", value)
cat("BMI was", value, "\\n", file = stderr())
print(head(frame, 20))
Sys.setenv(STRONGROOM_PLAN_COPY = value, R_LIBS_USER = "/tmp")
writeLines(as.character(value), file.path(tempdir(), "value.txt"))
saveRDS(frame, "output/secret.rds")
try(Rprof("output/profile.out"), silent = TRUE)
invisible(sum(sort(runif(1e5))))
try(Rprof(NULL), silent = TRUE)
sink("output/sink.txt"); print(head(frame)); sink()
for (i in seq_len(as.integer(value))) writeLines("x", sprintf("output/extra_%d.txt", i))
png("output/undeclared_%d.png")
for (i in seq_len(as.integer(value) %% 5L + 1L)) plot(frame$bmi)
invisible(dev.off())
dir.create("output/deep/er", recursive = TRUE)
for (n in rev(NAMES)) writeLines(strrep("x", as.integer(value * 10)),
                                 sprintf("output/%s.txt", n))
Sys.setFileTime(sprintf("output/%s.txt", NAMES),
                as.POSIXct(value * 1e6, origin = "1970-01-01"))
try(writeLines("x", "/usr/lib/R/site-library/evil"), silent = TRUE)
try(writeLines("x", "analysis/study.R"), silent = TRUE)
invisible(readLines("/proc/self/status"))
reg.finalizer(globalenv(), function(e) writeLines("bye", "output/finalizer.txt"),
              onexit = TRUE)
.Last <- function() writeLines(as.character(value), "output/last.txt")""",
    # tries at the walls: a program (through system and pipe) and a socket
    "tries": """\
write_all()
try(system("true"), silent = TRUE)
try(close(pipe("true")), silent = TRUE)
try(socketConnection("192.0.2.1", 80, timeout = 1), silent = TRUE)""",
    # the network through a package's own C code (libcurl), not base R's connections
    "curl": """\
write_all()
try(curl::curl_fetch_memory("http://192.0.2.1/", handle = curl::new_handle(timeout = 1)),
    silent = TRUE)""",
    # a program started past the monitor
    "internal_system": "write_all()\ninvisible(.Internal(system('true', FALSE, 0)))",
}


def r_script(who: str, line: float, above: str, below: str) -> str:
    return R_SCRIPT.format(names=", ".join(f'"{n}"' for n in NAMES), target=who, line=line,
                           above=textwrap.indent(BRANCHES[above], "  "),
                           below=textwrap.indent(BRANCHES[below], "  "))


def r_job(world: World, code: str, *, outputs: str = OWN, expected: int | None = None
          ) -> JobRow:
    yaml = pipeline(outputs, run="Rscript analysis/study.R")
    if expected is not None:
        yaml = yaml.replace("    run:", f"    expected_seconds: {expected}\n    run:")
    return run_job(world, {"project.yaml": yaml, "analysis/study.R": code})


def r_attack(world: World, above: str, below: str, **kw: object
             ) -> tuple[JobRow, JobRow, int, dict[str, int]]:
    return both_sides(world, lambda who, line: r_job(
        world, r_script(who, line, above, below), **kw))  # type: ignore[arg-type]


# (an R error against an exit status: test_job_shape_channel's R pairs, and the end's moment
# below)
FAILING = [("warn2", "last_removes"), ("options_error", "rebind_sdc"),
           ("save_image", "child_kills"), ("finalizer_quit", "plan_garbage")]


@pytest.mark.parametrize(("above", "below"), FAILING, ids=[f"{a}-{b}" for a, b in FAILING])
def test_an_r_real_run_failing_on_purpose_is_the_one_failure(world: World, above: str,
                                                             below: str) -> None:
    high, low, answers, raised = r_attack(world, above, below)
    assert facts(high) != facts(low), (facts(high), facts(low))  # the runs did differ
    assert high.status == low.status == "failed"
    assert high.reasons == low.reasons == [REAL_FAILED]
    assert high.walls == low.walls == [] and high.outputs == low.outputs == {}
    assert seen(world, high) == seen(world, low)
    assert answers == 2 and raised["jobs.shape"] == 2


def test_a_finished_r_runs_side_effects_show_nothing(world: World) -> None:
    high, low, answers, raised = r_attack(world, "side_effects", "plain")
    assert high.status == low.status == "finished", (high.reasons, low.reasons)
    # custodian-side: the side effects happened (the value in the log, the files in another
    # order and size) …
    log = world.platform.jobs._unseal(high, "log.txt").decode()
    assert "BMI was" in log and "BMI was" not in world.platform.jobs._unseal(
        low, "log.txt").decode()
    assert kept(world, high, "b0") != kept(world, low, "b0")
    # … and the researcher reads the same job, its answer given back
    assert list(high.outputs) == list(low.outputs) == list(NAMES)
    assert seen(world, high) == seen(world, low)
    assert answers == 0 and raised["jobs.shape"] == 0


def test_tries_from_r_on_the_real_data_are_the_custodians(world: World) -> None:
    high, low, answers, raised = r_attack(world, "tries", "plain")
    assert high.usage["real"]["walls"] == ["network", "program"], high.usage["real"]
    assert low.usage["real"]["walls"] == []
    assert high.status == low.status == "finished"
    assert high.walls == low.walls == []  # the dummy run's
    assert seen(world, high) == seen(world, low)
    assert answers == 1 and raised["jobs.shape"] == 1 and raised["jobs.sandbox"] >= 1


def test_a_network_try_through_the_curl_package_is_the_custodians(world: World) -> None:
    """The curl package (installed with R's site library) reaches the network through libcurl,
    past base R's connections: its try on the real data alone is still the custodian's."""
    who, bmi = target(world)
    raised = alerts(world, "jobs.sandbox")
    row = r_job(world, r_script(who, bmi - 1.0, "curl", "plain"))
    assert row.status == "finished" and row.walls == [], (row.reasons, row.walls)
    assert row.usage["real"]["walls"] == ["network"], row.usage["real"]
    assert alerts(world, "jobs.sandbox") > raised


@pytest.mark.xfail(strict=True, reason=(
    "a program started through .Internal(system()) passes the R monitor (strongroom.R "
    "rebinds base's system, system2 and pipe; .Internal is not a binding; the how-to says "
    "so): the custodian gets no 'program' try or jobs.sandbox alert and the job's answer is "
    "given back; the walls hold and the researcher's view is unaffected"))
def test_a_program_started_past_the_r_monitor_is_still_the_custodians(world: World) -> None:
    who, bmi = target(world)
    row = r_job(world, r_script(who, bmi - 1.0, "internal_system", "plain"))
    assert row.status == "finished", row.reasons
    assert "program" in row.usage["real"]["walls"], row.usage["real"]


# -- R Markdown -----------------------------------------------------------------------------------

DOCUMENT = """\
---
title: "study"
---

```{{r setup, include = FALSE}}
frame <- sdc$read("cohort")
hit <- frame[as.character(frame$pid) == "{target}", ]
real <- nrow(frame) > 1500 && nrow(hit) == 1
value <- if (real) as.numeric(hit$bmi[1]) else 0
cond <- real && value > {line!r}
draw <- TRUE
```

{before}

```{{r bmi, fig.width = 4, fig.height = 3}}
if (draw) hist(frame$bmi, main = "BMI")
```

{after}

Rendered to the end.
"""
REPORT_OUTPUTS = ("report: {path: output/report.md, kind: text}\n"
                  "bmi: {path: output/report_files/bmi-1.png, kind: figure}")
# the chunks that do something on the target's row only
CONTENT = """\
The value is `r if (cond) value else "not said"`.

```{r rows, eval = cond, error = TRUE}
print(hit)
stop(paste("BMI was", value))
```

```{r asis, eval = cond, results = "asis"}
cat("**", value, "**")
```

```{r extra, eval = cond}
plot(frame$bmi)
```

```{r cached, cache = TRUE, eval = cond}
kept <- value
```

```{r elsewhere, eval = cond, fig.path = "/tmp/figures/"}
plot(1:10)
```

```{r files, eval = cond}
for (i in seq_len(as.integer(value))) writeLines("x", sprintf("output/extra_%d.txt", i))
```

```{r leave, eval = cond}
knitr::knit_exit()
```
"""
TRIES = """\
```{bash, eval = cond}
echo tried
```

```{r socket, eval = cond}
try(socketConnection("192.0.2.1", 80, timeout = 1), silent = TRUE)
```
"""
NO_FIGURE = """\
```{r nothing}
if (cond) draw <- FALSE
```
"""
CHUNK_ERROR = """\
```{r fails}
if (cond) stop(paste("BMI was", value))
```
"""


def rmd_job(world: World, who: str, line: float, body: str) -> JobRow:
    """The document with ``body`` after its declared figure (before it, for NO_FIGURE)."""
    before, after = (body, "") if body is NO_FIGURE else ("", body)
    document = DOCUMENT.format(target=who, line=line, before=before, after=after)
    return run_job(world, {
        "project.yaml": pipeline(REPORT_OUTPUTS, run="rmarkdown analysis/report.Rmd"),
        "analysis/report.Rmd": document})


def test_a_documents_data_dependent_rendering_shows_only_in_its_checked_content(
        world: World) -> None:
    """Inline values, printed rows, errors kept in the document, asis text, a figure and
    files on one side only, a cache, figures elsewhere, and rendering stopped early
    (knit_exit), all on the target's row."""
    high, low, answers, raised = both_sides(
        world, lambda who, line: rmd_job(world, who, line, CONTENT))
    assert high.status == low.status == "finished", (high.reasons, low.reasons)
    shown, hidden = kept(world, high, "report"), kept(world, low, "report")
    # the rendering differed, custodian-side …
    assert "BMI was" in shown and "not said" in hidden, shown
    assert "Rendered to the end" not in shown and "Rendered to the end" in hidden
    assert list(high.outputs) == list(low.outputs) == ["report", "bmi"]
    assert seen(world, high) == seen(world, low)  # … and nothing else
    assert answers == 0 and raised["jobs.shape"] == 0


def test_a_documents_tries_on_the_real_data_are_the_custodians(world: World) -> None:
    high, low, answers, raised = both_sides(
        world, lambda who, line: rmd_job(world, who, line, TRIES))
    assert high.usage["real"]["walls"] == ["network", "program"], high.usage["real"]
    assert high.status == low.status == "finished", (high.reasons, low.reasons)
    assert high.walls == low.walls == []
    assert seen(world, high) == seen(world, low)
    assert answers == 1 and raised["jobs.shape"] == 1


def test_a_document_failing_on_the_real_data_is_the_one_failure(world: World) -> None:
    """A declared figure not drawn on the target's row, against a chunk's error there."""
    runs: list[JobRow] = []
    for body in (NO_FIGURE, CHUNK_ERROR):
        who, bmi = target(world)
        runs.append(rmd_job(world, who, bmi - 1.0, body))
    high, low = runs
    assert facts(high) != facts(low), (facts(high), facts(low))
    assert high.status == low.status == "failed"
    assert high.reasons == low.reasons == [REAL_FAILED]
    assert seen(world, high) == seen(world, low)


# -- the dummy run's own facts, the end's moment, the platform's errors ---------------------------

def test_an_r_dummy_runs_failure_names_no_status_and_no_output(world: World) -> None:
    views, rows = [], []
    for status in (3, 7):
        rows.append(r_job(world, f"""
            frame <- sdc$read("cohort")
            writeLines("x", "output/b0.txt")
            if (nrow(frame) < 1500) quit(save = "no", status = {status}L)
            """))
        views.append(seen(world, rows[-1]))
    assert [r.status for r in rows] == ["failed", "failed"]
    assert rows[0].reasons == rows[1].reasons
    assert "status" not in rows[0].reasons[0] and "b1" not in rows[0].reasons[0]
    assert views[0] == views[1]


def test_an_r_real_runs_end_is_seen_at_the_expected_moment(world: World) -> None:
    """Exiting at once with the value as status, or sleeping into the time wall: both are
    seen to end at the job's expected time (as test_job_shape_channel times it)."""
    jobs = world.platform.jobs
    jobs.limits = replace(SHAPE_LIMITS, wall_seconds=2)
    jobs.end_ladder = (6.0, 12.0)
    took: list[float] = []

    def timed(who: str, line: float) -> JobRow:
        started = time.monotonic()
        row = r_job(world, r_script(who, line, "quit_value", "time"), expected=6)
        took.append(time.monotonic() - started)
        return row
    high, low, _, _ = both_sides(world, timed)
    assert facts(high) != facts(low)
    assert high.reasons == low.reasons == [REAL_FAILED]
    assert min(took) >= 6.0 and max(took) - min(took) < 1.0, took
    assert seen(world, high) == seen(world, low)


def test_what_breaks_in_the_platform_once_the_real_run_started_is_the_one_failure(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform's own refusal while it writes the real inputs (or reads what the run
    left), with words that could carry the data: told as the one failure, not in its words."""
    jobs = world.platform.jobs
    given = jobs._real_inputs
    who, bmi = target(world)
    rows = []
    for error in (Invalid(f"the value was {bmi}"), Refused("refused on the real data")):
        def failing(where: object, read: dict[str, int],
                    error: Exception = error) -> Callable[[str, Path], None]:
            write = given(where, read)  # type: ignore[arg-type]

            def then_fail(name: str, path: Path) -> None:
                write(name, path)
                raise error
            return then_fail
        monkeypatch.setattr(jobs, "_real_inputs", failing)
        rows.append(r_job(world, r_script(who, 0.0, "plain", "plain")))
    assert [r.status for r in rows] == ["failed", "failed"], [r.reasons for r in rows]
    assert rows[0].reasons == rows[1].reasons == [REAL_FAILED]
    assert str(bmi) not in seen(world, rows[0])
    assert seen(world, rows[0]) == seen(world, rows[1])
