"""RFC 9162 tree hashing, checked against published vectors and a naive reading of the RFC.

The reference functions below transcribe RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH) and §2.1.4.1
(PROOF/SUBPROOF) literally, recursively, with no shared code: the package's bottom-up roots,
incremental frontier and iterative proofs must agree with them.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.audit import merkle
from strongroom.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    verify_consistency,
    verify_inclusion,
)


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def ref_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return ref_leaf(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    return ref_subproof(m, leaves, True) if 0 < m < len(leaves) else []


def data(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]


# The eight leaves used by the Certificate Transparency implementations' tests, with the
# roots of their first 1..8 leaves.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root([]) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_certificate_transparency_vectors(size: int) -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in CT_LEAVES[:size]]
    assert merkle.root(hashes) == CT_ROOTS[size - 1]
    assert ref_mth(CT_LEAVES[:size]) == CT_ROOTS[size - 1]  # the reference is right too
    frontier = Frontier()
    for h in hashes:
        frontier.append(h)
    assert frontier.root() == CT_ROOTS[size - 1]


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    # a two-leaf root is not the leaf hash of the two leaf hashes concatenated
    assert merkle.node_hash(a, b) != merkle.leaf_hash(a + b)


def test_roots_and_frontiers_match_the_reference_for_sizes_0_to_70() -> None:
    leaves = data(70)
    hashes = [ref_leaf(x) for x in leaves]
    frontier = Frontier()
    for n in range(71):
        expected = ref_mth(leaves[:n])
        assert merkle.root(hashes[:n]) == expected, n
        assert frontier.size == n
        assert frontier.root() == expected, n
        assert merkle.frontier_of(hashes[:n]).root() == expected, n
        if n < 70:
            frontier.append(hashes[n])


@pytest.mark.parametrize("seed", range(6))
def test_extend_in_random_chunks_matches_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(100, 3000)
    hashes = [ref_leaf(x) for x in data(n, seed)]
    frontier, i = Frontier(), 0
    while i < n:
        step = rng.choice([1, 2, 3, 7, 16, 64, 100, 1024, 2000])
        frontier.extend(hashes[i:i + step])
        i = min(n, i + step)
        assert frontier.size == i
    assert frontier.root() == merkle.root(hashes) == ref_mth_hashes(hashes)


def ref_mth_hashes(hashes: list[bytes]) -> bytes:
    """MTH over already-hashed leaves (the reference recursion, without the leaf step)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    left, right = ref_mth_hashes(hashes[:k]), ref_mth_hashes(hashes[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def test_a_frontier_restored_from_its_hashes_carries_on() -> None:
    hashes = [ref_leaf(x) for x in data(50)]
    first = merkle.frontier_of(hashes[:37])
    restored = Frontier(37, first.hashes)
    restored.extend(hashes[37:])
    assert restored.root() == merkle.root(hashes)
    with pytest.raises(ValueError, match="has 3 hashes"):
        Frontier(37, first.hashes[:2])


def test_proofs_match_the_reference_for_every_index_and_size_up_to_40() -> None:
    leaves = data(40, seed=7)
    hashes = [ref_leaf(x) for x in leaves]
    for n in range(1, 41):
        for m in range(n):
            assert merkle.inclusion_proof(hashes[:n], m) == ref_path(m, leaves[:n]), (m, n)
        for m in range(n + 1):
            assert merkle.consistency_proof(hashes[:n], m) == ref_proof(m, leaves[:n]), (m, n)


def test_proof_requests_outside_the_tree_are_refused() -> None:
    hashes = [ref_leaf(x) for x in data(5)]
    with pytest.raises(ValueError):
        merkle.inclusion_proof(hashes, 5)
    with pytest.raises(ValueError):
        merkle.consistency_proof(hashes, 6)


def flip(b: bytes, i: int = 0) -> bytes:
    return b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data_seed=st.integers(0, 2**32), pick=st.randoms())
def test_every_inclusion_proof_verifies_and_tampering_fails(
    n: int, data_seed: int, pick: random.Random
) -> None:
    hashes = [ref_leaf(x) for x in data(n, data_seed)]
    root = merkle.root(hashes)
    for index in sorted({0, n - 1, *(pick.randrange(n) for _ in range(8))}):
        proof = merkle.inclusion_proof(hashes, index)
        assert verify_inclusion(hashes[index], index, n, proof, root)
        assert not verify_inclusion(hashes[index], index, n, proof, flip(root))
        assert not verify_inclusion(flip(hashes[index]), index, n, proof, root)
        assert not verify_inclusion(hashes[index], index, n, [*proof, root], root)
        assert not verify_inclusion(hashes[index], n, n, proof, root)
        if proof:
            k = pick.randrange(len(proof))
            bad = [*proof[:k], flip(proof[k], pick.randrange(32)), *proof[k + 1:]]
            assert not verify_inclusion(hashes[index], index, n, bad, root)
            assert not verify_inclusion(hashes[index], index, n, proof[:-1], root)
        if n > 1:
            other = (index + 1) % n
            assert not verify_inclusion(hashes[index], other, n, proof, root) or \
                hashes[index] == hashes[other]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data_seed=st.integers(0, 2**32), pick=st.randoms())
def test_every_consistency_proof_verifies_and_tampering_fails(
    n: int, data_seed: int, pick: random.Random
) -> None:
    hashes = [ref_leaf(x) for x in data(n, data_seed)]
    new_root = merkle.root(hashes)
    for m in sorted({0, 1, n, *(pick.randrange(1, n + 1) for _ in range(8))}):
        old_root = merkle.root(hashes[:m])
        proof = merkle.consistency_proof(hashes, m)
        assert verify_consistency(m, n, old_root, new_root, proof), (m, n)
        if 0 < m < n:
            assert not verify_consistency(m, n, flip(old_root), new_root, proof)
            assert not verify_consistency(m, n, old_root, flip(new_root), proof)
            k = pick.randrange(len(proof))
            bad = [*proof[:k], flip(proof[k], pick.randrange(32)), *proof[k + 1:]]
            assert not verify_consistency(m, n, old_root, new_root, bad)
            assert not verify_consistency(m, n, old_root, new_root, proof[:-1])
            assert not verify_consistency(m, n, old_root, new_root, [])
        assert not verify_consistency(m + 1, m, old_root, new_root, proof)
    # a different history of the first m leaves is not consistent with this one
    if n > 1:
        m = pick.randrange(1, n)
        forked = [*hashes[:m - 1], flip(hashes[m - 1]), *hashes[m:]]
        assert not verify_consistency(m, n, merkle.root(forked[:m]), new_root,
                                      merkle.consistency_proof(hashes, m))


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    hashes = [ref_leaf(x) for x in data(9)]
    root = merkle.root(hashes)
    assert verify_consistency(9, 9, root, root, [])
    assert not verify_consistency(9, 9, root, flip(root), [])
    assert not verify_consistency(9, 9, root, root, [root])
    assert verify_consistency(0, 9, EMPTY_ROOT, root, [])
    assert not verify_consistency(0, 9, root, root, [])
