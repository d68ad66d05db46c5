"""`strongroom init`, `strongroom upgrade` and `strongroom store …`: a new data directory, schema
upgrades, checks and recovery."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.audit.events import EventType
from strongroom.cli.common import (
    DEFAULT_DATA_DIR,
    DataDir,
    KeyFile,
    console,
    errors,
    on_use,
    open_platform,
    refusals,
)
from strongroom.cli.operators import OperatorName, Reason, named, named_or_signed_in
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.keysources import KeySpec

if TYPE_CHECKING:
    from strongroom import db
    from strongroom.cohort import recovery
    from strongroom.cohort import store as cohort_store
    from strongroom.cohort.store import Store
else:  # imported when a command first uses them (cli/common.py on_use)
    db = on_use("strongroom.db")
    recovery = on_use("strongroom.cohort.recovery")
    cohort_store = on_use("strongroom.cohort.store")  # `store`: a local name below

store_app = typer.Typer(help="The data directory: check it, recover what its database lost.",
                        no_args_is_help=True)


def _raw(data_dir: Path, key_file: Path | None) -> Store:
    """The store without the checks opening makes (they are what is being repaired)."""
    return cohort_store.Store(data_dir, cohort_store.source_for(key_file) if key_file else None)


def init(
    directory: Annotated[Path, typer.Argument(help="The data directory to create.")],
    key_file: Annotated[Path | None, typer.Option(
        "--key-file", help="Where to write the master key (outside the directory). "
        "Default: ~/.config/strongroom/keys/<store-id>.key")] = None,
    dictionary: Annotated[Path | None, typer.Option(
        help="A data dictionary (JSON) instead of the shipped one.")] = None,
    database_url: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL of the metadata database (default: SQLite in the directory).")] = None,
    key_source: Annotated[str | None, typer.Option(
        "--key-source", help="Keep the master key elsewhere than a new key file: env, or a "
        "pkcs11: URI naming a key in a token (see docs/how-to/operate.md).")] = None,
) -> None:
    """Create a data directory, its store key and its master key."""
    with refusals():
        chosen = Dictionary.load(dictionary) if dictionary else None
        store = cohort_store.init_store(directory, key_file=key_file, dictionary=chosen,
                           database_url=database_url,
                           key_source=KeySpec.parse(key_source) if key_source else None)
        store.close()
    console.print(f"created {store.root} (store {store.config.store_id})")
    if store.config.key_file:
        console.print(f"master key written to {store.config.key_file}: keep it apart from "
                      "the data directory and back it up; without it the cohort is unreadable")


def upgrade(operator: OperatorName = None, reason: Reason = None,
            data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Bring the metadata database to this release's schema (back it up first)."""
    with refusals():
        by = named(operator, reason, "upgrade")
        with _raw(data_dir, key_file) as store:
            applied = recovery.upgrade(store, db.Base.metadata, by=by)
        if not applied:
            console.print("the metadata database is already at this release's schema")
            return
        with open_platform(data_dir, key_file):  # drains store.upgraded into the signed log
            pass
    console.print(f"upgraded the metadata database: {', '.join(applied)}")


@store_app.command("check")
def store_check(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Say whether the store opens, and why not: reads only, changes nothing."""
    with refusals(), _raw(data_dir, key_file) as store:
        report = recovery.check(store)
    for problem in report.problems:
        errors.print(f"problem: {problem}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if not report.ok:
        raise typer.Exit(1)
    console.print("the store is consistent and opens")


@store_app.command("recover")
def store_recover(operator: OperatorName = None, reason: Reason = None,
                  data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Register sealed cohort versions the database lost (never deletes anything)."""
    with refusals():
        by = named(operator, reason, "store recover")
        with _raw(data_dir, key_file) as store:
            done = recovery.recover(store, by=by)
        for line in done:
            console.print(line, markup=False)
        with open_platform(data_dir, key_file):
            pass  # its audit writer drains the events recovery wrote with its changes
    console.print("the store opens" if done else "nothing to recover: the store opens")


@store_app.command("scrub")
def store_scrub(operator: OperatorName = None, reason: Reason = None,
                data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Read every sealed file and check it against its digest and authentication tags."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        by = named_or_signed_in(platform, operator, reason, "store scrub")
        found = recovery.scrub(platform.store)
        platform.access.record(EventType.STORE_SCRUBBED, by.actor,
                               platform.store.config.store_id,
                               {"files": found.files, "bytes": found.bytes,
                                "problems": found.problems, **by.details()})
    for problem in found.problems:
        errors.print(f"problem: {problem}", markup=False)
    if not found.ok:
        errors.print("scrub: damaged files found; restore them from a backup "
                     "(`strongroom restore ARCHIVE NEW_DIR --operator NAME --reason TEXT`, "
                     "then compare)", markup=False)
        raise typer.Exit(1)
    console.print(f"scrubbed {found.files} sealed files ({found.bytes:,} bytes): all intact")
