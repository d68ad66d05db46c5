"""Genotypes in the encrypted store: sealed chunks beside the cohort, one current set.

Layout, inside the data directory::

    genotypes/<set id>/samples.parquet.enc     the set's sample order, as store eids
    genotypes/<set id>/variants.parquet.enc    its variant table (chrom, pos, id, ref, alt), with
                                               every sample's ALT frequency, call count and
                                               imputation quality (MACH r²)
    genotypes/<set id>/chunk-000000.enc …      dosages by slices of variants (encoding.py)
    genotypes/<set id>/manifest.json.enc       the set's record, for recovery

Every file is sealed under the store key with the cohort's envelope encryption, bound to the
store, the set and the file's name, so chunks cannot be swapped, reordered or truncated
unnoticed. An ingest streams: it reads a slice of variants from the custodian's file, packs and
seals it, and writes it to a staging folder; the folder is renamed into place and the set made
current in one database transaction with its audit event, so a failure at any point leaves the
set held before current and intact. No genotype is ever written in the clear.

Samples must be participants of the current cohort (an unknown sample is refused: the enclave
could not tie it to anyone's grants, pseudonyms or withdrawal). A variant held before under the
same ID with other alleles is refused too: a silent swap would flip every effect's sign.
Nothing is deleted but this module's own staging folders and sets the database retired.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq
from sqlalchemy import JSON, Boolean, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from strongroom.audit import events
from strongroom.audit.operators import Operator
from strongroom.cohort.crypto import decrypt, encrypt
from strongroom.cohort.model import EID
from strongroom.cohort.store import STAGING_PREFIX, Store, StoreError, atomic_write, fsync_dir
from strongroom.db import Base, UTCDateTime
from strongroom.genomics import encoding
from strongroom.genomics.formats import GenotypeFile, GenotypeFileError
from strongroom.progress import Progress

GENOTYPES_DIR = "genotypes"
SAMPLES, VARIANTS, MANIFEST = "samples", "variants", "manifest"
CHUNK_BYTES = 8 * 1024 * 1024  # packed bytes a chunk aims at: 67 variants of 500,000 people
KEEP_SETS = 2  # the current set and the one before it
_SHOWN = 5


class GenotypeSet(Base):
    """One ingested genotype set. Counts and digests only: never a genotype."""

    __tablename__ = "genotype_sets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    current: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    samples: Mapped[int] = mapped_column(Integer)
    variants: Mapped[int] = mapped_column(Integer)
    # [{name, first, count, bytes, sha256}] in variant order
    chunks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    source: Mapped[dict[str, Any]] = mapped_column(JSON)  # kind, files [{name, sha256, bytes}]
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Genotypes:
    """The genotype sets of one open store."""

    def __init__(self, store: Store):
        self.store = store
        self.root = store.root / GENOTYPES_DIR

    # -- reading --------------------------------------------------------------------------

    def current(self) -> GenotypeSet | None:
        with Session(self.store.engine, expire_on_commit=False) as session:
            return session.scalar(select(GenotypeSet).where(GenotypeSet.current))

    def require_current(self) -> GenotypeSet:
        found = self.current()
        if found is None:
            raise StoreError("the store holds no genotypes; a custodian adds them with "
                             "`strongroom genotypes ingest FILE --operator NAME "
                             "--reason TEXT`")
        return found

    def samples(self, held: GenotypeSet) -> npt.NDArray[np.int64]:
        """The set's samples as store eids, in the set's order."""
        return self._table(held, SAMPLES)[EID].to_numpy()

    def variants(self, held: GenotypeSet) -> pl.DataFrame:
        return self._table(held, VARIANTS)

    def chunks(self, held: GenotypeSet, rows: npt.NDArray[np.intp] | None = None,
               ) -> Iterator[tuple[int, encoding.Dosages]]:
        """``(first variant, dosages)`` chunk by chunk, decrypted in memory only; the samples
        at ``rows`` of the set's order if given (say, a project's analysed group)."""
        for first, plain in self.packed(held):
            yield first, encoding.decode(plain, rows)

    def packed(self, held: GenotypeSet) -> Iterator[tuple[int, bytes]]:
        """``(first variant, the chunk's packed bytes)`` (encoding.py), decrypted in memory
        only: what a cluster engine republishes under its own keys."""
        where = self.root / held.id
        for chunk in held.chunks:
            blob = (where / chunk["name"]).read_bytes()
            yield int(chunk["first"]), decrypt(blob, self.store.key,
                                               self._context(held.id, chunk["name"]))

    def _table(self, held: GenotypeSet, name: str) -> pl.DataFrame:
        blob = (self.root / held.id / f"{name}.parquet.enc").read_bytes()
        plain = decrypt(blob, self.store.key, self._context(held.id, name))
        frame = pl.from_arrow(pq.read_table(io.BytesIO(plain)))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _context(self, set_id: str, name: str) -> str:
        return f"strongroom/{self.store.config.store_id}/genotypes/{set_id}/{name}"

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, source: GenotypeFile, progress: Progress | None = None,
               by: Operator | None = None) -> GenotypeSet:
        """Seal ``source`` into the store as the new current genotype set, atomically.

        Refused before anything is written if a sample is not a participant of the current
        cohort or a variant contradicts the alleles held before."""
        with self.store.lock():
            eids = self._check_samples(source)
            self._check_alleles(source.variants)
            return self._write(source, eids, progress, by)

    def _check_samples(self, source: GenotypeFile) -> npt.NDArray[np.int64]:
        cohort = self.store.current()
        if cohort is None:
            raise StoreError("genotypes belong to participants: ingest the cohort first "
                             "(`strongroom cohort ingest FILE… --operator NAME --reason "
                             "TEXT`); nothing was changed")
        ids = pl.Series(source.samples, dtype=pl.String)
        eids = ids.cast(pl.Int64, strict=False)
        # only an eid's own spelling: "07" or "+7" is another sample that would alias eid 7
        not_numbers = ids.filter(eids.is_null() | (eids.cast(pl.String) != ids))
        if not_numbers.len():
            raise GenotypeFileError(
                f"{source.path.name}: {not_numbers.len()} sample IDs are not participant IDs "
                f"(whole numbers, written without signs or leading zeros), first: "
                f"{', '.join(not_numbers.head(_SHOWN).to_list())}; map "
                "the samples to the cohort's eids before ingest. Nothing was changed.")
        held = pl.Series(self.store.eids())  # the one column, a chunk at a time
        unknown = eids.filter(~eids.is_in(held.implode()))
        if unknown.len():
            raise GenotypeFileError(
                f"{source.path.name}: {unknown.len():,} of {eids.len():,} samples are not "
                f"participants of the current cohort (first: "
                f"{', '.join(map(str, unknown.head(_SHOWN).to_list()))}); remove them "
                "(plink2 --keep) or ingest the cohort that holds them. Nothing was changed.")
        return eids.to_numpy()

    def _check_alleles(self, variants: pl.DataFrame) -> None:
        before = self.current()
        if before is None:
            return
        held = self.variants(before).select("id", held_ref="ref", held_alt="alt")
        clash = variants.join(held, on="id").filter(
            (pl.col("ref") != pl.col("held_ref")) | (pl.col("alt") != pl.col("held_alt")))
        if clash.height:
            first = ", ".join(f"{r['id']} {r['ref']}/{r['alt']} (held {r['held_ref']}/"
                              f"{r['held_alt']})" for r in clash.head(_SHOWN).iter_rows(named=True))
            raise GenotypeFileError(
                f"{clash.height:,} variants have other alleles than the genotypes held (first: "
                f"{first}): align them to the held REF/ALT (plink2 --ref-allele / --alt1-allele) "
                "so effects keep their direction. Nothing was changed.")

    def _write(self, source: GenotypeFile, eids: npt.NDArray[np.int64],
               progress: Progress | None, by: Operator | None) -> GenotypeSet:
        set_id = str(uuid.uuid4())
        self.root.mkdir(mode=0o700, exist_ok=True)
        self._remove_staging()
        staging = self.root / f"{STAGING_PREFIX}{set_id}"
        final = self.root / set_id
        staging.mkdir(mode=0o700)
        per_chunk = max(1, CHUNK_BYTES // max(1, -(-source.n_samples // 4)))
        alt_sum = np.zeros(source.n_variants, dtype=np.float64)
        alt_sq = np.zeros(source.n_variants, dtype=np.float64)
        called = np.zeros(source.n_variants, dtype=np.int64)
        imputed = np.zeros(source.n_variants, dtype=np.bool_)
        try:
            self._seal_table(staging, set_id, SAMPLES, pl.DataFrame({EID: eids}))
            chunks = []
            done = 0
            # packed where the file is read (isolated.py: a child process), sealed here
            for k, part in enumerate(source.packed(per_chunk)):
                span = slice(part.first, part.first + part.count)
                alt_sum[span], alt_sq[span] = part.alt_sum, part.alt_sq
                called[span], imputed[span] = part.called, part.imputed
                name = f"chunk-{k:06d}.enc"
                sealed = encrypt(part.chunk, self.store.key, self._context(set_id, name))
                atomic_write(staging / name, sealed)
                chunks.append({"name": name, "first": part.first, "count": part.count,
                               "bytes": len(sealed),
                               "sha256": hashlib.sha256(sealed).hexdigest()})
                if progress is not None:
                    step = (100 * (part.first + part.count)) // source.n_variants - done
                    done += step
                    progress("genotypes", step)
            # every sample's ALT frequency: the reference the membership rule measures a
            # released group against (genomics/membership.py)
            freq = np.divide(alt_sum, 2 * called, out=np.full_like(alt_sum, np.nan),
                             where=called > 0)
            self._seal_table(staging, set_id, VARIANTS, source.variants.with_columns(
                pl.Series("alt_freq", freq), pl.Series("called", called),
                pl.Series("info", mach_r2(alt_sum, alt_sq, called, freq, imputed))))
            record = GenotypeSet(
                id=set_id, created_at=dt.datetime.now(dt.UTC), current=True,
                samples=source.n_samples, variants=source.n_variants, chunks=chunks,
                source={"kind": source.kind, "files": [_describe(p) for p in source.files()]})
            manifest = json.dumps(_manifest(record)).encode()
            atomic_write(staging / f"{MANIFEST}.json.enc",
                          encrypt(manifest, self.store.key, self._context(set_id, MANIFEST)))
            fsync_dir(staging)
            os.rename(staging, final)
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with Session(self.store.engine, expire_on_commit=False) as session, session.begin():
            session.execute(update(GenotypeSet).values(current=False))
            session.add(record)
            session.flush()
            retired = self._retire_old(session)
            self.store.audit(session, events.EventType.GENOTYPES_INGESTED,
                             by.actor if by else "operator", set_id, {
                **(by.details() if by else {}),
                "samples": record.samples, "variants": record.variants,
                "chunks": len(chunks), "kind": source.kind,
                "sources": [{k: v for k, v in f.items() if k in ("name", "sha256", "bytes")}
                            for f in record.source["files"]],
                "retired": list(retired)})
        for gone in retired:
            shutil.rmtree(self.root / gone, ignore_errors=True)
        return record

    def _seal_table(self, where: Path, set_id: str, name: str, frame: pl.DataFrame) -> None:
        buffer = io.BytesIO()
        pq.write_table(frame.to_arrow(), buffer, compression="zstd")
        atomic_write(where / f"{name}.parquet.enc",
                      encrypt(buffer.getvalue(), self.store.key, self._context(set_id, name)))

    def _retire_old(self, session: Session) -> list[str]:
        kept = session.scalars(select(GenotypeSet).where(GenotypeSet.retired_at.is_(None))
                               .order_by(GenotypeSet.created_at.desc())).all()
        old = [s.id for s in kept[KEEP_SETS:] if not s.current]
        if old:
            session.execute(update(GenotypeSet).where(GenotypeSet.id.in_(old))
                            .values(retired_at=dt.datetime.now(dt.UTC)))
        return old

    def _remove_staging(self) -> None:
        """Only this module's unfinished writes (``.staging-*``): called with the lock held."""
        for leftover in self.root.glob(f"{STAGING_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)


def mach_r2(alt_sum: npt.NDArray[np.float64], alt_sq: npt.NDArray[np.float64],
          called: npt.NDArray[np.int64], freq: npt.NDArray[np.float64],
          imputed: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Imputation quality per variant: the MACH r² (the dosages' variance over what it would
    be with certain calls, 2p(1−p)), capped at 1; a variant of hard calls only is 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = alt_sq / called - np.square(alt_sum / called)
        r2 = np.minimum(1.0, variance / (2 * freq * (1 - freq)))
    r2 = np.where(np.isfinite(r2), r2, 0.0)  # monomorphic or never called: no information
    return np.where(imputed, r2, 1.0)


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def _manifest(record: GenotypeSet) -> dict[str, Any]:
    return {"id": record.id, "created_at": record.created_at.isoformat(),
            "samples": record.samples, "variants": record.variants, "chunks": record.chunks,
            "source": record.source}
