"""The cluster's surrogates for eids: a keyed function of each, distinct over the cohort,
unrelated to the eid's order, and nothing per participant held but a compressed bitmap."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strongroom import sets
from strongroom.enclave.spark.surrogates import Surrogates

EIDS = np.random.default_rng(3).choice(np.arange(1_000_000, 10_000_000), 200_000,
                                       replace=False).astype(np.int64)
MEMBERS = sets.bitmap(EIDS)


def test_each_eid_has_one_distinct_surrogate_under_the_versions_key() -> None:
    made = Surrogates(MEMBERS)
    sids = made.numbers(EIDS)
    assert len(np.unique(sids, return_counts=True)[0]) == len(EIDS)
    assert sids.min() >= 1 and sids.max() <= 2**62
    assert np.array_equal(made.numbers(EIDS[::-1]), sids[::-1])  # a function of the eid
    assert not np.array_equal(Surrogates(MEMBERS).numbers(EIDS), sids)  # a key per version
    fixed = Surrogates(MEMBERS, key=bytes(16))
    assert np.array_equal(fixed.numbers(EIDS), Surrogates(MEMBERS, key=bytes(16)).numbers(EIDS))


def test_a_surrogate_says_nothing_of_its_eids_order() -> None:
    ordered = np.sort(EIDS)
    sids = Surrogates(MEMBERS).numbers(ordered)
    ranks = np.argsort(np.argsort(sids))
    rho = np.corrcoef(ranks, np.arange(len(ranks)))[0, 1]
    assert abs(rho) < 0.02  # about 1/√n for a random order
    neighbours = np.abs(np.diff(sids.astype(np.float64)))
    assert np.median(neighbours) > 2.0**58  # next eids are far apart, as random numbers are


def test_eids_the_participant_table_lacks_and_missing_ones_have_none() -> None:
    made = Surrogates(sets.bitmap(np.array([5, 9, -3, 2**62], dtype=np.int64)))
    asked = pl.Series("eid", [9, 6, None, -3, 2**62, -1, 5], dtype=pl.Int64)
    sids, found = made.of(asked)
    assert found.tolist() == [True, False, False, True, True, False, True]
    assert (sids[~found] == 0).all() and (sids[found] > 0).all()
    assert sids[0] == made.numbers(np.array([9]))[0]
    chunk = pl.DataFrame({"eid": asked, "x": range(7)})
    kept = made.replace(chunk)
    assert kept.columns == ["_sid", "x"] and kept["x"].to_list() == [0, 3, 4, 6]


def test_the_host_holds_no_table_of_them() -> None:
    made = Surrogates(MEMBERS)
    assert not any(isinstance(v, np.ndarray) for v in vars(made).values())
    held = made._members.get_statistics()  # what the bitmap keeps
    kept = sum(held[k] for k in ("n_bytes_array_containers", "n_bytes_run_containers",
                                 "n_bytes_bitset_containers"))
    assert kept < len(EIDS) * 16 / 4  # a quarter of an (eid, surrogate) table at most


def test_a_definition_holds_only_the_projects_participant_ids() -> None:
    """The check reads the participant table's pids as a bitmap, on either engine's view
    (a frame here; a cluster table's bitmap is made the same way, sets.bitmap)."""
    from strongroom.enclave import definitions
    from strongroom.errors import Invalid

    participants = pl.DataFrame({"pid": [1_000_003, 4_500_000, 9_999_999, -5]})
    tables = {"participants": participants}
    for good in ([4_500_000, 4_500_000, -5], [], [9_999_999, 1_000_003]):
        definitions._check_pids(pl.DataFrame({"pid": good}, schema={"pid": pl.Int64}),
                                tables)
    for bad in ([4_500_001], [1_000_003, -4], [2**40], [4_500_000, 0]):
        with pytest.raises(Invalid, match="not the project's participant IDs"):
            definitions._check_pids(pl.DataFrame({"pid": bad}), tables)
    with pytest.raises(Invalid, match="not the project's participant IDs"):
        definitions._check_pids(pl.DataFrame({"pid": [4_500_000]}), {})
    definitions._check_pids(pl.DataFrame({"pid": []}, schema={"pid": pl.Int64}), {})


def test_eids_past_a_slice_get_the_same_surrogates_as_one_block_of_the_cipher() -> None:
    """The eids are enciphered a slice at a time (the host's buffers bounded): every slice's
    answer is the cipher's over the whole, in order, across the slices' edges."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from strongroom.enclave.spark import surrogates

    eids = np.arange(surrogates._SLICE * 2 + 7, dtype=np.int64) * 3 - 11
    made = Surrogates(sets.bitmap(eids[:100]), key=bytes(range(16)))
    blocks = np.zeros((eids.size, 2), dtype=">i8")
    blocks[:, 0] = eids
    whole = Cipher(algorithms.AES(bytes(range(16))), modes.ECB()).encryptor()
    first = np.frombuffer(whole.update(blocks.tobytes()) + whole.finalize(), dtype=">u8")[::2]
    assert np.array_equal(made.numbers(eids), (first >> np.uint64(2)).astype(np.int64) + 1)
