"""The alert and appeal workflows are complete tables; the destination file is parsed strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import Conflict, Invalid
from strongroom.watch.appeals import (
    APPEAL_TRANSITIONS,
    AppealMove,
    AppealStatus,
    advance_appeal,
)
from strongroom.watch.destinations import SecretRef, load_destinations, parse_destinations
from strongroom.watch.exports.syslog import Framing, Protocol
from strongroom.watch.states import TRANSITIONS, AlertAction, AlertStatus, Severity, advance


def test_every_alert_status_has_a_row_and_every_target_is_a_status() -> None:
    assert set(TRANSITIONS) == set(AlertStatus)
    for moves in TRANSITIONS.values():
        assert set(moves) <= set(AlertAction)
        assert set(moves.values()) <= set(AlertStatus)
    used = {a for moves in TRANSITIONS.values() for a in moves}
    assert used == set(AlertAction), "an action that no state allows is dead"
    reachable = {AlertStatus.OPEN} | {t for m in TRANSITIONS.values() for t in m.values()}
    assert reachable == set(AlertStatus)


def test_every_appeal_status_has_a_row_and_every_target_is_a_status() -> None:
    assert set(APPEAL_TRANSITIONS) == set(AppealStatus)
    for moves in APPEAL_TRANSITIONS.values():
        assert set(moves.values()) <= set(AppealStatus)
    assert {m for moves in APPEAL_TRANSITIONS.values() for m in moves} == set(AppealMove)
    reachable = {AppealStatus.NONE} | {t for m in APPEAL_TRANSITIONS.values()
                                       for t in m.values()}
    assert reachable == set(AppealStatus)
    finals = {s for s, moves in APPEAL_TRANSITIONS.items() if not moves}
    assert finals == {AppealStatus.UPHELD, AppealStatus.LIFTED}


def test_refused_moves_say_what_is_possible() -> None:
    with pytest.raises(Conflict, match="from resolved it can reopen"):
        advance(AlertStatus.RESOLVED, AlertAction.ACKNOWLEDGE, "alr_1")
    with pytest.raises(Conflict, match="it is final"):
        advance_appeal(AppealStatus.UPHELD, AppealMove.LIFT, "alr_1")
    assert advance_appeal(AppealStatus.PENDING, AppealMove.LIFT, "a") is AppealStatus.LIFTING


GOOD: dict[str, Any] = {
    "min_severity": "low",
    "syslog": [{"host": "127.0.0.1", "port": 5514, "protocol": "tcp"},
               {"name": "bsd", "host": "siem.example.org", "format": "rfc3164",
                "facility": "local4", "min_severity": "high"}],
    "webhooks": [{"url": "https://hooks.example.org/a?token=abc",
                  "secret": "env:HOOK_SECRET", "format": "ecs"}],
}


def test_a_good_file_is_read() -> None:
    found = parse_destinations(GOOD)
    first, second = found.syslog
    assert (first.name, first.protocol, first.framing) == ("syslog-1", Protocol.TCP,
                                                           Framing.RFC5424)
    assert (second.port, second.framing, second.min_severity) == (514, Framing.RFC3164,
                                                                 Severity.HIGH)
    hook = found.webhooks[0]
    assert hook.secret == SecretRef("env", "HOOK_SECRET") and hook.min_severity is Severity.LOW
    assert [d.name for d in found.for_severity(Severity.MEDIUM)] == ["syslog-1", "webhook-1"]
    assert [d.name for d in found.for_severity(Severity.INFO)] == []
    shown = found.public()
    assert shown[2]["url"] == "https://hooks.example.org/a"  # the query may hold a token
    assert shown[2]["secret"] == "env:HOOK_SECRET"


@pytest.mark.parametrize(("doc", "says"), [
    ({"syslog": [{"port": 514}]}, "host is required"),
    ({"syslog": [{"host": "h", "port": 70000}]}, "port must be"),
    ({"syslog": [{"host": "h", "protocol": "carrier-pigeon"}]}, "carrier-pigeon"),
    ({"syslog": [{"host": "h", "facility": "party"}]}, "facility"),
    ({"syslog": [{"host": "h", "colour": "red"}]}, "unknown setting 'colour'"),
    ({"webhooks": [{"url": "http://hooks.example.org/", "secret": "env:X"}]}, "https"),
    ({"webhooks": [{"url": "https://h.example.org/", "secret": "hunter2-literal"}]},
     "env:VARIABLE or file:/path"),
    ({"webhooks": [{"url": "https://h.example.org/", "secret": "env:X", "format": "cef"}]},
     "ocsf or ecs"),
    ({"syslog": [{"name": "x", "host": "h"}], "webhooks": [
        {"name": "x", "url": "https://h.example.org/", "secret": "env:X"}]}, "unique"),
    ({"min_severity": "apocalyptic"}, "apocalyptic"),
    ({"sylog": []}, "unknown setting 'sylog'"),
])
def test_bad_files_are_refused_naming_the_problem(doc: dict[str, Any], says: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_destinations(doc)
    assert any(says in r for r in caught.value.reasons), caught.value.reasons


def test_a_pasted_secret_is_never_echoed() -> None:
    with pytest.raises(Invalid) as caught:
        parse_destinations({"webhooks": [{"url": "https://h.example.org/",
                                          "secret": "s3cr3t-value-pasted"}]})
    assert "s3cr3t" not in str(caught.value)


def test_secrets_are_read_from_the_environment_or_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "x" * 32)
    assert SecretRef("env", "HOOK_SECRET").read() == b"x" * 32
    (tmp_path / "secret").write_text("y" * 40 + "\n")
    assert SecretRef("file", str(tmp_path / "secret")).read() == b"y" * 40
    monkeypatch.setenv("SHORT", "abc")
    with pytest.raises(Invalid, match="shorter than 16"):
        SecretRef("env", "SHORT").read()
    monkeypatch.delenv("HOOK_SECRET")
    with pytest.raises(Invalid, match=r"HOOK_SECRET .* is not set"):
        SecretRef("env", "HOOK_SECRET").read()
    with pytest.raises(Invalid, match="cannot be read"):
        SecretRef("file", str(tmp_path / "missing")).read()


def test_no_file_means_no_destinations(tmp_path: Path) -> None:
    assert load_destinations(tmp_path).all == ()
    (tmp_path / "watch.yaml").write_text("syslog: [\n")
    with pytest.raises(Invalid, match="not valid YAML"):
        load_destinations(tmp_path)
