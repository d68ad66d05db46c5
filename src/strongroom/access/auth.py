"""Authentication: password + TOTP for everyone, web sessions, and project-scoped API tokens.

Failed attempts are rate-limited per account and per source address and lock the account
after repeated failures; a TOTP code is accepted once only. Secrets given out (session ids,
CSRF tokens, API tokens) are kept only as SHA-256 digests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from strongroom.access import passwords, totp
from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal, Via
from strongroom.access.models import ApiToken, Institution, LoginAttempt, Person, WebSession
from strongroom.access.networks import address_in
from strongroom.access.people import open_totp, roles_of
from strongroom.access.permissions import RULES, Action
from strongroom.access.policies import account_reasons, read_control_state
from strongroom.access.presets import PRESETS, preset_of
from strongroom.access.tokens import SESSION_PREFIX, TOKEN_PREFIX, digest, new_id, new_secret
from strongroom.audit import EventType
from strongroom.db import affected
from strongroom.errors import Invalid, NotFound, RateLimited, Refused, Unauthenticated

log = logging.getLogger(__name__)

WRONG = "the email, password or code is wrong"


@dataclass(frozen=True)
class NewSession:
    principal: Principal
    session_id: str
    secret: str  # goes in the session cookie
    csrf: str  # must accompany every state-changing request
    expires_at: dt.datetime  # the absolute limit


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown once


def _attempt_key(ctx: AccessContext) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"strongroom login attempts").derive(ctx.key.secret)


def _keyed(ctx: AccessContext, value: str) -> str:
    """Attempts are counted by keyed digests: the table holds no emails or addresses."""
    return hmac.new(_attempt_key(ctx), value.encode(), hashlib.sha256).hexdigest()


def principal_for(db: Session, person: Person, via: Via, source: str | None, *,
                  token: ApiToken | None = None, session_id: str | None = None) -> Principal:
    return Principal(
        person_id=person.id, institution_id=person.institution_id,
        roles=roles_of(db, person.id), via=via, source=source, session_id=session_id,
        token_id=token.id if token else None,
        token_project=token.project_id if token else None,
        token_actions=frozenset(Action(a) for a in token.actions) if token else frozenset(),
    )


def _rate_limit(ctx: AccessContext, db: Session, email_key: str, source_key: str) -> None:
    since = ctx.clock() - dt.timedelta(minutes=1)
    recent = db.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.at >= since,
        (LoginAttempt.email_digest == email_key) | (LoginAttempt.source_digest == source_key),
    )) or 0
    if recent >= ctx.settings.attempts_per_minute:
        raise RateLimited(f"too many sign-in attempts in the last minute (the limit is "
                          f"{ctx.settings.attempts_per_minute}); wait a minute and try again",
                          retry_after=60)


def verify_credentials(ctx: AccessContext, email: str, password: str, code: str,
                       source: str | None, via: Via) -> Principal:
    """Check password and TOTP; count, rate-limit and lock; return who signed in."""
    email = email.strip().lower()
    email_key, source_key = _keyed(ctx, email), _keyed(ctx, source or "unknown")
    now = ctx.clock()
    failure: tuple[EventType, str | None, str] | None = None
    with ctx.transaction() as db:
        _rate_limit(ctx, db, email_key, source_key)
        person = db.scalar(select(Person).where(Person.email == email))
        ok = False
        if person is None:
            passwords.burn_time(password, ctx.settings.password_profile)
            failure = (EventType.AUTH_LOGIN_FAILED, None, "unknown account")
        elif person.locked_until is not None and person.locked_until > now:
            failure = (EventType.AUTH_LOGIN_LOCKED, person.id, "locked")
        elif not passwords.verify_password(person.password_hash, password):
            failure = (EventType.AUTH_LOGIN_FAILED, person.id, "wrong password")
        else:
            step = totp.matching_step(open_totp(ctx.key, person), code, now)
            if step is None:
                failure = (EventType.AUTH_MFA_FAILED, person.id, "wrong code")
            elif step <= person.totp_last_step:
                failure = (EventType.AUTH_MFA_REPLAYED, person.id, "code already used")
            else:
                ok = True
                person.totp_last_step, person.mfa_confirmed = step, True
                person.failed_logins, person.locked_until = 0, None
        if failure is not None and person is not None and failure[2] != "locked":
            person.failed_logins += 1
            if person.failed_logins >= ctx.settings.lockout_after:
                person.locked_until = now + dt.timedelta(minutes=ctx.settings.lockout_minutes)
                # the lock and its event commit together (the audit outbox)
                ctx.record(EventType.AUTH_LOGIN_LOCKED, person.id, person.id,
                           {"until": str(person.locked_until)})
        db.add(LoginAttempt(email_digest=email_key, source_digest=source_key, at=now, ok=ok))
        principal = principal_for(db, person, via, source) if ok and person else None
        locked_until = person.locked_until if person is not None else None
    sensitive = {"email": email, **({"source": source} if source else {})}
    if failure is not None:
        kind, who, why = failure
        ctx.record(kind, who, who, {"why": why, "via": via.value}, sensitive)
        if locked_until is not None and locked_until > now:
            raise Unauthenticated(
                f"this account is locked after {ctx.settings.lockout_after} failed attempts "
                f"until {locked_until:%H:%M} UTC; wait, or ask a custodian admin to unlock it")
        raise Unauthenticated(WRONG)
    assert principal is not None
    with ctx.transaction() as db:
        state = read_control_state(db)
        reasons = account_reasons(db, state, principal, RULES[Action.SELF_READ])
    if reasons:
        ctx.record(EventType.ACCESS_REFUSED, principal, principal.person_id,
                   {"action": "sign-in", "reasons": reasons})
        raise Refused(reasons)
    return principal


def login(ctx: AccessContext, email: str, password: str, code: str,
          source: str | None) -> NewSession:
    """Sign in for the web or the client: a session with idle and absolute timeouts."""
    principal = verify_credentials(ctx, email, password, code, source, Via.SESSION)
    secret, csrf = new_secret(SESSION_PREFIX), new_secret()
    now = ctx.clock()
    session = WebSession(id=new_id("ses"), digest=digest(secret), csrf_digest=digest(csrf),
                         person_id=principal.person_id, created_at=now, last_seen_at=now)
    with ctx.transaction() as db:
        db.add(session)
        ctx.record(EventType.AUTH_LOGIN_SUCCEEDED, principal, principal.person_id,
                   {"session": session.id}, {"email": email.strip().lower()})
    expires = now + dt.timedelta(hours=ctx.settings.session_absolute_hours)
    return NewSession(replace(principal, session_id=session.id),
                      session.id, secret, csrf, expires)


def resume_session(ctx: AccessContext, secret: str, csrf: str | None, changes_state: bool,
                   source: str | None) -> Principal:
    """The person behind a session cookie; ends sessions past their idle or absolute limit."""
    now = ctx.clock()
    expired = None
    with ctx.transaction() as db:
        session = db.scalar(select(WebSession).where(WebSession.digest == digest(secret)))
        if session is None or session.ended_at is not None:
            raise Unauthenticated("you are not signed in (or your session was ended); "
                                  "sign in again")
        idle = dt.timedelta(minutes=ctx.settings.session_idle_minutes)
        absolute = dt.timedelta(hours=ctx.settings.session_absolute_hours)
        if now - session.last_seen_at > idle:
            expired = f"idle for more than {ctx.settings.session_idle_minutes} minutes"
        elif now - session.created_at > absolute:
            expired = f"older than {ctx.settings.session_absolute_hours} hours"
        if expired:
            session.ended_at, session.ended_reason = now, expired
            ctx.record(EventType.AUTH_SESSION_EXPIRED, session.person_id, session.id,
                       {"why": expired})  # with the session's end, in its transaction
        else:
            if changes_state and (csrf is None or not hmac.compare_digest(
                    digest(csrf), session.csrf_digest)):
                raise Refused("this request lacks the session's CSRF token (header "
                              "X-CSRF-Token); reload the page or sign in again")
            session.last_seen_at = now
            person = db.get(Person, session.person_id)
            assert person is not None
            principal = principal_for(db, person, Via.SESSION, source, session_id=session.id)
    if expired:
        raise Unauthenticated(f"your session expired ({expired}); sign in again")
    return principal


def logout(ctx: AccessContext, principal: Principal) -> None:
    if principal.session_id is None:
        raise Invalid("only a web session can be signed out; API tokens are revoked instead")
    with ctx.transaction() as db:
        session = db.get(WebSession, principal.session_id)
        if session is not None and session.ended_at is None:
            session.ended_at, session.ended_reason = ctx.clock(), "signed out"
        ctx.record(EventType.AUTH_LOGOUT, principal, principal.session_id)


def whoami(ctx: AccessContext, principal: Principal) -> Principal:
    """The caller, once "when may" has been checked (a revoked account learns it here)."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.SELF_READ)
    return principal


