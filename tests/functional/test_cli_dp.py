"""`strongroom dp …` at the console, as the access team runs it (real processes)."""

from __future__ import annotations

import datetime as dt

import pytest

from strongroom.access import people, projects
from strongroom.access.bootstrap import bootstrap
from strongroom.platform import Platform
from tests.functional.test_cli_admin import ADMIN, Console
from tests.functional.test_cli_admin import console as console  # the fixture

pytestmark = pytest.mark.slow  # the DP engine's own environment, in subprocesses

PASSWORD = "a long enough console passphrase"


def test_the_access_team_sets_mode_and_budget_at_the_console(console: Console) -> None:
    with Platform.open(console.data, console.key) as platform:
        ctx = platform.access
        admin = bootstrap(ctx, institution="Custodian", country="GB", jurisdiction="UK GDPR",
                          networks=["10.0.0.0/8"], email=ADMIN, name="Ada", password=PASSWORD)
        lead = people.create(ctx, None, institution_id=admin.person.institution_id,
                             email="rex@custodian.test", name="Rex", roles=["researcher"],
                             password=PASSWORD)
        today = dt.date.today()
        project = projects.create(ctx, None, title="Private",
                                  purpose="Open-ended questions under a DP budget",
                                  lead_id=lead.person.id, starts_on=today,
                                  expires_on=today + dt.timedelta(days=30), fields=[31]).project
    console.login(ADMIN, PASSWORD, admin.totp_secret)

    why = ("--reason", "the committee approved DP answers")
    unexplained = console.run("dp", "mode", project.id, "--dp", "--epsilon", "1/3")
    assert unexplained.returncode == 1 and "give the reason" in unexplained.stderr
    settings = console.ok("dp", "mode", project.id, "--dp", "--epsilon", "1/3", *why)
    assert (settings["mode"], settings["epsilon_total"]) == ("dp", "1/3")
    budget = console.ok("dp", "budget", project.id)
    assert (budget["epsilon_remaining"], budget["spends"]) == ("1/3", [])
    over = console.run("dp", "mode", project.id, "--epsilon", "11", *why)
    assert over.returncode == 1 and "ceiling of 10" in over.stderr

    bad = console.run("dp", "mode", project.id, "--epsilon", "-1", *why)
    assert bad.returncode == 1 and "cannot be negative" in bad.stderr
    nothing = console.run("dp", "mode", project.id, *why)
    assert nothing.returncode == 1 and "say what to set" in nothing.stderr
    left = console.ok("dp", "mode", project.id, "--exact", *why)
    assert left["mode"] == "exact" and left["left_dp_reason"] == why[1]
    again = console.run("dp", "mode", project.id, "--dp", *why)
    assert again.returncode == 1 and "DP history is closed" in again.stderr
    not_json = console.run("dp", "query", project.id, "{kind: count}", "--url",
                           "https://127.0.0.1:9", "--token", "srt_x")
    assert not_json.returncode == 2 and "not JSON" in not_json.stderr


def test_dp_setup_is_documented_in_its_help(console: Console) -> None:
    shown = console.run("dp", "setup", "--help")
    assert shown.returncode == 0 and "STRONGROOM_DP_PYTHON" in shown.stdout
