"""The R client (clients/r/strongroom, issue 58) against the real server, over HTTPS with the
server's own certificate, as docs/how-to/use-the-r-client.md writes it.

The package is installed with ``R CMD INSTALL`` into a library of the test's own, the token
issued with the how-to's own command, and the how-to's R blocks run with ``Rscript`` as
written (only the server's address, the project, the CA file's path put in), followed by the
test's lines that write what R saw to a JSON file; the assertions are made here, on that file
and on the server's own records (read with the Python client).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strongroom.jobs import sandbox
from tests.cli_runner import cli
from tests.functional.test_server import Server, code, register, running_server

pytestmark = pytest.mark.slow  # a server, R, and a job in the sandbox

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "clients" / "r" / "strongroom"
HOW_TO = ROOT / "docs" / "how-to" / "use-the-r-client.md"
DOC_URL, DOC_PROJECT = "https://strongroom.example.org", "prj_0123abcd"
SOURCE = "127.0.0.58"
RSCRIPT = shutil.which("Rscript")
R_TIMEOUT = 120

PROJECT_YAML = """version: 1
actions:
  study:
    run: Rscript analysis/study.R
    inputs: [older]
    outputs:
      by_sex: {path: output/by_sex.csv, kind: table}
"""
STUDY_R = 'older <- sdc$read("older")\nsdc$frequency("by_sex", "older", "sex")\n'
# the job's population: none of the how-to's released groups, nor a few people from one (the
# check blocks a table that repeats a released margin, or differs from one by a few)
OLDER = "SELECT pid, p31 AS sex FROM participants WHERE p34 < 1960"

# what R saw, for the assertions here (never the token)
SEEN_ANALYSES = """
seen <- list(
  client = paste(capture.output(print(sr)), collapse = "\\n"),
  fields = nrow(fields), field_ids = fields$field_id,
  output = out$id, verdict = out$verdict, released = released$status,
  table_class = class(table), columns = names(table), rows = nrow(table),
  sex_is_factor = is.factor(table$sex), sex_levels = levels(table$sex),
  sex_labels = as.list(attr(table, "labels")$sex),
  shown = paste(capture.output(print(table)), collapse = "\n"),
  counts = if ("count" %in% names(table)) table$count else NULL,
  bmi_verdict = bmi$verdict, bmi_kind = bmi$kind,
  bmi = paste(capture.output(print(bmi)), collapse = "\\n"),
  refused = list(class = class(refused), status = refused$status, error = refused$error,
                 reasons = as.list(refused$reasons), message = conditionMessage(refused)),
  dummy = sort(basename(list.files("dummy"))))
"""
SEEN_JOBS = """
seen <- list(job = job$id, status = job$status, reasons = as.list(job$reasons),
             outputs = as.list(job$outputs), by_sex = by_sex$status,
             rows = nrow(by_sex_table), sex_levels = levels(by_sex_table$sex),
             jobs = length(sr_jobs(sr, project)))
"""
# a refusal after the fact: a made-up output id, and a server the CA does not vouch for
SEEN_REFUSALS = """
missing <- tryCatch(sr_output(sr, "out_0000"), strongroom_error = function(e) e)
escaped <- tryCatch(sr_output(sr, "../outputs"), strongroom_error = function(e) e)
other_ca <- tryCatch(sr_me(sr_connect(sr$url, token = Sys.getenv("STRONGROOM_TOKEN"),
                                      ca_file = Sys.getenv("OTHER_CA"))),
                     error = function(e) e)
no_tls <- tryCatch(sr_connect(sub("^https", "http", sr$url), token = "srt_x"),
                   error = function(e) conditionMessage(e))
seen <- list(structure = paste(capture.output(str(sr)), collapse = "\n"),
             missing = list(status = missing$status, message = conditionMessage(missing)),
             escaped = escaped$status,
             other_ca = list(class = class(other_ca), message = conditionMessage(other_ca)),
             no_tls = no_tls, me = sr_me(sr)$via,
             bound = sr_me(sr_connect(sr$url, token = Sys.getenv("STRONGROOM_TOKEN"),
                                      ca_file = sr$ca_file, interface = "127.0.0.58"))$via)
