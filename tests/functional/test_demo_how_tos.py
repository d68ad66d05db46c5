"""After `strongroom demo`, a newcomer follows the researcher how-tos as written, as the demo's
researcher, in the project the demo made for them, and nothing is refused.

The demo world is built once for the module (a small cohort, with genotypes) by the CLI's own
`strongroom demo` in a process of its own, its standard output piped as `make demo > log` pipes
it, and served over HTTPS by the real server in its own process. What the demo printed is read
here as a newcomer reads it: its stages as they went, its report, and the sign-ins the walk
uses (the researcher's password and authenticator secret, the study project's id). The how-tos'
commands are read from the documents themselves (their code blocks), with only the placeholders
put in: the server's address, the project's id, the token the how-to's own
`strongroom token issue` printed, an output's id. Each command must succeed, and each analysis
must come back released (whole or with cells hidden), never held for review, blocked or refused
(issue 55: the demo's attack tour spent the researcher's ration, and no project had the fields
the how-tos read); a job's own figure goes to two checkers, as run-a-job.md says. The how-tos
walked: run-a-job.md (in a git repository, in the sandbox where bubblewrap is), run-a-gwas.md,
run-a-study.md (its Kaplan–Meier path: competing risks are its alternative) and
analyse-in-the-enclave.md, in that order, each over people that differ from the others' by
many.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select

from strongroom.access.auth import verify_credentials
from strongroom.access.context import Via
from strongroom.access.models import Person
from strongroom.client import Client
from strongroom.demo.story import ADMIN
from strongroom.demo.world import RESEARCHERS, STUDY_PROJECT, DemoLogin
from strongroom.platform import Platform
from tests.access_world import SETTINGS
from tests.cli_runner import cli as run_cli
from tests.functional.test_server import HOST, SERVER, code, free_port, self_signed, wait_until_up

pytestmark = pytest.mark.slow  # a demo world, and a server over it

HOW_TO = Path(__file__).parents[2] / "docs" / "how-to"
# large enough that the how-tos' survival tables have events in every two-year interval of
# every smoking group, small enough to build in seconds; genotypes for run-a-gwas.md
PARTICIPANTS, VARIANTS = 30_000, 300
RELEASED = ("release", "release_with_suppression")
DOC_URL = "https://strongroom.example.org"


@dataclass
class Served:
    url: str
    ca: Path
    project: str  # the demo researcher's study project
    researcher: DemoLogin
    printed: list[tuple[float, str]]  # the demo's standard output: (seconds in, line)
    token: str = ""
    own_files: list[str] = dataclasses.field(default_factory=list)  # a job's, to the checkers

    def client(self) -> Client:
        return Client(self.url, verify=self.ca, token=self.token, timeout=300)


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """`strongroom ARGS`, as a person at a keyboard runs it: a request over the watch's rate
    limit for a person (the walk goes faster than anyone types) is asked again after the
    wait the refusal names, as it says to."""
    for _ in range(10):
        status, out, err = run_cli(*args, cwd=cwd)
        wait = re.search(r"refused \(429\):.*try again in (\d+) s", err, re.S)
        if status == 0 or wait is None:
            break
        print(f"429: waiting {wait.group(1)} s: {err}")
        time.sleep(int(wait.group(1)) + 1)
    return status, out, err


def blocks(text: str, language: str) -> list[str]:
    """The document's fenced code blocks in ``language``, in order."""
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


# the CLI's own entry point, its people acting with the test worlds' settings (cheap password
# hashes, no timing floors on answers); the guard: the genotype reader's child processes start
# by importing this file
RUNNER = f"""
import functools
import sys

if __name__ == "__main__":
    sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
    from strongroom.cli import demo as command
    from strongroom.demo import run_demo
    from tests.access_world import SETTINGS

    command.run_demo = functools.partial(run_demo, settings=SETTINGS, jobs=False)
    from strongroom.cli import main

    sys.argv = ["strongroom", *sys.argv[1:]]
    main()
"""


