"""Administration and audit at the console, as a custodian runs them: each command through
the console's own entry point, in this process (the process boundary itself is tested in
test_cli.py), its session and data on disk between commands as between real runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from typer.testing import CliRunner

from strongroom.cli import app

pytestmark = pytest.mark.slow  # the console's commands end to end

ADMIN = "ada@custodian.test"


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


class Console:
    def __init__(self, tmp: Path):
        self.data, self.key = tmp / "data", tmp / "keys" / "master.key"
        self.env: dict[str, str | None] = {
            "XDG_CONFIG_HOME": str(tmp / "config"), "STRONGROOM_DATA_DIR": str(self.data),
            "STRONGROOM_KEY_FILE": str(self.key), "STRONGROOM_MASTER_KEY": None}
        self.offset = 0  # each sign-in uses the next TOTP step (a code is accepted once)

    @property
    def process_env(self) -> dict[str, str]:
        """The same settings for a real process (a command that must run on its own)."""
        unset = {k for k, v in self.env.items() if v is None}
        return {**{k: v for k, v in os.environ.items() if k not in unset},
                **{k: v for k, v in self.env.items() if v is not None}}

    def run(self, *args: str, password: str | None = None) -> Done:
        env = {**self.env, "STRONGROOM_PASSWORD": password}
        result = CliRunner().invoke(app, list(args), env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback is a bug, never a console answer
        return Done(result.exit_code, result.stdout, result.stderr)

    def ok(self, *args: str, password: str | None = None) -> Any:
        done = self.run(*args, password=password)
        assert done.returncode == 0, done.stderr
        return first_json(done.stdout)

    def login(self, email: str, password: str, secret: str) -> None:
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 * self.offset)
        self.offset = min(self.offset + 1, 1)  # the drift window accepts one step ahead
        code = pyotp.TOTP(secret).at(when)
        done = self.run("login", "--as", email, "--code", code, password=password)
        assert done.returncode == 0, done.stderr


def first_json(text: str) -> Any:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    return value


@pytest.fixture
def console(tmp_path: Path) -> Console:
    c = Console(tmp_path)
    done = c.run("init", str(c.data), "--key-file", str(c.key))
    assert done.returncode == 0, done.stderr
    return c


def test_bootstrap_login_administer_and_audit(console: Console) -> None:
    admin = console.ok("admin", "bootstrap", "--institution", "Custodian", "--email", ADMIN,
                       "--name", "Ada", "--network", "10.0.0.0/8")
    assert admin["person"]["roles"] == ["custodian-admin"]
    refused = console.run("admin", "institution", "list")
    assert refused.returncode == 1 and "strongroom login" in refused.stderr
    again = console.run("admin", "bootstrap", "--institution", "X", "--email", "b@x.test",
                        "--name", "B")
    assert again.returncode == 1 and "already has people" in again.stderr
    console.login(ADMIN, admin["password"], admin["totp_secret"])
    partner = console.ok("admin", "institution", "add", "--name", "Partner Uni",
                         "--country", "FR", "--jurisdiction", "EU GDPR",
                         "--network", "192.0.2.0/24")
    assert partner["networks"] == ["192.0.2.0/24"]
    bad = console.run("admin", "institution", "add", "--name", "Bad", "--country", "France",
                      "--jurisdiction", "EU GDPR", "--network", "192.0.2.1/24")
    assert bad.returncode == 1
    assert "ISO 3166" in bad.stderr and "Traceback" not in bad.stderr
    person = console.ok("admin", "person", "add", "--institution", partner["id"],
                        "--email", "r@partner.test", "--name", "Rae", "--role", "researcher")
    assert person["password"] and person["totp_uri"].startswith("otpauth://totp/")
    pid = person["person"]["id"]
    shown = console.ok("admin", "person", "training", pid, "--course", "Safe Researcher",
                       "--completed", "2026-01-10", "--expires", "2027-01-10")
    assert shown["training"][0]["course"] == "Safe Researcher"
    assert console.ok("admin", "person", "vetting", pid, "approved")["vetting"] == "approved"
    project = console.ok("admin", "project", "add", "--title", "BP", "--purpose",
                         "Blood pressure and later disease, by sex and age", "--lead", pid,
                         "--starts", "2026-11-01", "--expires", "2027-11-01", "--field", "31",
                         "--field", "4080")
    assert project["fields"] == [31, 4080] and not project["key_destroyed"]
    pause = console.ok("admin", "pause", "set", "institution", "--target", partner["id"],
                       "--reason", "drill")
    lift = console.ok("admin", "pause", "lift", pause["id"])
    assert lift["state"] == "lift-requested"  # one admin only asks: a second must confirm
    twice = console.run("admin", "pause", "lift", pause["id"])
    assert twice.returncode == 1 and "different custodian admin" in twice.stderr
    revoked = console.ok("admin", "institution", "revoke", partner["id"], "--reason", "leak")
    assert revoked["status"] == "revoked"
    closed = console.ok("admin", "project", "show", project["id"])
    assert closed["status"] == "revoked" and closed["key_destroyed"]

    verified = console.run("audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["entries"] >= 12
    anchor = console.data.parent / "anchor.json"
    done = console.run("audit", "checkpoint", "--out", str(anchor))
    assert done.returncode == 0, done.stderr
    assert json.loads(anchor.read_text())["tree_size"] >= report["entries"]
    lines = console.run("audit", "show", "--limit", "500").stdout.splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert {"institution.revoked", "project.revoked", "project.key.destroyed", "pause.set",
            "pause.lift.requested", "auth.login.succeeded"} <= set(types)
    assert "r@partner.test" not in "\n".join(lines)

    with sqlite3.connect(console.data / "metadata.db") as db:  # an insider edits one entry
        db.execute("UPDATE audit_entries SET payload = replace(payload, 'leak', 'none') "
                   "WHERE type = 'institution.revoked'")
    tampered = console.run("audit", "verify", "--anchor", str(anchor))
    assert tampered.returncode == 1
    assert "edited" in tampered.stderr and "entry" in tampered.stderr


def test_logout_ends_the_console_session(console: Console) -> None:
    admin = console.ok("admin", "bootstrap", "--institution", "Custodian", "--email", ADMIN,
                       "--name", "Ada")
    console.login(ADMIN, admin["password"], admin["totp_secret"])
    assert console.ok("admin", "person", "list")[0]["email"] == ADMIN
    changed = console.run("password", "--current", admin["password"], "--new",
                          "a new console passphrase")
    assert changed.returncode == 0, changed.stderr
    assert console.run("logout").returncode == 0
    after = console.run("admin", "person", "list")
    assert after.returncode == 1 and "not signed in" in after.stderr
