"""Genotypes into the encrypted store: each format round-trips, bad files change nothing, and no
genotype byte is at rest in the clear."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from strongroom.audit.outbox import OUTBOX
from strongroom.cohort.ingest import ingest
from strongroom.cohort.modeldir import write_cohort_dir
from strongroom.cohort.store import Store, StoreError
from strongroom.cohort.synth import synthesise
from strongroom.genomics import encoding
from strongroom.genomics import store as genotype_store
from strongroom.genomics.formats import GenotypeFileError, open_genotypes
from strongroom.genomics.store import Genotypes
from tests.genotype_files import convert, genotypes, write_bed
from tests.leaks import everything_stored

N_COHORT, N, M = 400, 300, 57


@pytest.fixture
def held(store: Store, tmp_path: Path) -> tuple[Store, list[str]]:
    """A store holding a small synthetic cohort; the eids of its first N participants."""
    cohort = synthesise(N_COHORT, seed=5)
    write_cohort_dir(cohort, tmp_path / "cohort")
    ingest(store, [tmp_path / "cohort"])
    return store, [str(e) for e in cohort.participants["eid"].to_list()[:N]]


@pytest.fixture(scope="module")
def calls() -> np.ndarray:
    return genotypes(N, M, seed=1)


def _read_all(gt: Genotypes, rows: np.ndarray | None = None) -> np.ndarray:
    held = gt.require_current()
    return np.concatenate([d for _, d in gt.chunks(held, rows)], axis=1)


@pytest.mark.parametrize("kind", ["bed", "pgen", "bgen"])
def test_each_format_round_trips_through_the_sealed_store(
        held: tuple[Store, list[str]], calls: np.ndarray, tmp_path: Path, kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, eids = held
    bed = write_bed(tmp_path / "gt" / "array", calls, eids)
    path = bed if kind == "bed" else convert(bed, kind)
    monkeypatch.setattr(genotype_store, "CHUNK_BYTES", 10 * (N // 4 + 1))  # several chunks
    gt = Genotypes(store)
    with open_genotypes(path) as source:
        record = gt.ingest(source)
        expected_variants = source.variants
    assert (record.samples, record.variants) == (N, M)
    assert len(record.chunks) == 6
    assert gt.samples(record).tolist() == [int(e) for e in eids]
    held_variants = gt.variants(record)
    assert held_variants.select(expected_variants.columns).equals(expected_variants)
    called = (~np.isnan(calls)).sum(axis=0)
    assert held_variants["called"].to_list() == called.tolist()
    assert np.allclose(held_variants["alt_freq"].to_numpy(),
                       np.nansum(calls, axis=0) / (2 * called))
    assert held_variants["info"].to_list() == [1.0] * M  # hard calls: nothing imputed
    back = _read_all(gt)
    assert np.array_equal(np.isnan(back), np.isnan(calls))
    assert np.array_equal(np.nan_to_num(back, nan=-1), np.nan_to_num(calls, nan=-1))
    rows = np.array([0, 3, 4, 5, 101, N - 1])
    assert np.array_equal(_read_all(gt, rows), back[rows], equal_nan=True)


def test_imputed_dosages_keep_their_precision() -> None:
    rng = np.random.default_rng(3)
    dosages = rng.uniform(0, 2, (37, 11)).astype(np.float32)
    dosages[5, 2] = np.nan
    back = encoding.decode(encoding.encode(dosages))
    assert np.nanmax(np.abs(back - dosages)) < 2e-5
    assert np.isnan(back[5, 2]) and np.isnan(back).sum() == 1


def test_no_genotype_is_at_rest_in_the_clear(held: tuple[Store, list[str]], calls: np.ndarray,
                                              tmp_path: Path) -> None:
    store, eids = held
    bed = write_bed(tmp_path / "gt" / "array", calls, eids)
    with open_genotypes(bed) as source:
        Genotypes(store).ingest(source)
    blob = everything_stored(store)
    raw = bed.read_bytes()[3:]
    per = -(-N // 4)
    runs = [raw[j * per:(j + 1) * per] for j in range(M)]  # each variant's packed calls
    packed = encoding.encode(calls)
    assert not [j for j, run in enumerate(runs) if run in blob]
    assert packed[:64] not in blob and encoding.MAGIC not in blob and b"PAR1" not in blob
    assert b"rs1000" not in blob  # variant names are sealed too


def _unchanged(store: Store) -> tuple[object, ...]:
    gt = Genotypes(store)
    current = gt.current()
    on_disk = sorted(p.name for p in gt.root.iterdir()) if gt.root.exists() else []
    with store.engine.connect() as con:
        waiting = con.execute(select(func.count()).select_from(OUTBOX)).scalar_one()
    return (current.id if current else None, on_disk, waiting)


def _bad(kind: str, stem: Path, calls: np.ndarray, eids: list[str]) -> Path:
    bed = write_bed(stem, calls, eids)
    if kind == "wrong sample count":
        with open(bed.with_suffix(".fam"), "a") as fh:
            fh.write(f"{eids[0]}x {eids[0]}x 0 0 0 -9\n")
    elif kind == "truncated":
        data = bed.read_bytes()
        bed.write_bytes(data[:-7])
    elif kind == "unknown samples":
        ids = [*eids[:-2], "9999991", "9999992"]
        bed = write_bed(stem, calls, ids)
    elif kind == "not participant ids":
        bed = write_bed(stem, calls, [f"S{i}" for i in range(N)])
    elif kind == "impossible alleles":
        bim = bed.with_suffix(".bim")
        lines = bim.read_text().splitlines()
        parts = lines[4].split("\t")
        parts[4] = parts[5]
        lines[4] = "\t".join(parts)
        bim.write_text("\n".join(lines) + "\n")
    elif kind == "duplicate variant ids":
        bim = bed.with_suffix(".bim")
        bim.write_text(bim.read_text().replace("rs1001\t", "rs1000\t"))
    elif kind == "truncated pgen":
        pgen = convert(bed, "pgen")
        pgen.write_bytes(pgen.read_bytes()[:-40])
        return pgen
    elif kind == "bgen without samples":
        out = convert(bed, "bgen")
        out.with_suffix(".sample").unlink()
        return out
    return bed


BAD = {
    "wrong sample count": "samples",
    "truncated": "truncated",
    "unknown samples": "not participants of the current cohort",
    "not participant ids": "not participant IDs",
    "impossible alleles": "alleles that are not two different",
    "duplicate variant ids": "appear more than once",
    "truncated pgen": "pgen",
    "bgen without samples": "sample",
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_genotype_file_is_refused_naming_the_problem_and_changes_nothing(
        held: tuple[Store, list[str]], calls: np.ndarray, tmp_path: Path, kind: str) -> None:
    store, eids = held
    gt = Genotypes(store)
    with open_genotypes(write_bed(tmp_path / "first" / "ok", calls, eids)) as first:
        gt.ingest(first)
    before = _unchanged(store)
    path = _bad(kind, tmp_path / "bad" / "array", calls, eids)
    with pytest.raises(GenotypeFileError, match=BAD[kind]), open_genotypes(path) as source:
        gt.ingest(source)
    assert _unchanged(store) == before
    assert np.array_equal(_read_all(gt), calls, equal_nan=True)


def test_alleles_that_contradict_the_held_set_are_refused(
        held: tuple[Store, list[str]], calls: np.ndarray, tmp_path: Path) -> None:
    store, eids = held
    gt = Genotypes(store)
    with open_genotypes(write_bed(tmp_path / "a" / "array", calls, eids, seed=0)) as first:
        gt.ingest(first)
    before = _unchanged(store)
    swapped = write_bed(tmp_path / "b" / "array", 2 - calls, eids, seed=0)
    bim = swapped.with_suffix(".bim")
    rows = [line.split("\t") for line in bim.read_text().splitlines()]
    bim.write_text("".join("\t".join([*r[:4], r[5], r[4]]) + "\n" for r in rows))
    with (pytest.raises(GenotypeFileError, match=f"{M} variants have other alleles"),
          open_genotypes(swapped) as source):
        gt.ingest(source)
    assert _unchanged(store) == before


def test_genotypes_need_a_cohort_first(store: Store, calls: np.ndarray, tmp_path: Path) -> None:
    with open_genotypes(write_bed(tmp_path / "gt", calls, [str(1_000_000 + i) for i in range(N)])
                        ) as source, pytest.raises(StoreError, match="ingest the cohort first"):
        Genotypes(store).ingest(source)
    assert Genotypes(store).current() is None


def test_a_new_set_replaces_the_old_and_only_retired_sets_are_removed(
        held: tuple[Store, list[str]], calls: np.ndarray, tmp_path: Path) -> None:
    store, eids = held
    gt = Genotypes(store)
    ids = []
    for k in range(3):
        with open_genotypes(write_bed(tmp_path / str(k) / "array", calls, eids)) as source:
            ids.append(gt.ingest(source).id)
    kept = sorted(p.name for p in gt.root.iterdir())
    assert kept == sorted(ids[1:])  # the current set and the one before it
    stray = gt.root / "not-ours"
    stray.mkdir()
    with open_genotypes(write_bed(tmp_path / "3" / "array", calls, eids)) as source:
        gt.ingest(source)
    assert stray.is_dir()  # never remove what the store cannot prove is its own
    shutil.rmtree(stray)
