"""Auditing combinations of any number of releases: is a small group's count determined?

Pairwise differencing (the ledger's rule) catches two counts whose groups differ by a few
people. It misses three or more: |A ∪ {t}| + |B| − |A ∪ B| is one person, though every pair
differs by thousands. This is the classic exact audit of sum queries (Chin and Özsoyoğlu's
"audit expert"): split the participants into *atoms*, the classes of people who lie in exactly
the same released groups. Every released count is a sum of atom sizes, and a linear
combination of released counts can give an atom's size exactly when, and only when, the atom's
indicator lies in the row space of the release matrix Q (groups × atoms). With the projection
P = Qᵀ(QQᵀ)⁺Q onto that row space, the atom is determined exactly when its diagonal entry
P_aa = q_aᵀ(QQᵀ)⁺q_a is 1. The same holds for sums and means over those groups: the sum over
the atom is then determined too, and an atom of one person gives their value.

The guarantee: *no combination of the shown counts of this release and of everything released
to the institution's projects determines the size of a group of fewer than the threshold
(but more than none) that the new release touches*. (A group the combination reveals only
jointly with another small group is caught when the two differ by few people, which is the
pairwise rule; the limits are in docs/explanation/output-check.md.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.linalg
import scipy.sparse
from pyroaring import BitMap

from strongroom import sets
from strongroom.enclave import margin
from strongroom.outputs.contributions import places, secret_keys
from strongroom.outputs.verdicts import Finding, Verdict

RULE = "differencing.combinations"
MAX_GROUPS = 4000  # groups in one audit; beyond this it cannot be done quickly: review
_DETERMINED = 1.0 - 1e-6  # P_aa this close to 1: the atom's size is in the row space
_EIGEN_CUTOFF = 1e-9  # relative: eigenvalues below this are the null space of QQᵀ
_TIED = 1e-7  # relative: a group this close to the span of others is a combination of them


@dataclass(frozen=True)
class Exposure:
    """A small group that a combination of released counts determines."""

    size: int
    groups: list[int]  # the positions (in the audited list) of the groups combined


def exposed(groups: Sequence[BitMap], new: Sequence[int], threshold: int, *,
            derived: Collection[int] = ()) -> list[Exposure]:
    """Small atoms determined by ``groups`` that lie in at least one of the ``new`` groups,
    and new groups whose count the others give exactly (an empty atom determined: size 0).

    ``groups`` are the participant sets of every shown count (earlier and new; statistics'
    groups are left to release precision by the caller); ``new`` the positions of this
    release's; ``derived``: new groups that their analysis's earlier cells give by
    construction (a table's margins, a survival table's later numbers at risk), whose tie
    with those cells is the analysis's shape and says nothing about the data. Raises
    :class:`TooManyGroupsError` past ``MAX_GROUPS``.
    """
    if len(groups) > MAX_GROUPS:
        raise TooManyGroupsError(len(groups))
    if not new or not groups or _disjoint(groups):
        return []
    positions, atom_of, sizes, representatives, ids = _atoms(groups)
    membership = _membership(groups, representatives)  # groups × atoms, 0/1
    found = _repeats(membership, new, set(derived))
    # small: below the keyed line of each atom (k to 2k − 1, enclave/margin.py), drawn by its
    # members; at a fixed k, an atom of k − 1 accomplices and the target if obese is the bit
    small = np.flatnonzero((sizes > 0) & (sizes < margin.highest(threshold)))
    if small.size == 0:
        return found
    columns = membership.tocsc()[:, small].toarray()  # groups × atoms that may be small
    determined = _leverage(membership, columns) >= _DETERMINED
    if not determined.any():
        return found
    # only what this release makes known: an atom the earlier groups already determined was
    # known before (and refusing now would refuse every later output for ever)
    earlier = sets.difference(np.arange(len(groups)), np.asarray(new, dtype=np.int64))
    if earlier.size:
        before = _leverage(membership[earlier], columns[earlier]) >= _DETERMINED
        determined &= ~before
    if not determined.any():
        return found
    # the combination itself: y = (QQᵀ)⁺q_a gives Qᵀy = e_a; its non-zero terms are the groups
    pseudo = _pseudo_inverse((membership @ membership.T).toarray().astype(np.float64))
    for j in np.flatnonzero(determined).tolist():
        weights = pseudo @ columns[:, j]
        used = np.flatnonzero(np.abs(weights) > 1e-9 * max(np.abs(weights).max(), 1.0))
        # one group, or two that differ by a few: the threshold and the pairwise rules speak;
        # past them, each atom by its own keyed line. Groups are counted as distinct sets:
        # the least-norm combination spreads over copies, and copies of "everyone with the
        # target" beside copies of "everyone but the target" made three where there are two
        # (so the audit acted only when the target's BMI lay inside a grid of cuts)
        atom = int(small[j])
        distinct = {frozenset(membership.indices[membership.indptr[g]:membership.indptr[g + 1]])
                    for g in used.tolist()}
        if len(distinct) >= 3 and margin.short(int(sizes[atom]), threshold, "atom",
                                           members=_members_of(atom, columns[:, j], positions,
                                                               atom_of, ids)):
            found.append(Exposure(int(sizes[atom]), used.tolist()))
    return found


def _repeats(membership: scipy.sparse.csr_matrix, new: Sequence[int], derived: set[int]
             ) -> list[Exposure]:
    """New groups whose count adding and subtracting other shown counts gives exactly.

    Such a count says nothing new, yet it must be hidden: where a combination of three
    releases is one person when the target has an attribute, it is nobody (the counts add
    up) when they have not, and a rule that hid only the first would answer "has the target
    the attribute?" (the pairwise rule hides a repeat for the same reason). So an empty atom
    determined is treated as a small one. Groups are taken earlier first, then the new ones
    in order; a group in the span of those before it completes a tie, and is the one
    reported (as the last new group of an exposure is).

    A ``derived`` group tied to its own analysis's groups before it alone (a margin to its
    cells) is that analysis's shape, not the data's, and passes. Only a derived one: three
    groups of one survival table, G1 with the target if obese, G2 and G1 with G2, tie when
    the target is lean and expose them when obese, and passing every tie among an
    analysis's own groups passed the first and hid the second. Any other tie the data make
    among its groups (or with earlier ones) is met first at a group that is not derived (the
    derived ones follow the cells they are made of), and hidden there."""
    keys = [membership.indices[membership.indptr[g]:membership.indptr[g + 1]].tobytes()
            for g in range(membership.shape[0])]
    # a copy is its first instance (the pairwise rules speak)
    first = _first_instances(keys, range(len(keys)))
    fresh = set(new)
    old = [g for g in first.values() if g not in fresh]
    mine = [g for g in sorted(fresh) if keys[g] and first[keys[g]] == g]
    if len(mine) + len(old) < 3:
        return []
    tied = _ties(membership, [*old, *mine])
    if derived & tied.keys():
        # its own shape: ties among its own groups, a group that repeats an earlier one
        # included (a survival table's first number at risk is the count of its group)
        shape = _ties(membership, list(_first_instances(keys, sorted(fresh)).values()))
        tied = {g: used for g, used in tied.items() if g not in derived or g not in shape}
    return [Exposure(0, sorted(used)) for g, used in tied.items() if g in fresh]


def _first_instances(keys: list[bytes], order: Iterable[int]) -> dict[bytes, int]:
    """Each distinct non-empty group of ``order`` (by its atoms), at its first position."""
    first: dict[bytes, int] = {}
    for g in order:
        if keys[g]:
            first.setdefault(keys[g], g)
    return first


def _ties(membership: scipy.sparse.csr_matrix, order: list[int]) -> dict[int, list[int]]:
    """Each group of ``order`` in the span of those before it, with the groups of that
    combination (itself included): a greedy Cholesky factorisation of their Gram matrix."""
    rows = membership[order]
    gram = (rows @ rows.T).toarray().astype(np.float64)
    lower = np.zeros_like(gram)
    basis: list[int] = []
    tied: dict[int, list[int]] = {}
    for i, g in enumerate(order):
        factor = lower[:len(basis), :len(basis)]
        y = (scipy.linalg.solve_triangular(factor, gram[basis, i], lower=True)
             if basis else np.zeros(0))
        rest = gram[i, i] - float(y @ y)
        if rest > _TIED * max(gram[i, i], 1.0):
            lower[len(basis), :len(basis)] = y
            lower[len(basis), len(basis)] = np.sqrt(rest)
            basis.append(i)
            continue
        weights = scipy.linalg.solve_triangular(factor.T, y, lower=False)
        used = [order[basis[b]] for b in np.flatnonzero(np.abs(weights) > 1e-9)]
        tied[g] = [*used, g]
    return tied


def _members_of(atom: int, column: npt.NDArray[np.float64],
                positions: list[npt.NDArray[np.integer]], atom_of: npt.NDArray[np.integer],
                ids: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
    """An atom's participants (their master IDs, the same in every audit, so that an atom
    meets the same keyed line however the releases around it change), read from one group
    that holds it."""
    group = positions[int(np.flatnonzero(column)[0])]
    return np.asarray(ids[group[atom_of[group] == atom]], dtype=np.int64)


def _leverage(q: scipy.sparse.csr_matrix, columns: npt.NDArray[np.float64]
              ) -> npt.NDArray[np.float64]:
    """Each column's diagonal entry of the projection onto the row space of ``q``."""
    pseudo = _pseudo_inverse((q @ q.T).toarray().astype(np.float64))
    return np.asarray(np.einsum("ga,gh,ha->a", columns, pseudo, columns), dtype=np.float64)


