"""Watch end to end: `strongroom watch tail` and the alert commands as real processes at the
console, and the alert routes through the real HTTPS server with the Python client."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from strongroom.cohort.store import Store
from strongroom.watch.models import AlertRow
from strongroom.watch.raising import raise_alert
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import Severity
from tests.export_schemas import ecs_errors, ocsf_errors
from tests.export_schemas import parse_cef as parse
from tests.functional.test_cli_admin import ADMIN, Console
from tests.functional.test_server import running_server

pytestmark = pytest.mark.slow  # the watch's commands against a served platform


def add_alert(data: Path, key: Path, title: str, detector: str = "behaviour.off-hours",
              dedup: str = "") -> AlertRow:
    """An alert written straight into the metadata database, as the responder writes it."""
    store = Store.open(data, key)
    try:
        with Session(store.engine, expire_on_commit=False) as db, db.begin():
            alert, _ = raise_alert(db, Signal(
                detector=detector, severity=Severity.HIGH,
                subject=Subject("per_0123abcd", "ins_0123abcd", "prj_0123abcd"), title=title,
                reasons=["140 queries between 02:00 and 03:00 UTC; usually 0 to 3"],
                evidence={"queries": 140, "source": "192.0.2.7"}, dedup=dedup),
                dt.datetime.now(dt.UTC))
        return alert
    finally:
        store.close()


@pytest.fixture
def signed_in(tmp_path: Path) -> Console:
    console = Console(tmp_path)
    assert console.run("init", str(console.data), "--key-file", str(console.key)).returncode == 0
    admin = console.ok("admin", "bootstrap", "--institution", "Custodian", "--email", ADMIN,
                       "--name", "Ada", "--network", "10.0.0.0/8")
    console.login(ADMIN, admin["password"], admin["totp_secret"])
    return console


def test_tail_once_and_the_alert_commands(signed_in: Console) -> None:
    console = signed_in
    alert = add_alert(console.data, console.key, "off-hours burst | from 192.0.2.7")

    table = console.run("watch", "tail", "--once")
    assert table.returncode == 0, table.stderr
    assert alert.id in table.stdout and "behaviour.off-hours" in table.stdout

    lines = console.run("watch", "tail", "--once", "--format", "cef")
    assert lines.returncode == 0, lines.stderr
    cef = [line for line in lines.stdout.splitlines() if line.startswith("CEF:0|")]
    header, pairs = parse(next(line for line in cef if alert.id in line))
    assert header[4] == "off-hours burst | from 192.0.2.7" and pairs["src"] == "192.0.2.7"

    ocsf = console.run("watch", "tail", "--once", "--format", "ocsf", "--detector",
                       "behaviour.")
    (finding,) = [json.loads(line) for line in ocsf.stdout.splitlines()]
    assert ocsf_errors(finding, "detection_finding") == []

    acked = console.ok("watch", "ack", alert.id, "--reason", "looking at it")
    assert acked["status"] == "acknowledged"
    missing = console.run("watch", "resolve", alert.id)
    assert missing.returncode == 2 and "--reason" in missing.stderr
    short = console.run("watch", "resolve", alert.id, "--reason", "ok")
    assert short.returncode == 1 and "say why" in short.stderr
    done = console.ok("watch", "resolve", alert.id, "--reason", "a night shift, agreed")
    assert done["resolution"] == "a night shift, agreed"
    assert console.ok("watch", "show", alert.id)["status"] == "resolved"
    ecs = console.run("watch", "export", alert.id, "--format", "ecs")
    assert ecs_errors(json.loads(ecs.stdout)) == []
    nothing = console.ok("watch", "alerts", "--status", "open", "--detector", "behaviour.")
    assert nothing == []


def test_tail_streams_new_alerts_as_they_arrive(signed_in: Console) -> None:
    console = signed_in
    first = add_alert(console.data, console.key, "the first one", dedup="1")
    with subprocess.Popen(
            [sys.executable, "-m", "strongroom.cli", "watch", "tail", "--format", "cef",
             "--interval", "0.2", "--detector", "behaviour."],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=console.process_env) as tail:
        try:
            assert tail.stdout is not None
            assert first.id in tail.stdout.readline()  # the recent alerts first
            second = add_alert(console.data, console.key, "a new one", dedup="2")
            assert second.id in tail.stdout.readline()  # then each new one as it lands
        finally:
            tail.terminate()


def test_the_routes_through_the_real_server(tmp_path: Path) -> None:
    with running_server(tmp_path / "served", None) as server:
        data, key = tmp_path / "served" / "data", tmp_path / "served" / "keys" / "master.key"
        alert = add_alert(data, key, "a drip of participants", detector="drip.coverage")
        admin = server.admin
        listed = admin.watch.alerts(detector="drip.")
        assert [a["id"] for a in listed] == [alert.id]
        assert admin.watch.acknowledge(alert.id, "on it")["status"] == "acknowledged"
        finding = admin.watch.export(alert.id, "ocsf")
        assert isinstance(finding, dict) and finding["class_uid"] == 2006
        assert ocsf_errors(finding, "data_security_finding") == []
        line = admin.watch.export(alert.id, "cef")
        assert isinstance(line, str) and parse(line)[1]["externalId"] == alert.id
        resolved = admin.watch.resolve(alert.id, "explained by a declared job")
        assert resolved["status"] == "resolved"
        types = {e["type"] for e in admin.audit.entries(limit=1000)}
        assert {"watch.alert.acknowledged", "watch.alert.resolved"} <= types