def piped_demo(root: Path, *options: str) -> list[tuple[float, str]]:
    """`strongroom demo --dir ROOT/demo OPTIONS --no-serve`, its standard output a pipe: each
    line with the seconds after the start at which it arrived."""
    runner = root / "runner.py"
    runner.write_text(RUNNER)
    started = time.monotonic()
    with subprocess.Popen(
            [sys.executable, str(runner), "demo", "--dir", str(root / "demo"), *options,
             "--no-serve"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root) as child:
        assert child.stdout is not None and child.stderr is not None
        arrived = [(time.monotonic() - started, line.rstrip("\n")) for line in child.stdout]
        err = child.stderr.read()
        assert child.wait() == 0, err
    return arrived


SIGN_IN = re.compile(r"  (\S+@\S+)  \[(.*?)\]  (.*?)  password: (\S+)  totp: (\S+)$")


def sign_ins(printed: list[tuple[float, str]]) -> tuple[list[DemoLogin], list[str]]:
    """The demo people's sign-ins and the projects' ids, as the demo printed them."""
    logins = [DemoLogin(m[1], "", m[3], m[2].split(", "), m[4], m[5])
              for _, line in printed if (m := SIGN_IN.match(line))]
    projects = [m[1] for _, line in printed if (m := re.match(r"  project (prj_\w+): ", line))]
    return logins, projects


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("demo-how-tos")
    printed = piped_demo(root, "--participants", str(PARTICIPANTS), "--seed", "7",
                         "--variants", str(VARIANTS))
    logins, projects = sign_ins(printed)
    key_file = root / "demo.key"
    # the walk asks more than 60 data requests a minute, as no one at a keyboard does: the
    # custodian raises the rate of the researcher, their project and their institution for it
    # (docs/how-to/hold-transfer-limits.md); a job's planned analyses, held to the same rate,
    # were refused otherwise, and the walk waited out a minute's window each time it was over
    admin, priya = (next(p for p in logins if p.email == e) for e in (ADMIN, RESEARCHERS[0][0]))
    with Platform.open(root / "demo", key_file, settings=SETTINGS) as platform:
        ctx = platform.access
        signed = verify_credentials(ctx, admin.email, admin.password, code(admin.totp_secret),
                                    "127.0.0.61", Via.SESSION)
        with ctx.transaction() as db:
            person, institution = db.execute(select(Person.id, Person.institution_id).where(
                Person.email == priya.email)).one()
        for scope, target in (("person", person), ("project", projects[STUDY_PROJECT]),
                              ("institution", institution)):
            platform.watch.set_limits(signed, scope, target, {"requests": 1_000})
    certificate, private_key = self_signed(root)
    port = free_port()
    url = f"https://{HOST}:{port}"
    log = root / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "STRONGROOM_MASTER_KEY"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(root / "demo"), str(key_file), HOST,
             str(port), str(certificate), str(private_key), "cold",
             json.dumps(dataclasses.asdict(SETTINGS))],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(url, certificate, process, log)
        yield Served(url, certificate, projects[STUDY_PROJECT], priya, printed)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _released(output: dict[str, Any], what: str) -> None:
    assert output["verdict"] in RELEASED, "\n".join([what, output["verdict"],
                                           *[f["reason"] for f in output["findings"]]])


def _command(line: str, served: Served, **names: str) -> list[str]:
    """A how-to's `strongroom …` command as argv, its placeholders put in."""
    for placeholder, value in names.items():
        line = line.replace(placeholder, value)
    line = line.replace(DOC_URL, served.url)
    argv = [part for part in re.findall(r"'[^']*'|\"[^\"]*\"|\S+", line)]
    return [a[1:-1] if a[:1] in "'\"" else a for a in argv][1:]  # without "strongroom"


def test_the_piped_demo_said_each_stage_as_it_went(served: Served) -> None:
    """With standard output piped (a log, as `make demo > log` makes it), each stage is a plain
    line, flushed as it happens, with its progress (cli/common.py: stage_report); on a terminal
    the same stages are Rich progress (tests/functional/test_demo_stages.py)."""
    lines = [line for _, line in served.printed]
    staged = [line for line in lines if line.startswith("[demo] ")]
    begun = [line[7:-1] for line in staged if line.endswith("…")]
    simulating = f"simulating genotypes ({VARIANTS} markers in linked regions, " \
                 f"{3 * VARIANTS} unlinked)"
    assert begun[:4] == [f"synthesising {PARTICIPANTS:,} participants", simulating,
                         "ingesting the cohort (validated, encrypted)", "sealing the genotypes"]
    assert "touring the enclave (the red team's attacks too)" in begun
    assert "an extract, a refused one, an alert" in begun
    for stage in begun:  # each stage that began ended, with its time
        assert any(re.fullmatch(rf"\[demo\] {re.escape(stage)}: done in \d+\.\d s", line)
                   for line in staged), stage
    # progress within a stage: the simulation's tenths
    assert any(re.fullmatch(rf"\[demo\] {re.escape(simulating)}… \d+%", line)
               for line in staged)
    # flushed as they happened, not when the process ended: the first stage's line came
    # well before the last line (the whole run takes tens of seconds)
    first = next(t for t, line in served.printed if line.startswith("[demo] synthesising"))
    assert served.printed[-1][0] - first > 3, served.printed[:3]
    # the stages come before the demo's report, which follows them
    assert lines.index(staged[-1]) < next(i for i, line in enumerate(lines)
                                          if "Participants by sex and smoking" in line)


