"""The R how-to's whole study as written (issue 58): docs/how-to/run-an-r-job.md's section 4,
on run-a-study.md's dataset definition, tried at home on the dummy data (as the page says),
then submitted and run as a job (bubblewrap, Debian's R, survival, splines and ggplot2) on a
3,000-participant test cohort. Its three planned outputs are made and checked by the
platform as the same requests; its own files (the spline model, the Kaplan–Meier figure as a
PNG) go to the output checkers, and the figure leaves once two have approved it.

The same files at 500,000 participants, timed in and out of the sandbox: benchmarks/r_study.py.
"""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strongroom.access.roles import Role
from strongroom.enclave import service as enclave_service
from strongroom.jobs import local, runner, sandbox
from strongroom.jobs.models import JobRow
from strongroom.outputs import files
from strongroom.outputs.models import OutputRow
from strongroom.outputs.states import OutputStatus
from tests.access_world import World, _add, build_world
from tests.jobs_world import LIMITS, run_job

DOCS = Path(__file__).parents[2] / "docs" / "how-to"
# run-a-study.md's fields: sex, year of birth, assessment date, deprivation, diabetes,
# smoking, BMI, date and cause of death
FIELDS = [31, 34, 53, 189, 2443, 20116, 21001, 40000, 40001]
SECTION = "## 4. A whole study"
PNG = b"\x89PNG\r\n\x1a\n"


def block(text: str, language: str) -> str:
    return text.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def how_to() -> tuple[str, str, str]:
    """The study's dataset definition, project.yaml and script, as the pages give them."""
    section = (DOCS / "run-an-r-job.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return (block((DOCS / "run-a-study.md").read_text(), "sql"), block(section, "yaml"),
            block(section, "r"))


def ggplot2_missing() -> bool:
    return not any((Path(d) / "ggplot2" / "DESCRIPTION").is_file()
                   for d in runner.R_SITE_LIBRARIES)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if sandbox.unavailable() is not None:
        pytest.skip(str(sandbox.unavailable()))
    if shutil.which("Rscript") is None or ggplot2_missing():
        pytest.skip("R or ggplot2 is not installed (.ci/run installs r-cran-ggplot2)")
    found = build_world(tmp_path_factory.mktemp("r-study"), cohort=3000, fields=FIELDS)
    found.platform.jobs.limits = LIMITS
    found.platform.jobs.end_ladder = ()  # seen as it ends (tests/integration/test_jobs.py)
    assert found.researcher is not None
    me = found.sign_in(found.researcher)
    found.platform.outputs.define(me, found.project_id, "study", how_to()[0])
    yield found
    found.platform.close()


@dataclass
class Study:
    repo: Path  # the researcher's repository, after `strongroom jobs run study --dummy`
    report: local.Report
    job: JobRow
    kinds: dict[str, str]  # each output's kind, custodian-side
    figure: bytes  # the figure kept, custodian-side
    asked: OutputStatus  # the figure's release asked for
    reviewed: OutputStatus  # then approved by two output checkers


@pytest.fixture(scope="module")
def study(world: World, tmp_path_factory: pytest.TempPathFactory) -> Study:
    """The how-to's steps: the dummy data as downloaded, `jobs run study --dummy`, the
    repository submitted with the plan it wrote, the figure's release asked for and approved."""
    _, project_yaml, script = how_to()
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    repo = tmp_path_factory.mktemp("repo")
    (repo / "analysis").mkdir()
    (repo / "project.yaml").write_text(project_yaml)
    (repo / "analysis" / "study.R").write_text(script)
    payload = enclave_service.dummy_data(world.platform.enclave, me, world.project_id)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (repo / "dummy").mkdir()
        for name in archive.namelist():
            (repo / "dummy" / name).write_bytes(archive.read(name))
    report = local.run(repo, "study", repo / "dummy")
    assert report.ok, report.log
    job = run_job(world, {path: (repo / path).read_bytes() for path in (
        "project.yaml", "analysis/study.R", "plans/study.json")})
    assert job.status == "finished", job.reasons
    with world.ctx.transaction() as db:
        rows = {name: db.get(OutputRow, oid) for name, oid in job.outputs.items()}
        kinds = {name: row.kind for name, row in rows.items() if row is not None}
        figure_sha = rows["km"].sha256 if rows["km"] is not None else ""
    project = world.platform.jobs._project(world.project_id)
    figure = files.load(world.ctx, project, figure_sha)
    asked = world.platform.outputs.request_release(
        me, job.outputs["km"], "figure 1 of the paper: survival by smoking status")
    second = _add(world.ctx, world.staff[Role.OUTPUT_CHECKER].institution_id,
                  "second-checker@custodian.test", [Role.OUTPUT_CHECKER], world.clock().date())
    for checker in (world.staff[Role.OUTPUT_CHECKER], second):
        done = world.platform.outputs.review(world.sign_in(checker), job.outputs["km"], True,
                                             "curves on a half-year grid: no one seen")
    return Study(repo, report, job, kinds, figure, asked.status, done.status)


def test_the_how_tos_r_study_runs_at_home_on_the_dummy_data(study: Study) -> None:
    """`strongroom jobs run study --dummy`: the figure as a PNG, the spline model's terms,
    and the plan of the three sdc calls (the lines their Python twins write)."""
    output = study.repo / "output"
    assert (output / "km.png").read_bytes().startswith(PNG)
    model = list(csv.reader(io.StringIO((output / "spline_model.csv").read_text())))
    assert model[0] == ["term", "estimate", "se", "odds_ratio", "p"]
    assert [row[0] for row in model[1:]] == [
        "(Intercept)", *(f"ns(age, df = 4){k}" for k in range(1, 5)), "bmi", "factor(sex)1",
        "deprivation", "bmi:factor(sex)1"]
    assert study.report.plan == [
        {"output": "survival", "analysis": {
            "kind": "kaplan_meier", "definition": "study", "event": "died", "group": "smoking",
            "interval": 2, "time": "years", "unit": "years"}},
        {"output": "table1_numeric", "analysis": {
            "kind": "summary", "definition": "study", "variables": ["age", "bmi", "deprivation"]}},
        {"output": "table1_smoking", "analysis": {
            "kind": "crosstab", "definition": "study", "rows": "smoking", "columns": "sex",
            "percentages": "column"}}]


def test_the_how_tos_r_study_runs_as_a_job_and_its_figure_is_released(study: Study) -> None:
    """In the enclave: the same on the real data, the three planned outputs made and checked
    by the platform, the script's two files kept for the output checkers, the figure a PNG,
    released once two checkers approved it."""
    job = study.job
    assert job.walls == [] and job.usage["real"]["alike"], job.usage
    assert list(job.outputs) == ["survival", "table1_numeric", "table1_smoking",
                                 "spline_model", "km"]
    assert [study.kinds[n] for n in ("spline_model", "km")] == ["job_file", "job_file"]
    assert all(study.kinds[n] != "job_file"
               for n in ("survival", "table1_numeric", "table1_smoking"))
    assert study.figure.startswith(PNG)
    assert (study.asked, study.reviewed) == (OutputStatus.UNDER_REVIEW, OutputStatus.RELEASED)


def test_the_released_figure_downloads_as_a_png(world: World, study: Study) -> None:
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    downloaded = world.platform.outputs.download(me, study.job.outputs["km"])
    assert downloaded.payload == study.figure
