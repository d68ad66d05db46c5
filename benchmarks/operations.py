"""Operating a store at UK Biobank's scale: backup, restore, scrub and key rotation.

    python benchmarks/operations.py [--participants 500000] [--audit 100000]

A fresh store with the synthetic cohort (ingested as a custodian would), a custodian, and an
audit history of ``--audit`` entries. Measured, each as the command runs it:

- ``backup`` while the platform is open (the database as one snapshot, every file);
  anchor: a plain copy of the data directory (``shutil.copytree``), the floor of any backup;
- ``restore`` into an empty directory on SQLite, and onto an empty PostgreSQL schema;
  then ``audit verify`` of the restored log (same root) and a read of the whole cohort;
- ``store scrub`` (every sealed byte: digest and authentication);
- master-key rotation (median of 5); anchor: what rotation avoids, re-encrypting every sealed
  file of the cohort under new keys.
"""

from __future__ import annotations

import argparse
import os
import platform as host
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from strongroom.access.bootstrap import bootstrap
from strongroom.audit.events import AuditEvent, EventType
from strongroom.audit.operators import Operator
from strongroom.audit.verify import verify
from strongroom.cohort import recovery
from strongroom.cohort.crypto import decrypt, encrypt
from strongroom.cohort.ingest import ingest
from strongroom.cohort.keysources import KeySpec, create_source
from strongroom.cohort.modeldir import write_cohort_dir
from strongroom.cohort.store import COHORT_DIR, context, init_store, source_for
from strongroom.cohort.synth import synthesise
from strongroom.operations.backup import backup, restore
from strongroom.platform import Platform

BY = Operator("benchmarks/operations.py", "measuring backup and restore")
POSTGRES = os.environ.get("STRONGROOM_TEST_DATABASE_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--audit", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strongroom-ops-") as tmp:
        run(Path(tmp), args.participants, args.audit)


def run(tmp: Path, participants: int, audit: int) -> None:
    key = tmp / "keys" / "master.key"
    root = tmp / "data"
    cohort = synthesise(participants, 2026)
    with init_store(root, key_file=key) as store:
        write_cohort_dir(cohort, tmp / "handover", {"seed": 2026})
        del cohort
        _, ingest_s = timed(lambda: ingest(store, [tmp / "handover"]))
    shutil.rmtree(tmp / "handover")
    rows: list[tuple[str, str, str]] = []
    with Platform.open(root, key) as platform:
        bootstrap(platform.access, institution="Custodian", country="GB",
                  jurisdiction="UK GDPR", networks=["10.0.0.0/8"], email="a@example.org",
                  name="Admin")
        batch = [AuditEvent(EventType.AUDIT_VERIFIED, "operator", None, {"n": n})
                 for n in range(audit)]
        platform.audit.append_many(batch)
        made, backup_s = timed(lambda: backup(platform.store, tmp / "b.srbk", by=BY,
                                              sign=platform.audit.checkpoint))
        sealed_files = sorted((root / COHORT_DIR).rglob("*.enc"))
        store_key, config = platform.store.key, platform.store.config
    stored = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    _, copy_s = timed(lambda: shutil.copytree(root, tmp / "plain-copy"))
    shutil.rmtree(tmp / "plain-copy")
    rows.append(("backup (database snapshot + every file, encrypted)",
                 f"{backup_s:.1f} s ({made.bytes / 2**20:.0f} MiB, {made.rows:,} rows)",
                 f"{backup_s / copy_s:.1f}× a plain copy ({copy_s:.1f} s)"))

    done, restore_s = timed(lambda: restore(tmp / "b.srbk", tmp / "r-sqlite", source_for(key),
                                                by=BY))
    rows.append(("restore onto SQLite", f"{restore_s:.1f} s ({done.rows:,} rows)",
                 f"{restore_s / copy_s:.1f}× a plain copy"))
    with Platform.open(tmp / "r-sqlite", key) as restored:
        report, verify_s = timed(lambda: verify(restored.store.engine,
                                                public_key=restored.audit.public_key,
                                                witness=restored.witness))
        assert report.ok and done.audit_root == made.audit_root
        _, read_s = timed(lambda: restored.store.load())
    rows.append(("audit verify of the restored log (same root)",
                 f"{verify_s:.1f} s ({report.entries:,} entries)", "—"))
    rows.append(("read the restored cohort", f"{read_s:.1f} s", "—"))

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as con:
        con.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
        pg, pg_s = timed(lambda: restore(tmp / "b.srbk", tmp / "r-pg", source_for(key), url,
                                             by=BY))
        rows.append(("restore onto PostgreSQL", f"{pg_s:.1f} s ({pg.rows:,} rows)",
                     f"{pg_s / copy_s:.1f}× a plain copy"))
    finally:
        with admin.begin() as con:
            con.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    with Platform.open(root, key) as platform:
        scrub, scrub_s = timed(lambda: recovery.scrub(platform.store))
        assert scrub.ok
        rows.append(("store scrub (every sealed byte)",
                     f"{scrub_s:.1f} s ({scrub.bytes / 2**20:.0f} MiB)", "—"))
        rotations = []
        for n in range(5):
            source = create_source(KeySpec.parse(f"file:{tmp / 'keys' / f'next-{n}.key'}"))
            started = time.perf_counter()
            platform.store.rotate_master(source)
            rotations.append(time.perf_counter() - started)

    def reseal() -> None:  # what rotating by re-encryption would cost
        for p in sealed_files:
            if p.name.endswith(".parquet.enc"):
                where = context(config, p.parent.name, p.name.removesuffix(".parquet.enc"))
                encrypt(decrypt(p.read_bytes(), store_key, where), store_key, where)

    _, reseal_s = timed(reseal)
    rotate_ms = statistics.median(rotations) * 1000
    rows.append(("master-key rotation (median of 5)", f"{rotate_ms:.1f} ms",
                 f"{rotate_ms / 1000 / reseal_s:.4f}× re-encrypting the cohort "
                 f"({reseal_s:.1f} s)"))

    print("## Operations: backup, restore, scrub and key rotation (issue [operations])\n")
    print(f"`python benchmarks/operations.py --participants {participants:,} --audit {audit:,}`"
          .replace(",", ""))
    print(f"\n{participants:,} participants (ingest {ingest_s:.1f} s), data directory "
          f"{stored / 2**20:.0f} MiB, audit log {audit:,} entries. {os.cpu_count()} cores, "
          f"{host.machine()}, Python {host.python_version()}.\n")
    print("| what | figure | anchor (same run) |\n|---|---|---|")
    for what, figure, anchor in rows:
        print(f"| {what} | {figure} | {anchor} |")


if __name__ == "__main__":
    main()
