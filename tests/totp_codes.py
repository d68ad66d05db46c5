"""Authenticator codes for tests that sign in to a real server, whose clock is the wall's.

A code is good once (the server remembers the last step each secret used) and the server
takes one step either side of its own (totp.DRIFT_STEPS): so up to three sign-ins per 30 s
window need no wait, the previous step's code first. The previous step's is used only while
``margin`` seconds of the window are left, so it cannot fall out of the server's window
before the server reads it (a browser fills a form and clicks in well under that, even on a
loaded machine); a fourth sign-in in one window waits for the next step.
"""

from __future__ import annotations

import time

import pyotp

from strongroom.access.totp import DRIFT_STEPS, STEP_SECONDS


class Codes:
    """The codes one test process hands out, each step once per secret."""

    def __init__(self, margin: float = 10.0) -> None:
        self.margin = margin
        self.used: dict[str, int] = {}  # secret -> the last step handed out

    def fresh(self, secret: str) -> str:
        clock = time.time()
        now = int(clock // STEP_SECONDS)
        left = (now + 1) * STEP_SECONDS - clock
        earliest = now - DRIFT_STEPS if left > self.margin else now
        step = max(earliest, self.used.get(secret, earliest - 1) + 1)
        if step > now + DRIFT_STEPS:  # this window's steps are spent: the next one's
            time.sleep((step - DRIFT_STEPS) * STEP_SECONDS - time.time() + 0.2)
        self.used[secret] = step
        return pyotp.TOTP(secret).at(step * STEP_SECONDS)
