"""The encrypted store: round trip, no plaintext at rest, keys apart, atomic versions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from strongroom.cohort.crypto import DecryptionError, MasterKey
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import Cohort
from strongroom.cohort.store import COHORT_DIR, Store, StoreError, init_store
from strongroom.cohort.validate import validate
from tests.conftest import small_cohort
from tests.leaks import binary_leaks, everything_stored, stored_bytes, text_leaks


def typed_small(dictionary: Dictionary) -> Cohort:
    return validate(small_cohort(), dictionary, "small")


def test_round_trip(store: Store, dictionary: Dictionary) -> None:
    cohort = typed_small(dictionary)
    version = store.write_version(cohort, [{"name": "small", "sha256": "0" * 64, "bytes": 1}])
    assert version.participants == 3
    loaded = store.load()
    assert loaded.participants.equals(cohort.participants)
    assert loaded.events["diagnoses"].equals(cohort.events["diagnoses"])


def test_duckdb_queries_the_decrypted_cohort(store: Store, dictionary: Dictionary) -> None:
    store.write_version(typed_small(dictionary))
    con = store.connect()
    rows = con.execute("SELECT p31, count(*) FROM participants GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [(0, 2), (1, 1)]
    joined = con.execute(
        "SELECT count(DISTINCT d.eid) FROM diagnoses d JOIN participants p USING (eid) "
        "WHERE p.p31 = 0"
    ).fetchone()
    assert joined == (2,)


def test_no_participant_value_in_any_stored_byte(store: Store, dictionary: Dictionary) -> None:
    cohort = typed_small(dictionary)
    store.write_version(cohort)
    blob = everything_stored(store)
    p = cohort.participants
    values = [*p["eid"], *p["p21001_i0"], *p["p53_i0"], *p["p36_i0"],
              *cohort.events["diagnoses"]["date"]]
    assert text_leaks(blob, values) == []
    assert binary_leaks(blob, p["eid"].to_list(), p["p21001_i0"].to_list()) == []
    assert b"PAR1" not in blob  # not even a Parquet footer in the clear


def test_key_lives_outside_the_store(store: Store, tmp_path: Path) -> None:
    key = MasterKey.load(tmp_path / "keys" / "master.key")
    assert key.secret not in stored_bytes(store.root)
    with pytest.raises(StoreError, match="outside the data directory"):
        init_store(tmp_path / "other", key_file=tmp_path / "other" / "k.key")


def test_the_data_directory_and_its_files_are_the_owner_s_only(store: Store) -> None:
    assert store.root.stat().st_mode & 0o777 == 0o700
    made = [p for p in store.root.iterdir() if p.is_file()]
    assert made and all(p.stat().st_mode & 0o077 == 0 for p in made), made


def test_wrong_key_is_refused(store: Store, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    MasterKey.generate().save(other)
    with pytest.raises(StoreError, match="not this store's key"):
        Store.open(store.root, other)


def test_tampered_file_is_refused(store: Store, dictionary: Dictionary) -> None:
    store.write_version(typed_small(dictionary))
    sealed = next((store.root / COHORT_DIR).rglob("participants.parquet.enc"))
    data = bytearray(sealed.read_bytes())
    data[-20] ^= 0xFF
    sealed.write_bytes(bytes(data))
    with pytest.raises(DecryptionError):
        store.load()


def test_swapped_table_files_are_refused(store: Store, dictionary: Dictionary) -> None:
    store.write_version(typed_small(dictionary))
    version = next(p for p in (store.root / COHORT_DIR).iterdir())
    a, b = version / "participants.parquet.enc", version / "diagnoses.parquet.enc"
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    with pytest.raises(DecryptionError, match="belongs to"):
        store.load()


def test_failure_mid_write_keeps_previous_version(
    store: Store, dictionary: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.write_version(typed_small(dictionary))
    calls = {"n": 0}
    original = Store._write_table

    def failing(self: Store, *args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "_write_table", failing)
    bigger = typed_small(dictionary)
    bigger = Cohort(bigger.participants.with_columns(pl.col("p34") + 1), bigger.events)
    with pytest.raises(OSError, match="disk full"):
        store.write_version(bigger)
    current = store.current()
    assert current is not None and current.id == first.id
    assert store.load().participants["p34"].to_list() == [1950, 1961, 1944]
    assert [p.name for p in (store.root / COHORT_DIR).iterdir()] == [first.id]


def test_crash_mid_write_keeps_previous_version(
    store: Store, dictionary: Dictionary, tmp_path: Path
) -> None:
    """A real process death (os._exit) half-way through writing a new version."""
    first = store.write_version(typed_small(dictionary))
    key = tmp_path / "keys" / "master.key"
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from strongroom.cohort.store import Store
        from strongroom.cohort.validate import validate
        from tests.conftest import small_cohort
        original = Store._write_table
        calls = []
        def dying(self, *args):
            calls.append(1)
            if len(calls) == 2:
                os._exit(9)
            return original(self, *args)
        Store._write_table = dying
        store = Store.open(Path({str(store.root)!r}), Path({str(key)!r}))
        store.write_version(validate(small_cohort(), store.dictionary, "x"))
        store.close()
    """)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, check=False)
    assert done.returncode == 9
    leftovers = [p.name for p in (store.root / COHORT_DIR).iterdir()]
    assert any(name.startswith(".staging-") for name in leftovers)
    with Store.open(store.root, tmp_path / "keys" / "master.key") as reopened:
        current = reopened.current()
        assert current is not None and current.id == first.id
        assert reopened.load().participants.height == 3
    assert [p.name for p in (store.root / COHORT_DIR).iterdir()] == [first.id]


def test_retention_keeps_current_and_previous(store: Store, dictionary: Dictionary) -> None:
    ids = [store.write_version(typed_small(dictionary)).id for _ in range(3)]
    kept = sorted(p.name for p in (store.root / COHORT_DIR).iterdir())
    assert kept == sorted(ids[1:])


def test_empty_store_says_what_to_do(store: Store) -> None:
    with pytest.raises(StoreError, match="strongroom cohort ingest"):
        store.load()


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="strongroom init"):
        Store.open(tmp_path)