def change_password(ctx: AccessContext, principal: Principal, current: str,
                    new: str) -> None:
    """Change one's own password; every other session of the person ends."""
    if principal.via is Via.TOKEN:
        raise Refused("a password cannot be changed with an API token; sign in instead")
    try:
        passwords.check_policy(new)
    except passwords.WeakPasswordError as exc:
        raise Invalid(str(exc)) from None
    if new == current:
        raise Invalid("the new password must differ from the current one")
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.SELF_UPDATE)
        person = db.get(Person, principal.person_id)
        assert person is not None
        right = passwords.verify_password(person.password_hash, current)
    if not right:
        ctx.record(EventType.AUTH_LOGIN_FAILED, principal, principal.person_id,
                   {"why": "wrong current password when changing it"})
        raise Refused("the current password is wrong")
    new_hash = passwords.hash_password(new, ctx.settings.password_profile)
    now = ctx.clock()
    with ctx.transaction() as db:
        person = db.get(Person, principal.person_id)
        assert person is not None
        person.password_hash = new_hash
        ended = affected(db.execute(update(WebSession).where(
            WebSession.person_id == principal.person_id, WebSession.ended_at.is_(None),
            WebSession.id != (principal.session_id or ""),
        ).values(ended_at=now, ended_reason="password changed")))
        ctx.record(EventType.AUTH_PASSWORD_CHANGED, principal, principal.person_id,
                   {"other_sessions_ended": ended})


