"""Passwords, TOTP, secrets, networks and pseudonym draws, each on its own."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from strongroom.access import passwords, pseudonyms, tokens, totp
from strongroom.access.networks import BadNetworkError, address_in, parse_networks

NOW = dt.datetime(2026, 11, 21, 12, 0, 0, tzinfo=dt.UTC)


def test_passwords_are_argon2id_and_verify() -> None:
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106 low-memory
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse batterY")
    assert not passwords.verify_password("not a hash", "x")
    assert not passwords.verify_password(stored, "x" * 10_000)


@pytest.mark.parametrize("weak", ["short", "aaaaaaaaaaaaaaaa", "x" * 300])
def test_weak_passwords_are_refused_with_the_reason(weak: str) -> None:
    with pytest.raises(passwords.WeakPasswordError, match=r"characters|guess"):
        passwords.hash_password(weak)


def test_totp_matches_its_own_step_and_neighbours_only() -> None:
    secret = totp.new_secret()
    step = int(NOW.timestamp()) // 30
    assert totp.matching_step(secret, totp.code_at(secret, NOW), NOW) == step
    later = NOW + dt.timedelta(seconds=30)
    assert totp.matching_step(secret, totp.code_at(secret, later), NOW) == step + 1
    far = NOW + dt.timedelta(minutes=5)
    assert totp.matching_step(secret, totp.code_at(secret, far), NOW) is None
    assert totp.matching_step(secret, "12a456", NOW) is None
    assert totp.matching_step(secret, "", NOW) is None


def test_totp_uri_names_the_issuer_and_account() -> None:
    uri = totp.provisioning_uri(totp.new_secret(), "ada@example.org")
    assert uri.startswith("otpauth://totp/Strongroom:ada%40example.org?")
    assert "issuer=Strongroom" in uri


def test_secrets_are_random_and_only_their_digest_is_kept() -> None:
    a, b = tokens.new_secret(tokens.TOKEN_PREFIX), tokens.new_secret(tokens.TOKEN_PREFIX)
    assert a != b and a.startswith("srt_") and len(a) > 40
    assert tokens.digest(a) != a and len(tokens.digest(a)) == 64


def test_networks_are_normalised_and_checked() -> None:
    assert parse_networks(["10.1.0.0/16", "10.1.0.0/16", "2001:db8::/32"]) == [
        "10.1.0.0/16", "2001:db8::/32"]
    for bad in ["10.1.2.3/16", "not-a-network", "0.0.0.0/0"]:
        with pytest.raises(BadNetworkError):
            parse_networks([bad])
    assert address_in("10.1.200.7", ["10.1.0.0/16"])
    assert address_in("::ffff:10.1.0.9", ["10.1.0.0/16"])
    assert not address_in("10.2.0.1", ["10.1.0.0/16"])
    assert not address_in(None, ["10.1.0.0/16"])
    assert not address_in("testclient", ["10.1.0.0/16"])


def test_pseudonyms_are_distinct_seven_digit_and_avoid_those_taken() -> None:
    taken = np.arange(1_000_000, 1_500_000)
    ids = pseudonyms.random_ids(200_000, taken)
    assert len(np.unique(ids)) == 200_000
    assert ids.min() >= 1_500_000 and ids.max() <= 9_999_999
    assert not np.isin(ids, taken).any()
    # uniform over what is left: the mean sits mid-range
    assert abs(ids.mean() - 5_750_000) < 30_000