"""
WRITE_SEEN = 'writeLines(jsonlite::toJSON(seen, auto_unbox = TRUE, null = "null"), "{out}")\n'


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", HOW_TO.read_text(), re.S)


@dataclass
class RWorld:
    server: Server
    project: str
    repo: Path
    library: Path
    env: dict[str, str] = dataclasses.field(repr=False)  # the token is never shown
    token: str = dataclasses.field(default="", repr=False)

    def put_in(self, block: str) -> str:
        return (block.replace(DOC_URL, self.server.url).replace(DOC_PROJECT, self.project)
                .replace('"ca.pem"', json.dumps(str(self.server.ca))))

    def rscript(self, script: str, name: str) -> dict[str, Any]:
        """Run ``script`` (which fills ``seen``) in the repository; what it saw."""
        folder = self.repo.parent
        out = folder / f"{name}.json"
        path = folder / f"{name}.R"
        path.write_text(script + WRITE_SEEN.format(out=out))
        done = subprocess.run([str(RSCRIPT), "--vanilla", str(path)], cwd=self.repo,
                              env=self.env, capture_output=True, text=True,
                              timeout=R_TIMEOUT)
        assert done.returncode == 0, f"{name}.R failed:\n{done.stdout}\n{done.stderr}"
        assert self.token not in done.stdout + done.stderr  # the token is never shown
        found: dict[str, Any] = json.loads(out.read_text())
        return found


def r_missing() -> str | None:
    if RSCRIPT is None:
        return "Rscript is not installed (.ci/run installs it)"
    done = subprocess.run([RSCRIPT, "-e", "library(curl); library(jsonlite)"],
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        return "R's curl and jsonlite are not installed (.ci/run installs r-cran-curl)"
    return None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RWorld]:
    missing = r_missing()
    if missing is not None:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("r-client")
    # the how-to's install, into a library of the test's own
    library = root / "library"
    library.mkdir()
    (install,) = [b for b in blocks("bash") if "R CMD INSTALL" in b]
    argv = install.split("#")[0].split()
    assert argv[:3] == ["R", "CMD", "INSTALL"], install
    done = subprocess.run([*argv[:3], f"--library={library}", str(ROOT / argv[3])],
                          capture_output=True, text=True, timeout=R_TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    with running_server(root / "server", None, cohort=2000) as server:
        admin = server.admin
        uni = admin.institutions.create("R University", "GB", "UK GDPR", ["127.0.0.0/8"])
        rex = register(server, "rex@r.ac.uk", ["researcher"], uni["id"], vetted=True)
        today = dt.date.today()
        project = admin.projects.create("Adiposity in R", "Body mass index by sex, from R",
                                        rex.id, today, today + dt.timedelta(days=90),
                                        fields=[31, 34, 21001])["id"]
        repo = root / "study"
        (repo / "analysis").mkdir(parents=True)
        (repo / "project.yaml").write_text(PROJECT_YAML)
        (repo / "analysis" / "study.R").write_text(STUDY_R)
        # a git repository: what git tracks is packed, and the plans, tracked or not
        for argv in (["init", "-q"], ["add", "project.yaml", "analysis/study.R"]):
            subprocess.run(["git", *argv], cwd=repo, check=True, capture_output=True)
        (repo / "notes.txt").write_text("untracked: not packed")
        env = {**os.environ, "R_LIBS": str(library), "R_LIBS_USER": str(library),
               "OTHER_CA": str(root / "other.pem")}
        found = RWorld(server, project, repo, library, env)
        # the token, issued by the how-to's own command (password and code given, not asked)
        (issue,) = [b for b in blocks("bash") if "token issue" in b]
        line = found.put_in(issue.splitlines()[0]).replace("you@uni-a.ac.uk", rex.email)
        argv = line.split()[1:]
        status, out, err = cli(*argv, "--password", rex.password,
                               "--code", code(rex.totp_secret), "--ca", str(server.ca),
                               cwd=root)
        assert status == 0, err
        found.token = json.loads(out)["secret"]
        env["STRONGROOM_TOKEN"] = found.token
        with server.client(SOURCE, token=found.token) as python:  # the job's input
            python.enclave.define(project, "older", OLDER)
        # a CA that did not sign the server's certificate
        from tests.functional.test_server import self_signed

        other = root / "other"
        other.mkdir()
        shutil.copy(self_signed(other)[0], root / "other.pem")
        yield found


def test_define_analyse_release_and_a_labelled_table_from_r(world: RWorld) -> None:
    analyses, refusal, dummy = blocks("r")[:3]
    seen = world.rscript("\n".join(world.put_in(b) for b in (analyses, refusal, dummy))
                         + SEEN_ANALYSES, "analyses")
    assert "(hidden)" in seen["client"] and world.server.url in seen["client"]
    assert seen["field_ids"] == [31, 34, 21001] and seen["fields"] == 3
    assert seen["verdict"] == "release" and seen["released"] == "released"
    # the labelled table: sex's meanings as a factor in its codes' order, the codes beside
    assert seen["table_class"] == "data.frame" and seen["rows"] == 9, seen["shown"]  # margins
    assert {"sex", "sex_code", "born", "count", "suppressed"} <= set(seen["columns"]), seen
    assert seen["sex_is_factor"], seen["shown"]
    assert seen["sex_levels"] == ["Female", "Male", "Total"], seen["shown"]
    assert seen["sex_labels"] == {"0": "Female", "1": "Male", "Total": "Total"}, seen["shown"]
    assert sum(seen["counts"]) > 1000
    # a one-value list field went as a list (the server refuses a bare string)
    assert (seen["bmi_kind"], seen["bmi_verdict"]) == ("summary", "release"), seen["bmi"]
    # the refusal: an R error of class strongroom_error with the server's reasons
    refused = seen["refused"]
    assert refused["class"][:2] == ["strongroom_error", "error"] and refused["status"] == 400
    assert refused["reasons"] and refused["message"] == "; ".join(refused["reasons"])
    assert {"participants.csv", "adults.csv", "older.csv"} <= set(seen["dummy"]), seen
    # what R downloaded is what the server released, and R's table its released cells
    with world.server.client(SOURCE, token=world.token) as python:
        record = python.outputs.get(seen["output"])
        assert record["status"] == "released" and record["sha256"]
        frame = python.outputs.frame(seen["output"])
    assert sorted(frame["count"].to_list()) == sorted(seen["counts"])


def test_refusals_and_tls_from_r(world: RWorld) -> None:
    setup = world.put_in(blocks("r")[0].split("fields <-")[0])  # library() and sr_connect()
    seen = world.rscript(setup + SEEN_REFUSALS, "refusals")
    assert world.token not in seen["structure"]  # str() of the client does not show it
    assert seen["missing"]["status"] == 404 and "out_0000" in seen["missing"]["message"]
    assert seen["escaped"] == 404  # an id is one path segment: it reaches no other route
    # a certificate the CA file does not vouch for: curl's error, no answer read
    assert "strongroom_error" not in seen["other_ca"]["class"]
    assert re.search(r"certificate|SSL", seen["other_ca"]["message"], re.I), seen
    assert "https://" in seen["no_tls"]
    assert seen["me"] == seen["bound"] == "token"  # interface = a source address connects too


@pytest.mark.skipif(sandbox.unavailable() is not None, reason=str(sandbox.unavailable()))
def test_a_job_submitted_and_followed_from_r(world: RWorld) -> None:
    # the dummy data came down in the first test (sr_dummy); the plan from the command line
    if not (world.repo / "dummy").exists():  # run alone: define 'adults' and take them
        world.rscript("\n".join(world.put_in(b) for b in (blocks("r")[0], blocks("r")[2]))
                      + "seen <- list()\n", "dummy")
    (run,) = [b for b in blocks("bash") if "jobs run" in b]
    status, out, err = cli(*run.split()[1:], cwd=world.repo)
    assert status == 0, out + err
    assert json.loads((world.repo / "plans" / "study.json").read_text())[0]["output"] == "by_sex"
    setup = world.put_in(blocks("r")[0].split("fields <-")[0])
    seen = world.rscript(setup + world.put_in(blocks("r")[3]) + SEEN_JOBS, "jobs")
    assert seen["status"] == "finished", seen["reasons"]
    assert set(seen["outputs"]) == {"by_sex"} and seen["by_sex"] == "released", seen
    assert seen["rows"] == 3 and seen["sex_levels"] == ["Female", "Male", "Total"], seen
    assert seen["jobs"] == 1
    with world.server.client(SOURCE, token=world.token) as python:
        job = python.jobs.get(seen["job"])
        shown = python.jobs.code(seen["job"])
    # R's archive held what git tracks and the plan, nothing untracked, of output/ or dummy/
    assert set(job["files"]) == {"project.yaml", "analysis/study.R", "plans/study.json"}, job
    assert shown[:2] == b"PK"
