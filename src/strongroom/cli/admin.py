"""`strongroom login|logout|serve` and `strongroom admin …`: the administration API at the console.

Each admin command calls the same service function as the matching API route, as the person
signed in with `strongroom login`; output is the API's JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strongroom.cli.common import (
    DEFAULT_DATA_DIR,
    DataDir,
    KeyFile,
    console,
    on_use,
    open_platform,
    refusals,
)
from strongroom.server.defaults import DEFAULT_HOST, DEFAULT_PORT

if TYPE_CHECKING:
    from pydantic import BaseModel

    from strongroom.access import (
        auth,
        bootstrap,
        identity,
        institutions,
        pauses,
        people,
        projects,
    )
    from strongroom.access.context import Principal
    from strongroom.cli import session
    from strongroom.platform import Platform
    from strongroom.server import schemas
else:  # imported when a command first uses them (cli/common.py on_use)
    auth, bootstrap, identity, institutions, pauses, people, projects = (
        on_use(f"strongroom.access.{name}") for name in
        ("auth", "bootstrap", "identity", "institutions", "pauses", "people", "projects"))
    session = on_use("strongroom.cli.session")
    schemas = on_use("strongroom.server.schemas")

admin_app = typer.Typer(help="Administration: institutions, people, projects, pauses "
                        "(sign in first with `strongroom login --as EMAIL`).", no_args_is_help=True)
institution_app = typer.Typer(help="Institutions and their networks.", no_args_is_help=True)
person_app = typer.Typer(help="People, roles, training, vetting.", no_args_is_help=True)
project_app = typer.Typer(help="Projects, members, field grants, export.",
                          no_args_is_help=True)
pause_app = typer.Typer(help="The pause switch.", no_args_is_help=True)
admin_app.add_typer(institution_app, name="institution")
admin_app.add_typer(person_app, name="person")
admin_app.add_typer(project_app, name="project")
admin_app.add_typer(pause_app, name="pause")

Email = Annotated[str, typer.Option("--as", help="Your email address.")]
Password = Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="STRONGROOM_PASSWORD",
                                       help="Your password (prompted if not given).")]
Code = Annotated[str, typer.Option("--code", prompt="Authenticator code",
                                   help="The 6-digit code from your authenticator app.")]


def emit(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    else:
        text = json.dumps([v.model_dump(mode="json") if isinstance(v, BaseModel) else v
                           for v in value] if isinstance(value, list) else value,
                          indent=2, default=str)
    print(text)


@contextmanager
def admin(data_dir: Path, key_file: Path | None,
          changes_state: bool = True) -> Iterator[tuple[Platform, Principal]]:
    with refusals(), open_platform(data_dir, key_file) as platform:
        yield platform, session.resume(platform.access, platform, changes_state)


# -- signing in, serving -------------------------------------------------------------------

def login(email: Email, password: Password, code: Code, data_dir: DataDir = DEFAULT_DATA_DIR,
          key_file: KeyFile = None) -> None:
    """Sign in at this console (password + authenticator code) for the admin commands."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        new = auth.login(platform.access, email, password, code, None)
        where = session.save(platform, new, email)
    console.print(f"signed in as {email} until {new.expires_at:%Y-%m-%d %H:%M} UTC at the "
                  f"latest (15 minutes idle ends it); session kept in {where}")


