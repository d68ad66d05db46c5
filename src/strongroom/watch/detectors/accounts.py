"""Accounts: security events from the audit log, metered as observations whose ``action`` is
the event type (``person.created``, ``auth.token.refused``, ``auth.mfa.failed`` …) and whose
``route`` carries the event's ``why`` (for a refused token: "it was revoked on …", "it expired
on …", "it is being used from outside …'s registered networks").

``accounts.new-accounts``: many accounts created in one institution in a short window.
``accounts.refused-token``: a revoked, expired or off-network API token presented.
``accounts.auth-failures``: bursts of failed sign-ins and second factors, per person and per
source address.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from strongroom.audit.events import EventType
from strongroom.watch.detectors.frames import (
    SERVED_REQUEST,
    between,
    institution_subject,
    n,
    person_subject,
)
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.detectors.prefixes import prefix
from strongroom.watch.history import History, Observation
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import Severity

CREATED = EventType.PERSON_CREATED.value
REFUSED = EventType.AUTH_TOKEN_REFUSED.value
MFA = (EventType.AUTH_MFA_FAILED.value, EventType.AUTH_MFA_REPLAYED.value)
FAILURES = (EventType.AUTH_LOGIN_FAILED.value, EventType.AUTH_LOGIN_LOCKED.value, *MFA)


def new_accounts(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Many accounts created in one institution within an hour or a day."""
    p = policy.accounts
    if obs.action != CREATED or obs.institution_id is None:
        return []
    now = history.now
    created = history.institution.filter(pl.col("action") == CREATED)
    hour = between(created, now - dt.timedelta(hours=1)).height
    day = between(created, now - dt.timedelta(days=1)).height
    if hour < p.new_hour and day < p.new_day:
        return []
    before = created.height - day
    many = hour >= 2 * p.new_hour or day >= 2 * p.new_day
    return [Signal(
        detector="accounts.new-accounts",
        severity=Severity.HIGH if many else Severity.MEDIUM,
        subject=institution_subject(obs),
        title=f"{n(day)} new accounts in institution {obs.institution_id} in a day",
        reasons=[f"{n(hour)} accounts were created in institution {obs.institution_id} in the "
                 f"last hour and {n(day)} in the last day (unusual from {p.new_hour} an hour "
                 f"or {p.new_day} a day; twice that is high); it had {n(before)} new accounts "
                 f"in the rest of its history window. Many accounts at once can be a "
                 f"compromised administrator or a way around per-person limits."],
        evidence={"last_hour": hour, "last_day": day, "earlier": before,
                  "hour_at": p.new_hour, "day_at": p.new_day},
        dedup=now.date().isoformat())]


def refused_token(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """A revoked (high), expired (low) or off-network (medium) API token presented."""
    p = policy.accounts
    if obs.action != REFUSED:
        return []
    why = (obs.route or "").lower()
    kind = ("revoked" if "revoked" in why else "expired" if "expired" in why
            else "off-network" if "outside" in why or "network" in why
            else "owner gone" if "no longer exists" in why else "unknown")
    now = history.now
    frame = history.person if obs.person_id is not None else history.recent
    same = between(frame, now - dt.timedelta(days=1)).filter(
        (pl.col("action") == REFUSED) & (pl.col("token_id") == obs.token_id))
    uses = max(same.height, 1)
    network = prefix(obs.source) if obs.source else None
    served = between(history.person, now - dt.timedelta(days=60)).filter(SERVED_REQUEST)
    known = {prefix(s) for s in served["source"].unique().to_list()}
    foreign = network is not None and network not in known
    severity = {"revoked": Severity.HIGH, "off-network": Severity.MEDIUM,
                "expired": Severity.MEDIUM if uses >= p.expired_repeat else Severity.LOW,
                }.get(kind, Severity.MEDIUM)
    where = (f"from {network}, a network the owner has never worked from" if foreign
             else f"from {network}, one of the owner's networks" if network
             else "from an unknown address")
    meaning = {
        "revoked": "a revoked token is someone holding a credential that was taken away "
                   "(a revoked institution's, or a stolen one)",
        "expired": "often a forgotten script; repeated use is worth a look",
        "off-network": "tokens work only from the institution's registered networks; a "
                       "token tried elsewhere may have been copied",
    }.get(kind, "the token was refused for a reason watch does not classify")
    return [Signal(
        detector="accounts.refused-token", severity=severity, subject=person_subject(obs),
        title=f"{kind} API token {obs.token_id or '(unknown)'} presented",
        reasons=[f"API token {obs.token_id or '(unknown)'} of person "
                 f"{obs.person_id or '(unknown)'} was refused ({kind}) {where}; it was "
                 f"presented {uses} time(s) in the last day: {meaning}."],
        evidence={"kind": kind, "token": obs.token_id, "network": network,
                  "foreign_network": foreign, "uses_last_day": uses},
        # a revoked credential used from somewhere its owner never worked is not a stale
        # script: suspend the person, whose other credentials may be taken too
        suspend=kind == "revoked" and foreign,
        dedup=f"{kind}:{obs.token_id}")]


def auth_failures(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Bursts of failed sign-ins or second factors for one person, or from one address."""
    p = policy.accounts
    if obs.action not in FAILURES:
        return []
    now = history.now
    start = now - dt.timedelta(minutes=p.failure_minutes)
    failing = pl.col("action").is_in(FAILURES)
    found = []
    if obs.person_id is not None:
        rows = between(history.person, start).filter(failing)
        mfa = rows.filter(pl.col("action").is_in(MFA)).height
        if mfa >= p.mfa_failures or rows.height >= p.person_failures:
            high = mfa >= p.mfa_failures
            found.append(Signal(
                detector="accounts.auth-failures",
                severity=Severity.HIGH if high else Severity.MEDIUM,
                subject=Subject(obs.person_id, obs.institution_id, None),
                title=f"{rows.height} failed sign-ins for person {obs.person_id} in "
                      f"{p.failure_minutes} minutes",
                reasons=[f"Person {obs.person_id} had {rows.height} failed sign-ins in the "
                         f"last {p.failure_minutes} minutes, {mfa} of them at the second "
                         f"factor (unusual from {p.person_failures} failures; high from "
                         f"{p.mfa_failures} second-factor failures, since those come after "
                         f"a correct password)."],
                evidence={"failures": rows.height, "mfa_failures": mfa,
                          "minutes": p.failure_minutes, "person_at": p.person_failures,
                          "mfa_at": p.mfa_failures},
                dedup=f"person:{now:%Y-%m-%dT%H}"))
    if obs.source:
        rows = between(history.recent, start).filter(failing
                                                     & (pl.col("source") == obs.source))
        accounts = rows.select(pl.col("person_id").n_unique()).item() if rows.height else 0
        if rows.height >= p.source_failures:
            spray = accounts >= p.source_accounts
            network = prefix(obs.source)
            found.append(Signal(
                detector="accounts.auth-failures",
                severity=Severity.HIGH if spray else Severity.MEDIUM,
                subject=Subject(None, None, None),
                title=f"{rows.height} failed sign-ins from one address in "
                      f"{p.failure_minutes} minutes",
                reasons=[f"{rows.height} sign-ins failed from one address in {network} in the "
                         f"last {p.failure_minutes} minutes, against {accounts} account(s) "
                         f"(unusual from {p.source_failures}; against {p.source_accounts}+ "
                         f"accounts it is password spraying)."],
                evidence={"source": obs.source, "network": network, "failures": rows.height,
                          "accounts": accounts, "minutes": p.failure_minutes},
                dedup=f"source:{network}:{now:%Y-%m-%dT%H}"))
    return found
