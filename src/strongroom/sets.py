"""Sets of integers (participant IDs, record positions, codes) as sorted NumPy arrays.

NumPy 2.3 made ``np.unique(values)`` (values only, no ``return_*``) find integers through a
hash table, and ``union1d``, ``intersect1d`` and ``setdiff1d`` call it. On this project's
machines that path is about a hundred times slower than sorting for arrays of many distinct
integers (a million participant IDs: 0.65 s against 0.006 s; eleven million: 12 s), and every
output check builds such sets. These functions give the same answers by sorting; a test
keeps the product from calling the slow forms (``tests/unit/test_sets.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

_SIGN = np.uint64(1 << 63)  # int64 to uint64 keeping their order: the sign bit flipped


def distinct(values: npt.ArrayLike) -> np.ndarray:
    """The sorted distinct values (``np.unique(values)``'s answer)."""
    flat = np.asarray(values).ravel()
    if flat.dtype.kind not in "biu":  # floats (NaNs collapse), strings, objects: NumPy's own
        return np.unique(flat, return_counts=True)[0]
    ordered = np.sort(flat)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def union(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """The sorted distinct values in either (``np.union1d``'s answer)."""
    return distinct(np.concatenate([np.asarray(a).ravel(), np.asarray(b).ravel()]))


def intersection(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """The sorted distinct values in both (``np.intersect1d``'s answer)."""
    return np.intersect1d(distinct(a), distinct(b), assume_unique=True)


def difference(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """The sorted distinct values of ``a`` not in ``b`` (``np.setdiff1d``'s answer)."""
    return np.setdiff1d(distinct(a), distinct(b), assume_unique=True)


def within(values: npt.ArrayLike, among: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each of ``values`` is one of ``among`` (``np.isin``'s answer): by a sorted
    search for integers, where ``np.isin`` of integers far apart takes its hashed path."""
    found = np.asarray(values)
    pool = np.asarray(among)
    if found.dtype.kind not in "biu" or pool.dtype.kind not in "biu" \
            or found.dtype != pool.dtype:
        return np.isin(found, pool)
    ordered = distinct(pool)
    if len(ordered) == 0:
        return np.zeros(found.shape, dtype=np.bool_)
    at = np.minimum(np.searchsorted(ordered, found), len(ordered) - 1)
    return np.asarray(ordered[at] == found, dtype=np.bool_)


def bitmap(values: npt.ArrayLike) -> BitMap64:
    """int64 values as a compressed bitmap (Roaring): about a bit per value where they are
    dense (five million 7-digit IDs: 1.1 MB, where their array takes 40 MB)."""
    return BitMap64(np.ascontiguousarray(values, dtype=np.int64).view(np.uint64) ^ _SIGN)


def bitmap_values(members: BitMap64) -> npt.NDArray[np.int64]:
    """A :func:`bitmap`'s values, sorted."""
    return (np.frombuffer(members.to_array(), dtype=np.uint64) ^ _SIGN).view(np.int64)
