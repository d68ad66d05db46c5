"""Sign in and out, one's own account, API tokens, and the role list."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from strongroom.access import auth
from strongroom.access.context import Principal
from strongroom.access.permissions import Action
from strongroom.access.roles import ROLE_DESCRIPTIONS
from strongroom.server.schemas import (
    LoginIn,
    MeOut,
    NewTokenOut,
    PasswordIn,
    RoleOut,
    SessionOut,
    TokenIn,
    TokenOut,
)
from strongroom.server.security import SESSION_COOKIE, Caller, Ctx, acts, source_of

router = APIRouter(tags=["authentication"])


def me_of(who: Principal) -> MeOut:
    return MeOut(person_id=who.person_id, institution_id=who.institution_id,
                 roles=sorted(who.roles), via=who.via.value, token_project=who.token_project,
                 token_actions=sorted(who.token_actions))


@router.post("/auth/login", response_model=SessionOut, openapi_extra=acts(None))
def login(body: LoginIn, request: Request, response: Response, ctx: Ctx) -> SessionOut:
    """Sign in with email, password and the authenticator's code; sets the session cookie."""
    new = auth.login(ctx, body.email, body.password, body.code, source_of(request))
    response.set_cookie(SESSION_COOKIE, new.secret, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/",
                        max_age=ctx.settings.session_absolute_hours * 3600)
    return SessionOut(person_id=new.principal.person_id, roles=sorted(new.principal.roles),
                      csrf_token=new.csrf, expires_at=new.expires_at)


@router.post("/auth/logout", status_code=204, openapi_extra=acts(Action.SELF_READ))
def logout(who: Caller, response: Response, ctx: Ctx) -> None:
    auth.logout(ctx, auth.whoami(ctx, who))
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.post("/auth/password", status_code=204, openapi_extra=acts(Action.SELF_UPDATE))
def change_password(body: PasswordIn, who: Caller, ctx: Ctx) -> None:
    """Change your password (at least 12 characters); your other sessions end."""
    auth.change_password(ctx, who, body.current, body.new)


@router.get("/auth/me", response_model=MeOut, openapi_extra=acts(Action.SELF_READ))
def me(who: Caller, ctx: Ctx) -> MeOut:
    return me_of(auth.whoami(ctx, who))


@router.get("/auth/tokens", response_model=list[TokenOut],
            openapi_extra=acts(Action.SELF_READ))
def list_tokens(who: Caller, ctx: Ctx) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in auth.list_tokens(ctx, who)]


@router.post("/auth/tokens", response_model=NewTokenOut, status_code=201,
             openapi_extra=acts(Action.TOKEN_MANAGE))
def issue_token(body: TokenIn, who: Caller, ctx: Ctx) -> NewTokenOut:
    """An API token for one project and a preset's actions or some named (or both), for at
    most 30 days; its secret is shown once."""
    new = auth.issue_token(ctx, who, body.project_id, [a.value for a in body.actions],
                           body.days, body.label,
                           body.preset.value if body.preset is not None else None)
    return NewTokenOut(token=TokenOut.model_validate(new.token), secret=new.secret)


@router.delete("/auth/tokens/{token_id}", response_model=TokenOut,
               openapi_extra=acts(Action.SELF_READ))
def revoke_token(token_id: str, who: Caller, ctx: Ctx) -> TokenOut:
    return TokenOut.model_validate(auth.revoke_token(ctx, who, token_id))


@router.get("/roles", response_model=list[RoleOut], openapi_extra=acts(Action.ROLES_READ))
def roles(who: Caller, ctx: Ctx) -> list[RoleOut]:
    auth.whoami(ctx, who)
    return [RoleOut(role=r, description=d) for r, d in ROLE_DESCRIPTIONS.items()]
