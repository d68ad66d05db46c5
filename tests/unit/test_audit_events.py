"""Event types are a stable format; leaves are canonical; sensitive values are keyed hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest

from strongroom.audit import (
    DESCRIPTIONS,
    AuditEvent,
    EventType,
    salt_key_from_secret,
    signing_key_from_secret,
)
from strongroom.audit.events import format_at, hash_sensitive, leaf_head, leaf_tail
from strongroom.audit.keys import key_id

# Every value ever shipped. Entries signed years ago name these strings: a value may never be
# renamed or removed. When you add an event type, add its value here too.
SHIPPED = {
    "auth.login.succeeded", "auth.login.failed", "auth.login.locked", "auth.mfa.enrolled",
    "auth.mfa.failed", "auth.mfa.replayed", "auth.logout", "auth.session.expired",
    "auth.password.changed", "auth.token.issued", "auth.token.revoked", "auth.token.refused",
    "institution.created", "institution.updated", "institution.revoked",
    "institution.reinstated", "person.created", "person.updated", "person.role.granted",
    "person.role.revoked", "person.training.recorded", "person.vetting.changed",
    "person.unlocked", "person.deactivated", "person.linked", "person.unlinked",
    "project.created", "project.updated",
    "project.member.added", "project.member.removed", "project.fields.granted",
    "project.fields.revoked", "project.export.requested", "project.export.approved",
    "project.ended", "project.revoked", "project.key.destroyed", "project.pseudonyms.issued",
    "pause.set", "pause.lift.requested", "pause.lifted", "access.refused", "data.accessed",
    "audit.verified", "audit.checkpoint.exported",
    "enclave.definition.created", "enclave.definition.dropped", "enclave.analysis.run",
    "enclave.analysis.refused", "enclave.dummy.downloaded", "output.checked",
    "job.submitted", "job.ended", "job.scratch_destroyed",
    "output.requested", "output.reviewed", "output.released", "output.blocked",
    "output.rejected", "output.withdrawn", "output.downloaded", "extract.created",
    "attribution.run",
    "dp.budget.set", "dp.query.charged", "dp.query.answered", "dp.query.failed",
    "dp.budget.refused", "dp.mode.left",
    "dp.query.refused",
    "watch.alert.acknowledged", "watch.alert.resolved", "watch.alert.reopened",
    "watch.appeal.filed", "watch.appeal.upheld", "watch.appeal.lifted",
    "watch.delivery.failed",
    "watch.limit.refused", "watch.alert.raised", "watch.suspended", "watch.limits.set",
    "watch.job.declared", "watch.job.approved", "extract.refused",
    "store.upgraded", "store.recovered", "store.key.rotated", "store.backed_up",
    "store.restored", "store.scrubbed",
    "store.swept", "store.backup_abandoned", "cohort.ingest_rolled_back",
    "audit.loss_accepted", "cohort.ingested", "genotypes.ingested", "project.genotypes.granted",
    "project.genotypes.revoked",
    "enclave.analysis_run.submitted", "enclave.analysis_run.ended",
}

SALT = bytes(range(32))


def test_no_shipped_event_type_was_renamed_or_removed() -> None:
    current = {e.value for e in EventType}
    missing = SHIPPED - current
    assert not missing, f"event type values were renamed or removed: {sorted(missing)}"


def test_every_event_type_is_in_the_snapshot() -> None:
    new = {e.value for e in EventType} - SHIPPED
    assert not new, (f"new event types {sorted(new)}: add them to SHIPPED in this test, "
                     "they are a stable format from now on")


def test_every_event_type_has_a_one_line_description() -> None:
    assert set(DESCRIPTIONS) == set(EventType)
    for kind, text in DESCRIPTIONS.items():
        assert text and "\n" not in text and text.endswith("."), kind


def test_member_names_follow_their_values() -> None:
    for kind in EventType:
        assert kind.name == kind.value.upper().replace(".", "_")
        assert str(kind) == kind.value


def test_sensitive_values_are_hmac_sha256_of_name_nul_value() -> None:
    got = hash_sensitive(SALT, "source", "203.0.113.7")
    assert got == hmac.new(SALT, b"source\x00203.0.113.7", hashlib.sha256).hexdigest()
    assert len(got) == 64
    # bound to the field name and to the key
    assert hash_sensitive(SALT, "email", "203.0.113.7") != got
    assert hash_sensitive(bytes(32), "source", "203.0.113.7") != got
    with pytest.raises(ValueError, match="NUL"):
        hash_sensitive(SALT, "a\0b", "x")


def leaf(event: AuditEvent, seq: int = 41) -> str:
    assert event.at is not None
    return leaf_head(seq, format_at(event.at), event.type, event.actor, event.subject) + \
        leaf_tail(event, SALT)


AT = dt.datetime(2026, 4, 1, 14, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def test_the_leaf_is_fixed_order_compact_ascii_json() -> None:
    event = AuditEvent(EventType.DATA_ACCESSED, "per_1", "prj_é", {"z": 1, "a": {"y": [1, "ü"],
                       "b": None}}, {"source": "10.0.0.1"}, AT)
    text = leaf(event)
    assert text.isascii() and " " not in text
    assert text.startswith('{"seq":41,"at":"2026-04-01T12:00:00.000005+00:00",'
                           '"type":"data.accessed","actor":"per_1","subject":"prj_\\u00e9",'
                           '"details":{"a":{"b":null,"y":[1,"\\u00fc"]},"z":1},"sensitive":')
    parsed = json.loads(text)
    assert list(parsed) == ["seq", "at", "type", "actor", "subject", "details", "sensitive"]
    assert parsed["subject"] == "prj_é"
    assert parsed["sensitive"] == {"source": hash_sensitive(SALT, "source", "10.0.0.1")}
    # same event, same bytes: key order of the caller's dicts does not matter
    again = AuditEvent(EventType.DATA_ACCESSED, "per_1", "prj_é",
                       {"a": {"b": None, "y": [1, "ü"]}, "z": 1}, {"source": "10.0.0.1"}, AT)
    assert leaf(again) == text


def test_missing_actor_and_subject_are_null() -> None:
    text = leaf(AuditEvent(EventType.AUTH_LOGIN_FAILED, None, at=AT))
    assert '"actor":null,"subject":null,"details":{},"sensitive":{}}' in text


def test_unserialisable_or_untyped_events_are_refused() -> None:
    with pytest.raises(ValueError):
        leaf_tail(AuditEvent(EventType.DATA_ACCESSED, "x", details={"v": float("nan")}), SALT)
    with pytest.raises(TypeError):
        leaf_tail(AuditEvent(EventType.DATA_ACCESSED, "x", details={"v": object()}), SALT)
    with pytest.raises(TypeError, match="EventType"):
        leaf_tail(AuditEvent("data.accessed", "x"), SALT)  # type: ignore[arg-type]


def test_timestamps_are_utc_microseconds_and_must_be_aware() -> None:
    assert format_at(AT) == "2026-04-01T12:00:00.000005+00:00"
    assert format_at(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == \
        "2026-01-01T00:00:00.000000+00:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_at(dt.datetime(2026, 1, 1))


def test_keys_are_derived_deterministically_and_independently() -> None:
    secret = bytes(range(100, 132))
    k1, k2 = signing_key_from_secret(secret), signing_key_from_secret(secret)
    assert key_id(k1.public_key()) == key_id(k2.public_key())
    assert key_id(signing_key_from_secret(bytes(32)).public_key()) != key_id(k1.public_key())
    salt = salt_key_from_secret(secret)
    assert salt == salt_key_from_secret(secret) and len(salt) == 32
    assert salt != salt_key_from_secret(bytes(32))
    assert salt not in (secret, k1.private_bytes_raw())
    with pytest.raises(ValueError, match="32 bytes"):
        salt_key_from_secret(b"short")


def test_every_refusal_and_failure_is_an_attempt_kept_whatever_rolls_back() -> None:
    # an attempt is appended at once; a change's event commits with its transaction (and
    # vanishes with its rollback): a refusal filed as a change would be lost with the
    # transaction it refused
    from strongroom.audit.events import ATTEMPTS

    said_no = {e for e in EventType if e.value.endswith((".refused", ".failed", ".replayed"))}
    assert said_no <= ATTEMPTS
    assert {e.value for e in ATTEMPTS - said_no} == {
        "data.accessed", "audit.verified", "audit.checkpoint.exported",
        "enclave.dummy.downloaded", "output.downloaded", "attribution.run"}
