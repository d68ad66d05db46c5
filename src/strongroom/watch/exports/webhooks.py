"""HMAC-signed webhooks: POST an alert's JSON, signed so the receiver knows it came from
Strongroom, unchanged, and recently.

The signature header is ``X-Strongroom-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, ``"<t>." + body``). A receiver calls :func:`verify`: it recomputes the MAC
in constant time and refuses a timestamp outside the tolerance (5 minutes), so a captured
request cannot be replayed later; within the window, ``X-Strongroom-Delivery`` (unique per
attempt's delivery) lets it drop duplicates. Several ``v1`` values may be sent while a secret
is being rotated; one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

import strongroom

SIGNATURE_HEADER = "X-Strongroom-Signature"
DELIVERY_HEADER = "X-Strongroom-Delivery"
EVENT_HEADER = "X-Strongroom-Event"
TOLERANCE_SECONDS = 300
MIN_SECRET_BYTES = 16
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class SignatureError(Exception):
    """A webhook request that must not be trusted; the message says why."""


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for ``body`` at ``timestamp`` (now by default)."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret is at least {MIN_SECRET_BYTES} bytes")
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={_mac(secret, stamp, body)}"


def verify(secret: bytes, body: bytes, header: str | None, *, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> int:
    """Check a received request; return its timestamp, or raise SignatureError saying why.

    ``body`` must be the raw bytes received (before any JSON parsing).
    """
    if not header:
        raise SignatureError(f"the request has no {SIGNATURE_HEADER} header")
    stamp: int | None = None
    candidates = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            stamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if stamp is None or not candidates:
        raise SignatureError("the signature header needs t=<timestamp> and v1=<signature>")
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        raise SignatureError(f"the signature is {abs(current - stamp):.0f} s from now, outside "
                             f"the {tolerance} s window: a replay, or a clock out of step")
    expected = _mac(secret, stamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("the signature does not match the body: it was changed, or "
                             "signed with another secret")
    return stamp


@dataclass(frozen=True)
class Sent:
    status: int
    attempts: int
    delivery_id: str


class WebhookError(Exception):
    """Every attempt failed; ``retry`` says whether trying later could help."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


def post(url: str, secret: bytes, body: bytes, *, attempts: int = 3, backoff: float = 0.5,
         timeout: float = 5.0, event: str = "alert", verify_tls: bool | str = True,
         sleep: Callable[[float], None] = time.sleep,
         client: httpx.Client | None = None) -> Sent:
    """POST ``body`` (JSON) signed, retrying network errors and 408/429/5xx with backoff.

    Each attempt is signed afresh (a fresh timestamp) under one delivery id. Raises
    WebhookError after the last attempt, or at once for an answer retrying cannot change.
    Errors name the status or the kind of failure, never the URL's query or the secret.
    """
    delivery = str(uuid.uuid4())
    own = client is None
    http = client or httpx.Client(timeout=timeout, verify=verify_tls, follow_redirects=False)
    last = "no attempt was made"
    try:
        for attempt in range(1, attempts + 1):
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
                       DELIVERY_HEADER: delivery, EVENT_HEADER: event,
                       "User-Agent": f"strongroom-watch/{strongroom.__version__}"}
            try:
                answer = http.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__} (no answer)"
            else:
                if answer.is_success:
                    return Sent(answer.status_code, attempt, delivery)
                last = f"HTTP {answer.status_code}"
                if answer.status_code not in RETRYABLE:
                    raise WebhookError(f"the receiver refused the alert ({last}); retrying "
                                       f"cannot help until it is fixed", retry=False)
            if attempt < attempts:
                sleep(backoff * 2 ** (attempt - 1))
    finally:
        if own:
            http.close()
    raise WebhookError(f"{attempts} attempts failed; the last: {last}", retry=True)
