"""Differential privacy over HTTPS: the real server (its own process, its own DP engine worker)
driven by the client: the committee sets DP mode and a budget, a researcher's token asks DP
questions until the budget refuses, and exact analyses are refused with the way to the DP
endpoint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from tests.functional.test_server import (
    Server,
    code,
    refused,
    register,
    running_server,
)

DP_SOURCE = "127.0.0.31"  # this scenario's own loopback address (sign-in limits are per address)


@pytest.fixture(scope="module")
def dp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("dp")), None, cohort=2000) as started:
        yield started


def test_dp_mode_budget_and_queries_over_https(dp_server: Server) -> None:
    server, admin = dp_server, dp_server.admin
    uni = admin.institutions.create("Privacy University", "GB", "UK GDPR", ["127.0.0.0/8"])
    rex = register(server, "rex@privacy.ac.uk", ["researcher"], uni["id"], vetted=True)
    today = dt.date.today()
    project = admin.projects.create("Adiposity, privately", "BMI by sex under a DP budget",
                                    rex.id, today, today + dt.timedelta(days=90),
                                    fields=[31, 21001, 41270])
    pid = project["id"]
    settings = admin.privacy.configure(pid, mode="dp", epsilon="1",
                                       reason="the committee approved DP answers")
    assert (settings["mode"], settings["epsilon_total"], settings["epsilon_remaining"]) == (
        "dp", "1", "1")

    with server.client(DP_SOURCE) as session:
        session.login(rex.email, rex.password, code(rex.totp_secret))
        secret = session.tokens.issue(pid, ["data.analyse", "project.read"], 7)["secret"]
    with server.client(DP_SOURCE, token=secret) as token:
        mean = token.privacy.query(pid, {"kind": "mean", "column": "p21001_i0",
                                         "bounds": [10, 60], "epsilon": "0.5"})
        (estimate,) = mean["estimates"]
        assert estimate["ci_lower"] <= estimate["value"] <= estimate["ci_upper"]
        assert 20 < estimate["value"] < 35 and mean["epsilon"] == "0.5"
        assert [n["statistic"] for n in mean["noise"]] == ["sum", "count"]
        assert all(n["scale"] > 0 for n in mean["noise"])
        chapters = token.privacy.query(pid, {
            "kind": "histogram", "table": "diagnoses", "column": "code", "prefix": 1,
            "max_groups": 3, "epsilon": "0.25"})
        assert len(chapters["estimates"]) == 26 and chapters["epsilon_remaining"] == "0.25"
        assert any("at most 3 group" in note for note in chapters["notes"])

        budget = token.privacy.budget(pid)
        assert (budget["epsilon_spent"], budget["queries"]) == ("0.75", 2)
        assert [s["status"] for s in budget["spends"]] == ["answered", "answered"]
        assert sum(Fraction(s["epsilon"]) for s in budget["spends"]) == Fraction(3, 4)

        too_much = refused(token.privacy.query, pid, {"kind": "count", "epsilon": "0.5"})
        assert too_much.status == 409 and "0.25 of 1 remains" in str(too_much)
        exact = refused(token.enclave.analyse, pid, {
            "kind": "aggregate_sql", "sql": "SELECT p31, count(*) AS n FROM participants "
                                            "GROUP BY p31"})
        assert exact.status == 403 and f"/projects/{pid}/dp/queries" in str(exact)
        # a researcher does not set budgets
        assert refused(lambda: token.privacy.configure(
            pid, epsilon="100", reason="not mine to raise")).status == 403

    types = {entry["type"] for entry in admin.audit.entries(limit=1000)}
    assert {"dp.budget.set", "dp.query.charged", "dp.query.answered",
            "dp.query.refused"} <= types