class TooManyGroupsError(Exception):
    def __init__(self, count: int):
        super().__init__(f"{count} released groups")
        self.count = count


def _disjoint(groups: Sequence[BitMap]) -> bool:
    """Whether the distinct groups share no one (then each group is an atom, and a group is
    shown only when large enough: nothing to audit). Counted, not built."""
    distinct: list[BitMap] = []
    by_size: dict[int, list[BitMap]] = {}
    for group in groups:
        same = by_size.setdefault(len(group), [])
        if not any(group == other for other in same):
            same.append(group)
            distinct.append(group)
    total = sum(len(g) for g in distinct)
    return total == len(BitMap.union(BitMap(), *distinct))


def _atoms(groups: Sequence[BitMap]) -> tuple[
        list[npt.NDArray[np.integer]], npt.NDArray[np.integer], npt.NDArray[np.int64],
        npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """Each group's members (as places among everyone in a group), each place's atom (by a
    random 64-bit word per group, summed), the atoms' sizes, one member of each atom, and
    everyone's master IDs (by place).

    The words are secret and drawn afresh (contributions.secret_keys); the sums are kept by
    place, an array the size of the groups' union, not of the ID space (two arrays of ten
    million zeroed for every audit took most of its time)."""
    ids = np.frombuffer(BitMap.union(BitMap(), *groups).to_array(), dtype=np.uint32)
    place = places(ids.astype(np.int64))
    positions = [place(np.frombuffer(g.to_array(), dtype=np.uint32)) for g in groups]
    # drawn afresh, after the groups: known weights (a fixed seed in public code) would let
    # a researcher choose groups whose sums collide, merging a small atom into a large one
    weights = secret_keys(len(groups))
    signature = np.zeros(ids.size, dtype=np.uint64)
    for at, weight in zip(positions, weights, strict=True):
        signature[at] += weight  # wraps modulo 2⁶⁴: a sum of random words, collisions ~2⁻⁶⁴
    # hash-based factorising: linear in the participants (a sort would be n log n)
    codes, _ = pd.factorize(signature)
    sizes = np.bincount(codes).astype(np.int64)
    first = np.empty(sizes.size, dtype=np.int64)
    first[codes[::-1]] = np.arange(codes.size - 1, -1, -1)  # the last write is the first
    return positions, codes, sizes, ids[first], ids


def _membership(groups: Sequence[BitMap], representatives: npt.NDArray[np.uint32]
                ) -> scipy.sparse.csr_matrix:
    """Groups × atoms, 0/1. The members of an atom are in exactly the same groups, so a
    group holds an atom when it holds the atom's one member ``representatives`` names: a
    small set meets each group (no pass over the groups' members)."""
    order = np.argsort(representatives)
    ordered = representatives[order]
    few = BitMap(ordered)
    rows, cols = [], []
    for g, group in enumerate(groups):
        inside = np.frombuffer((group & few).to_array(), dtype=np.uint32)
        rows.append(np.full(inside.size, g, dtype=np.int64))
        cols.append(order[np.searchsorted(ordered, inside)])
    row = np.concatenate(rows) if rows else np.empty(0, np.int64)
    col = np.concatenate(cols) if cols else np.empty(0, np.int64)
    data = np.ones(row.size, dtype=np.float64)
    return scipy.sparse.csr_matrix((data, (row, col)),
                                   shape=(len(groups), representatives.size))


def _pseudo_inverse(gram: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    values, vectors = np.linalg.eigh(gram)
    cutoff = _EIGEN_CUTOFF * max(float(values.max(initial=0.0)), 1.0)
    keep = values > cutoff
    return np.asarray((vectors[:, keep] / values[keep]) @ vectors[:, keep].T, dtype=np.float64)


def findings(exposures: list[Exposure], labels: Sequence[str], threshold: int,
             new_positions: dict[int, int]) -> list[Finding]:
    """One block per exposure, naming the new cells involved (never the group's size)."""
    out = []
    for exposure in exposures:
        if len(exposure.groups) < 3:
            continue  # one group, or two that differ by a few: the pairwise rules speak
        mine = [labels[g] for g in exposure.groups if g in new_positions]
        # the last new group: the one a tie reports too, so the same cell goes either way
        cell = max((new_positions[g] for g in exposure.groups if g in new_positions),
                   default=None)
        others = len(exposure.groups) - len(mine)
        out.append(Finding(
            RULE, Verdict.BLOCK,
            f"adding and subtracting the counts of {', '.join(repr(m) for m in mine[:3])}"
            f"{' …' if len(mine) > 3 else ''} and {others} group{'s' if others != 1 else ''} "
            f"released earlier gives the size of a group of fewer than {threshold} "
            "participants, perhaps none (and, with their sums or means, the values of those "
            "few): it is not shown, as a count that follows from the others is not either; "
            "group differently or drop one of the groups", cell))
    return out
