"""Passwords: argon2id hashes (argon2-cffi's defaults follow RFC 9106's recommendation)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 256  # bounds the work an attacker can make argon2 do per attempt

DEFAULT_PROFILE = "RFC_9106_LOW_MEMORY"  # argon2id, t=3, 64 MiB: argon2-cffi's default
_hasher = PasswordHasher()


@cache
def hasher(profile: str = DEFAULT_PROFILE) -> PasswordHasher:
    """argon2-cffi's named parameter profiles (tests use CHEAPEST; production the default)."""
    params = getattr(profiles, profile, None)
    if params is None:
        raise ValueError(f"{profile!r} is not an argon2-cffi profile")
    return PasswordHasher.from_parameters(params)


class WeakPasswordError(ValueError):
    """A password that the policy refuses; the message says what to change."""


def check_policy(password: str) -> None:
    """Refuse passwords too short to resist guessing (NIST SP 800-63B: length over rules)."""
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError(f"a password needs at least {MIN_LENGTH} characters "
                           f"(this one has {len(password)}); a passphrase of a few words works")
    if len(password) > MAX_LENGTH:
        raise WeakPasswordError(f"a password has at most {MAX_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPasswordError("a password of one or two repeated characters is too easy to guess")


def hash_password(password: str, profile: str = DEFAULT_PROFILE) -> str:
    check_policy(password)
    return hasher(profile).hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` matches; never raises on a wrong or malformed input."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy(profile: str) -> str:
    return hasher(profile).hash("strongroom-timing-equaliser")


def burn_time(password: str, profile: str = DEFAULT_PROFILE) -> None:
    """Spent on unknown accounts so a login's timing does not tell whether the email exists:
    a hash at the platform's own profile costs what checking a real account's does."""
    verify_password(_dummy(profile), password[:MAX_LENGTH] + "x")