def logout(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """End this console's session."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        try:
            who = session.resume(platform.access, platform, changes_state=True)
            auth.logout(platform.access, who)
        finally:
            session.forget(platform)
    console.print("signed out")


def password(
    current: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                         help="Your current password (prompted).")],
    new: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                     help="The new password, 12+ characters (prompted).")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Change your own password (signed in with `strongroom login --as EMAIL`); other
    sessions end."""
    with admin(data_dir, key_file) as (p, who):
        auth.change_password(p.access, who, current, new)
    console.print("password changed; your other sessions have ended")


def serve(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")
                    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    certificate: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    private_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    metrics_from: Annotated[list[str] | None, typer.Option(
        help="A network (CIDR) whose peers may read /metrics, the platform team's scraper's "
             "(repeat; the server's own host only by default: the counts are nobody else's)"
    )] = None,
) -> None:
    """Serve the HTTP API (its OpenAPI spec at /openapi.json)."""
    import ipaddress

    from strongroom.server.app import METRICS_FROM
    from strongroom.server.run import serve as run_server  # uvicorn loads only to serve

    for network in metrics_from or []:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise typer.BadParameter(f"{network!r} is not a network: give a CIDR range such "
                                     "as 10.20.0.0/24", param_hint="--metrics-from") from None
    with refusals(), open_platform(data_dir, key_file) as platform:
        run_server(platform, host, port, certificate, private_key,
                   metrics_from=tuple(metrics_from) if metrics_from else METRICS_FROM)


@admin_app.command("bootstrap")
def admin_bootstrap(
    institution: Annotated[str, typer.Option(help="The custodian's institution.")],
    email: Annotated[str, typer.Option(help="The first custodian admin's email.")],
    name: Annotated[str, typer.Option(help="Their name.")],
    country: Annotated[str, typer.Option(help="ISO 3166 country code.")] = "GB",
    jurisdiction: Annotated[str, typer.Option(help="Data-protection law.")] = "UK GDPR",
    network: Annotated[list[str] | None, typer.Option(help="A registered CIDR range "
                                                      "(repeat).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Create the first custodian admin of an empty platform; shows their secrets once."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        new = bootstrap.bootstrap(platform.access, institution=institution, country=country,
                                  jurisdiction=jurisdiction, networks=network or [],
                                  email=email, name=name)
    _show_new_person(new)


def _show_new_person(new: people.NewPerson) -> None:
    emit(schemas.NewPersonOut(person=schemas.person_out(new.person, frozenset(new.roles)),
                              password=new.password, totp_secret=new.totp_secret,
                              totp_uri=new.totp_uri))
    console.print("[bold]These secrets are shown once.[/] Hand them over in person; the "
                  "authenticator app reads the otpauth URI (as a QR code).", highlight=False)


# -- institutions --------------------------------------------------------------------------

@institution_app.command("list")
def institution_list(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """List institutions."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit([schemas.InstitutionOut.model_validate(i)
              for i in institutions.list_all(p.access, who)])


@institution_app.command("add")
def institution_add(
    name: Annotated[str, typer.Option(help="The institution's name.")],
    country: Annotated[str, typer.Option(help="ISO 3166 country code, e.g. GB.")],
    jurisdiction: Annotated[str, typer.Option(help="Data-protection law, e.g. 'UK GDPR'.")],
    network: Annotated[list[str] | None, typer.Option(help="A registered CIDR range "
                                                      "(repeat).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Register an institution."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.InstitutionOut.model_validate(institutions.create(
            p.access, who, name=name, country=country, jurisdiction=jurisdiction,
            networks=network or [])))


@institution_app.command("networks")
def institution_networks(
    institution_id: Annotated[str, typer.Argument(help="The institution's id.")],
    network: Annotated[list[str], typer.Option(help="A CIDR range (repeat); replaces all.")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Replace an institution's registered network ranges."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.InstitutionOut.model_validate(institutions.update_details(
            p.access, who, institution_id, networks=network)))


@institution_app.command("revoke")
def institution_revoke(
    institution_id: Annotated[str, typer.Argument(help="The institution's id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Revoke an institution: all its people, sessions, tokens and projects, at once."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.InstitutionOut.model_validate(
            institutions.revoke(p.access, who, institution_id, reason)))


@institution_app.command("reinstate")
def institution_reinstate(
    institution_id: Annotated[str, typer.Argument(help="The institution's id.")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Reinstate a revoked institution (its closed projects stay closed)."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.InstitutionOut.model_validate(
            institutions.reinstate(p.access, who, institution_id)))


# -- people --------------------------------------------------------------------------------

@person_app.command("list")
def person_list(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """List people and their roles."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit([schemas.person_out(person, roles)
              for person, roles in people.list_all(p.access, who)])


@person_app.command("add")
def person_add(
    institution_id: Annotated[str, typer.Option("--institution", help="Institution id.")],
    email: Annotated[str, typer.Option(help="Their email address (their sign-in name).")],
    name: Annotated[str, typer.Option(help="Their name.")],
    role: Annotated[list[str], typer.Option(help="A role (repeat).")],
    orcid: Annotated[str | None, typer.Option(
        help="Their ORCID iD (0000-0000-0000-000X); accounts with one ORCID share one "
             "person allowance.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Register a person; a password and TOTP secret are generated and shown once."""
    with admin(data_dir, key_file) as (p, who):
        new = people.create(p.access, who, institution_id=institution_id, email=email,
                            name=name, roles=role, orcid=orcid)
    _show_new_person(new)


@person_app.command("show")
def person_show(person_id: Annotated[str, typer.Argument(help="The person's id.")],
                data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Show a person with roles and training."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit(schemas.person_out(*people.read(p.access, who, person_id)))


@person_app.command("role")
def person_role(
    person_id: Annotated[str, typer.Argument(help="The person's id.")],
    role: Annotated[str, typer.Argument(help="The role.")],
    remove: Annotated[bool, typer.Option("--remove", help="Take the role away.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Grant (or with --remove, revoke) a role."""
    with admin(data_dir, key_file) as (p, who):
        if remove:
            people.revoke_role(p.access, who, person_id, role)
        else:
            people.grant_role(p.access, who, person_id, role)
        emit(schemas.person_out(*people.read(p.access, who, person_id)))


@person_app.command("training")
def person_training(
    person_id: Annotated[str, typer.Argument(help="The person's id.")],
    course: Annotated[str, typer.Option(help="The course's name.")],
    completed: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"],
                                                   help="Completed on (YYYY-MM-DD).")],
    expires: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"],
                                                 help="Expires on (YYYY-MM-DD).")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Record completed data-security training (expired training blocks data access)."""
    with admin(data_dir, key_file) as (p, who):
        people.record_training(p.access, who, person_id, course=course,
                               completed_on=completed.date(), expires_on=expires.date())
        emit(schemas.person_out(*people.read(p.access, who, person_id)))


@person_app.command("vetting")
def person_vetting(
    person_id: Annotated[str, typer.Argument(help="The person's id.")],
    status: Annotated[str, typer.Argument(help="approved, rejected or lapsed.")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Set a person's vetting status."""
    with admin(data_dir, key_file) as (p, who):
        people.set_vetting(p.access, who, person_id, status)
        emit(schemas.person_out(*people.read(p.access, who, person_id)))


@person_app.command("unlock")
def person_unlock(person_id: Annotated[str, typer.Argument(help="The person's id.")],
                  data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Unlock an account locked by failed sign-ins."""
    with admin(data_dir, key_file) as (p, who):
        people.unlock(p.access, who, person_id)
        emit(schemas.person_out(*people.read(p.access, who, person_id)))


@person_app.command("active")
def person_active(
    person_id: Annotated[str, typer.Argument(help="The person's id.")],
    active: Annotated[bool, typer.Option("--yes/--no", help="Reactivate or deactivate.")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Deactivate (--no) or reactivate (--yes) a person."""
    with admin(data_dir, key_file) as (p, who):
        people.set_active(p.access, who, person_id, active)
        emit(schemas.person_out(*people.read(p.access, who, person_id)))


# -- identity across accounts --------------------------------------------------------------

PersonArg = Annotated[str, typer.Argument(help="The person's id.")]
OtherArg = Annotated[str, typer.Argument(help="The other account's person id.")]
LinkReason = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]


@person_app.command("orcid")
def person_orcid(
    person_id: PersonArg,
    orcid: Annotated[str | None, typer.Argument(help="The ORCID iD; leave out with --clear.")]
    = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove their ORCID iD.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Record (or --clear) a person's ORCID iD; accounts with one ORCID are one human."""
    if (orcid is None) != clear:
        raise typer.BadParameter("give an ORCID iD, or --clear to remove theirs (not both)")
    with admin(data_dir, key_file) as (p, who):
        identity.set_orcid(p.access, who, person_id, orcid)
        emit(schemas.person_out(*people.read(p.access, who, person_id)))


@person_app.command("accounts")
def person_accounts(person_id: PersonArg, data_dir: DataDir = DEFAULT_DATA_DIR,
                    key_file: KeyFile = None) -> None:
    """The accounts treated as the same human (they share one person allowance)."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit(schemas.AccountsOut(person_id=person_id,
                                 accounts=list(identity.same_human(p.access, who, person_id))))


@person_app.command("duplicates")
def person_duplicates(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Suspected duplicate accounts and why: shared (one allowance now) or a weaker hint."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit([schemas.SuspectOut(
            accounts=[schemas.AccountOut.model_validate(a) for a in s.accounts],
            why=list(s.why), shared=s.shared) for s in identity.duplicates(p.access, who)])


@person_app.command("links")
def person_links(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """The custodians' links in force between accounts."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit([schemas.LinkOut.model_validate(k) for k in identity.links(p.access, who)])


@person_app.command("link")
def person_link(
    person_id: PersonArg, same_as: OtherArg, reason: LinkReason,
    distinct: Annotated[bool, typer.Option(
        "--distinct", help="Two humans who only look alike (not one).")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Link two accounts as one human (they share one person allowance), or --distinct."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.LinkOut.model_validate(identity.link(
            p.access, who, person_id, same_as, reason=reason,
            relation=identity.DISTINCT if distinct else identity.SAME)))


@person_app.command("unlink")
def person_unlink(person_id: PersonArg, same_as: OtherArg, reason: LinkReason,
                  data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """End a custodian's link between two accounts."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.LinkOut.model_validate(identity.unlink(p.access, who, person_id,
                                                            same_as, reason=reason)))


# -- projects ------------------------------------------------------------------------------

@project_app.command("list")
def project_list(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """List projects."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit([schemas.project_out(v) for v in projects.list_visible(p.access, who)])


@project_app.command("add")
def project_add(
    title: Annotated[str, typer.Option(help="The approved application's title.")],
    purpose: Annotated[str, typer.Option(help="Its approved purpose.")],
    lead: Annotated[str, typer.Option(help="The lead researcher's person id.")],
    starts: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Start date.")],
    expires: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Expiry date.")],
    field: Annotated[list[int] | None, typer.Option(help="A granted field id (repeat).")
                     ] = None,
    member: Annotated[list[str] | None, typer.Option(help="A member's person id (repeat).")
                      ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Create a project for an approved application (with its own key and pseudonyms)."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.project_out(projects.create(
            p.access, who, title=title, purpose=purpose, lead_id=lead,
            starts_on=starts.date(), expires_on=expires.date(), fields=field or [],
            members=member or [])))


@project_app.command("show")
def project_show(project_id: Annotated[str, typer.Argument(help="The project's id.")],
                 data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Show a project."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit(schemas.project_out(projects.read(p.access, who, project_id)))


@project_app.command("member")
def project_member(
    project_id: Annotated[str, typer.Argument(help="The project's id.")],
    person_id: Annotated[str, typer.Argument(help="The person's id.")],
    remove: Annotated[bool, typer.Option("--remove", help="Remove instead of add.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Add (or with --remove, remove) a project member."""
    with admin(data_dir, key_file) as (p, who):
        change = projects.remove_member if remove else projects.add_member
        emit(schemas.project_out(change(p.access, who, project_id, person_id)))


@project_app.command("fields")
def project_fields(
    project_id: Annotated[str, typer.Argument(help="The project's id.")],
    field: Annotated[list[int], typer.Option(help="A field id (repeat); replaces all grants.")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Replace a project's field grants."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.project_out(projects.set_fields(p.access, who, project_id, field)))


@project_app.command("genotypes")
def project_genotypes(
    project_id: Annotated[str, typer.Argument(help="The project's id.")],
    withdraw: Annotated[bool, typer.Option("--withdraw",
                                           help="Withdraw the grant instead.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Grant a project its analyses of the genotypes (GWAS in the enclave), or withdraw it."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.project_out(projects.set_genotypes(p.access, who, project_id,
                                                        not withdraw)))


@project_app.command("export")
def project_export(
    project_id: Annotated[str, typer.Argument(help="The project's id.")],
    approve: Annotated[bool, typer.Option("--approve/--decline",
                                          help="Approve or decline the request.")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Decide a project's export request (access-committee members only)."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.project_out(projects.decide_export(p.access, who, project_id, approve)))


@project_app.command("close")
def project_close(
    project_id: Annotated[str, typer.Argument(help="The project's id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke for cause instead of "
                                         "ending normally.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """End or revoke a project: its key is destroyed, its sealed files unreadable."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.project_out(projects.close(p.access, who, project_id, revoke=revoke,
                                                reason=reason)))


# -- pauses --------------------------------------------------------------------------------

@pause_app.command("list")
def pause_list(
    all_: Annotated[bool, typer.Option("--all", help="Include lifted pauses.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """List pauses in force."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        emit([schemas.pause_out(v) for v in pauses.list_pauses(p.access, who, all_)])


@pause_app.command("set")
def pause_set(
    level: Annotated[str, typer.Argument(help="platform, institution, project or person.")],
    reason: Annotated[str, typer.Option(help="Why (shown to those it stops).")],
    target: Annotated[str | None, typer.Option(help="The id to pause (not for platform).")
                      ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Pause data access at a level; it holds from the next request."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.pause_out(pauses.set_pause(p.access, who, level, target, reason)))


@pause_app.command("lift")
def pause_lift(
    pause_id: Annotated[str, typer.Argument(help="The pause's id.")],
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
) -> None:
    """Lift a pause (platform and institution pauses: a second admin must confirm)."""
    with admin(data_dir, key_file) as (p, who):
        emit(schemas.pause_out(pauses.lift(p.access, who, pause_id)))
