"""Sealing the cohort for a cluster without holding it (issue 56), checked without a cluster:
the store hands a table over a chunk of rows at a time, the chunks are written as encrypted
Parquet files of bounded size with a key for each column, and a random surrogate stands for
each eid."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from strongroom import sets
from strongroom.cohort import crypto
from strongroom.cohort.model import EID, PARTICIPANTS
from strongroom.cohort.store import init_store
from strongroom.cohort.synth.generator import synthesise
from strongroom.enclave.sources import CohortSource, Sealed
from strongroom.enclave.spark import engine as spark_engine
from strongroom.enclave.spark.engine import _write_chunks
from strongroom.enclave.spark.keys import KeyService
from strongroom.enclave.spark.surrogates import SID, Surrogates


def test_the_store_hands_a_table_over_in_chunks(tmp_path: Path) -> None:
    store = init_store(tmp_path / "data", key_file=tmp_path / "master.key")
    try:
        version = store.write_version(synthesise(250, 5))
        for name in version.tables:
            whole = store.read_table_at(tmp_path / "data" / "cohort" / version.id, version.id,
                                        name)
            chunks = list(store.read_chunks(version.id, name, rows=64))
            assert all(c.height <= 64 for c in chunks) and chunks
            assert pl.concat(chunks).equals(whole)
            assert all(c.schema == whole.schema for c in chunks)
    finally:
        store.close()



def test_the_store_reads_its_participants_ids_alone(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``Store.eids``: the participants' eid column, in the table's order, read a chunk of
    that one column at a time (the platform issues a project's pseudonyms from it, and
    genotype ingest checks its samples against it), never the whole table decoded."""
    store = init_store(tmp_path / "data", key_file=tmp_path / "master.key")
    try:
        cohort = synthesise(300, 5)
        cohort.events["deaths"] = cohort.events["deaths"].head(0)  # a table of no rows
        version = store.write_version(cohort)
        where = tmp_path / "data" / "cohort" / version.id
        whole = store.read_table_at(where, version.id, PARTICIPANTS)
        read: list[list[str] | None] = []
        chunks = store.read_chunks

        def noted(*args: object, **kwargs: object) -> object:
            read.append(kwargs.get("columns"))  # type: ignore[arg-type]
            return chunks(*args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(store, "read_chunks", noted)
        eids = store.eids()
        assert eids.dtype == np.int64 and read == [[EID]]
        assert np.array_equal(eids, whole[EID].cast(pl.Int64).to_numpy())
        # the columns asked for only, a table of no rows too (one empty chunk, its schema)
        diagnoses = store.read_table_at(where, version.id, "diagnoses")
        assert pl.concat(list(chunks(version.id, "diagnoses", rows=500, columns=[EID, "code"]))
                         ).equals(diagnoses.select(EID, "code"))
        [empty] = list(chunks(version.id, "deaths", columns=[EID]))
        assert empty.height == 0 and empty.schema == pl.Schema({EID: whole.schema[EID]})
    finally:
        store.close()


def test_the_store_reads_a_table_a_segment_at_a_time(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Sealed in segments of 4 kB (each many a column chunk's), read through the segments as
    the Parquet reader seeks (SealedFile, two held at a time), the same rows; a segment
    altered on disk refuses the read."""
    monkeypatch.setattr(crypto, "SEGMENT", 4096)
    store = init_store(tmp_path / "data", key_file=tmp_path / "master.key")
    try:
        version = store.write_version(synthesise(600, 5))
        where = tmp_path / "data" / "cohort" / version.id
        whole = store.read_table_at(where, version.id, PARTICIPANTS)
        path = where / f"{PARTICIPANTS}.parquet.enc"
        assert path.stat().st_size > 20 * 4096
        assert pl.concat(list(store.read_chunks(version.id, PARTICIPANTS, rows=100))) \
            .equals(whole)
        sealed = bytearray(path.read_bytes())
        sealed[len(sealed) // 2] ^= 1
        path.write_bytes(bytes(sealed))
        with pytest.raises(crypto.DecryptionError, match="authentication failed"):
            list(store.read_chunks(version.id, PARTICIPANTS, rows=100))
    finally:
        store.close()

def _keys() -> KeyService:
    return KeyService(secrets.token_bytes(32))


def _read(path: Path, keys: KeyService, identifier: str, columns: list[str] | None = None
          ) -> pl.DataFrame:
    factory, kms, _ = keys.encryption(identifier)
    decryption = factory.file_decryption_properties(kms, pq.encryption.DecryptionConfiguration())
    frames = [pl.from_arrow(pq.read_table(p, columns=columns, decryption_properties=decryption))
              for p in sorted(path.glob("part-*.parquet"))]
    return pl.concat([f for f in frames if isinstance(f, pl.DataFrame)])


def test_chunks_go_to_bounded_files_each_column_under_its_own_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_engine, "ROWS_PER_FILE", 100)
    keys = _keys()
    identifier = keys.new_identifier()
    frame = pl.DataFrame({EID: np.arange(1, 351), "x": np.arange(350) * 0.5,
                          "code": [f"I{i % 7}" for i in range(350)]})
    known = Surrogates(sets.bitmap(np.arange(1, 301, dtype=np.int64)))
    rows = Sealed("k", lambda: (frame.slice(i, 64) for i in range(0, 350, 64)),
                  known.replace, by_column=True)
    columns: dict[str, str] = {}
    schema, height = _write_chunks(rows, tmp_path, keys, identifier, columns)
    assert schema == frame.schema  # as handed over
    assert height == 300  # the 50 rows whose eid the participant table lacks: left out
    files = sorted(tmp_path.glob("part-*.parquet"))
    assert len(files) == 3 and all(f.read_bytes()[:4] == b"PARE" for f in files)
    assert set(columns) == {SID, "x", "code"} and len(set(columns.values())) == 3
    back = _read(tmp_path, keys, identifier)
    assert back.columns == [SID, "x", "code"]
    assert back[SID].to_list() == known.numbers(np.arange(1, 301, dtype=np.int64)).tolist()
    assert back["x"].to_list() == frame["x"].head(300).to_list()
    keys.forget(columns["code"])  # without a column's key, only that column is closed
    assert _read(tmp_path, keys, identifier, [SID, "x"]).height == 300
    with pytest.raises(PermissionError):
        _read(tmp_path, keys, identifier, ["code"])


def test_an_empty_table_is_sealed_with_its_schema(tmp_path: Path) -> None:
    keys = _keys()
    identifier = keys.new_identifier()
    empty = pl.DataFrame(schema={EID: pl.Int64, "date": pl.Date})
    schema, height = _write_chunks(Sealed("k", lambda: [empty]), tmp_path, keys, identifier, {})
    assert (schema, height) == (empty.schema, 0)
    assert _read(tmp_path, keys, identifier).schema == empty.schema


def test_a_cohort_source_keys_its_tables_by_content() -> None:
    source = CohortSource("v1", {PARTICIPANTS: "aa", "deaths": "bb"}, lambda name: [])
    again = CohortSource("v1", {PARTICIPANTS: "aa", "deaths": "bb"}, lambda name: [])
    changed = CohortSource("v1", {PARTICIPANTS: "ab", "deaths": "bb"}, lambda name: [])
    assert source.sealed(PARTICIPANTS).key == again.sealed(PARTICIPANTS).key
    assert source.sealed(PARTICIPANTS).key != changed.sealed(PARTICIPANTS).key
    assert source.sealed("deaths").key != source.sealed(PARTICIPANTS).key
