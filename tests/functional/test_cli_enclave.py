"""A researcher's study at the command line over HTTPS (`strongroom enclave …`), and proof that
the client and the command line between them reach every operation a researcher may use.

The real server runs in its own process and writes its access log (one JSON line per request,
by route template); the operations the command line and the client reached are read from it,
and compared with the researcher's operations in the server's own OpenAPI spec. A route added
for researchers without a command and a client method fails here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from strongroom.access.permissions import RULES, Action
from strongroom.access.roles import Role
from strongroom.client import StrongroomError
from strongroom.server.app import create_app
from strongroom.server.security import ACTION_KEY, PUBLIC
from tests.cli_runner import cli
from tests.functional.test_server import Server, code, register, running_server

SOURCE = "127.0.0.51"
BASE = "SELECT pid, p31 AS sex, p20116_i0 AS smoking, p21001_i0 AS bmi FROM participants"
MISSING = "missing_0000"  # an id that names nothing: the route is reached, and refuses


def researcher_operations() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(every operation a researcher may call, those a project token may call), from the spec:
    the command line signs in with a token, so it must reach the second set."""
    every, by_token = set(), set()
    for path, operations in create_app(None).openapi()["paths"].items():
        for method, operation in operations.items():
            action = operation[ACTION_KEY]
            if action == PUBLIC:
                if path == "/auth/login":
                    every.add((method.upper(), path))
                continue
            rule = RULES[Action(action)]
            if Role.RESEARCHER in rule.roles:
                every.add((method.upper(), path))
                if rule.by_token and path != "/auth/logout":  # a token has no session
                    by_token.add((method.upper(), path))
    return every, by_token


def reached(log: Path, start: int) -> set[tuple[str, str]]:
    """The operations the server's access log shows from byte ``start`` on."""
    found = set()
    with log.open("rb") as fh:
        fh.seek(start)
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "route" in entry and "method" in entry:
                found.add((entry["method"], entry["route"]))
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    directory = Path(tmp_path_factory.mktemp("cli-enclave"))
    with running_server(directory, None, cohort=2000) as started:
        yield started, directory / "server.log"


