"""R Markdown actions (issue 58): ``run: rmarkdown doc.Rmd``, rendered in the same sandbox as
an R script, and nothing else.

The guarantees: **only that form runs** (no options, no other renderer, no other suffix);
**a document's chunks are an R script's** (the in-job library planned, the same plan; the
same walls and alerts); **its rendering is a declared output like any** (Markdown for the
checkers, its chunks' figures as PNG files, nothing undeclared leaves); and **rendering
starts no other program and writes nowhere but output/ and /tmp** (knitr to Markdown, no
pandoc). Each runs as a real job (bubblewrap, cgroups, real R and knitr) against the real
platform; the ground truth is read custodian-side.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from strongroom.enclave import service as enclave_service
from strongroom.errors import Invalid
from strongroom.jobs import local, runner, sandbox
from strongroom.jobs.models import JobRow
from strongroom.jobs.pipeline import parse
from strongroom.outputs import files
from strongroom.outputs.models import OutputRow
from strongroom.watch.models import AlertRow
from tests.access_world import World
from tests.jobs_world import build_jobs_world, pipeline, planned, run_job


def no_knitr() -> bool:
    return shutil.which("Rscript") is None or subprocess.run(
        ["Rscript", "-e", "library(knitr)"], capture_output=True, check=False,
        timeout=60).returncode != 0


OUTPUTS = """
report: {path: output/report.md, kind: text}
bmi: {path: output/report_files/bmi-1.png, kind: figure}
by_sex: {path: output/by_sex.csv, kind: table}
"""
REPORT = """---
title: "BMI by sex"
---

The cohort's BMI, read as the job reads it.

```{r read}
cohort <- sdc$read("cohort")
sdc$crosstab("by_sex", "cohort", rows = "smoking", columns = "sex")
cat("columns:", paste(sort(names(cohort)), collapse = " "), "\\n")
```

```{r bmi, fig.width = 5, fig.height = 3}
hist(cohort$bmi, breaks = 20, main = "BMI", xlab = "kg/m2")
```

```{r undeclared}
writeLines("kept inside", "output/scratch.txt")
```
"""
HOW_TO = Path(__file__).parents[2] / "docs" / "how-to" / "run-an-r-job.md"
BY_SEX = planned(("by_sex", {"kind": "crosstab", "definition": "cohort", "rows": "smoking",
                             "columns": "sex"}))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if sandbox.unavailable() is not None:
        pytest.skip(str(sandbox.unavailable()))
    if no_knitr():
        pytest.skip("R or knitr is not installed (.ci/run installs r-cran-knitr)")
    found = build_jobs_world(tmp_path_factory.mktemp("rmarkdown-jobs"))
    yield found
    found.platform.close()


def rmd_job(world: World, document: str, outputs: str = OUTPUTS, plan: str = "[]") -> JobRow:
    return run_job(world, {"project.yaml": pipeline(outputs, run="rmarkdown analysis/report.Rmd"),
                           "analysis/report.Rmd": document, "plans/study.json": plan})


def saved(world: World, row: JobRow, name: str) -> tuple[OutputRow, bytes]:
    """A job's output and its bytes, custodian-side."""
    project = world.platform.jobs._project(world.project_id)
    with world.ctx.transaction() as db:
        out = db.get(OutputRow, row.outputs[name])
        assert out is not None
        db.expunge(out)
    return out, files.load(world.ctx, project, out.sha256)


def alerts(world: World) -> int:
    with world.ctx.transaction() as db:
        return sum(a.count for a in db.scalars(select(AlertRow)
                                               .where(AlertRow.detector == "jobs.sandbox")))


NOTE = "note: {path: output/report.md, kind: text}"


@pytest.mark.parametrize("run", ["rmarkdown analysis/report.md", "rmarkdown analysis/report.R",
                                 "rmarkdown -e analysis/report.Rmd",
                                 "rmarkdown analysis/report.Rmd --params x=1",
                                 "Rscript analysis/report.Rmd", "render analysis/report.Rmd",
                                 "Rmarkdown analysis/report.Rmd", "rmarkdown ../report.Rmd",
                                 "rmarkdown /job/analysis/report.Rmd"])
