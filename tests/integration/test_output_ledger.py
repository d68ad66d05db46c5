"""The differencing ledger, on SQLite and PostgreSQL: clashes found, sizes pruned, sets sealed."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pyroaring import BitMap
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from strongroom import migrations
from strongroom.cohort.crypto import MasterKey
from strongroom.db import make_engine
from strongroom.enclave import margin
from strongroom.errors import Conflict, Invalid, Unavailable
from strongroom.outputs.ledger import CELLS, RELEASES, Ledger
from strongroom.outputs.overlap import VALUES
from strongroom.outputs.verdicts import Verdict
from tests.leaks import binary_leaks, text_leaks

THRESHOLD = 10


@pytest.fixture
def engine(tmp_path: Path, database_url: str | None) -> Iterator[Engine]:
    made = make_engine(database_url or f"sqlite:///{tmp_path / 'metadata.db'}")
    migrations.upgrade(made)
    yield made
    made.dispose()


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine, MasterKey.generate())


@pytest.fixture(scope="module")
def everyone() -> np.ndarray:
    rng = np.random.default_rng(4)
    return np.sort(rng.choice(np.arange(1_000_000, 10_000_000), 5000, replace=False))


def test_excluding_one_person_is_blocked(ledger: Ledger, everyone: np.ndarray) -> None:
    ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone)
    but_one = np.delete(everyone, 2500)
    findings = ledger.check("inst-1", "proj-a", [("everyone but one", but_one)], but_one,
                            THRESHOLD)
    assert len(findings) == 1
    found = findings[0]
    assert (found.rule, found.verdict, found.cell) == ("differencing", Verdict.BLOCK, 0)
    assert "'everyone but one'" in found.reason and "'everyone'" in found.reason
    assert "release rel-1" in found.reason
    assert "but for fewer than a line drawn from the threshold of" in found.reason
    assert str(everyone[2500]) not in found.reason  # never which (nor how many)


def test_sets_far_enough_apart_pass_and_repeats_clash(ledger: Ledger,
                                                      everyone: np.ndarray) -> None:
    ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone)
    # a repeat says nothing new, and hiding only one apart would tell the two apart
    again = ledger.check("inst-1", "proj-a", [("again", everyone)], everyone, THRESHOLD)
    assert [f.cell for f in again] == [0]
    # a statistic's group is not compared with a count's (its contributions are, elsewhere)
    assert ledger.check("inst-1", "proj-a", [("again", everyone)], everyone, THRESHOLD,
                        families=[VALUES]) == []
    apart = everyone[THRESHOLD:]  # differs by exactly the threshold: allowed
    assert ledger.check("inst-1", "proj-a", [("ten fewer", apart)], apart, THRESHOLD) == []
    close = everyone[THRESHOLD - 1:]  # one fewer than the threshold: blocked
    findings = ledger.check("inst-1", "proj-a", [("nine fewer", close)], close, THRESHOLD)
    assert [f.cell for f in findings] == [0]
    assert "but for fewer than a line drawn from the threshold" in findings[0].reason
    assert "9" not in findings[0].reason  # the size of the small group is not said


def test_a_set_against_an_earlier_complement(ledger: Ledger, everyone: np.ndarray) -> None:
    population = everyone[:1000]
    ledger.record("inst-1", "proj-a", "rel-1", [("smokers", population[:300])], population)
    # non-smokers but one: far from "smokers", one away from the population minus smokers
    findings = ledger.check("inst-1", "proj-a", [("non-smokers but one", population[301:])],
                            population, THRESHOLD)
    assert len(findings) == 1
    assert "rest of its population outside cell 'smokers'" in findings[0].reason
    assert "but for fewer than a line drawn from the threshold" in findings[0].reason


def test_a_new_complement_against_an_earlier_set(ledger: Ledger, everyone: np.ndarray) -> None:
    ledger.record("inst-1", "proj-a", "rel-1", [("non-smokers", everyone[300:1000])],
                  everyone[:1000])
    # a release over another population, whose complement of A is "non-smokers" but one
    population = everyone[300:1500]
    cell = np.concatenate([everyone[300:301], everyone[1000:1500]])
    findings = ledger.check("inst-1", "proj-a", [("recent and one more", cell)], population,
                            THRESHOLD)
    assert len(findings) == 1
    assert findings[0].reason.startswith(
        "The rest of the population outside cell 'recent and one more' rests on the same "
        "participants as cell 'non-smokers' in release rel-1 but for fewer than a line")


def test_only_the_same_institution_counts(ledger: Ledger, everyone: np.ndarray) -> None:
    ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone)
    but_one = everyone[1:]
    assert ledger.check("inst-2", "proj-z", [("all but one", but_one)], but_one, THRESHOLD) == []
    findings = ledger.check("inst-1", "proj-b", [("all but one", but_one)], but_one, THRESHOLD)
    assert len(findings) == 1 and "release rel-1 of project proj-a" in findings[0].reason


def test_only_clashing_cells_are_named(ledger: Ledger, everyone: np.ndarray) -> None:
    ledger.record("inst-1", "proj-a", "rel-1",
                  [("men", everyone[:2000]), ("women", everyone[2000:])], everyone)
    cells = [("men 40+", everyone[:1500]), ("women but two", everyone[2002:])]
    findings = ledger.check("inst-1", "proj-a", cells, everyone, THRESHOLD)
    assert [f.cell for f in findings] == [1]


def test_every_rule_agrees_with_plain_set_arithmetic(ledger: Ledger) -> None:
    """Random small releases: the findings are exactly those a brute-force check gives."""
    rng = np.random.default_rng(3)
    ids = np.arange(1_000_000, 1_000_060)
    released = []
    for r in range(6):
        population = np.sort(rng.choice(ids, int(rng.integers(30, 60)), replace=False))
        cells = [(f"r{r}c{i}", np.sort(rng.choice(population, int(rng.integers(0, 30)),
                                                   replace=False))) for i in range(4)]
        ledger.record("inst-1", "proj-a", f"rel-{r}", cells, population)
        released += [(set(c.tolist()), set(population.tolist())) for _, c in cells]
    for _ in range(25):
        population = np.sort(rng.choice(ids, int(rng.integers(30, 60)), replace=False))
        cells = [(f"n{i}", np.sort(rng.choice(population, int(rng.integers(0, 30)),
                                               replace=False))) for i in range(5)]
        expected = {}
        for i, (_, c) in enumerate(cells):
            a, ua = set(c.tolist()), set(population.tolist())
            deltas = [len(x ^ y) for b, ub in released
                      for x in (a, ua - a) for y in (b, ub - b)]
            close = [d for d in deltas if 0 < d < 4]
            if close:
                expected[i] = min(close)
        findings = ledger.check("inst-1", "proj-b", cells, population, 4)
        assert {f.cell: f for f in findings}.keys() == expected.keys()
        for f in findings:
            assert f.cell is not None
            assert "but for fewer than a line drawn from the threshold of 4" in f.reason


def test_size_pruning_with_20000_cells(ledger: Ledger) -> None:
    """20,000 cells: the database hands back only rows whose size could clash."""
    rng = np.random.default_rng(7)
    universe = np.arange(1_000_000, 1_100_000)
    kept: tuple[str, int, int] | None = None
    for r in range(40):
        sizes = np.exp(rng.uniform(np.log(20), np.log(50_000), 500)).astype(np.int64)
        starts = rng.integers(0, len(universe) - sizes)
        cells = [(f"cell {r}.{i}", universe[s:s + n])
                 for i, (s, n) in enumerate(zip(starts, sizes, strict=True))]
        ledger.record("inst-1", f"proj-{r % 3}", f"rel-{r}", cells, universe)
        if r == 17:
            i = int(np.argmax((sizes > 3000) & (sizes < 8000)))
            kept = (f"cell {r}.{i}", int(starts[i]), int(sizes[i]))
    assert ledger.count("inst-1") == 20_000 and kept is not None
    label, start, size = kept
    near = universe[start + 3:start + size]  # the kept cell without 3 of its people
    fresh = [("near", near), ("elsewhere", universe[:23_457])]
    findings = ledger.check("inst-1", "proj-9", fresh, universe, THRESHOLD)
    assert [f.cell for f in findings] == [0]
    assert f"cell {label!r} in release rel-17" in findings[0].reason
    stats = ledger.last_stats
    assert 1 <= stats.candidates <= 60  # of 20,000: the size filter ran in SQL
    assert stats.decrypted <= stats.candidates + 40


def test_sets_are_sealed_at_rest(ledger: Ledger, engine: Engine, tmp_path: Path,
                                 everyone: np.ndarray) -> None:
    rng = np.random.default_rng(11)
    cells = [(f"group {i}", np.sort(rng.choice(everyone, 200, replace=False)))
             for i in range(5)]
    ledger.record("inst-1", "proj-a", "rel-1", cells, everyone)
    blob = _stored(engine, tmp_path)
    sample = [int(e) for e in everyone[::50]]
    assert text_leaks(blob, sample) == []
    assert binary_leaks(blob, sample) == []
    for _, eids in cells:  # nor as uint32 arrays, nor the bitmap itself or any stretch of it
        assert not [i for i in range(0, 198, 10) if struct.pack("<3I", *eids[i:i + 3]) in blob]
        plain = BitMap(eids.tolist()).serialize()
        assert all(plain[i:i + 32] not in blob for i in range(0, len(plain) - 32, 64))
    again = ledger.check("inst-1", "proj-a", [("again", cells[0][1])], everyone, THRESHOLD)
    assert [f.cell for f in again] == [0]  # and it still reads back: the repeat is seen


def test_a_row_moved_to_another_institution_does_not_open(ledger: Ledger, engine: Engine,
                                                          everyone: np.ndarray) -> None:
    ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone)
    with engine.begin() as con:
        con.execute(update(CELLS).values(institution_id="inst-2"))
    with pytest.raises(Unavailable, match="cannot be read"):
        ledger.check("inst-2", "proj-z", [("but one", everyone[1:])], everyone[1:], THRESHOLD)


def test_bad_input_is_refused_and_nothing_half_recorded(ledger: Ledger, engine: Engine,
                                                        everyone: np.ndarray) -> None:
    with pytest.raises(Invalid, match="outside 0–"):
        ledger.check("inst-1", "proj-a", [("x", np.array([2**32]))], np.array([2**32]), 10)
    with pytest.raises(Invalid, match="whole-number"):
        ledger.check("inst-1", "proj-a", [("x", everyone.astype(float))], everyone, 10)
    with pytest.raises(Invalid, match="outside its release's population"):
        ledger.record("inst-1", "proj-a", "rel-1", [("x", everyone)], everyone[:10])
    with pytest.raises(Invalid, match="threshold"):
        ledger.check("inst-1", "proj-a", [("x", everyone)], everyone, 0)
    ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone)
    with pytest.raises(Conflict, match="already"):
        ledger.record("inst-1", "proj-a", "rel-1", [("a", everyone[:5]), ("b", everyone)],
                      everyone)
    assert ledger.count() == 1


def test_recording_joins_the_callers_transaction(ledger: Ledger, engine: Engine,
                                                 everyone: np.ndarray) -> None:
    with pytest.raises(RuntimeError), Session(engine) as db, db.begin():
        ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone,
                      session=db)
        raise RuntimeError("the release failed after the ledger wrote")
    assert ledger.count() == 0
    with Session(engine) as db, db.begin():
        ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone,
                      session=db)
    assert ledger.count() == 1


def _stored(engine: Engine, tmp_path: Path) -> bytes:
    """The database's own files (SQLite) or every ledger row's bytes (PostgreSQL)."""
    rows = []
    with engine.connect() as con:
        for table in (RELEASES, CELLS):
            for row in con.execute(select(table)):
                rows += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    files = [p.read_bytes() for p in sorted(tmp_path.glob("metadata.db*"))]
    return b"\n".join(files + rows)


def test_a_cell_outside_its_population_is_refused_by_the_check(ledger: Ledger,
                                                               everyone: np.ndarray) -> None:
    population = everyone[::2]  # sparse IDs over 9 million: many small bitmap containers
    with pytest.raises(Invalid, match="cell 'stray' holds participants outside"):
        ledger.check("inst-1", "proj-a", [("fine", population[:100]),
                                          ("stray", np.append(population[:100], everyone[1]))],
                     population, THRESHOLD)
    with pytest.raises(Invalid, match="outside its release's population"):  # a new container
        ledger.check("inst-1", "proj-a", [("far", np.array([9_999_999]))], population,
                     THRESHOLD)
    assert ledger.check("inst-1", "proj-a", [("inside", population[:100])], population,
                        THRESHOLD) == []


def test_many_cell_sizes_are_looked_up_in_several_queries(ledger: Ledger) -> None:
    """Over 200 size ranges take several queries, each of its own length (and then reused)."""
    universe = np.arange(1_000_000, 1_020_000)
    ledger.record("inst-1", "proj-a", "rel-1", [("late", universe[:15_003])], universe)
    for count in (450, 230, 450):  # 200 ranges per query and a remainder; then all built before
        cells = [(f"c{i}", universe[:20 * i + 1]) for i in range(count)]
        cells.append(("late but three", universe[3:15_003]))
        findings = ledger.check("inst-1", "proj-b", cells, universe, THRESHOLD)
        assert [f.cell for f in findings] == [count]
        assert "but for fewer than a line drawn from the threshold" in findings[0].reason


def test_in_a_keyed_request_a_pair_clashes_by_its_draw(ledger: Ledger,
                                                       everyone: np.ndarray) -> None:
    """"Everyone" beside "everyone but k − 1 accomplices and the target if obese": at a fixed
    line the pair clashes only for the lean target. Keyed (enclave/margin.py), k − 1 apart
    always clash, 2k − 1 never, and k by the pair's draw: about one request in k passes."""
    ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone)
    keys = [hashlib.sha256(f"request {i}".encode()).digest() for i in range(60)]

    def clashes(apart: int, key: bytes) -> bool:
        rest = everyone[apart:]
        with margin.keyed(key):
            return bool(ledger.check("inst-1", "proj-a", [("rest", rest)], everyone,
                                     THRESHOLD))
    assert all(clashes(THRESHOLD - 1, key) for key in keys[:10])
    assert not any(clashes(2 * THRESHOLD - 1, key) for key in keys[:10])
    passed = sum(not clashes(THRESHOLD, key) for key in keys)
    assert 0 < passed < len(keys) / 3


