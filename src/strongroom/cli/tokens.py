"""`strongroom token …`: a researcher's API tokens, issued from their own machine.

A token is issued by a person signed in with their password and authenticator code (never by
another token), so `token issue`, `token list` and `token revoke` sign in over the HTTP API
as the console does, do their one thing and sign out. The service decides everything (who may
issue for which project, what a preset holds); these commands only compose. The secret is
printed once, on standard output, and kept nowhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.access.presets import PRESETS
from strongroom.cli.common import errors
from strongroom.cli.remote import Ca, Url, remote, show

if TYPE_CHECKING:
    from strongroom.client import Client

token_app = typer.Typer(help="Your API tokens: issue one for a project (signed in with your "
                             "password and code), list them, revoke one.",
                        no_args_is_help=True)

PRESET_HELP = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
Email = Annotated[str, typer.Option(envvar="STRONGROOM_EMAIL", help="Your email (sign-in).")]
# prompted on standard error when not given, so that standard output is the answer's JSON
# alone (`… | jq -r .secret`)
Password = Annotated[str | None, typer.Option(envvar="STRONGROOM_PASSWORD", show_default=False,
                                              help="Your password (prompted, hidden).")]
Code = Annotated[str | None, typer.Option(help="Your authenticator's current code (prompted).",
                                          show_default=False)]


@contextmanager
def signed_in(url: str, email: str, password: str | None, code: str | None,
              ca: Path | None) -> Iterator[Client]:
    """A client signed in as the person (refusals printed, exit 1); signed out after. The
    code is asked for last, just before it is sent, so that it is still current."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, err=True)
    with remote(url, None, ca) as client:
        if code is None:
            code = typer.prompt("Authenticator code", err=True)
        client.login(email, password, code)
        try:
            yield client
        finally:
            client.logout()


@token_app.command("issue")
def issue(
    project: Annotated[str, typer.Argument(help="The project's id (prj_…).")],
    url: Url, email: Email, password: Password = None, code: Code = None, ca: Ca = None,
    preset: Annotated[str | None, typer.Option(help=f"What the token is for: {PRESET_HELP}.")
                      ] = None,
    action: Annotated[list[str] | None, typer.Option(
        help="An action beside the preset's, or instead of one (repeat): self.read, "
             "project.read, data.analyse, data.export, output.read, output.request, "
             "output.download.")] = None,
    days: Annotated[int, typer.Option(help="Days until it expires (1 to 30).")] = 30,
    label: Annotated[str, typer.Option(help="A name to know it by later.")] = "",
) -> None:
    """Issue an API token for PROJECT: a preset's actions (--preset study) and/or named ones
    (--action); its secret is printed once."""
    if preset is None and not action:
        raise typer.BadParameter(f"give --preset ({', '.join(PRESETS)}) or --action")
    if preset is not None and preset not in PRESETS:
        raise typer.BadParameter(f"there is no preset {preset!r}; the presets are "
                                 f"{', '.join(PRESETS)} (`strongroom token presets`)")
    with signed_in(url, email, password, code, ca) as client:
        new = client.tokens.issue(project, action or [], days, label,
                                  preset)
    show(new)
    errors.print(f"The secret ({new['secret'][:8]}…) is shown once and kept nowhere: "
                 f"export STRONGROOM_TOKEN=<secret>. It allows "
                 f"{', '.join(new['token']['actions'])} in {project} until "
                 f"{new['token']['expires_at']}.", markup=False)


@token_app.command("list")
def list_tokens(url: Url, email: Email, password: Password = None, code: Code = None,
                ca: Ca = None) -> None:
    """Your API tokens (never their secrets): project, actions, expiry, last use."""
    with signed_in(url, email, password, code, ca) as client:
        show(client.tokens.list())


@token_app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (tok_…).")],
           url: Url, email: Email, password: Password = None, code: Code = None,
           ca: Ca = None) -> None:
    """Revoke one of your API tokens: it stops working at once."""
    with signed_in(url, email, password, code, ca) as client:
        show(client.tokens.revoke(token_id))


@token_app.command("presets")
def presets() -> None:
    """The presets `token issue --preset` takes, and the actions each holds."""
    show({p.name: {"for": p.description, "actions": sorted(p.actions),
                   "how_tos": list(p.how_tos)} for p in PRESETS.values()})
