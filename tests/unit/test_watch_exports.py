"""OCSF and ECS exports validate against their schemas; broken ones do not; nothing extra leaks."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from strongroom.watch.exports import Format, document, render
from strongroom.watch.exports.ecs import to_ecs
from strongroom.watch.exports.ocsf import to_ocsf
from strongroom.watch.states import AlertStatus, Severity
from tests.export_schemas import class_uid_of, ecs_errors, ocsf_errors, ocsf_json_schema
from tests.watch_alerts import AT, make_alert

DETECTION, DATA_SECURITY = "detection_finding", "data_security_finding"


def test_the_compiled_schemas_are_the_real_classes() -> None:
    assert class_uid_of(DETECTION) == (2, 2004)
    assert class_uid_of(DATA_SECURITY) == (2, 2006)
    schema = ocsf_json_schema(DETECTION)
    assert {"finding_info", "metadata", "severity_id", "time", "type_uid"} <= set(
        schema["required"])
    assert schema["properties"]["severity_id"]["enum"] == [0, 1, 2, 3, 4, 5, 6, 99]
    assert "evidences" in schema["properties"] and schema["additionalProperties"] is False


@pytest.mark.parametrize("status", list(AlertStatus))
@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize("detector", ["behaviour.off-hours", "drip.coverage",
                                      "limit.record-level"])
def test_every_alert_is_a_valid_ocsf_finding(status: AlertStatus, severity: Severity,
                                            detector: str) -> None:
    alert = make_alert(status=status.value, severity=severity.value, detector=detector,
                       count=3, suspensions=["pau_1"],
                       resolution="explained by a declared job" if status == "resolved"
                       else None)
    event = to_ocsf(alert)
    expected = DETECTION if detector.startswith("behaviour") else DATA_SECURITY
    assert event["class_uid"] == class_uid_of(expected)[1]
    assert ocsf_errors(event, expected) == []


def test_an_alert_without_person_or_address_is_valid_too() -> None:
    alert = make_alert(person_id=None, institution_id=None, project_id=None, evidence={})
    assert ocsf_errors(to_ocsf(alert), DETECTION) == []
    assert ecs_errors(to_ecs(alert)) == []


def test_the_ocsf_mapping() -> None:
    event = to_ocsf(make_alert(count=2, status="acknowledged", detector="drip.coverage"))
    assert (event["activity_id"], event["type_uid"]) == (2, 200602)  # an update
    assert (event["status_id"], event["status"]) == (2, "In Progress")
    assert (event["severity_id"], event["severity"]) == (4, "High")
    assert event["time"] == int((AT + dt.timedelta(minutes=5)).timestamp() * 1000)
    assert event["finding_info"]["uid"] == "alr_0123abcd"
    assert event["actor"]["user"] == {"uid": "per_1", "type_id": 1, "type": "User",
                                      "org": {"uid": "ins_1"}}
    assert event["src_endpoint"] == {"ip": "10.1.2.3"}
    assert event["resources"] == [{"uid": "prj_1", "type": "project"}]
    detection = to_ocsf(make_alert())
    assert detection["activity_id"] == 1 and detection["type_uid"] == 200401
    assert detection["evidences"][0]["src_endpoint"] == {"ip": "10.1.2.3"}
    assert to_ocsf(make_alert(status="resolved"))["activity_id"] == 3  # Close


def _broken(change: Any) -> dict[str, Any]:
    event = copy.deepcopy(to_ocsf(make_alert()))
    change(event)
    return event


@pytest.mark.parametrize(("what", "change", "says"), [
    ("severity out of range", lambda e: e.update(severity_id=7, severity="High"),
     "severity_id"),
    ("type_uid inconsistent", lambda e: e.update(type_uid=200402), "type_uid"),
    ("class_uid of another class", lambda e: e.update(class_uid=2005, type_uid=200501),
     "class_uid"),
    ("category_uid wrong", lambda e: e.update(category_uid=3), "category_uid"),
    ("activity not a finding's", lambda e: e.update(activity_id=5, type_uid=200405),
     "activity_id"),
    ("status_id unknown", lambda e: e.update(status_id=42), "status_id"),
    ("missing finding_info", lambda e: e.pop("finding_info"), "finding_info"),
    ("missing metadata.version", lambda e: e["metadata"].pop("version"), "version"),
    ("unknown top-level field", lambda e: e.update(participant_eid="1000017"),
     "participant_eid"),
    ("unknown nested field", lambda e: e["finding_info"].update(colour="red"), "colour"),
    ("time as text", lambda e: e.update(time="2026-11-21T09:05:00Z"), "time"),
    ("an address that is not one", lambda e: e["evidences"][0]["src_endpoint"].update(
        ip="999.1.2.3"), "999.1.2.3"),
    ("caption not the id's", lambda e: e.update(severity="Low"), "severity"),
    ("user without uid or name", lambda e: e["evidences"][0]["actor"].update(user={
        "type_id": 1}), "user"),
])
def test_broken_ocsf_is_refused(what: str, change: Any, says: str) -> None:
    errors = ocsf_errors(_broken(change), DETECTION)
    assert errors, f"{what}: accepted"
    assert any(says in e for e in errors), (what, errors)


@pytest.mark.parametrize("detector", ["behaviour.off-hours", "drip.coverage",
                                      "limit.record-level", "auth.mfa-burst"])
@pytest.mark.parametrize("status", list(AlertStatus))
def test_every_alert_is_a_valid_ecs_document(detector: str, status: AlertStatus) -> None:
    doc = to_ecs(make_alert(detector=detector, status=status.value, suspensions=["pau_1"]))
    assert ecs_errors(doc) == []
    assert doc["event"]["kind"] == "alert" and doc["ecs"]["version"].startswith("8.")


def test_the_ecs_mapping() -> None:
    doc = to_ecs(make_alert(detector="limit.record-level", severity="critical"))
    assert doc["event"]["category"] == ["intrusion_detection", "database"]
    assert doc["event"]["type"] == ["info", "denied"]
    assert (doc["event"]["severity"], doc["event"]["risk_score"]) == (10, 99.0)
    assert doc["rule"]["name"] == "limit.record-level" and doc["event"]["id"] == "alr_0123abcd"
    assert doc["user"] == {"id": "per_1"} and doc["organization"] == {"id": "ins_1"}
    assert doc["source"]["ip"] == "10.1.2.3" and doc["labels"]["project_id"] == "prj_1"
    assert doc["@timestamp"] == "2026-11-21T09:05:00.000Z"


@pytest.mark.parametrize(("what", "change", "says"), [
    ("unknown kind", lambda d: d["event"].update(kind="incident"), "kind"),
    ("unknown field", lambda d: d["event"].update(colour="red"), "colour"),
    ("unknown field set", lambda d: d.update(participant={"eid": "1000017"}), "participant"),
    ("type a category does not expect", lambda d: d["event"].update(
        category=["database"], type=["denied"]), "denied"),
    ("not an address", lambda d: d["source"].update(ip="10.1.2"), "10.1.2"),
    ("no timestamp", lambda d: d.pop("@timestamp"), "@timestamp"),
    ("no ecs.version", lambda d: d["ecs"].pop("version"), "version"),
    ("severity as text", lambda d: d["event"].update(severity="high"), "severity"),
    ("a date that is not one", lambda d: d["event"].update(start="21/11/2026"), "start"),
    ("a nested label", lambda d: d["labels"].update(nested={"a": "b"}), "nested"),
])
def test_broken_ecs_is_refused(what: str, change: Any, says: str) -> None:
    doc = copy.deepcopy(to_ecs(make_alert()))
    change(doc)
    errors = ecs_errors(doc)
    assert errors, f"{what}: accepted"
    assert any(says in e for e in errors), (what, errors)


def test_evidence_is_bounded_plain_json() -> None:
    """A detector's misbehaviour (a list of participants, a blob) cannot ride along."""
    leaked = [str(1_000_000 + i) for i in range(5_000)]
    alert = make_alert(evidence={"members": leaked, "blob": "x" * 10_000,
                                 "nested": {"a": {"b": {"c": {"d": "deep"}}}},
                                 "odd": float("nan"), "count": 5_000})
    for fmt in Format:
        text = render(alert, fmt)
        assert leaked[60] not in text and "x" * 201 not in text and "deep" not in text, fmt
    event = to_ocsf(alert)
    assert event["evidences"][0]["data"]["count"] == 5_000
    assert len(event["evidences"][0]["data"]["members"]) == 50
    assert ocsf_errors(event, DETECTION) == []
    assert ecs_errors(to_ecs(alert)) == []


def test_render_gives_one_line_per_format() -> None:
    alert = make_alert(title="line one\nline two", reasons=["a\nb", "c | d = e"])
    for fmt in Format:
        text = render(alert, fmt)
        assert "\n" not in text and "\r" not in text, fmt
    assert json.loads(render(alert, Format.OCSF)) == document(alert, Format.OCSF)
