"""TOTP (RFC 6238) second factor, with replay refusal: a code's time step is used only once."""

from __future__ import annotations

import datetime as dt
import hmac

import pyotp

ISSUER = "Strongroom"
STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1  # accept the previous and next step: clocks on phones drift


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// URI an authenticator app reads (as a QR code, or typed)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def code_at(secret: str, when: dt.datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def matching_step(secret: str, code: str, when: dt.datetime) -> int | None:
    """The time step whose code equals ``code`` within the drift window, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(when.timestamp()) // STEP_SECONDS
    found = None
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        # compare every candidate (no early exit) so timing does not reveal which step matched
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found
