"""Identity across accounts at the console: an ORCID at registration, the accounts one human
has, the suspected duplicates, a custodian's link and unlink (each an audited command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.functional.test_cli_admin import ADMIN, Console

pytestmark = pytest.mark.slow  # the console's commands end to end

ORCID = "0000-0002-1825-0097"


@pytest.fixture
def console(tmp_path: Path) -> Console:
    c = Console(tmp_path)
    done = c.run("init", str(c.data), "--key-file", str(c.key))
    assert done.returncode == 0, done.stderr
    admin = c.ok("admin", "bootstrap", "--institution", "Custodian", "--email", ADMIN,
                 "--name", "Ada", "--network", "10.0.0.0/8")
    c.login(ADMIN, admin["password"], admin["totp_secret"])
    return c


def test_a_custodian_finds_and_links_one_human_s_accounts(console: Console) -> None:
    uni = console.ok("admin", "institution", "add", "--name", "Uni", "--country", "GB",
                     "--jurisdiction", "UK GDPR", "--network", "192.0.2.0/24")["id"]

    def add(email: str, name: str, *more: str) -> str:
        made = console.ok("admin", "person", "add", "--institution", uni, "--email", email,
                          "--name", name, "--role", "researcher", *more)
        return str(made["person"]["id"])

    first = add("ann.lee@uni.test", "Dr Ann Lee", "--orcid", f"https://orcid.org/{ORCID}")
    twin = add("alee@uni.test", "Lee, Ann")  # same name, same domain: one human at once
    other = add("annie.lee@gmail.test", "Annie Lee")
    bad = console.run("admin", "person", "add", "--institution", uni, "--email", "x@uni.test",
                      "--name", "X", "--role", "researcher", "--orcid", "0000-0002-1825-0098")
    assert bad.returncode == 1 and "check digit" in bad.stderr and "Traceback" not in bad.stderr
    pair = sorted((first, twin))
    assert console.ok("admin", "person", "accounts", twin)["accounts"] == pair
    (suspect,) = console.ok("admin", "person", "duplicates")
    assert suspect["shared"] and "same name (ann lee)" in suspect["why"][0]

    refused = console.run("admin", "person", "link", first, other, "--reason", "")
    assert refused.returncode == 1 and "reason" in refused.stderr
    link = console.ok("admin", "person", "link", other, first, "--reason", "one passport")
    assert link["relation"] == "same"
    assert console.ok("admin", "person", "accounts", other)["accounts"] == sorted(
        (first, twin, other))
    assert [k["id"] for k in console.ok("admin", "person", "links")] == [link["id"]]
    console.ok("admin", "person", "unlink", first, other, "--reason", "a mistake")
    assert console.ok("admin", "person", "accounts", other)["accounts"] == [other]
    assert console.ok("admin", "person", "orcid", other, ORCID)["orcid"] == ORCID
    assert other in console.ok("admin", "person", "accounts", first)["accounts"]
    assert console.ok("admin", "person", "orcid", other, "--clear")["orcid"] is None

    lines = console.run("audit", "show", "--limit", "500").stdout.splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert types.count("person.linked") == 1 and types.count("person.unlinked") == 1
