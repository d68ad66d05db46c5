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
the how-tos read); a job's own figure goes to two checkers, as run-a-job.md says. The
researcher's how-tos walked: run-a-job.md (in a git repository, in the sandbox where bubblewrap
is), run-a-gwas.md, run-a-study.md (its Kaplan–Meier path: competing risks are its alternative)
and analyse-in-the-enclave.md, in that order, each over people that differ from the others' by
many; then query-with-differential-privacy.md in the demo's DP project.

Then the other roles' how-tos, at the console as the demo's people (`strongroom login`, a
session file each), on what the demo's story left them, as explore-the-demo.md promises it:
check-outputs.md (the checker's queue of three), the leaked file of explore-the-demo.md and
trace-a-leaked-file.md, watch-alerts-and-siem.md (Mallory's alert and appeal),
hold-transfer-limits.md (identity links, a project's limits over curl) and, last, since it
pauses the whole platform, administer-access.md. Each person's authenticator code is the one
their app would show next (:func:`fresh_code`): a code's time step is good once.

Not walked here: use-the-r-client.md and run-an-r-job.md (walked as written by
tests/functional/test_r_client.py, tests/integration/test_r_study.py and
test_rmarkdown_jobs.py, against worlds of their own), the console how-tos (the browser tests
under tests/functional/web read every page), and those that need another world than the demo's:
ingest-a-cohort.md, ingest-genotypes.md, measure-reidentification-risk.md (a record-level
file), operate.md and run-the-benchmarks.md' quick form (walked as written by
tests/functional/test_custodian_how_tos.py, in a custodian's store of their own), and
run-on-spark.md (a cluster) and run-the-tests.md (the whole suite), not walked.
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
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyotp
import pytest
from sqlalchemy import select

from strongroom.access.auth import verify_credentials
from strongroom.access.context import Via
from strongroom.access.models import Person
from strongroom.access.totp import DRIFT_STEPS, STEP_SECONDS
from strongroom.client import Client
from strongroom.demo.run import unlinked_per_variant
from strongroom.demo.story import ADMIN
from strongroom.demo.world import RESEARCHERS, STUDY_PROJECT, DemoLogin
from strongroom.platform import Platform
from tests.access_world import SETTINGS
from tests.cli_runner import cli as run_cli
from tests.functional.test_server import HOST, SERVER, free_port, self_signed, wait_until_up

pytestmark = pytest.mark.slow  # a demo world, and a server over it

HOW_TO = Path(__file__).parents[2] / "docs" / "how-to"
# large enough that the how-tos' survival tables have events in every two-year interval of
# every smoking group, over the keyed line's highest draw (run-a-study.md's Kaplan-Meier
# table: 10 events, drawn up to 19; at seed 7 its fewest are 27, current smokers at 2 to 4
# years, 48 at 30,000), small enough to build in seconds (the genotypes' simulation grows
# with the participants: 30,000 cost the module a fifth more CPU); genotypes for
# run-a-gwas.md
PARTICIPANTS, VARIANTS = 20_000, 300
RELEASED = ("release", "release_with_suppression")
DOC_URL = "https://strongroom.example.org"


@dataclass
class Served:
    url: str
    ca: Path
    project: str  # the demo researcher's study project
    researcher: DemoLogin
    printed: list[tuple[float, str]]  # the demo's standard output: (seconds in, line)
    root: Path  # where the newcomer ran the demo: the data directory demo/ and its key in it
    logins: list[DemoLogin]
    projects: list[str]  # the demo's projects' ids, in demo/world.py's order
    steps: dict[str, int]  # each person's last authenticator step used (see fresh_code)
    token: str = ""
    own_files: list[str] = dataclasses.field(default_factory=list)  # a job's, to the checkers
    signed_in: set[str] = dataclasses.field(default_factory=set)  # at the console (login)

    @property
    def data_dir(self) -> Path:
        return self.root / "demo"

    def login(self, email: str) -> DemoLogin:
        return next(p for p in self.logins if p.email == email)

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


def fresh_code(steps: dict[str, int], login: DemoLogin) -> str:
    """The person's authenticator code, as their app would show it when they sign in next: a
    time step's code is good once, and a person's steps only go forward, so it is the code of
    the current step, or of the next (within the drift window) when the current one was used,
    or, when both were, of the next after waiting for it, as a person waits for their app."""
    while True:
        now = int(time.time()) // STEP_SECONDS
        step = max(now, steps.get(login.email, -1) + 1)
        if step <= now + DRIFT_STEPS:
            steps[login.email] = step
            return pyotp.TOTP(login.totp_secret).generate_otp(step)
        time.sleep(STEP_SECONDS - time.time() % STEP_SECONDS + 0.1)


def blocks(text: str, language: str) -> list[str]:
    """The document's fenced code blocks in ``language``, in order."""
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


# the CLI's own entry point, its people acting with the test worlds' settings (cheap password
# hashes, no timing floors on answers), its genotypes simulated in its own process (a pool's
# spawned processes each import the simulator again: 22.6 CPU-s against 15.7 at 30,000, on
# cores the other tests keep busy); the guard: the genotype reader's child processes start by
# importing this file
RUNNER = f"""
import functools
import sys

if __name__ == "__main__":
    sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
    from strongroom.cli import demo as command
    from strongroom.demo import run_demo
    from tests.access_world import SETTINGS

    command.run_demo = functools.partial(run_demo, settings=SETTINGS, jobs=False, workers=0)
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
        steps: dict[str, int] = {}
        signed = verify_credentials(ctx, admin.email, admin.password, fresh_code(steps, admin),
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
        yield Served(url, certificate, projects[STUDY_PROJECT], priya, printed, root, logins,
                     projects, steps)
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
    simulating = f"simulating genotypes ({VARIANTS:,} markers in linked regions, " \
                 f"{unlinked_per_variant(PARTICIPANTS) * VARIANTS:,} unlinked)"
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
    assert "The released GWAS of BMI (λ_GC " in out
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
                           "--code", fresh_code(served.steps, served.researcher), "--ca",
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
    like any, and the walk below goes faster than a person (a job refused for that says
    so, and when to submit it again)."""
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
    # used an earlier one, and a code is good once)
    (bash,) = [b for b in blocks(text, "bash") if "--preset jobs" in b]
    lines = re.sub(r"\\\n\s*", " ", bash).splitlines()
    issue = _command(lines[0].split("#")[0], served, **{"prj_…": served.project,
                                                        "you@uni-a.ac.uk":
                                                        served.researcher.email})
    status, out, err = cli(*issue, "--password", served.researcher.password,
                           "--code", fresh_code(served.steps, served.researcher),
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
        # section 3: what comes back, as the how-to lists it
        record = json.loads(client.outputs.download(out["id"]))
    listed = re.search(r"one row per released variant and trait: `(.*?)`", text, re.S)
    assert listed is not None
    columns = [c.strip() for c in listed.group(1).split(",")]
    assert record["columns"][:len(columns)] == columns, record["columns"]
    assert record["variants"], "no variant released"
    assert {row[0] for row in record["variants"]} <= {"bmi", "sbp"}
    assert set(record["lambda_gc"]) == {"bmi", "sbp"} and "withheld" in record
    assert record["facts"]["n"], record["facts"]


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
    # "Try every request below on the dummy data first": the dummy data, study.sql's table too
    (dummy,) = re.findall(r"\(`(strongroom enclave dummy \$P)`\)", text)
    status, out, err = run(*_command(dummy, served, **{"$P": served.project}))
    assert status == 0, err
    with zipfile.ZipFile(tmp_path / "dummy.zip") as made:
        assert any("study" in name for name in made.namelist()), made.namelist()
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
    # the Kaplan–Meier table's groups by the dictionary's words ("`smoking` (by its words)"),
    # the codes beside them
    survival = pl.read_csv(tmp_path / "survival.csv")
    assert {"Never", "Previous", "Current"} <= set(survival["smoking"]), survival["smoking"]
    assert "smoking_code" in survival.columns and "start" in survival.columns
    # the Cox table's terms by the dictionary's words, as the how-to says, the term as fitted
    # beside them
    cox = pl.read_csv(tmp_path / "cox.csv")
    terms = dict(zip(cox["term_code"], cox["term"], strict=True))
    assert terms["smoking=1"] == "smoking=Previous" and terms["smoking=2"] == \
        "smoking=Current" and terms["sex=1"] == "sex=Male", terms
    assert all(f"`{said}`" in text for said in ("smoking=Previous", "smoking=Current"))
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
        served: Served, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (HOW_TO / "analyse-in-the-enclave.md").read_text()
    python = [b.replace("prj_0123abcd", served.project).replace(DOC_URL, served.url)
              for b in blocks(text, "python")]
    assert len(python) == 8, "a block was added: walk it here"
    monkeypatch.chdir(tmp_path)  # where the how-to's files are written
    # section 1, signed in with the token its comment offers (the person's password and
    # code are for issuing it: a code is good once)
    first = re.sub(r"\n\s*sr\.login\(.*", "", python[0]).replace(
        'verify="ca.pem"', f"verify={str(served.ca)!r}, token={served.token!r}")
    assert first.count("\n") == python[0].count("\n") - 1, first
    names: dict[str, Any] = {}
    exec(compile(first, "analyse-in-the-enclave.md", "exec"), names)
    assert names["fields"]
    with served.client() as sr:
        # sections 2 to 5, as written, in the session section 1 began (its imports), in a
        # client as section 1 opened it
        names = {**names, "sr": sr}
        for block in python[1:]:
            exec(compile(block, "analyse-in-the-enclave.md", "exec"), names)
        assert (tmp_path / "dummy.zip").stat().st_size > 0
        out, later = names["out"], names["later"]
        _released(out, "the crosstab")
        _released(later, "the crosstab asked with wait=False")
        assert names["done"]["status"] == "released"
        assert names["data"]
        # "sex" "Female", with the code in "sex_code"
        frame = names["frame"]
        assert "Female" in frame["sex"].to_list() and "sex_code" in frame.columns, frame
        assert pl.read_csv(tmp_path / "table.csv").height == frame.height
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
        argv = _command(line, served, prj_0123abcd=served.project, out_0123abcd=last)
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


# -- the custodian's, the checker's and the security team's how-tos, at the console -----------

def _line(line: str, served: Served, **names: str) -> list[str]:
    """A how-to's console line (``$ strongroom …``, its comment dropped) as argv, its
    placeholders put in: the doc's data directories are the demo's."""
    line = line.removeprefix("$ ").split(" # ")[0].split("  #")[0].strip()
    for doc_dir in ("strongroom-demo-leaked.csv", "strongroom-demo", "/srv/strongroom"):
        line = line.replace(doc_dir, str(served.root / ("demo-leaked.csv" if "leaked" in doc_dir
                                                        else "demo")))
    return _command(line, served, **names)


def _console_lines(text: str, language: str = "console") -> list[str]:
    """The document's `strongroom …` command lines in ``language`` blocks, without their
    prompts and comments."""
    return [line.removeprefix("$ ").split(" # ")[0].split("  #")[0].strip()
            for block in blocks(text, language)
            for line in re.sub(r"\\\n\s*", " ", block).splitlines()
            if line.removeprefix("$ ").startswith("strongroom ")]


class AtTheConsole:
    """A person at the console: `strongroom login --as EMAIL` once (their password and code
    given, not prompted; the session in a file of their own), then commands as the how-to
    writes them, the data directory from STRONGROOM_DATA_DIR where the how-to leaves it out
    (administer-access.md: "All commands take -d DATA_DIR (or STRONGROOM_DATA_DIR)")."""

    def __init__(self, served: Served, email: str, cwd: Path, login: str | None = None):
        self.served, self.email, self.cwd = served, email, cwd
        self.session = served.root / "sessions" / email
        self.session.parent.mkdir(exist_ok=True)
        if email not in served.signed_in:
            person = served.login(email)
            argv = _line(login or f"strongroom login --as {email}", served,
                         **{"you@custodian.org": email, "committee@custodian.org": email})
            status, out, err = self.run(*argv, "--password", person.password,
                                        "--code", fresh_code(served.steps, person))
            assert status == 0, (argv, out, err)
            served.signed_in.add(email)

    def run(self, *argv: str) -> tuple[int, str, str]:
        before = {k: os.environ.get(k) for k in ("STRONGROOM_SESSION_FILE",
                                                  "STRONGROOM_DATA_DIR")}
        os.environ["STRONGROOM_SESSION_FILE"] = str(self.session)
        os.environ["STRONGROOM_DATA_DIR"] = str(self.served.data_dir)
        try:
            return cli(*argv, cwd=self.cwd)
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def __call__(self, line: str, ok: tuple[int, ...] = (0,), **names: str) -> str:
        status, out, err = self.run(*_line(line, self.served, **names))
        assert status in ok, (self.email, line, out, err)
        return out


DP_PROJECT = 3  # the demo's differential-privacy project (demo/world.py: PROJECTS)


def test_query_with_differential_privacy_runs_as_written_in_the_demo(
        served: Served, token: str, tmp_path: Path) -> None:
    """The demo's DP project, as explore-the-demo.md tells it (the access committee put it in
    DP mode with ε 1, Priya spent ε 0.4), then query-with-differential-privacy.md as written:
    the committee's commands at the console, Priya's questions with a study token for it."""
    from strongroom.demo.story import COMMITTEE

    out = "\n".join(line for _, line in served.printed)
    if "no DP query was answered" in out:
        pytest.skip("no DP engine here (strongroom dp setup): the demo answered no DP query")
    text = (HOW_TO / "query-with-differential-privacy.md").read_text()
    project = served.projects[DP_PROJECT]
    names = {"prj_0123abcd": project}
    (section,) = [b for b in blocks(text, "sh") if "dp mode" in b]
    login, *commands = [line for line in section.splitlines() if line.startswith("strongroom ")]
    committee = AtTheConsole(served, COMMITTEE, tmp_path, login)
    assert json.loads(committee(commands[-1], **names))["epsilon_spent"] == "0.4"
    for line in commands:
        said = json.loads(committee(line, **names))
    assert said["mode"] == "dp" and said["epsilon_total"] == "1", said
    # Priya's token for the project, with the study preset the how-to names
    (issue,) = [b for b in blocks((HOW_TO / "run-a-study.md").read_text(), "bash")
                if "token issue" in b]
    argv = _command(re.sub(r"\\\n\s*", " ", issue).splitlines()[0].split("#")[0], served,
                    prj_0123abcd=project, **{"you@uni-a.ac.uk": served.researcher.email})
    status, issued, err = cli(*argv, "--password", served.researcher.password, "--code",
                              fresh_code(served.steps, served.researcher), "--ca",
                              str(served.ca), cwd=tmp_path)
    assert status == 0, err
    secret = json.loads(issued)["secret"]
    python = [b.replace("prj_0123abcd", project) for b in blocks(text, "python")]
    assert len(python) == 3, "a block was added: walk it here"
    first = python[0].replace(DOC_URL, served.url).replace('"srt_…"', repr(secret)).replace(
        '"ca.pem"', repr(str(served.ca)))
    printed = io.StringIO()
    said_names: dict[str, Any] = {"print": lambda *a: print(*a, file=printed)}
    exec(compile(first, "query-with-differential-privacy.md", "exec"), said_names)
    bmi, answer = said_names["bmi"], said_names["answer"]
    assert bmi["ci_lower"] <= bmi["value"] <= bmi["ci_upper"] and 10 <= bmi["value"] <= 60
    assert answer["epsilon_remaining"] == "0.5", answer  # 1 − 0.4 − 0.1
    with Client(served.url, verify=served.ca, token=secret, timeout=300) as sr:
        chapters = eval(compile(python[1].strip(), "query-with-differential-privacy.md",
                                "eval"), {"sr": sr})
        assert chapters["estimates"] and chapters["epsilon"] == "0.25", chapters
        budget = eval(compile(python[2].split("#")[0].strip(),
                              "query-with-differential-privacy.md", "eval"), {"sr": sr})
    assert budget["epsilon_remaining"] == "0.25", budget
    # and the one at the command line
    (count,) = re.findall(r"`(strongroom dp query prj_0123abcd '.*?' --url … --token …)`", text)
    argv = _command(count.replace("--url …", f"--url {served.url}").replace(
        "--token …", f"--token {secret}"), served, prj_0123abcd=project)
    status, said_out, err = cli(*argv, "--ca", str(served.ca), cwd=tmp_path)
    assert status == 0, err
    assert json.loads(said_out)["epsilon_remaining"] == "0.15"


def test_check_outputs_runs_as_written_in_the_demo(served: Served, tmp_path: Path) -> None:
    """check-outputs.md as the demo's output checker, on the queue explore-the-demo.md
    promises: three outputs held for review, one approved by Kofi Mensah and waiting for a
    second checker."""
    from strongroom.demo.story import ADMIN as CUSTODIAN
    from strongroom.demo.story import CHECKER

    text = (HOW_TO / "check-outputs.md").read_text()
    lines = _console_lines(text)
    first = served.projects[0]  # the story tightened its rules so: the same again
    rules = [line for line in lines if "--set small-cells.yaml" in line]
    assert len(rules) == 1
    printf = next(b for b in blocks(text, "console") if "printf" in b).split("\n")[0]
    subprocess.run(printf.removeprefix("$ "), shell=True, cwd=tmp_path, check=True)
    admin = AtTheConsole(served, CUSTODIAN, tmp_path)
    assert json.loads(admin(rules[0], **{"prj_…": first}))["threshold"]["verdict"] == "review"
    (login,) = re.findall(r"`(strongroom login --as \S+)`", text)
    checker = AtTheConsole(served, CHECKER, tmp_path, login)
    queue = json.loads(checker(next(line for line in lines if "--queue" in line)))
    # the demo's three, and the figure of run-a-job.md's walk (own files go to the checkers)
    queue = [o for o in queue if o["id"] not in served.own_files]
    assert len(queue) == 3, [(o["id"], o["status"]) for o in queue]
    (once,) = [o["id"] for o in queue if o["status"] == "approved_once"]
    waiting, other = [o["id"] for o in queue if o["status"] == "under_review"]
    shown = json.loads(checker(next(line for line in lines if " show " in line),
                               **{"out_3f9c…": once}))
    assert shown["findings"] and shown["reviews"], shown
    # at the console, reading the bytes and deciding say where they are done instead
    for refused in ("strongroom outputs content out_3f9c… --out out_3f9c.json",
                    "strongroom outputs review out_3f9c… --approve --reason checked"):
        status, said, err = checker.run(*_line(refused, served, **{"out_3f9c…": once}))
        assert status == 1 and "never at the server's console" in err, (said, err)
    # ... from the checker's network, as the how-to's Python does it
    (python,) = blocks(text, "python")
    python = python.replace(DOC_URL, served.url).replace('"ca.pem"', repr(str(served.ca)))
    person = served.login(CHECKER)
    python = python.replace('"you@custodian.org", "…", "123456"', ", ".join(map(repr, (
        CHECKER, person.password, fresh_code(served.steps, person)))))
    python = python.replace("/secure/review/", f"{tmp_path}/").replace('"out_3f9c…"',
                                                                      repr(once))
    reject = re.search(r"# or: (sr\.outputs\.review\(.*\))", python)
    assert reject is not None
    python += "\n    " + reject.group(1).replace(repr(once), repr(waiting))
    exec(compile(python, "check-outputs.md", "exec"), {})
    assert json.loads((tmp_path / "out_3f9c.json").read_text())["cells"]
    show = next(line for line in lines if " show " in line)
    assert json.loads(checker(show, **{"out_3f9c…": once}))["status"] == "released"
    assert json.loads(checker(show, **{"out_3f9c…": waiting}))["status"] == "rejected"
    assert [o["id"] for o in json.loads(checker(next(line for line in lines if "--queue" in line)))
            if o["id"] not in served.own_files] == [other]  # the other project's, waiting
    shipped = json.loads(checker(next(line for line in lines if line.endswith("rules")
                                      or "rules  " in line)))
    assert shipped["threshold"], shipped
    # the raw-row scanner: the demo's leaked rows are participants' (exit 1), the checked
    # crosstab is not (exit 0)
    scan = next(line for line in lines if " scan " in line)
    found = json.loads(checker(scan.replace("suspicious.csv", str(served.root /
                                                                   "demo-leaked.csv")),
                               ok=(1,)))
    assert found
    assert json.loads(checker(scan.replace("suspicious.csv",
                                           str(tmp_path / "out_3f9c.json")))) == []


def test_trace_a_leaked_file_runs_as_written_in_the_demo(served: Served, tmp_path: Path) -> None:
    """explore-the-demo.md's leaked file, named at the command line as it says (the security
    analyst signed in), then trace-a-leaked-file.md's `--json` form and its indicators."""
    from strongroom.demo.story import ADMIN as CUSTODIAN
    from strongroom.demo.story import MALLORY

    explore = (HOW_TO / "explore-the-demo.md").read_text()
    (block,) = [b for b in blocks(explore, "sh") if "strongroom attribute" in b]
    login, attribute = [line.strip() for line in block.splitlines() if line.strip()]
    analyst = AtTheConsole(served, "security@custodian.example", tmp_path, login)
    said = analyst(attribute)
    mallory_project = served.projects[2]
    assert said.startswith("attributed: ") and mallory_project in said, said
    assert "Cardiometabolic biomarkers for registry linkage" in said, said
    assert (served.root / "demo-leaked.csv.evidence.md").is_file()  # beside the file
    # trace-a-leaked-file.md: the same as JSON, with the names beside the IDs
    text = (HOW_TO / "trace-a-leaked-file.md").read_text()
    (as_json,) = [line for line in _console_lines(text) if "--json" in line]
    found = json.loads(analyst(as_json.replace("leaked.csv", str(served.root /
                                                                 "demo-leaked.csv"))))
    assert found["verdict"] == "attributed", found
    (accused,) = found["accused"]
    assert accused["project"] == mallory_project and accused["institution_name"] == \
        "Eastgate Health Analytics Ltd", accused
    assert accused["false_accusation_bound"] <= 1e-9
    assert found["rows_read"] == 300 and found["rows_linked"] > 0, found
    assert MALLORY  # her extract's, as the demo left it
    # the decoys as STIX, for threat intelligence (the custodian's team)
    (indicators,) = [line for line in _console_lines(text) if "indicators" in line]
    AtTheConsole(served, CUSTODIAN, tmp_path)(indicators)
    bundle = json.loads((tmp_path / "decoys.stix.json").read_text())
    assert bundle["type"] == "bundle" and (tmp_path / "decoys.key").is_file()
    assert any(o["type"] == "indicator" for o in bundle["objects"])


def test_watch_alerts_and_siem_runs_as_written_in_the_demo(served: Served,
                                                            tmp_path: Path) -> None:
    """watch-alerts-and-siem.md on the demo's open alert (explore-the-demo.md: Mallory's bulk
    extract refused over her project's limit, she and the project suspended, her appeal
    waiting): followed once, worked through its states, her appeal lifted by two different
    custodian admins (Ada, then Grace, as explore-the-demo.md says), exported as OCSF from
    Python, and a webhook's signature checked by both of the how-to's checkers. The live
    `watch tail` forms (they never end) and the destinations of a watch.yaml the demo has
    none of are left out."""
    from strongroom.demo.story import ADMIN as CUSTODIAN
    from strongroom.demo.story import MALLORY
    from strongroom.watch.exports.webhooks import sign

    text = (HOW_TO / "watch-alerts-and-siem.md").read_text()
    lines = _console_lines(text)
    (login,) = re.findall(r"`(strongroom login --as \S+)`", text)
    analyst = AtTheConsole(served, "security@custodian.example", tmp_path, login)
    assert analyst(next(line for line in lines if line.endswith("tail --once")))
    alerts = json.loads(analyst(next(line for line in lines if "alerts --status open" in line)))
    (alert,) = [a for a in alerts if a["detector"].startswith("limit.")]
    assert alert["severity"] == "high", alert
    for verb in ("show", "ack", "resolve", "reopen"):
        said = json.loads(analyst(next(line for line in lines if f" watch {verb} " in line),
                                  **{"alr_3f9c…": alert["id"]}))
    assert said["status"] == "open", said
    shown = json.loads(analyst(next(line for line in lines if " watch show " in line),
                               **{"alr_3f9c…": alert["id"]}))
    mallory = served.login(MALLORY).email
    assert shown["appeal"]["status"] == "pending" and shown["appeal"]["by"], (shown, mallory)
    # her appeal, lifted: a first admin asks, a second different one confirms
    lift = next(line for line in lines if "--lift" in line)
    first = json.loads(AtTheConsole(served, CUSTODIAN, tmp_path)(lift,
                                                                 **{"alr_3f9c…": alert["id"]}))
    assert first["status"] == "lifting", first  # one admin's lift is a request
    second = json.loads(AtTheConsole(served, "grace.admin@custodian.example", tmp_path)(
        lift, **{"alr_3f9c…": alert["id"]}))
    assert second["status"] == "lifted", second
    assert {s["state"] for s in second["suspensions"]} == {"lifted"}, second
    # the deliveries (none configured: nothing queued)
    assert json.loads(analyst(next(line for line in lines if line.endswith("deliveries")))) \
        == []
    # from Python, over the API: the high alerts and one as OCSF
    python = blocks(text, "python")
    person = served.login("security@custodian.example")
    listing = python[0].replace(DOC_URL, served.url).replace(
        '"ca.pem"', repr(str(served.ca))).replace('"analyst@custodian.org", "…", "123456"',
                                                  ", ".join(map(repr, (
                                                      person.email, person.password,
                                                      fresh_code(served.steps, person)))))
    printed = io.StringIO()
    names: dict[str, Any] = {"print": lambda *a: print(*a, file=printed)}
    exec(compile(listing.replace('"alr_…"', repr(alert["id"])), "watch-alerts-and-siem.md",
                 "exec"), names)
    assert alert["id"] in printed.getvalue()
    assert names["finding"]["finding_info"]["uid"] == alert["id"], names["finding"]
    # a webhook's signature, checked by the how-to's two checkers
    secret, body = b"s" * 32, b'{"alert": "alr_x"}'
    header = sign(secret, body)
    checkers: dict[str, Any] = {"SECRET": secret, "reply": lambda status, why: status}
    exec(compile(python[1], "watch-alerts-and-siem.md", "exec"), checkers)
    exec(compile(python[2], "watch-alerts-and-siem.md", "exec"), checkers)
    assert checkers["receive"](body, {"X-Strongroom-Signature": header}) is None
    assert checkers["receive"](body + b" ", {"X-Strongroom-Signature": header}) == 401
    assert checkers["valid"](secret, body, header)
    assert not checkers["valid"](secret, body + b" ", header)


def _curl(line: str, served: Served, env: dict[str, str], cwd: Path) -> Any:
    """A how-to's curl command, run as written (its host the demo's, the demo's CA given as
    STRONGROOM_CA is for the CLI), its answer's JSON."""
    line = re.sub(r"\\\n\s*", " ", line).replace("https://strongroom.example", served.url)
    done = subprocess.run(f"{line} --cacert {served.ca} -w '\n%{{http_code}}'", shell=True,
                          cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True,
                          check=True)
    body, _, status = done.stdout.rpartition("\n")
    assert status == "200", (line, status, body)
    return json.loads(body)


def test_hold_transfer_limits_runs_as_written_in_the_demo(served: Served, token: str,
                                                          tmp_path: Path) -> None:
    """hold-transfer-limits.md in the demo: the custodian's identity commands on two of the
    demo's researchers (Tom and Camille: linked as one, unlinked, marked distinct, an ORCID),
    a project's limits read with the researcher's `read` token and changed by the custodian
    admin with curl, signed in as the how-to says (`POST /auth/login`)."""
    from strongroom.demo.story import ADMIN as CUSTODIAN
    from strongroom.demo.story import CAMILLE, TOM

    text = (HOW_TO / "hold-transfer-limits.md").read_text()
    lines = _console_lines(text, "bash")
    ada = AtTheConsole(served, CUSTODIAN, tmp_path)
    people = {p["email"]: p["id"] for p in json.loads(ada("strongroom admin person list"))}
    tom, camille = people[TOM], people[CAMILLE]
    pair = {"per_A": tom, "per_B": camille, "per_…": tom}

    def step(start: str) -> Any:
        return json.loads(ada(next(line for line in lines if line.startswith(start)), **pair))

    assert isinstance(step("strongroom admin person duplicates"), list)
    assert step("strongroom admin person accounts")["accounts"] == [tom]
    assert step("strongroom admin person link per_A per_B --reason")
    # one allowance now
    assert set(step("strongroom admin person accounts")["accounts"]) == {tom, camille}
    step("strongroom admin person unlink")
    assert step("strongroom admin person accounts")["accounts"] == [tom]
    step("strongroom admin person link per_A per_B --distinct")
    step("strongroom admin person orcid")
    # the limits: a researcher's `read` token reads them
    assert "(`--preset read`\nonly reads them)" in text or "`--preset read`" in text
    argv = _command(f"strongroom token issue prj_… --preset read --url {DOC_URL} "
                    f"--email {served.researcher.email}", served, **{"prj_…": served.project})
    status, issued, err = cli(*argv, "--password", served.researcher.password, "--code",
                              fresh_code(served.steps, served.researcher), "--ca",
                              str(served.ca), cwd=tmp_path)
    assert status == 0, err
    (block,) = [b for b in blocks(text, "bash") if "/projects/prj_…/limits" in b]
    reads, change, _institution = [c.strip() for c in re.split(r"\n(?=curl|# )", block)
                                   if c.startswith("curl")]
    env = {"TOKEN": json.loads(issued)["secret"]}
    before = _curl(reads.replace("prj_…", served.project), served, env, tmp_path)
    assert before, before
    # the custodian admin, signed in as the how-to's next section says (its cookie and CSRF)
    admin = served.login(CUSTODIAN)
    (sign_in,) = [b for b in blocks(text, "bash") if "/auth/login" in b]
    script = sign_in.replace("you@custodian.org", admin.email).replace(
        '"password": "…"', json.dumps({"password": admin.password})[1:-1]).replace(
        '"code": "123456"', f'"code": "{fresh_code(served.steps, admin)}"').replace(
        "https://strongroom.example", served.url).replace("curl -s", f"curl -s --cacert "
                                                                    f"{served.ca}")
    done = subprocess.run(["bash", "-c", f'{script}\necho "$CSRF"'], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    env["CSRF"] = done.stdout.strip()
    assert env["CSRF"], (done.stdout, done.stderr)
    _curl(change.replace("prj_…", served.project), served, env, tmp_path)
    after = _curl(reads.replace("prj_…", served.project), served, env, tmp_path)
    assert after != before, after


def _id(prefix: str, said: str) -> str:
    found = re.search(rf"\b{prefix}_[0-9a-z]+\b", said)
    assert found is not None, (prefix, said)
    return found.group(0)


def test_administer_access_runs_as_written_in_the_demo(served: Served, token: str,
                                                       tmp_path: Path) -> None:
    """administer-access.md as the demo's custodian admin, Ada (and its access-committee
    step as Ada Committee): a partner, a person and a project of its own; then cut off, the
    whole platform paused and lifted by two admins (Ada, then Grace); the audit log proven.
    Last here: it pauses the platform."""
    from strongroom.demo.story import ADMIN as CUSTODIAN
    from strongroom.demo.story import COMMITTEE

    text = (HOW_TO / "administer-access.md").read_text()
    lines = _console_lines(text, "sh")
    bootstrap = next(line for line in lines if "admin bootstrap" in line)
    ada = AtTheConsole(served, CUSTODIAN, tmp_path, next(
        line for line in lines if line.startswith("strongroom login")).replace(
        "ada@custodian.org", CUSTODIAN))
    status, out, err = ada.run(*_line(bootstrap, served))
    assert status == 1 and "refused" in err, (out, err)  # "refused once anyone exists"

    def step(verb: str, who: AtTheConsole = ada, **names: str) -> str:
        return who(next(line for line in lines if verb in line), **names)

    # explore-the-demo.md: "institutions (four, one in France, one a commercial partner)"
    assert len(json.loads(ada("strongroom admin institution list"))) == 4
    institution = _id("ins", step("institution add"))
    person = _id("per", step("person add", **{"ins_…": institution}))
    step("person training", **{"per_…": person})
    step("person vetting", **{"per_…": person})
    project = _id("prj", step("project add", **{"per_…": person}))
    assert json.loads(step("project fields", **{"prj_…": project}))
    # the export decision needs the researchers' request first (the how-to says so): Sam's
    # project starts next month, so he cannot ask yet, and the decision says what is missing
    status, out, err = AtTheConsole(served, COMMITTEE, tmp_path).run(*_line(next(
        line for line in lines if "project export" in line), served, **{"prj_…": project}))
    assert status == 1 and "it cannot approve; from none it can request" in err, (out, err)
    step("institution revoke", **{"ins_…": institution})
    step("pause set project", **{"prj_…": project})
    pause = _id("pau", step("pause set platform"))
    step("pause lift", **{"pau_…": pause})  # a first admin: the lift is requested
    lifted = step("pause lift", AtTheConsole(served, "grace.admin@custodian.example",
                                             tmp_path), **{"pau_…": pause})
    assert "lifted" in lifted, lifted
    with served.client() as sr:  # the platform is open again: the researcher's token works
        assert sr.projects.schema(served.project)
    for line in [line for line in lines if line.startswith("strongroom audit")]:
        ada(line)
    assert (tmp_path / "cp.json").is_file()
    ada(next(line for line in lines if line == "strongroom logout"))
    served.signed_in.discard(CUSTODIAN)
