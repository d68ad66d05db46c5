"""Damaged genotype files are refused, naming the problem; none is stored, crashes the caller or
leaves anything behind (issue 54: "0 bad genotype files stored, 0 crashes, across at least 30
malformed files of every format").

The guarantee: a genotype set is stored only if every count its files state agrees with every
other and with the bytes, so no genotype can land on another person. The ground truth is read
custodian-side: the store's current set, its files on disk, the audit outbox and the dosages
held, before and after each refused ingest.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from strongroom.audit.outbox import OUTBOX
from strongroom.cohort.ingest import ingest
from strongroom.cohort.modeldir import write_cohort_dir
from strongroom.cohort.store import Store, init_store
from strongroom.cohort.synth import synthesise
from strongroom.genomics.formats import GenotypeFileError, open_genotypes
from strongroom.genomics.isolated import Isolated
from strongroom.genomics.store import Genotypes
from tests.genotype_damage import DAMAGES, N, copy_set, good_sets, leftovers

MIN_PER_FORMAT = 30


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict[str, Path],
                                                                        str, Path]]:
    """A store holding a cohort and one good genotype set; a good set of each format."""
    root = tmp_path_factory.mktemp("damage")
    cohort = synthesise(N + 20, seed=11)
    write_cohort_dir(cohort, root / "cohort")
    eids = [str(e) for e in cohort.participants["eid"].to_list()]
    with init_store(root / "data", key_file=root / "keys" / "master.key") as store:
        ingest(store, [root / "cohort"])
        sets = good_sets(root, eids)
        with open_genotypes(sets["bed"]) as source:
            Genotypes(store).ingest(source)
        yield store, sets, eids[N], root


def _state(store: Store) -> tuple[object, ...]:
    gt = Genotypes(store)
    held = gt.require_current()
    on_disk = sorted(p.name for p in gt.root.iterdir())
    with store.engine.connect() as con:
        waiting = con.execute(select(func.count()).select_from(OUTBOX)).scalar_one()
    dosages = np.concatenate([d for _, d in gt.chunks(held)], axis=1)
    return held.id, on_disk, waiting, dosages.tobytes()


CASES = [(kind, damage) for kind, make in DAMAGES.items() for damage in make("0")]


def test_every_format_has_at_least_thirty_kinds_of_damage() -> None:
    for kind, make in DAMAGES.items():
        damages = make("0")
        assert len(damages) >= MIN_PER_FORMAT, kind
        assert len({d.name for d in damages}) == len(damages), kind


@pytest.mark.parametrize(("kind", "name"), [(k, d.name) for k, d in CASES])
def test_a_damaged_file_is_refused_naming_the_problem_and_nothing_is_stored(
        world: tuple[Store, dict[str, Path], str, Path], kind: str, name: str) -> None:
    store, sets, extra_eid, root = world
    damage = next(d for d in DAMAGES[kind](extra_eid) if d.name == name)
    path = damage.apply(copy_set(sets[kind], root / kind / name.replace(" ", "-")
                                 .replace("/", "-")))
    before, scratch = _state(store), leftovers()
    try:
        with pytest.raises(GenotypeFileError, match=damage.says) as refused, \
                open_genotypes(path) as source:
            Genotypes(store).ingest(source)
    finally:
        if path.exists() and path.stat().st_size > 1 << 30:
            path.unlink()  # the sparse 2 GiB copies
    assert str(refused.value).strip()
    assert _state(store) == before
    assert leftovers() == scratch


def test_a_reader_that_dies_is_a_refusal_not_a_crash(
        world: tuple[Store, dict[str, Path], str, Path]) -> None:
    """The isolation itself: the reader's process killed as a segfault would kill it."""
    store, sets, _, _ = world
    before = _state(store)
    for kind in ("bed", "pgen", "bgen"):
        source = open_genotypes(sets[kind])
        assert isinstance(source, Isolated)
        os.kill(source._child.pid or 0, signal.SIGSEGV)
        with pytest.raises(GenotypeFileError, match="killed by SIGSEGV"), source:
            Genotypes(store).ingest(source)
    assert _state(store) == before


def test_the_good_sets_still_go_in(world: tuple[Store, dict[str, Path], str, Path]) -> None:
    """The checks refuse damage, not files: each good set is stored with the same dosages."""
    store, sets, _, _ = world
    gt = Genotypes(store)
    held = []
    for kind in ("pgen", "bgen", "bed"):
        with open_genotypes(sets[kind]) as source:
            record = gt.ingest(source)
        held.append(np.concatenate([d for _, d in gt.chunks(record)], axis=1))
    assert all(np.allclose(h, held[0], equal_nan=True, atol=1 / 255) for h in held)
    assert not list(Path(tempfile.gettempdir()).glob("strongroom-bgen-*"))
