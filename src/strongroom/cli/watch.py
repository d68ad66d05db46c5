"""`strongroom watch …`: alerts at the console, a live view for the security team, exports
for a SIEM, appeals, and the delivery of alerts to syslog and webhooks.

The same services as the API's /watch routes, as the person signed in with `strongroom login`.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from strongroom.access.permissions import Action
from strongroom.cli.admin import admin, emit
from strongroom.cli.common import (
    DEFAULT_DATA_DIR,
    DataDir,
    KeyFile,
    console,
    on_use,
    open_platform,
    refusals,
)
from strongroom.watch.exports import Format, render
from strongroom.watch.states import AlertStatus, Severity

if TYPE_CHECKING:
    from strongroom.access import authorize as authorization
    from strongroom.cli import session
    from strongroom.platform import Platform
    from strongroom.server import watch_schemas
    from strongroom.watch import alerts, appeals, delivery
    from strongroom.watch import destinations as watch_destinations
    from strongroom.watch.alerts import AlertFilter, AlertView
else:  # imported when a command first uses them (cli/common.py on_use)
    authorization = on_use("strongroom.access.authorize")
    session = on_use("strongroom.cli.session")
    watch_schemas = on_use("strongroom.server.watch_schemas")
    alerts = on_use("strongroom.watch.alerts")
    appeals = on_use("strongroom.watch.appeals")
    delivery = on_use("strongroom.watch.delivery")
    watch_destinations = on_use("strongroom.watch.destinations")  # `destinations` is a command

# alerts.MAX_LIMIT, written here: reading it would import the alerts' service to list the
# options (tests/unit/test_cli_start.py holds the two equal)
MAX_LIMIT = 1000

watch_app = typer.Typer(help="Watch: alerts, the live view, SIEM exports, appeals, delivery "
                        "(sign in first with `strongroom login --as EMAIL`).", no_args_is_help=True)

AlertId = Annotated[str, typer.Argument(help="The alert's id (alr_…).")]
Status = Annotated[AlertStatus | None, typer.Option(help="Only alerts in this state.")]
Level = Annotated[Severity | None, typer.Option(help="Only alerts of this severity.")]
Detector = Annotated[str | None, typer.Option(
    help="Only this detector, or a family ending in '.' (e.g. limit.).")]
ProjectOpt = Annotated[str | None, typer.Option("--project", help="Only this project's.")]
COLOURS = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan",
           "info": "dim"}


@watch_app.command("alerts")
def list_alerts(
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
    status: Status = None, severity: Level = None, detector: Detector = None,
    project: ProjectOpt = None,
    institution: Annotated[str | None, typer.Option(help="Only this institution's.")] = None,
    person: Annotated[str | None, typer.Option(help="Only this person's.")] = None,
    since: Annotated[dt.datetime | None, typer.Option(
        help="Only alerts seen at or after this time (UTC).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List alerts as JSON, most recently seen first."""
    with admin(data_dir, key_file, changes_state=False) as (platform, who):
        flt = alerts.AlertFilter(status, severity, detector, project, institution, person,
                                 _utc(since))
        listed = alerts.list_alerts(platform.access, who, flt, limit=limit, offset=offset)
        emit([watch_schemas.alert_out(v) for v in listed])


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    return None if when is None else when.replace(tzinfo=when.tzinfo or dt.UTC)


@watch_app.command("show")
def show(alert_id: AlertId, data_dir: DataDir = DEFAULT_DATA_DIR,
         key_file: KeyFile = None) -> None:
    """One alert: its reasons, evidence, suspensions, lifecycle and appeal."""
    with admin(data_dir, key_file, changes_state=False) as (platform, who):
        emit(watch_schemas.alert_out(alerts.get(platform.access, who, alert_id)))


Reason = Annotated[str, typer.Option(help="Why (kept in the audit log).")]


@watch_app.command("ack")
def acknowledge(alert_id: AlertId, reason: Reason = "", data_dir: DataDir = DEFAULT_DATA_DIR,
                key_file: KeyFile = None) -> None:
    """Acknowledge an alert: someone is on it."""
    with admin(data_dir, key_file) as (platform, who):
        emit(watch_schemas.alert_out(alerts.acknowledge(platform.access, who, alert_id,
                                                        reason)))