def test_the_demo_reported_its_world_and_who_to_sign_in_as(served: Served) -> None:
    out = "\n".join(line for _, line in served.printed)
    assert f"{PARTICIPANTS:,} participants" in out
    assert "Participants by sex and smoking status" in out
    assert "The released GWAS of BMI" in out
    logins, projects = sign_ins(served.printed)
    assert len(logins) == 12 and len(projects) == 6
    for role in ("custodian-admin", "access-committee", "output-checker", "researcher",
                 "security-analyst", "auditor"):
        assert f"[{role}]" in out
    assert "Institut Lumière de Santé" in out  # an institution in another jurisdiction
    assert "red team: red.team@custodian.example" in out
    assert "http://127.0.0.1:8600/ui/" in out  # the web console, and who to sign in as
    assert "output-checker: checker@custodian.example" in out
    root = Path(next(line for line in served.printed[::-1]
                     if "strongroom attribute " in line[1])[1].split()[2]).parent
    assert (root / "demo-leaked.csv").is_file() and (root / "demo.key").is_file()
    assert f"strongroom attribute {root / 'demo-leaked.csv'}" in out


@pytest.fixture(scope="module")
def token(served: Served, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The study token, issued as run-a-study.md says (its password and code given, not
    prompted): every how-to here uses the `study` preset."""
    text = (HOW_TO / "run-a-study.md").read_text()
    (issue,) = [b for b in blocks(text, "bash") if "token issue" in b]
    line = issue.split("\n")[0].rstrip(" \\") + " " + issue.split("\n")[1].split("#")[0]
    argv = _command(line, served, prj_0123abcd=served.project,
                    **{"you@uni-a.ac.uk": served.researcher.email})
    status, out, err = cli(*argv, "--password", served.researcher.password,
                           "--code", code(served.researcher.totp_secret), "--ca",
                           str(served.ca), cwd=tmp_path_factory.mktemp("token"))
    assert status == 0, err
    served.token = json.loads(out)["secret"]
    return served.token


# run-a-job.md's `cohort` (its inputs) is the researcher's own definition, which the how-to
# does not write out: one over people born before 1960, so that its tables are no repeat of
# (nor a few people from) the other how-tos' populations, which the check would block
JOB_COHORT = ("SELECT pid, p31 AS sex, 2008 - p34 AS age, p21001_i0 AS bmi, "
              "p189 AS deprivation, p20116_i0 AS smoking, "
              "CASE WHEN p2443_i0 = 1 THEN 1 ELSE 0 END AS diabetes FROM participants "
              "WHERE p34 < 1960 AND p21001_i0 IS NOT NULL AND p189 IS NOT NULL "
              "AND p20116_i0 >= 0")


def test_run_a_job_runs_as_written_after_the_demo(served: Served, token: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """First here: a job's planned analyses are held to the person's rate of data requests
    like any, and the walk below goes faster than a person (a job refused for that reads
    "the platform could not run it")."""
    from strongroom.jobs import sandbox

    if sandbox.unavailable():
        pytest.skip(f"no sandbox here: {sandbox.unavailable()}")
    text = (HOW_TO / "run-a-job.md").read_text()
    with served.client() as sr:
        sr.enclave.define(served.project, "cohort", JOB_COHORT)
    # the repository, as the how-to writes it: project.yaml and analysis/study.py, in git
    repo = tmp_path / "study"
    (repo / "analysis").mkdir(parents=True)
    (repo / "project.yaml").write_text(blocks(text, "yaml")[0])
    (repo / "analysis" / "study.py").write_text(blocks(text, "python")[0])
    # its token, issued as the how-to says (the authenticator's next code: the study token
    # used this step's, and a code is good once)
    (bash,) = [b for b in blocks(text, "bash") if "--preset jobs" in b]
    lines = re.sub(r"\\\n\s*", " ", bash).splitlines()
    issue = _command(lines[0].split("#")[0], served, **{"prj_…": served.project,
                                                        "you@uni-a.ac.uk":
                                                        served.researcher.email})
    status, out, err = cli(*issue, "--password", served.researcher.password,
                           "--code", code(served.researcher.totp_secret, ahead=1),
                           "--ca", str(served.ca), cwd=tmp_path)
    assert status == 0, err
    monkeypatch.setenv("STRONGROOM_URL", served.url)
    monkeypatch.setenv("STRONGROOM_TOKEN", json.loads(out)["secret"])
    monkeypatch.setenv("STRONGROOM_CA", str(served.ca))
    env = {**os.environ, "GIT_AUTHOR_NAME": "R", "GIT_AUTHOR_EMAIL": "r@example.org",
           "GIT_COMMITTER_NAME": "R", "GIT_COMMITTER_EMAIL": "r@example.org"}
    for git in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "study"]):
        subprocess.run(["git", *git], cwd=repo, env=env, check=True)
    # section 3: the dummy data and a run on it; section 4: submitted, waited for
    commands = [line.split("#")[0] for line in lines if line.startswith("strongroom jobs")]
    commands += re.findall(r"^strongroom jobs submit .*$", text, re.M)
    assert [c.split()[2] for c in commands] == ["dummy", "run", "submit"]
    for line in commands:
        if line.split()[2] == "submit":
            subprocess.run(["git", "add", "plans"], cwd=repo, env=env, check=True)
            subprocess.run(["git", "commit", "-q", "-m", "plan"], cwd=repo, env=env,
                           check=True)
        status, out, err = cli(*_command(line, served, **{"prj_…": served.project}), cwd=repo)
        assert status == 0, (line, out, err)
    job = json.loads(out)
    assert job["status"] == "finished", job
    # section 5: the planned outputs are released at once; the figure goes to two checkers
    with served.client() as sr:
        for name, output_id in job["outputs"].items():
            output = sr.outputs.get(output_id)
            if name == "km":
                served.own_files.append(output_id)
                assert output["verdict"] == "review"
                asked = sr.outputs.request_release(output_id, "a histogram of BMI for the "
                                                              "paper's supplement")
                assert asked["status"] == "under_review"
                continue
            _released(output, name)
            assert sr.outputs.request_release(output_id)["status"] == "released"


def test_run_a_gwas_runs_as_written_after_the_demo(served: Served, token: str) -> None:
    """First of the how-tos here: a GWAS after a table of (nearly) the same people is blocked
    as differencing, as run-a-gwas.md says ("Analyse subgroups that differ by many people, or
    before the whole group")."""
    text = (HOW_TO / "run-a-gwas.md").read_text()
    with served.client() as client:
        names: dict[str, Any] = {"client": client, "project": served.project}
        for block in blocks(text, "python")[:2]:
            exec(compile(block, "run-a-gwas.md", "exec"), names)
        out = names["out"]
        _released(out, "the GWAS")
        assert client.outputs.request_release(out["id"])["status"] == "released"


def test_run_a_study_runs_as_written_after_the_demo(served: Served, token: str,
                                                    tmp_path: Path) -> None:
    text = (HOW_TO / "run-a-study.md").read_text()
    where = ("--ca", str(served.ca))
    remote = ("--url", served.url, "--token", token, *where)

    def run(*argv: str) -> tuple[int, str, str]:
        return cli(*argv, *remote, cwd=tmp_path)

    (tmp_path / "study.sql").write_text(blocks(text, "sql")[0])
    status, out, err = run("enclave", "define", served.project, "study", "@study.sql")
    assert status == 0 and json.loads(out)["size_ok"], err
    asked = re.findall(r"strongroom enclave analyse \$P '(.*?)'((?: --release| --table \S+)?)",
                       text, re.S)
    assert len(asked) >= 7
    # competing risks are asked "instead of the Kaplan–Meier table" (the how-to says why: the
    # second table of the same people repeats the first's numbers at risk, and is blocked);
    # the Kaplan–Meier path is walked here
    assert "(instead of the Kaplan–Meier table, as said above)" in text
    asked = [(s, o) for s, o in asked if json.loads(s)["kind"] != "cumulative_incidence"]
    ids = []
    for spec, options in asked:
        status, out, err = run("enclave", "analyse", served.project, spec, *options.split())
        output = json.loads(out)
        _released(output, spec)
        assert status == 0 and output["status"] == "released", (spec, err)
        ids.append(output["id"])
        if "--table" in options:
            written = tmp_path / options.split()[-1]
            frame = (pl.read_parquet(written) if written.suffix == ".parquet"
                     else pl.read_csv(written))
            assert frame.height > 0 and frame.width > 1, spec
    # the downloads, as written, of the first output
    for line in re.findall(r"^strongroom enclave download out_….*$", text, re.M):
        status, out, err = run(*_command(line.split("#")[0], served, **{"out_…": ids[0]}))
        assert status == 0, (line, err)
    assert (tmp_path / "survival.parquet").is_file()
    # the same in Python, as written
    python = blocks(text, "python")[0].replace(DOC_URL, served.url).replace(
        '"srt_…"', repr(served.token)).replace('"ca.pem"', repr(str(served.ca)))
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        printed = io.StringIO()
        exec(compile(python, "run-a-study.md", "exec"),
             {"P": served.project, "print": lambda *a: print(*a, file=printed)})
    finally:
        os.chdir(before)
    assert "odds_ratio" in printed.getvalue()


def test_analyse_in_the_enclave_runs_as_written_after_the_demo(
        served: Served, token: str, tmp_path: Path) -> None:
    text = (HOW_TO / "analyse-in-the-enclave.md").read_text()
    python = blocks(text, "python")
    project = served.project
    with served.client() as sr:
        fields = sr.projects.schema(project)
        assert fields
        (tmp_path / "dummy.zip").write_bytes(sr.enclave.dummy(project))
        names: dict[str, Any] = {"sr": sr}
        # sections 3 and 4: the definition and the analyses, as written
        for block in python[2:5]:
            exec(compile(block.replace("prj_0123abcd", project), "analyse.md", "exec"),
                 names)
        out = names["out"]
        _released(out, "the crosstab")
        done = sr.outputs.request_release(out["id"])
        assert done["status"] == "released"
        assert sr.outputs.download(out["id"])
        assert sr.outputs.frame(out["id"]).height > 0
    # at the command line
    adults = re.search(r'"adults", """(.*?)"""', text, re.S)
    assert adults is not None
    (tmp_path / "adults.sql").write_text(textwrap.dedent(adults.group(1)))
    crosstab = {"kind": "crosstab", "definition": "adults", "rows": "sex",
                "columns": "hypertension", "percentages": "row"}
    (tmp_path / "crosstab.json").write_text(json.dumps(crosstab))
    remote = ("--url", served.url, "--token", served.token, "--ca", str(served.ca))
    (bash,) = [b for b in blocks(text, "bash") if "enclave schema" in b]
    commands = [line.split("#")[0].strip() for line in re.sub(r"\n\s+(?=[\"'{])", " ",
                                                              bash).splitlines()
                if line.startswith("strongroom enclave")]
    last = ""
    for line in commands:
        argv = _command(line, served, prj_0123abcd=project, out_0123abcd=last)
        status, out, err = cli(*argv, *remote, cwd=tmp_path)
        assert status == 0, (line, err)
        if argv[1] == "analyse":
            output = json.loads(out)
            _released(output, line)
            last = output["id"]
    assert pl.read_csv(tmp_path / "crosstab.csv").height > 0


def test_the_demo_researcher_s_day_after_the_how_tos(served: Served, token: str) -> None:
    """After the how-tos, every output in the study project passed the check (released, or
    not asked for); none was withheld for a spent ration (an "answers" finding)."""
    with served.client() as sr:
        mine = sr.outputs.list(project_id=served.project)
        records = [sr.outputs.get(o["id"]) for o in mine]
    assert len(records) >= 10
    # a job's own figure goes to two checkers, always (run-a-job.md)
    records = [r for r in records if r["id"] not in served.own_files]
    # released, or checked and not asked for (analyse-in-the-enclave.md's aggregate SQL)
    assert {r["status"] for r in records} <= {"released", "checked"}
    assert {r["verdict"] for r in records} <= set(RELEASED), [r["verdict"] for r in records]
    assert not [f for r in records for f in r["findings"] if f["rule"] == "answers"]
