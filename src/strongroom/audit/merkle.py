"""RFC 9162 Merkle tree hashing: roots, an incremental frontier, inclusion and consistency proofs.

leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right), and a tree of
n > 1 leaves splits at k, the largest power of two smaller than n (RFC 9162 §2.1.1). Built
bottom-up by pairing neighbours and carrying an odd last node up unchanged, the same tree
results, which is how roots are computed here: one list comprehension per level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

EMPTY_ROOT = sha256(b"").digest()
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(_LEAF + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(_NODE + left + right).digest()


def _level_up(level: Sequence[bytes]) -> list[bytes]:
    up = [sha256(_NODE + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=False)]
    if len(level) % 2:
        up.append(level[-1])
    return up


def root(hashes: Sequence[bytes]) -> bytes:
    """The root of the tree over these leaf hashes (RFC 9162 MTH)."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        level = _level_up(level)
    return level[0]


def _largest_power_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The roots of the perfect subtrees of a growing tree (its compact range from 0).

    Holds O(log n) hashes; appending a leaf is amortised one node hash, and the root of the
    current tree is a fold of at most log n hashes.
    """

    __slots__ = ("_stack", "size")

    def __init__(self, size: int = 0, stack: Sequence[bytes] = ()) -> None:
        if len(stack) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} hashes")
        self.size = size
        self._stack = list(stack)  # largest subtree first, one per set bit of size

    def copy(self) -> Frontier:
        return Frontier(self.size, self._stack)

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._stack)

    def append(self, leaf_hash: bytes) -> None:
        self._push(leaf_hash, 0)

    def _push(self, subtree: bytes, height: int) -> None:
        # size is a multiple of 2**height: merge with equal-sized neighbours to the left
        stack = self._stack
        n = self.size >> height
        while n & 1:
            subtree = sha256(_NODE + stack.pop() + subtree).digest()
            n >>= 1
        stack.append(subtree)
        self.size += 1 << height

    def extend(self, hashes: Sequence[bytes]) -> None:
        """Append many leaf hashes; aligned runs are reduced level by level (faster in Python)."""
        i, n = 0, len(hashes)
        while i < n:
            left = n - i
            # the largest aligned perfect subtree that starts here and fits in what is left
            align = (self.size & -self.size) if self.size else 1 << 62
            height = min(align, 1 << (left.bit_length() - 1)).bit_length() - 1
            if height < 4:
                self._push(hashes[i], 0)
                i += 1
                continue
            level = list(hashes[i:i + (1 << height)])
            while len(level) > 1:
                level = _level_up(level)
            self._push(level[0], height)
            i += 1 << height

    def root(self) -> bytes:
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        acc = stack[-1]
        for h in reversed(stack[:-1]):
            acc = sha256(_NODE + h + acc).digest()
        return acc


def frontier_of(hashes: Iterable[bytes]) -> Frontier:
    frontier = Frontier()
    frontier.extend(list(hashes))
    return frontier


# -- proofs (RFC 9162 §2.1.3.1 PATH and §2.1.4.1 PROOF/SUBPROOF) -------------------------------


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree over ``hashes``."""
    if not 0 <= index < len(hashes):
        raise ValueError(f"leaf {index} is not in a tree of size {len(hashes)}")
    proof: list[bytes] = []
    lo, hi = 0, len(hashes)
    while hi - lo > 1:
        k = _largest_power_below(hi - lo)
        if index < lo + k:
            proof.append(root(hashes[lo + k:hi]))
            hi = lo + k
        else:
            proof.append(root(hashes[lo:lo + k]))
            lo += k
    proof.reverse()
    return proof


def consistency_proof(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of the tree over ``hashes``."""
    n = len(hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"size {old_size} is not within a tree of size {n}")
    if old_size in (0, n):
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    while m != hi - lo:
        k = _largest_power_below(hi - lo)
        if m <= k:
            proof.append(root(hashes[lo + k:hi]))
            hi = lo + k
        else:
            proof.append(root(hashes[lo:lo + k]))
            lo += k
            m -= k
            complete = False
    if not complete:
        proof.append(root(hashes[lo:hi]))
    proof.reverse()
    return proof


# -- proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows the leaf with ``leaf_hash`` at ``index`` in the tree ``root``."""
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``old_root`` is a prefix of the tree ``new_root``."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a subtree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