def test_a_study_at_the_command_line_and_every_researcher_operation_reached(
        served: tuple[Server, Path], tmp_path: Path) -> None:
    server, log = served
    admin = server.admin
    every, by_token = researcher_operations()
    assert len(by_token) >= 25 and by_token < every
    uni = admin.institutions.create("Command Line University", "GB", "UK GDPR", ["127.0.0.0/8"])
    rex = register(server, "rex@cli.ac.uk", ["researcher"], uni["id"], vetted=True)
    today = dt.date.today()
    project = admin.projects.create("Smoking at the terminal", "Smoking and adiposity by sex",
                                    rex.id, today, today + dt.timedelta(days=90),
                                    fields=[31, 20116, 21001])["id"]
    with server.client(SOURCE) as session:
        session.login(rex.email, rex.password, code(rex.totp_secret))
        token = session.tokens.issue(project, [
            "self.read", "data.analyse", "data.export", "project.read", "output.read",
            "output.request", "output.download"], 7)["secret"]
    start = log.stat().st_size

    where = ("--url", server.url, "--token", token, "--ca", str(server.ca))

    def ok(*args: str) -> str:
        status, out, err = cli(*args, *where, cwd=tmp_path)
        assert status == 0, (args, err)
        return out

    def refused(*args: str) -> str:
        status, _, err = cli(*args, *where, cwd=tmp_path)
        assert status == 1 and "refused" in err, (args, err)
        return err

    assert json.loads(ok("enclave", "whoami"))["roles"] == ["researcher"]
    assert [p["id"] for p in json.loads(ok("enclave", "projects"))] == [project]
    assert json.loads(ok("enclave", "project", project))["id"] == project
    fields = {f["field_id"]: f for f in json.loads(ok("enclave", "schema", project))}
    assert set(fields) == {31, 20116, 21001}
    assert fields[31]["codes"] == {"0": "Female", "1": "Male"}  # a small coding, in full
    smoking = json.loads(ok("enclave", "coding", project, str(fields[20116]["coding_id"]),
                            "--search", "NEVER"))
    assert [c["meaning"] for c in smoking["codes"]] == ["Never"] and smoking["total"] == 1
    assert "no field this project may analyse" in refused("enclave", "coding", project, "19")
    ok("enclave", "dummy", project, "--out", "dummy.zip")
    assert (tmp_path / "dummy.zip").stat().st_size > 0
    (tmp_path / "base.sql").write_text(BASE)
    assert json.loads(ok("enclave", "define", project, "base", "@base.sql"))["size_ok"]
    ok("enclave", "define", project, "scratch", "SELECT pid, p31 AS sex FROM participants")
    assert len(json.loads(ok("enclave", "definitions", project))) == 2
    ok("enclave", "drop", project, "scratch")

    spec = json.dumps({"kind": "crosstab", "definition": "base", "rows": "sex",
                       "columns": "smoking"})
    output = json.loads(ok("enclave", "analyse", project, spec, "--release"))
    assert output["status"] == "released", output["findings"]
    assert json.loads(ok("enclave", "status", output["id"]))["verdict"] == output["verdict"]
    assert output["id"] in {o["id"] for o in json.loads(ok("enclave", "outputs",
                                                            "--project", project))}
    table = ok("enclave", "download", output["id"])  # a labelled table, by default
    frame = pl.read_csv(io.StringIO(table))
    assert {"sex", "sex_code", "smoking", "smoking_code", "count"} <= set(frame.columns)
    assert {"Female", "Male"} <= set(frame["sex"]) and "Never" in set(frame["smoking"])
    ok("enclave", "download", output["id"], "--as", "parquet", "--out", "table.parquet")
    assert pl.read_parquet(tmp_path / "table.parquet").equals(frame, null_equal=True)
    # in one command, as the how-to runs its study: analysed, released, its table written
    again = json.loads(ok("enclave", "analyse", project, spec, "--table", "again.parquet"))
    at_once = json.loads(ok("enclave", "analyse", project, spec, "--at-once"))  # one request
    assert at_once["verdict"] in ("release", "release_with_suppression", "review")
    assert again["status"] == "released" and again["id"] != output["id"]
    ok("enclave", "download", again["id"], "--as", "parquet", "--out", "again2.parquet")
    written = pl.read_parquet(tmp_path / "again.parquet")
    assert written.equals(pl.read_parquet(tmp_path / "again2.parquet"), null_equal=True)
    assert written.columns == frame.columns and written.height == frame.height
    assert json.loads(ok("enclave", "download", output["id"], "--as", "record"))["kind"] \
        == "crosstab"
    refused("enclave", "withdraw", output["id"])  # released: there is nothing to withdraw
    refused("enclave", "release", output["id"])  # asked again: it has left already
    assert "project" in json.loads(ok("enclave", "limits", project))
    assert json.loads(ok("enclave", "declared", project)) == []
    assert "export permission" in refused("enclave", "extract", project)
    ok("enclave", "budget", project)
    refused("dp", "query", project, '{"kind": "count", "epsilon": "0.1"}')
    assert json.loads(ok("jobs", "list", project)) == []
    refused("jobs", "status", f"job_{MISSING}")
    refused("enclave", "run", f"run_{MISSING}")
    # an analysis refused in its run exits non-zero with the synchronous call's reasons
    assert "neither a group key nor an aggregate" in refused(
        "enclave", "analyse", project, '{"kind": "aggregate_sql", "sql": '
        '"SELECT p31 FROM participants"}')
    refused("jobs", "code", f"job_{MISSING}")
    (tmp_path / "repo").mkdir()
    refused("jobs", "submit", "study", "--project", project, "--repo", str(tmp_path / "repo"))
    assert len(json.loads(ok("enclave", "tokens"))) == 1
    refused("enclave", "revoke", f"tok_{MISSING}")
    unreached = by_token - reached(log, start)
    assert not unreached, f"no command reaches {sorted(unreached)}: add one to `enclave`"

    # the client: every researcher operation, the session's own included
    start = log.stat().st_size
    with server.client(SOURCE) as session:
        session.login(rex.email, rex.password, code(rex.totp_secret, ahead=1))
        calls = [
            session.me, session.roles, session.projects.list, session.tokens.list,
            lambda: session.tokens.issue(project, ["output.read"], 1),
            lambda: session.projects.get(project), lambda: session.projects.schema(project),
            lambda: session.projects.coding(project, 90, search="smok"),
            lambda: session.projects.request_export(project, "linkage to GP records"),
            lambda: session.enclave.define(project, "again", BASE),
            lambda: session.enclave.definitions(project),
            lambda: session.enclave.drop(project, "again"),
            lambda: session.enclave.dummy(project),
            lambda: session.enclave.analyse(project, json.loads(spec)),
            lambda: session.enclave.analyse_now(project, json.loads(spec)),
            lambda: session.enclave.run(f"run_{MISSING}"),
            lambda: session.outputs.list(project), lambda: session.outputs.get(output["id"]),
            lambda: session.outputs.request_release(output["id"]),
            lambda: session.outputs.withdraw(output["id"]),
            lambda: session.outputs.download(output["id"]),
            lambda: session.outputs.frame(output["id"]),
            lambda: session.transfers.limits(project),
            lambda: session.transfers.declared(project),
            lambda: session.transfers.declare(
                project, "the whole crosstab series", dt.datetime.now(dt.UTC),
                dt.datetime.now(dt.UTC) + dt.timedelta(days=1), cells=100),
            lambda: session.transfers.extract(project),
            lambda: session.privacy.budget(project),
            lambda: session.privacy.query(project, {"kind": "count", "epsilon": "0.1"}),
            lambda: session.jobs.list(project),
            lambda: session.jobs.submit(project, "study", tmp_path / "repo"),
            lambda: session.jobs.get(f"job_{MISSING}"),
            lambda: session.jobs.code(f"job_{MISSING}"),
            lambda: session.tokens.revoke(f"tok_{MISSING}"),
            lambda: session.watch.appeal(f"alt_{MISSING}", "I was working, not leaking"),
            lambda: session.change_password("not my password", "another long passphrase"),
            session.logout,
        ]
        for call in calls:  # refused is reached: what each refusal says is tested elsewhere
            with contextlib.suppress(StrongroomError):
                call()
    unreached = every - reached(log, start)
    assert not unreached, f"no client method reaches {sorted(unreached)}"



