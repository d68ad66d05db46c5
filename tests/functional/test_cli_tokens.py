"""A researcher's tokens from the command line (`strongroom token …`) and exit codes that say
refused, against the real server over HTTPS.

`token issue` signs in with the password and authenticator code, issues a token of a preset
(or named actions) and prints its secret once; `token list` and `token revoke` sign in the
same way. The token then works with the commands its preset is for, and stops at once when
revoked. A command whose request is refused exits 1, including an answer that is itself a
refusal (an output the check blocked); an output held for review exits 0 and says so.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strongroom.access.presets import PRESETS
from strongroom.cli import app
from tests.cli_runner import cli
from tests.functional.test_server import Person, Server, register, running_server
from tests.totp_codes import Codes

SOURCE = "127.0.0.61"
BASE = ("SELECT pid, p31 AS sex, CASE WHEN p34 < 1950 THEN 'early' ELSE 'late' END AS era, "
        "p21001_i0 AS bmi FROM participants")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("cli-tokens")), None,
                        cohort=2000) as started:
        yield started


def _researcher(server: Server, email: str) -> tuple[Person, str]:
    admin = server.admin
    uni = admin.institutions.create(f"University of {email.split('@')[1]}", "GB", "UK GDPR",
                                    ["127.0.0.0/8"])
    person = register(server, email, ["researcher"], uni["id"], vetted=True)
    today = dt.date.today()
    project = admin.projects.create("Adiposity at the terminal", "Body mass index by sex",
                                    person.id, today, today + dt.timedelta(days=90),
                                    fields=[31, 34, 21001])["id"]
    return person, project


fresh_code = Codes().fresh  # a code of a step not used yet (tests/totp_codes.py)


def _signed(server: Server, person: Person, *, sign_in: bool = True) -> tuple[str, ...]:
    return ("--url", server.url, "--ca", str(server.ca), "--email", person.email,
            "--password", person.password, "--code",
            fresh_code(person.totp_secret) if sign_in else "123456")


def test_a_researcher_issues_lists_and_revokes_tokens_at_the_command_line(
        served: Server, tmp_path: Path) -> None:
    server = served
    rex, project = _researcher(server, "rex@tokens.ac.uk")

    # a preset or an action is needed, and a preset must exist: told before signing in
    status, _, err = cli("token", "issue", project, *_signed(server, rex, sign_in=False),
                         cwd=tmp_path)
    assert status == 2 and "--preset" in err
    status, _, err = cli("token", "issue", project, "--preset", "everything",
                         *_signed(server, rex, sign_in=False), cwd=tmp_path)
    assert status == 2 and "study" in err and "jobs" in err

    status, out, err = cli("token", "issue", project, "--preset", "study", "--label",
                           "my study", "--days", "7", *_signed(server, rex), cwd=tmp_path)
    assert status == 0, err
    new = json.loads(out)
    secret, token = new["secret"], new["token"]
    assert secret.startswith("srt_") and "shown once" in err and secret not in err
    assert set(token["actions"]) == {a.value for a in PRESETS["study"].actions}
    assert token["project_id"] == project and token["label"] == "my study"
    where = ("--url", server.url, "--token", secret, "--ca", str(server.ca))
    status, out, err = cli("enclave", "whoami", *where, cwd=tmp_path)
    assert status == 0, err
    assert json.loads(out)["token_project"] == project
    status, out, err = cli("enclave", "schema", project, *where, cwd=tmp_path)
    assert status == 0, err

    # named actions beside a preset, or instead of one; only actions a token may carry
    status, out, err = cli("token", "issue", project, "--preset", "read", "--action",
                           "output.download", *_signed(server, rex), cwd=tmp_path)
    assert status == 0, err
    assert set(json.loads(out)["token"]["actions"]) == {
        "self.read", "project.read", "output.read", "output.download"}
    reader = json.loads(out)["secret"]
    status, _, err = cli("enclave", "schema", project, "--url", server.url, "--token", reader,
                         "--ca", str(server.ca), cwd=tmp_path)
    assert status == 1 and "this API token allows only" in err  # read: no data.analyse

    rae, rae_project = _researcher(server, "rae@revoking.ac.uk")
    status, out, err = cli("token", "issue", rae_project, "--action", "self.read",
                           *_signed(server, rae), cwd=tmp_path)
    assert status == 0, err
    rae_token = json.loads(out)
    # the password and code asked for on standard error (the runner echoes what is typed to
    # standard output, as a terminal shows it; a pipe gets the JSON after a space)
    done = CliRunner().invoke(app, ["token", "list", "--url", server.url, "--ca",
                                    str(server.ca), "--email", rae.email],
                              input=f"{rae.password}\n{fresh_code(rae.totp_secret)}\n")
    status, out, err = done.exit_code, done.stdout, done.stderr
    assert status == 0, err
    assert "Password" in err and "Authenticator code" in err and rae.password not in err
    assert [t["id"] for t in json.loads(out[out.index("["):])] == [rae_token["token"]["id"]]
    assert "secret" not in out and rae_token["secret"] not in out
    rae_where = ("--url", server.url, "--token", rae_token["secret"], "--ca", str(server.ca))
    assert cli("enclave", "whoami", *rae_where, cwd=tmp_path)[0] == 0

    # a wrong code is refused: exit 1 with the server's reason, nothing issued
    status, _, err = cli("token", "issue", rae_project, "--preset", "study", "--url",
                         server.url, "--ca", str(server.ca), "--email", rae.email,
                         "--password", rae.password, "--code", "000000", cwd=tmp_path)
    assert status == 1 and "refused (401)" in err

    # revoked at the command line (rex's third sign-in: it may wait for the next code): the
    # token stops at once
    status, out, err = cli("token", "revoke", token["id"], *_signed(server, rex),
                           cwd=tmp_path)
    assert status == 0, err
    assert json.loads(out)["revoked_at"] is not None
    status, _, err = cli("enclave", "whoami", *where, cwd=tmp_path)
    assert status == 1 and "revoked" in err

    types = [e for e in server.admin.audit.entries(limit=1000)
             if e["type"] in ("auth.token.issued", "auth.token.revoked")]
    issued = [e for e in types if e["type"] == "auth.token.issued"
              and e["subject"] == token["id"]]
    assert issued and issued[0]["details"]["preset"] == "study"
    assert any(e["type"] == "auth.token.revoked" and e["subject"] == token["id"]
               for e in types)


def test_a_refused_answer_exits_1_and_review_exits_0_saying_so(
        served: Server, tmp_path: Path) -> None:
    server = served
    rob, project = _researcher(server, "rob@exits.ac.uk")
    with server.client(SOURCE) as session:
        session.login(rob.email, rob.password, fresh_code(rob.totp_secret))
        secret = session.tokens.issue(project, preset="study", days=1)["secret"]
    where = ("--url", server.url, "--token", secret, "--ca", str(server.ca))

    def run(*args: str) -> tuple[int, dict[str, object], str]:
        """Its exit status, its JSON and what it said on standard error, less the progress
        lines of a submitted analysis (`[analyse] run …`), which say nothing of the output."""
        status, out, err = cli(*args, *where, cwd=tmp_path)
        said = "".join(line for line in err.splitlines(keepends=True)
                       if not line.startswith("[analyse] run "))
        return status, json.loads(out) if out.strip() else {}, said

    status, _, err = run("enclave", "define", project, "base", BASE)
    assert status == 0, err
    status, _, err = run("enclave", "define", project, "fit", (
        "SELECT pid, p21001_i0 AS bmi, round(p21001_i0 * 4) / 4 AS quarter "
        "FROM participants WHERE p21001_i0 IS NOT NULL"))
    assert status == 0, err

    # released: 0, nothing said
    status, out, err = run("enclave", "analyse", project, json.dumps(
        {"kind": "crosstab", "definition": "base", "rows": "sex", "columns": "era"}),
        "--release")
    assert status == 0 and out["status"] == "released" and not err.strip(), err

    # the check asks for review: not a failure, and the line says what to do next
    status, held, err = run("enclave", "analyse", project, json.dumps(
        {"kind": "ols", "definition": "fit", "outcome": "bmi", "covariates": ["quarter"]}),
        "--release")
    assert held["verdict"] == "review", held
    assert status == 0 and "asks for review" in err and "--justification" in err, err
    status, asked, err = run("enclave", "release", str(held["id"]), "--justification",
                             "a calibration check: the covariate is the outcome rounded")
    assert status == 0 and asked["status"] == "under_review", err
    assert "held for review" in err and "two output checkers" in err

    # blocked (a model of an outcome that never varies is refused by the data): exit 1
    status, _, err = run("enclave", "define", project, "constant",
                         "SELECT pid, 1 AS one, p21001_i0 AS bmi FROM participants "
                         "WHERE p21001_i0 IS NOT NULL")
    assert status == 0, err
    status, blocked, err = run("enclave", "analyse", project, json.dumps(
        {"kind": "logistic", "definition": "constant", "outcome": "one",
         "covariates": ["bmi"]}))
    assert blocked["verdict"] == "block", blocked
    assert status == 1 and "blocked by the automated check" in err, err
    assert "takes a single value" in err  # the check's reason, said
    status, again, err = run("enclave", "release", str(blocked["id"]))
    assert status == 1 and again["status"] == "blocked" and "nothing of it leaves" in err

    # a request the server refuses outright exits 1 too (a job without project.yaml)
    (tmp_path / "empty").mkdir()
    status, _, err = run("jobs", "submit", "study", "--project", project, "--repo",
                         str(tmp_path / "empty"), "--wait")
    assert status == 1 and "refused" in err
