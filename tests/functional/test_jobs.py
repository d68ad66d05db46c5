"""A job end to end over HTTPS, as a researcher and two output checkers do it: dummy data down,
the action tried on it at home (`strongroom jobs run --dummy`), submitted (`jobs submit`),
run in the server's sandbox on the real data, its sdc output released at once and its own
figure released only by two checkers who read the code beside it."""

from __future__ import annotations

import datetime as dt
import io
import json
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.jobs import sandbox
from tests.cli_runner import cli
from tests.functional.test_server import Server, code, register, running_server

pytestmark = pytest.mark.skipif(sandbox.unavailable() is not None,
                                reason=str(sandbox.unavailable()))

SOURCE = "127.0.0.41"
PROJECT_YAML = """
version: 1
actions:
  study:
    run: python analysis/study.py
    inputs: [cohort]
    outputs:
      by_sex: {path: output/by_sex.csv, kind: table}
      bmi: {path: output/bmi.png, kind: figure}
"""
STUDY = """
import matplotlib.pyplot as plt
from strongroom import sdc

frame = sdc.read("cohort")
print("participants:", len(frame))
sdc.crosstab("by_sex", "cohort", rows="sex", columns="birth_year")
plt.hist(frame.bmi.dropna(), bins=20)
plt.savefig("output/bmi.png")
"""


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("jobs")), None, cohort=2000) as started:
        yield started


def test_a_job_from_dummy_data_to_released_outputs(jobs_server: Server, tmp_path: Path) -> None:
    server, admin = jobs_server, jobs_server.admin
    uni = admin.institutions.create("Jobs University", "GB", "UK GDPR", ["127.0.0.0/8"])
    rex = register(server, "rex@jobs.ac.uk", ["researcher"], uni["id"], vetted=True)
    checkers = [register(server, f"jobchecker{i}@custodian.org", ["output-checker"],
                         vetted=True) for i in (1, 2)]
    today = dt.date.today()
    project = admin.projects.create("Adiposity jobs", "Body mass index by sex, as a job",
                                    rex.id, today, today + dt.timedelta(days=90),
                                    fields=[31, 34, 21001])["id"]
    with server.client(SOURCE) as session:
        session.login(rex.email, rex.password, code(rex.totp_secret))
        session.enclave.define(project, "cohort", "SELECT pid, p31 AS sex, p34 AS birth_year, "
                                                  "p21001_i0 AS bmi FROM participants")
    # the token as the how-to issues it: the jobs preset, at the command line
    status, out, err = cli("token", "issue", project, "--preset", "jobs", "--url", server.url,
                           "--ca", str(server.ca), "--email", rex.email, "--password",
                           rex.password, "--code", code(rex.totp_secret, ahead=1),
                           cwd=tmp_path)
    assert status == 0, err
    token = json.loads(out)["secret"]

    repo = tmp_path / "study"
    (repo / "analysis").mkdir(parents=True)
    (repo / "project.yaml").write_text(PROJECT_YAML)
    (repo / "analysis" / "study.py").write_text(textwrap.dedent(STUDY))
    where = ("--url", server.url, "--token", token, "--ca", str(server.ca))

    status, out, err = cli("jobs", "dummy", project, *where, cwd=repo)
    assert status == 0, err
    assert (repo / "dummy" / "cohort.parquet").exists()  # the definition, over dummy rows
    status, out, err = cli("jobs", "run", "study", cwd=repo)
    assert status == 2 and "--dummy" in err  # the real data is never run on outside
    status, out, err = cli("jobs", "run", "study", "--dummy", cwd=repo)
    assert status == 0, err
    assert "participants: 1000" in out and "planned: by_sex" in out
    assert (repo / "output" / "bmi.png").exists()
    assert json.loads((repo / "plans" / "study.json").read_text())[0]["output"] == "by_sex"

    status, out, err = cli("jobs", "submit", "study", "--project", project, *where,
                           "--repo", str(repo), "--wait", cwd=repo)
    assert status == 0, err
    job = json.loads(out)
    assert job["status"] == "finished", job["reasons"]
    assert "dummy_log" not in job  # both runs' logs stay inside: it was read at home
    assert set(job["outputs"]) == {"by_sex", "bmi"}, job["reasons"]

    with server.client(SOURCE, token=token) as researcher:
        table = researcher.outputs.request_release(job["outputs"]["by_sex"])
        assert table["status"] == "released" and table["filename"] == "by_sex.csv"
        assert researcher.outputs.download(table["id"]).startswith(b"row,column,kind,value")
        figure = researcher.outputs.request_release(
            job["outputs"]["bmi"], "the histogram of BMI in the cohort, for the paper's figure 1")
        assert figure["status"] == "under_review"
    for i, checker in enumerate(checkers):
        with server.client(SOURCE) as checking:
            checking.login(checker.email, checker.password, code(checker.totp_secret))
            shown = zipfile.ZipFile(io.BytesIO(checking.jobs.code(job["id"])))
            assert shown.read("analysis/study.py").decode() == textwrap.dedent(STUDY)
            assert checking.outputs.content(figure["id"]).startswith(b"\x89PNG")
            decided = checking.outputs.review(figure["id"], True, "a histogram of bins of 20+")
            assert decided["status"] == ("approved_once", "released")[i]
    with server.client(SOURCE, token=token) as researcher:  # released, the figure leaves
        assert researcher.outputs.download(figure["id"]).startswith(b"\x89PNG")
    # a job failed on its way (its plan is not the one it makes): `--wait` exits 1, why said
    (repo / "plans" / "study.json").write_text("[]")
    status, out, err = cli("jobs", "submit", "study", "--project", project, *where,
                           "--repo", str(repo), "--wait", cwd=repo)
    assert json.loads(out)["status"] == "failed"
    assert status == 1 and "failed:" in err and "planned otherwise" in err, err
    types = {entry["type"] for entry in admin.audit.entries(limit=1000)}
    assert {"job.submitted", "job.ended"} <= types