@watch_app.command("resolve")
def resolve(alert_id: AlertId,
            reason: Annotated[str, typer.Option(help="Why it is resolved (required).")],
            data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Resolve an alert with the reason (a suspension stays until lifted)."""
    with admin(data_dir, key_file) as (platform, who):
        emit(watch_schemas.alert_out(alerts.resolve(platform.access, who, alert_id, reason)))


@watch_app.command("reopen")
def reopen(alert_id: AlertId, reason: Reason = "", data_dir: DataDir = DEFAULT_DATA_DIR,
           key_file: KeyFile = None) -> None:
    """Reopen a resolved alert."""
    with admin(data_dir, key_file) as (platform, who):
        emit(watch_schemas.alert_out(alerts.reopen(platform.access, who, alert_id, reason)))


@watch_app.command("appeal")
def appeal(alert_id: AlertId,
           text: Annotated[str, typer.Option(help="Why the suspension should be lifted.")],
           data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Appeal the suspension an alert set (the person suspended, or the project's lead)."""
    with admin(data_dir, key_file) as (platform, who):
        emit(watch_schemas.appeal_out(appeals.appeal(platform.access, who, alert_id, text)))


@watch_app.command("review")
def review(alert_id: AlertId,
           lift: Annotated[bool, typer.Option("--lift/--uphold",
                                              help="Lift the suspension, or uphold it.")],
           reason: Annotated[str, typer.Option(help="Why (the appellant reads it).")],
           data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Decide an appeal (custodian admins; a lift takes two of them)."""
    with admin(data_dir, key_file) as (platform, who):
        emit(watch_schemas.appeal_out(appeals.review(platform.access, who, alert_id, lift,
                                                     reason)))


FormatOpt = Annotated[Format, typer.Option("--format", help="ocsf, ecs or cef.")]


@watch_app.command("export")
def export(alert_id: AlertId, fmt: FormatOpt = Format.OCSF,
           data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Print one alert as OCSF or ECS JSON, or as a CEF line."""
    with admin(data_dir, key_file, changes_state=False) as (platform, who):
        print(render(alerts.get(platform.access, who, alert_id).alert, fmt))


# -- the live view ------------------------------------------------------------------------------

def _state(view: AlertView) -> tuple[object, ...]:
    a = view.alert
    return (a.status, a.severity, a.count, a.last_at, view.appeal.status)


def _polls(platform: Platform, flt: AlertFilter, last: int, interval: float,
           once: bool) -> Iterator[tuple[list[AlertView], list[AlertView]]]:
    """(the latest alerts, those new or changed since the last poll), every ``interval``."""
    seen: dict[str, tuple[object, ...]] = {}
    while True:
        who = session.resume(platform.access, platform, False)  # an ended session stops it
        latest = alerts.list_alerts(platform.access, who, flt, limit=max(last, 200))
        changed = [v for v in reversed(latest[:last] if not seen else latest)
                   if seen.get(v.alert.id) != _state(v)]
        for view in latest:
            seen[view.alert.id] = _state(view)
        yield latest[:last], changed
        if once:
            return
        time.sleep(interval)


def _table(views: list[AlertView]) -> Table:
    table = Table(title=f"watch alerts (latest {len(views)}; Ctrl-C stops)", expand=True)
    table.add_column("alert", no_wrap=True)
    for column in ("last seen (UTC)", "severity", "status", "detector", "title", "person",
                   "project", "count", "suspended", "appeal"):
        table.add_column(column, overflow="fold")
    for v in views:
        a = v.alert
        table.add_row(a.id, f"{a.last_at:%Y-%m-%d %H:%M:%S}", f"[{COLOURS[a.severity]}]"
                      f"{a.severity}[/]", a.status, a.detector, a.title, a.person_id or "",
                      a.project_id or "", str(a.count), "yes" if a.suspensions else "",
                      "" if v.appeal.status == "none" else v.appeal.status.value)
    return table


@watch_app.command("tail")
def tail(
    data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
    fmt: Annotated[Format | None, typer.Option(
        "--format", help="Print each new or changed alert as one line (ocsf, ecs or cef) "
        "for a SIEM, instead of the table.")] = None,
    once: Annotated[bool, typer.Option(help="Poll once and stop.")] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between polls.")] = 1.0,
    last: Annotated[int, typer.Option(min=1, max=500,
                                      help="How many recent alerts to show.")] = 20,
    status: Status = None, severity: Level = None, detector: Detector = None,
    project: ProjectOpt = None,
) -> None:
    """A live view of alerts as they arrive, or a stream of lines to pipe into a SIEM."""
    flt = alerts.AlertFilter(status, severity, detector, project)
    with refusals(), open_platform(data_dir, key_file) as platform:
        polls = _polls(platform, flt, last, interval, once)
        try:
            if fmt is not None:
                for _, changed in polls:
                    for view in changed:
                        sys.stdout.write(render(view.alert, fmt) + "\n")
                    sys.stdout.flush()
            elif once or not console.is_terminal:
                wide = console if console.is_terminal else Console(width=240)
                for latest, _ in polls:
                    wide.print(_table(latest))
            else:
                latest, _ = next(polls)
                with Live(_table(latest), console=console, refresh_per_second=4) as live:
                    for latest, _ in polls:
                        live.update(_table(latest))
        except KeyboardInterrupt:
            pass


# -- delivery -----------------------------------------------------------------------------------

@watch_app.command("destinations")
def destinations(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Check watch.yaml: where alerts go, and whether each webhook's secret can be read
    (secrets are never shown; exit 1 if one cannot)."""
    with refusals():
        found = watch_destinations.load_destinations(Path(data_dir))
    shown = found.public()
    for entry, hook in zip(shown[len(found.syslog):], found.webhooks, strict=True):
        try:
            hook.secret.read()
            entry["secret_readable"] = True
        except Exception as exc:  # report, do not stop: the others may be fine
            entry["secret_readable"] = False
            entry["problem"] = str(exc)
    emit(shown)
    if not shown:
        console.print(f"no destinations: alerts stay in the list (write "
                      f"{Path(data_dir) / 'watch.yaml'} to send them)")
    if any(entry.get("secret_readable") is False for entry in shown):
        raise typer.Exit(1)  # a webhook that cannot sign would fail every delivery


@watch_app.command("deliveries")
def deliveries(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None,
               send: Annotated[bool, typer.Option(help="Send what is due now first.")]
               = False) -> None:
    """The delivery outbox, newest first: delivered, waiting for a retry, or failed."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        who = session.resume(platform.access, platform, False)
        with platform.access.transaction() as db:  # the same right as reading alerts
            authorization.authorize(platform.access, db, who, Action.WATCH_READ)
        outbox = delivery.Delivery.open(Path(data_dir), platform.store.engine, background=False)
        if send:
            done = outbox.drain()
            console.print(f"sent {done.delivered}, retrying {done.retrying}, failed "
                          f"{done.failed}")
        emit([{"id": r.id, "alert": r.alert_id, "destination": r.destination,
               "status": r.status, "attempts": r.attempts, "next_at": r.next_at.isoformat(),
               "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
               "last_error": r.last_error} for r in outbox.status()])