def test_only_rmarkdown_and_a_document_of_the_code_is_run(run: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse(pipeline(NOTE, run=run), {"project.yaml", "analysis/report.Rmd"})
    said = " | ".join(refused.value.reasons)
    assert ("'rmarkdown <document>.Rmd'" in said or "runs a .Rmd file" in said
            or "runs a .R file" in said or "relative" in said or "'.' or '..'" in said), said


def test_the_form_parses_and_a_missing_document_is_named() -> None:
    found = parse(pipeline(NOTE, run="rmarkdown analysis/report.Rmd"),
                  {"project.yaml", "analysis/report.Rmd"})
    assert found.actions["study"].runner == "rmarkdown"
    with pytest.raises(Invalid) as refused:
        parse(pipeline(NOTE, run="rmarkdown analysis/other.Rmd"),
              {"project.yaml", "analysis/report.Rmd"})
    assert "is not in the code submitted" in " ".join(refused.value.reasons)


def test_a_document_renders_to_markdown_and_its_outputs_go_to_the_check(world: World) -> None:
    """The how-to's project.yaml as written (docs/how-to/run-an-r-job.md), its document
    this module's."""
    (declared,) = [b for b in HOW_TO.read_text().split("```yaml\n")[1:]
                   if "run: rmarkdown" in b.split("```")[0]]
    before = alerts(world)
    row = run_job(world, {"project.yaml": declared.split("```")[0],
                          "analysis/report.Rmd": REPORT, "plans/report.json": BY_SEX},
                  action="report")
    assert row.status == "finished", row.reasons
    assert row.walls == [] and alerts(world) == before  # rendering started no program
    assert list(row.outputs) == ["report", "bmi", "by_sex"]
    # the chunks ran in the repository's folder, on the CSV input, with the in-job library
    report, text = saved(world, row, "report")
    rendered = text.decode()
    assert rendered.startswith("---\ntitle: \"BMI by sex\""), rendered
    assert "## columns: birth_year bmi diabetes pid sbp sex smoking" in rendered, rendered
    assert "![plot of chunk bmi](report_files/bmi-1.png)" in rendered
    assert report.kind == "job_file" and report.verdict == "review"  # two checkers read it
    figure, png = saved(world, row, "bmi")
    assert png.startswith(b"\x89PNG") and figure.verdict == "review"
    # the planned table is the platform's, checked as any analysis
    table, _ = saved(world, row, "by_sex")
    assert table.kind != "job_file" and table.verdict in ("release",
                                                          "release_with_suppression")
    assert "output/scratch.txt" not in row.files  # written, undeclared: it stays inside


def test_a_failing_chunk_fails_the_document(world: World) -> None:
    row = rmd_job(world, '```{r}\nstop("no such column")\n```\n', outputs=NOTE)
    assert row.status == "failed", row.reasons
    assert any("dummy" in r for r in row.reasons), row.reasons


def test_a_documents_chunks_meet_the_walls_an_r_script_meets(world: World) -> None:
    before = alerts(world)
    row = rmd_job(world, """
```{r}
tried <- function(f) tryCatch({ f(); "done" }, error = function(e) "refused",
                              warning = function(w) "refused")
said <- c(tried(function() socketConnection("93.184.216.34", 80, timeout = 3)),
          tried(function() writeLines("x", "analysis/report.Rmd")),
          tried(function() writeLines("x", "/job-lib/strongroom_knit.R")),
          tried(function() writeLines("x", "/usr/lib/R/site-library/knitr/evil")))
cat(said, sep = "\\n")
```
""", outputs=NOTE)
    assert row.status == "finished", row.reasons
    assert "network" in row.walls and alerts(world) > before
    _, text = saved(world, row, "note")
    tries = [line.removeprefix("## ").strip() for line in text.decode().splitlines()
             if line.startswith("## ")]
    assert tries == ["refused"] * 4, text.decode()


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_document_renders_at_home_on_the_dummy_data(world: World, tmp_path: Path,
                                                      sandboxed: bool) -> None:
    """`strongroom jobs run study --dummy` (and `--no-sandboxed`, without bubblewrap): the
    same rendering, the same plan, written to the repository's output/."""
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    payload = enclave_service.dummy_data(world.platform.enclave, me, world.project_id)
    repo = tmp_path / "repo"
    (repo / "analysis").mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        archive.extractall(repo / "dummy")
    (repo / "project.yaml").write_text(pipeline(OUTPUTS, run="rmarkdown analysis/report.Rmd"))
    (repo / "analysis" / "report.Rmd").write_text(REPORT)
    report = local.run(repo, "study", repo / "dummy", sandboxed=sandboxed)
    assert report.ok, report.log
    assert (repo / "output" / "report.md").read_text().startswith("---\ntitle:")
    assert (repo / "output" / "report_files" / "bmi-1.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((repo / "plans" / "study.json").read_text()) == json.loads(BY_SEX)


def test_without_knitr_the_action_is_refused_saying_what_to_install(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "R_SITE_LIBRARIES", ())
    row = rmd_job(world, "Nothing to run.\n", outputs=NOTE)
    assert row.status == "refused", row.reasons
    assert any("apt-get install r-cran-knitr" in r for r in row.reasons), row.reasons
