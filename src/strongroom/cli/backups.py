"""`strongroom backup` and `strongroom restore`: a whole store in one encrypted file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from strongroom.cli.operators import OperatorName, Reason, named, named_or_signed_in
from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.keysources import KeySource, KeySpec, RawKeySource, open_source

if TYPE_CHECKING:
    from strongroom.cohort import store as cohort_store
    from strongroom.operations import backup as backups
else:  # imported when a command first uses them (cli/common.py on_use)
    cohort_store = on_use("strongroom.cohort.store")
    backups = on_use("strongroom.operations.backup")  # `backup` is a command


def backup(
    out: Annotated[Path, typer.Argument(help="The backup file to write (outside the store).")],
    operator: OperatorName = None,
    reason: Reason = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Write an encrypted backup of the store (safe while the server runs)."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        by = named_or_signed_in(platform, operator, reason, "backup")
        made = backups.backup(platform.store, out, by=by, sign=platform.audit.checkpoint)
    console.print(f"wrote {made.path} ({made.bytes:,} bytes: {made.files} files, {made.rows:,} "
                  f"database rows; audit log at {made.audit_size} entries) in "
                  f"{made.seconds:.1f} s", markup=False)
    console.print("it holds no master key: keep the master key apart from it", markup=False)


def restore(
    archive: Annotated[Path, typer.Argument(help="The backup file.")],
    into: Annotated[Path, typer.Argument(help="A new or empty data directory.")],
    operator: OperatorName = None,
    reason: Reason = None,
    key_file: KeyFile = None,
    key_source: Annotated[str | None, typer.Option(
        "--key-source", help="The master key if not a file: env, or a pkcs11: URI. Default: "
        "where the backup's keyring says it is.")] = None,
    database_url: Annotated[str | None, typer.Option(
        help="An empty database to restore into (default: SQLite in the directory).")] = None,
) -> None:
    """Restore a backup into a new directory; its audit log verifies with the same root."""
    with refusals():
        by = named(operator, reason, "restore")
        master = _master(archive, key_file, key_source)
        done = backups.restore(archive, into, master, database_url, by=by)
        with open_platform(into, key_file):
            pass  # its audit writer moves the restore's event (in the outbox) into the log
    console.print(f"restored {done.files} files and {done.rows:,} database rows into "
                  f"{done.root} in {done.seconds:.1f} s; check it with `strongroom audit verify "
                  f"-d {done.root}` and `strongroom store scrub -d {done.root} --operator NAME "
                  f"--reason TEXT`", markup=False)


def _master(archive: Path, key_file: Path | None, key_source: str | None) -> KeySource:
    if key_file is not None:
        return cohort_store.source_for(key_file)
    if key_source is not None:
        return open_source(KeySpec.parse(key_source))
    env = MasterKey.from_env()
    if env is not None:
        return RawKeySource(env, KeySpec("env"))
    ring = backups.read_keyring(archive)
    if ring is None:
        raise ValueError("this backup's store predates keyrings: give its key file with "
                         "--key-file")
    return open_source(ring.master)