def token_actions(names: Iterable[str], preset: str | None = None) -> frozenset[Action]:
    """The actions a token is asked for: a preset's (access/presets.py) and those named."""
    out: set[Action] = set()
    if preset is not None:
        try:
            out |= preset_of(preset).actions
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    for name in names:
        try:
            action = Action(name)
        except ValueError:
            action = None
        if action is None or not RULES[action].by_token:
            usable = ", ".join(sorted(a.value for a, r in RULES.items() if r.by_token))
            raise Invalid(f"{name!r} cannot be granted to an API token; tokens can carry: "
                          f"{usable}")
        out.add(action)
    if not out:
        raise Invalid(f"give the token a preset ({', '.join(PRESETS)}) or at least one "
                      f"action")
    return frozenset(out)


def issue_token(ctx: AccessContext, principal: Principal, project_id: str,
                actions: Iterable[str], days: int, label: str = "",
                preset: str | None = None) -> NewToken:
    """An API token for one project and the actions of a preset and those named, expiring
    within 30 days."""
    if principal.via is Via.TOKEN:
        raise Refused("an API token cannot issue tokens; sign in to issue one")
    if not 1 <= days <= ctx.settings.token_max_days:
        raise Invalid(f"a token lasts 1 to {ctx.settings.token_max_days} days, not {days}")
    wanted = token_actions(actions, preset)
    if len(label) > 100:
        raise Invalid("a token label has at most 100 characters")
    secret = new_secret(TOKEN_PREFIX)
    now = ctx.clock()
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.TOKEN_MANAGE, project_id)
        token = ApiToken(id=new_id("tok"), digest=digest(secret),
                         person_id=principal.person_id, project_id=project_id,
                         actions=sorted(a.value for a in wanted), label=label,
                         created_at=now, expires_at=now + dt.timedelta(days=days))
        db.add(token)
        ctx.record(EventType.AUTH_TOKEN_ISSUED, principal, token.id,
                   {"project": project_id, "actions": token.actions, "days": days,
                    **({"preset": preset} if preset is not None else {})})
    return NewToken(token, secret)


def list_tokens(ctx: AccessContext, principal: Principal) -> list[ApiToken]:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.SELF_READ)
        return list(db.scalars(select(ApiToken).where(ApiToken.person_id ==
                                                      principal.person_id)
                               .order_by(ApiToken.created_at)))


def revoke_token(ctx: AccessContext, principal: Principal, token_id: str) -> ApiToken:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.SELF_READ)
        token = db.get(ApiToken, token_id)
        if token is None or token.person_id != principal.person_id:
            raise NotFound(f"you have no token {token_id}")
        if token.revoked_at is None:
            token.revoked_at = ctx.clock()
        ctx.record(EventType.AUTH_TOKEN_REVOKED, principal, token_id)
    return token


LAST_USED_EVERY = dt.timedelta(minutes=1)  # a token's last use is kept to the minute


def _note_use(ctx: AccessContext, token_id: str, now: dt.datetime) -> None:
    """Record a token's last use, at most once a minute, in its own short transaction; a busy
    database skips it (the audit log and the meter hold every request anyway), so twenty
    clients on one token never queue behind, or fail on, this write."""
    try:
        with ctx.transaction() as db:
            db.execute(update(ApiToken).where(ApiToken.id == token_id)
                       .values(last_used_at=now))
    except OperationalError:
        log.info("a token's last use was not recorded: the database was busy")


def resume_token(ctx: AccessContext, secret: str, source: str | None) -> Principal:
    """The person behind an API token, refused if revoked, expired or off-network."""
    now = ctx.clock()
    problem, stale = None, False
    with ctx.transaction() as db:
        token = db.scalar(select(ApiToken).where(ApiToken.digest == digest(secret)))
        if token is None:
            raise Unauthenticated("this API token is not valid; issue a new one")
        person = db.get(Person, token.person_id)
        institution = db.get(Institution, person.institution_id) if person else None
        if person is None or institution is None:
            problem = "its owner no longer exists"
        elif token.revoked_at is not None:
            problem = f"it was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC"
        elif token.expires_at <= now:
            problem = f"it expired on {token.expires_at:%Y-%m-%d %H:%M} UTC"
        elif not address_in(source, institution.networks):
            problem = (f"it is being used from outside {institution.name}'s registered "
                       f"networks")
        else:
            stale = token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY
            principal = principal_for(db, person, Via.TOKEN, source, token=token)
    if problem is None and stale:
        _note_use(ctx, token.id, now)
    if problem is not None:
        ctx.record(EventType.AUTH_TOKEN_REFUSED, token.person_id, token.id, {"why": problem},
                   {"source": source} if source else {})
        if problem.startswith("it is being used from outside"):
            raise Refused(f"this API token cannot be used here: {problem}; use it from your "
                          f"institution's network")
        raise Unauthenticated(f"this API token cannot be used: {problem}")
    return principal
