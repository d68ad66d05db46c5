"""`strongroom keys …`: where the master key is, and rotating it."""

from __future__ import annotations

import os
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
from strongroom.cli.operators import OperatorName, Reason, named_or_signed_in
from strongroom.cohort.keysources import KeySpec, create_source, open_source

if TYPE_CHECKING:
    from strongroom.cohort import store as cohort_store
else:  # imported when a command first uses it (cli/common.py on_use)
    cohort_store = on_use("strongroom.cohort.store")  # `store`: a local name below

keys_app = typer.Typer(help="The master key: where it is, and rotating it.",
                       no_args_is_help=True)


@keys_app.command("show")
def keys_show(data_dir: DataDir = DEFAULT_DATA_DIR, key_file: KeyFile = None) -> None:
    """Which master key opens the store (never the key itself)."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        store = platform.store
        ring = store.keyring
    console.print(f"store key id {store.config.key_id}", markup=False)
    if ring is None:
        console.print("no keyring (a store made before keyrings): the key file is the store "
                      "key itself; `strongroom keys rotate --to file:PATH --create "
                      "--reason TEXT` gives it a keyring", markup=False)
        return
    console.print(f"master key: {ring.master.describe()} (id {ring.master_key_id}), sealed "
                  f"{ring.sealed_at:%Y-%m-%d %H:%M} UTC", markup=False)


@keys_app.command("rotate")
def keys_rotate(
    to: Annotated[str, typer.Option(
        "--to", help="The new master key: file:PATH, env, or pkcs11:token=…;object=…"
        "?module-path=…")],
    create: Annotated[bool, typer.Option(
        "--create", help="Make the new key (a new key file, or a key in the token).")] = False,
    operator: OperatorName = None,
    reason: Reason = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Seal the store key under a new master key; no data is re-encrypted."""
    with refusals(), open_platform(data_dir, key_file) as platform:
        by = named_or_signed_in(platform, operator, reason, "keys rotate")
        spec = KeySpec.parse(to)
        store = platform.store
        if spec.kind == "file" and Path(str(spec.path)).is_relative_to(store.root):
            raise ValueError(f"the master key file must live outside the data directory, not "
                             f"at {spec.path}; nothing was changed")
        new = create_source(spec) if create else open_source(spec)
        old = store.master
        if new.key_id == old.key_id:
            raise ValueError("the new master key is the one in use; give another")
        details = {"from": {"key_id": old.key_id, "kind": old.spec.kind},
                   "to": {"key_id": new.key_id, "kind": new.spec.kind},
                   "had_keyring": store.keyring is not None, **by.details()}
        platform.access.record(EventType.STORE_KEY_ROTATED, by.actor, store.config.store_id,
                               {**details, "phase": "begun"})
        store.rotate_master(new)
        platform.access.record(EventType.STORE_KEY_ROTATED, by.actor, store.config.store_id,
                               {**details, "phase": "done"})
    console.print(f"the store key is now sealed under {spec.describe()} (id {new.key_id})",
                  markup=False)
    if not details["had_keyring"]:
        console.print("this store was made before keyrings: the old key file is its store "
                      "key. Keep it as secret as before, or destroy every copy.", markup=False)
    else:
        console.print(f"the old master key (id {old.key_id}) opens the backups made before "
                      "now, and with any of them the store key, so the store too: keep it as "
                      "secret as they are, or destroy it with them. Rotation retires a key; "
                      "it does not undo an exposure (see docs/how-to/operate.md).",
                      markup=False)
    env_key_file = cohort_store.ENV_KEY_FILE
    if os.environ.get(env_key_file):  # it names the old key: a service setting it won't start
        errors.print(f"warning: {env_key_file} is set here ({os.environ[env_key_file]}) and "
                     f"names a key file over the keyring: a service or script that sets it "
                     f"must drop it (the keyring names the new key) or it will not open the "
                     f"store. See docs/how-to/operate.md (Install it as a service).",
                     markup=False)