HOW_TO = Path(__file__).parents[2] / "docs" / "how-to" / "run-a-study.md"


def test_the_how_to_study_runs_as_written_at_the_command_line(
        served: tuple[Server, Path], tmp_path: Path) -> None:
    """Every `strongroom enclave analyse` of the researcher how-to, in its order, with its
    definition, over HTTPS: each is understood and answered with a record (a small cohort
    blocks some for too few events: what matters is that none is a mistake in the how-to),
    and each released one downloads as a labelled table."""
    import re
    server, _ = served
    admin = server.admin
    uni = admin.institutions.create("How-to University", "GB", "UK GDPR", ["127.0.0.0/8"])
    rae = register(server, "rae@howto.ac.uk", ["researcher"], uni["id"], vetted=True)
    text = HOW_TO.read_text()
    needed = [int(f) for f in re.findall(r"(\d+) \(", text.split("## 1.")[0])]
    assert {31, 53, 2443, 40000} <= set(needed)
    today = dt.date.today()
    project = admin.projects.create("The how-to's study", "Smoking, adiposity and survival",
                                    rae.id, today, today + dt.timedelta(days=90),
                                    fields=needed)["id"]
    with server.client(SOURCE) as session:
        session.login(rae.email, rae.password, code(rae.totp_secret))
        token = session.tokens.issue(project, days=7, preset="study")["secret"]  # the how-to's
    where = ("--url", server.url, "--token", token, "--ca", str(server.ca))

    def ok(*args: str) -> str:
        status, out, err = cli(*args, *where, cwd=tmp_path)
        assert status == 0, (args, err)
        return out

    (tmp_path / "study.sql").write_text(text.split("```sql\n", 1)[1].split("```", 1)[0])
    assert json.loads(ok("enclave", "define", project, "study", "@study.sql"))["size_ok"]
    asked = re.findall(r"strongroom enclave analyse \$P '(.*?)'((?: --release| --table \S+)?)",
                       text, re.S)
    kinds = [json.loads(spec)["kind"] for spec, _ in asked]
    assert kinds[:2] == ["kaplan_meier", "cox"] and "summary" in kinds and "glm" in kinds
    assert sum("--table" in options for _, options in asked) >= 4
    for spec, options in asked:
        status, out, err = cli("enclave", "analyse", project, spec, *options.split(), *where,
                               cwd=tmp_path)
        output = json.loads(out)
        assert output["verdict"] in ("release", "release_with_suppression", "review", "block")
        if output["status"] != "released":  # a small cohort: too few events for some
            assert "--table" not in options or (status == 1 and "not released" in err), err
            continue
        assert status == 0, err
        if "--table" in options:
            written = tmp_path / options.split()[-1]
            frame = (pl.read_parquet(written) if written.suffix == ".parquet"
                     else pl.read_csv(written))
        else:
            frame = pl.read_csv(io.StringIO(ok("enclave", "download", output["id"])))
        assert frame.height > 0 and frame.width > 1, spec
