"""Webhook signatures: verify accepts what sign made, and refuses changes, other secrets,
replays outside the window and malformed headers, each saying why."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from strongroom.watch.exports.webhooks import SignatureError, sign, verify

SECRET = b"0123456789abcdef0123456789abcdef"
BODY = b'{"finding_info":{"uid":"alr_1"}}'
NOW = 1_795_251_600


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    header = sign(SECRET, BODY, NOW)
    expected = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert verify(SECRET, BODY, header, now=NOW + 10) == NOW


@pytest.mark.parametrize(("body", "secret", "says"), [
    (BODY + b" ", SECRET, "does not match"),
    (BODY.replace(b"alr_1", b"alr_2"), SECRET, "does not match"),
    (BODY, b"another secret of enough length!", "does not match"),
])
def test_a_changed_body_or_another_secret_is_refused(body: bytes, secret: bytes,
                                                      says: str) -> None:
    with pytest.raises(SignatureError, match=says):
        verify(secret, body, sign(SECRET, BODY, NOW), now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_a_replay_outside_the_window_is_refused(skew: int) -> None:
    with pytest.raises(SignatureError, match="outside the 300 s window"):
        verify(SECRET, BODY, sign(SECRET, BODY, NOW), now=NOW + skew)


@pytest.mark.parametrize("skew", [0, 299, -299])
def test_within_the_window_it_is_accepted(skew: int) -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY, NOW), now=NOW + skew) == NOW


def test_a_shorter_window_can_be_chosen() -> None:
    with pytest.raises(SignatureError, match="outside the 30 s window"):
        verify(SECRET, BODY, sign(SECRET, BODY, NOW), now=NOW + 31, tolerance=30)


def test_the_timestamp_is_signed_too() -> None:
    """Moving the timestamp forward to dodge the window breaks the signature."""
    header = sign(SECRET, BODY, NOW)
    moved = header.replace(f"t={NOW}", f"t={NOW + 3600}")
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, BODY, moved, now=NOW + 3600)


@pytest.mark.parametrize(("header", "says"), [
    (None, "no X-Strongroom-Signature"),
    ("", "no X-Strongroom-Signature"),
    ("v1=abc", "needs t="),
    (f"t={NOW}", "needs t="),
    ("t=soon,v1=abc", "needs t="),
])
def test_malformed_headers_are_refused(header: str | None, says: str) -> None:
    with pytest.raises(SignatureError, match=says):
        verify(SECRET, BODY, header, now=NOW)


def test_during_rotation_one_matching_signature_is_enough() -> None:
    old = sign(b"the old secret, long enough....", BODY, NOW).split(",")[1]
    new = sign(SECRET, BODY, NOW)
    assert verify(SECRET, BODY, f"{new},{old}", now=NOW) == NOW


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        sign(b"short", BODY, NOW)
