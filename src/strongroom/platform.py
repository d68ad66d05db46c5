"""One open Strongroom: the store, the audit log, access, the enclave and outputs, composed.

The server and the CLI both start here, so they run the same services on the same state.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from strongroom.access.context import AccessContext, Settings, utcnow
from strongroom.audit import AuditLog
from strongroom.audit.events import EventType
from strongroom.audit.keys import key_id, salt_key_from_secret, signing_key_from_secret
from strongroom.audit.tables import CHECKPOINTS, ENTRIES
from strongroom.cohort.keyring import KEYRING
from strongroom.cohort.store import Store, StoreError
from strongroom.enclave.engines import engine_from
from strongroom.enclave.workspace import Enclave
from strongroom.extracts import models as _extract_tables  # noqa: F401  (every room's tables)
from strongroom.genomics.store import Genotypes
from strongroom.jobs import settings as jobs_settings
from strongroom.jobs.sandbox import Limits as JobLimits
from strongroom.jobs.service import Jobs
from strongroom.outputs.rations import Rations
from strongroom.outputs.runs import Runs
from strongroom.outputs.service import Outputs
from strongroom.privacy.service import Privacy
from strongroom.watch import appeals  # noqa: F401  (every room's tables)
from strongroom.watch.delivery import Delivery
from strongroom.watch.service import Watch

WITNESS = Path("audit") / "checkpoints.jsonl"


def open_audit(store: Store, *, checkpoint_every: int = 1000,
               checkpoint_seconds: float = 10.0) -> AuditLog:
    """The store's audit log; its writer first drains events changes left in the outbox
    (an ingest's, a crash's), so closing it at once leaves them in the signed log."""
    signing_key = signing_key_from_secret(store.key.secret)
    require_keys_in_step(store, signing_key.public_key())  # before anything is written
    witness = store.root / WITNESS
    witness.parent.mkdir(exist_ok=True, mode=0o700)
    return AuditLog(store.engine, signing_key=signing_key,
                    salt_key=salt_key_from_secret(store.key.secret), witness=witness,
                    checkpoint_every=checkpoint_every, checkpoint_seconds=checkpoint_seconds)


class Platform:
    """Open with :meth:`open`; use as a context manager so the audit tail gets signed."""

    def __init__(self, store: Store, *, settings: Settings | None = None,
                 clock: Callable[[], dt.datetime] = utcnow,
                 checkpoint_every: int = 1000, checkpoint_seconds: float = 10.0,
                 job_limits: JobLimits | None = None):
        self.store = store
        self._eids: tuple[str, np.ndarray] | None = None  # (version, its eids)
        self.audit = open_audit(store, checkpoint_every=checkpoint_every,
                                checkpoint_seconds=checkpoint_seconds)
        self.access = AccessContext(
            engine=store.engine, key=store.key, audit=self.audit,
            dictionary=store.dictionary, root=store.root,
            settings=settings or Settings(),
            clock=clock,
            cohort_eids=self._cohort_eids,
        )
        # where checked SQL runs: DuckDB here, or the Spark cluster strongroom.yaml names;
        # the cluster's Parquet keys derive from the store key and never leave this process
        self.enclave = Enclave(self.access, store,
                               engine=engine_from(store.config.engine, store.key.secret))
        self.genotypes = Genotypes(store)
        self.delivery = Delivery.open(  # refuses a bad watch.yaml, naming every problem
            store.root, store.engine, clock=clock,
            record=lambda kind, subject, details: self.access.record(kind, "watch", subject,
                                                                     details))
        self.watch = Watch(self.access, cohort_size=self._cohort_size,
                           deliver=self.delivery.deliver)
        # the transfer limits are held inside the services that read data (the gate), and
        # DP mode refuses exact analyses there too, whoever calls them
        # each person's ration of answers, spent by the outputs and the DP queries alike
        self.rations = Rations(self.access)
        self.privacy = Privacy(self.enclave, gate=self.watch, rations=self.rations)
        self.outputs = Outputs(self.enclave, gate=self.watch,
                               exact_guard=self.privacy.refuse_exact, rations=self.rations,
                               genotypes=self.genotypes)
        # researchers' own code: planned outputs go through the outputs above, nothing else
        self.jobs = Jobs(self.enclave, self.outputs, self.watch,
                         limits=job_limits or jobs_settings.job_limits(store.config.jobs))
        # analyses submitted to run in the background and polled, through the outputs above
        self.runs = Runs(self.outputs, self.watch)

    @classmethod
    def open(cls, root: Path, key_file: Path | None = None, *,
             settings: Settings | None = None, clock: Callable[[], dt.datetime] = utcnow,
             checkpoint_every: int = 1000, checkpoint_seconds: float = 10.0) -> Platform:
        store = Store.open(root, key_file)
        try:
            return cls(store, settings=settings, clock=clock,
                       checkpoint_every=checkpoint_every,
                       checkpoint_seconds=checkpoint_seconds)
        except BaseException:
            store.close()
            raise

    @property
    def witness(self) -> Path:
        return self.store.root / WITNESS

    def _cohort_eids(self) -> np.ndarray:
        """The current cohort's participants (empty before the first ingest); read once per
        version (a version's files never change), not decrypted again for every project."""
        version = self.store.current()
        if version is None:
            return np.empty(0, dtype=np.int64)
        held = self._eids
        if held is None or held[0] != version.id:
            eids = self.store.eids(version.id)  # the one column, a chunk at a time
            eids.flags.writeable = False  # shared by every caller
            held = self._eids = (version.id, eids)
        return held[1]

    def _cohort_size(self) -> int:
        version = self.store.current()
        return 0 if version is None else version.participants

    def close(self) -> None:
        self.runs.close()
        self.jobs.close()
        self.enclave.engine.close()
        self.delivery.close()
        self.audit.close()
        self.store.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def require_keys_in_step(store: Store, public: Ed25519PublicKey) -> None:
    """The store key and the master key are the ones the tamper-evident log knows: the latest
    checkpoint was signed with the key the store key derives, and the keyring is sealed under
    the master key the last rotation named. A keyring.json (or strongroom.yaml) replaced by
    someone without the master key, or rolled back to a retired master key, is refused here
    before anything is written under it."""
    with store.engine.connect() as con:
        signed_by = con.execute(select(CHECKPOINTS.c.key_id)
                                .order_by(CHECKPOINTS.c.tree_size.desc()).limit(1)).scalar()
        rotations = [json.loads(payload)["details"] for payload in con.execute(
            select(ENTRIES.c.payload).where(ENTRIES.c.type == EventType.STORE_KEY_ROTATED.value)
            .order_by(ENTRIES.c.seq.desc()).limit(1)).scalars()]
    if signed_by is not None and signed_by != key_id(public):
        raise StoreError(
            f"the store key in {store.root / KEYRING} does not derive the key that signed the "
            f"audit log: keyring.json or strongroom.yaml was replaced. Nothing was changed; "
            f"restore them from a backup (the master key alone cannot open another store key)")
    if not rotations:
        return
    last = rotations[0]
    allowed = {last["to"]["key_id"]} | ({last["from"]["key_id"]}
                                       if last.get("phase") == "begun" else set())
    named = store.keyring.master_key_id if store.keyring is not None else None
    if named not in allowed:
        raise StoreError(
            f"{store.root / KEYRING} names master key {named}, but the audit log's last key "
            f"rotation sealed the store key under {last['to']['key_id']}: the keyring was "
            f"rolled back to a retired master key, or removed. Nothing was changed; restore "
            f"keyring.json from the newest backup")