def test_cells_recorded_before_families_count_as_counts_after_the_upgrade(
        ledger: Ledger, engine: Engine, everyone: np.ndarray) -> None:
    """Migration 0010 on a ledger made before it: a statistic's group recorded then has no
    family, and is read the cautious way, as a count (compared with every new count)."""
    from alembic import command
    from alembic.config import Config

    ledger.record("inst-1", "proj-a", "rel-1", [("a mean's people", everyone)], everyone,
                  families=[VALUES])
    assert ledger.check("inst-1", "proj-a", [("again", everyone)], everyone, THRESHOLD) == []
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as con:  # back to the store as it was before families
        config.attributes["connection"] = con
        command.downgrade(config, "0009")
    assert migrations.upgrade(engine)[:1] == ["0010"]  # and any revision after it
    again = ledger.check("inst-1", "proj-a", [("again", everyone)], everyone, THRESHOLD)
    assert [f.cell for f in again] == [0]


def test_vectors_read_back_whichever_form_they_were_kept_in(ledger: Ledger, engine: Engine,
                                                            everyone: np.ndarray) -> None:
    """Vectors are kept compact now (gaps and values, Zstandard); those kept before, zlib over
    the plain form, still read back as they were."""
    from strongroom.cohort.crypto import encrypt
    from strongroom.outputs.contributions import Vector
    from strongroom.outputs.ledger import VECTORS, _vector_context

    rng = np.random.default_rng(12)
    ages = Vector.of("age", everyone, rng.integers(40, 70, everyone.size), "linear")
    edge = Vector.of("edge", np.array([0, 7, 2**32 - 1]), [1.5, -0.0, 1e300], "linear")
    ledger.record("inst-1", "proj-a", "rel-1", [("everyone", everyone)], everyone,
                  vectors=[ages, edge])
    plain = ages.ids.astype("<u4").tobytes()
    assert ages.to_bytes()[:4] == b"SRV\x02" and len(ages.to_bytes()) < len(plain)
    with engine.begin() as con:  # the second as an earlier version kept it
        legacy = len(edge.ids).to_bytes(8, "big") + edge.ids.astype("<u4").tobytes() + \
            edge.values.astype("<f8").tobytes()
        con.execute(update(VECTORS).where(VECTORS.c.ordinal == 1).values(
            values_sealed=encrypt(zlib.compress(legacy, 1), ledger.key, _vector_context(
                "inst-1", "proj-a", "rel-1", 1))))
    back = Ledger(engine, ledger.key).released_vectors("inst-1")
    for kept, read in zip([ages, edge], back, strict=True):
        assert read.kind == kept.kind and read.label.startswith(kept.label)
        assert np.array_equal(read.ids, kept.ids) and read.ids.dtype == np.int64
        assert np.array_equal(read.values, kept.values)


def test_released_rows_are_opened_once_and_read_back_in_order(
        ledger: Ledger, everyone: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """What was opened is kept: a later read fetches and opens only the rows released since,
    and every read gives every row, in release order, however many were opened before."""
    from strongroom.outputs.contributions import Vector

    rng = np.random.default_rng(5)
    vectors = [Vector.of(f"v{i}", everyone, rng.normal(size=everyone.size), "linear")
               for i in range(3)]
    ledger.record("inst-1", "proj-a", "rel-1", [("all", everyone), ("half", everyone[::2])],
                  everyone, vectors=vectors[:2])
    first = ledger.released_vectors("inst-1")
    groups = ledger.released_groups("inst-1")
    ledger.record("inst-1", "proj-a", "rel-2", [("third", everyone[::3])], everyone,
                  vectors=vectors[2:])
    opened: list[str] = []
    real = ledger._unseal
    monkeypatch.setattr(ledger, "_unseal",
                        lambda sealed, context: opened.append(context) or real(sealed, context))
    again = ledger.released_vectors("inst-1")
    more = ledger.released_groups("inst-1")
    assert len(opened) == 2  # the new release's one vector and one cell, nothing else
    assert again[:2] == first and [v.label.split(" ")[0] for v in again] == ["v0", "v1", "v2"]
    assert np.array_equal(again[2].values, vectors[2].values)
    assert more[:2] == groups and [g[0].split(" ")[0] for g in more] == ["all", "half", "third"]
    assert more[2][1] == BitMap(everyone[::3].astype(np.uint32))
