"""Value-aware differencing: two statistics whose contributions differ for only a few people.

Set differencing compares *who* is behind two cells. It misses two sums over exactly the same
participants where one participant's value was changed by the SQL (``CASE WHEN <picks them>
THEN 0 ELSE bmi END``): the sets are equal, and the difference of the sums is that person's
value. Here each statistic is a vector: every contributor's own total of what was summed
(``Cell.values``), in master-ID space. An attacker may combine two released statistics and the
counts of the groups they know, so the guarantee is: *no two released statistics A and B are
such that a·A − b·B − c·(count of a known group) is a sum over fewer than the threshold of
participants*. Concretely, with I the participants behind both, A′ and B′ those behind only
one:

- on I, the contributions are fitted as ``a = α·b + β`` (exactly, for as many participants as
  possible: the identity, then lines through pairs drawn at random, then pure scalings);
- on A′ (and B′), every contribution but the most common one counts (a constant is removed
  with the group's count);
- the participants left over are those whose own values the combination would disclose. If
  there are some, but they fall short of the threshold's keyed line (k plus a margin drawn
  per pair, ``enclave.margin``: at a fixed k, k − 1 accomplices and the target left over
  only if the target is obese is a bit), the two clash.

Two statistics of one kind (``kind_of``: two means, say) clash identical too: a repeat says
nothing new, and hiding only the one a person apart would tell which it is (a count of
"everyone with the target" beside "everyone with the target if BMI > c" for a grid of c gave
a BMI in one output). Statistics of different kinds or of unrelated
variables or groups leave thousands over.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
from pyroaring import BitMap

from strongroom import sets
from strongroom.enclave import margin
from strongroom.enclave.spans import column_basis
from strongroom.outputs.verdicts import Finding, Verdict

RULE = "differencing.values"
WITHIN = "differencing.within"  # the service's name for clashes inside one output
TRIALS = 12  # random lines tried per pair; a few leftovers rarely spoil every draw
_ALL_PAIRS = 300  # up to this many pairs of points (25 participants), every line is tried
_RELATIVE = 1e-9  # contributions equal to this relative precision are the same
_SPAN_RELATIVE = 1e-7  # a least-squares fit is exact to about this
_PROBE = 2048  # points each candidate line is tried on first (_best_line)
SAMPLE = 128  # participants drawn to tell unrelated statistics apart before counting exactly
# earlier statistics over exactly the same people fitted at once; past this many the new one
# clashes (fail closed): a window of the most recent would be one a researcher pushes a
# combination out of by releasing fillers between its parts (a GWAS review did, session 18)
MAX_BASIS = 512


@dataclass(frozen=True)
class Vector:
    """One statistic's contributions: sorted master IDs and each one's own total."""

    label: str
    ids: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    # the statistic it is (``kind_of``): two of one kind clash identical too; "" (a fit's
    # variable, or one recorded before kinds were kept) only when some are left over
    kind: str = ""

    @classmethod
    def of(cls, label: str, ids: npt.ArrayLike, values: npt.ArrayLike,
           kind: str = "", order: npt.NDArray[np.intp] | None = None) -> Vector:
        """``order``: ``ids``'s stable argsort, if known (cells over the same participants
        share it; at 500,000 participants a sort costs tens of milliseconds)."""
        order_ids = np.asarray(ids, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float64)
        if order is None:
            order = sorting(order_ids)
        if order is ASCENDING:
            return cls(label, order_ids, vals, kind)
        return cls(label, order_ids[order], vals[order], kind)

    def named(self, label: str, kind: str) -> Vector:
        """The same contributions as another statistic (a variable's SD beside its mean)."""
        again = Vector(label, self.ids, self.values, kind)
        if "_packed" in self.__dict__:
            again.__dict__["_packed"] = self.__dict__["_packed"]
        return again

    def to_bytes(self) -> bytes:
        """The IDs as gaps (small numbers, since they are sorted) and the values, compressed
        by Zstandard: a vector of 500,000 is about 1 MB and 20 ms, where zlib took 80 ms.
        Made once (kept with the output's contributors, then in the ledger at release)."""
        return self._packed

    @cached_property
    def _packed(self) -> bytes:
        return _pack(self.ids, self.values)

    @classmethod
    def from_bytes(cls, label: str, data: bytes, kind: str = "") -> Vector:
        """Either form: compact (above) or the plain one vectors were kept in before."""
        if data[:len(_COMPACT)] == _COMPACT:
            n = int.from_bytes(data[len(_COMPACT):len(_COMPACT) + 8], "big")
            plain = pa.Codec("zstd").decompress(data[len(_COMPACT) + 8:],
                                                decompressed_size=12 * n, asbytes=True)
            gaps = np.frombuffer(plain, dtype="<u4", count=n)
            ids = np.cumsum(gaps, dtype=np.uint32).astype(np.int64)
            values = np.frombuffer(plain, dtype="<f8", count=n, offset=4 * n)
            read = cls(label, ids, values.astype(np.float64), kind)
            read.__dict__["_packed"] = data  # as it was made
            return read
        n = int.from_bytes(data[:8], "big")
        ids = np.frombuffer(data, dtype="<u4", count=n, offset=8).astype(np.int64)
        values = np.frombuffer(data, dtype="<f8", count=n, offset=8 + 4 * n).astype(np.float64)
        return cls(label, ids, values, kind)


_COMPACT = b"SRV\x02"  # a compact vector; plain ones began with their length's zero bytes


def _pack(ids: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> bytes:
    gaps = np.diff(ids, prepend=0).astype("<u4")  # modulo 2³², undone by cumsum
    plain = gaps.tobytes() + values.astype("<f8").tobytes()
    packed: bytes = pa.Codec("zstd", compression_level=1).compress(plain, asbytes=True)
    return _COMPACT + len(ids).to_bytes(8, "big") + packed


def pack_ahead(vectors: Sequence[Vector], pool: Executor) -> Callable[[], None]:
    """Pack ``vectors`` (each pair of arrays once) on ``pool``'s threads, beside whatever the
    caller does next; the call returned waits for them and keeps each with its vector, as
    ``to_bytes`` would have made it. Zstandard releases the GIL, so two pack at once on two
    cores; ``cached_property`` would not let them (its lock, in Python 3.11, is one for
    every vector)."""
    pending: dict[tuple[int, int], tuple[Vector, Future[bytes]]] = {}
    for vector in vectors:
        pair = (id(vector.ids), id(vector.values))
        if "_packed" not in vector.__dict__ and pair not in pending:
            pending[pair] = (vector, pool.submit(_pack, vector.ids, vector.values))

    def kept() -> None:
        for vector, packing in pending.values():
            vector.__dict__["_packed"] = packing.result()

    return kept


ASCENDING: npt.NDArray[np.intp] = np.empty(0, dtype=np.intp)  # "already in order"


def sorting(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """The stable order that sorts ``ids`` (``ASCENDING``, checked in one pass, when they
    are in order already)."""
    if ids.size < 2 or bool(np.all(ids[1:] >= ids[:-1])):
        return ASCENDING
    return np.argsort(ids, kind="stable")


def kind_of(kind: str, level: float | None = None) -> str:
    """The kind a statistic is compared as: sums and means (and counts of rows) are one
    linear kind, since a mean times its group's count is a sum; an SD its own; a quantile by
    its probability (quartiles of one variable are three quantiles of the same values, and
    fifty medians named apart are one kind)."""
    if kind in ("sum", "mean", "count"):
        return "linear"
    if kind in ("median", "quantile"):
        return f"quantile {0.5 if level is None else level:.6g}"
    return kind[:40]


def leftover(a: Vector, b: Vector, threshold: int, upto: int | None = None) -> int:
    """How many participants' values a combination of ``a`` and ``b`` isolates, at best.

    Returns the smallest number found (0: the two say the same thing); only numbers below
    ``upto`` (the highest keyed line, default the threshold) need to be exact, so the search
    stops early once it is clear. A winsorised bound is held by at least ``threshold``.
    """
    upto = threshold if upto is None else upto
    if _clearly_apart(a, b, upto):
        return upto  # a sample shows too many left over to be worth counting
    if a.ids is b.ids or (a.ids.size == b.ids.size and np.array_equal(a.ids, b.ids)):
        # the same people (a study's fits, each over its population): nobody outside, and
        # no merge of the lists (20 ms each at 500,000)
        return _best_line(a.values, b.values, threshold, upto) if a.ids.size else 0
    both, in_a, in_b = np.intersect1d(a.ids, b.ids, assume_unique=True, return_indices=True)
    only_a = np.delete(a.values, in_a)
    only_b = np.delete(b.values, in_b)
    outside = _off_mode(only_a) + _off_mode(only_b)
    if outside >= upto or both.size == 0:
        return outside
    return outside + _best_line(a.values[in_a], b.values[in_b], threshold, upto - outside)


def _clearly_apart(a: Vector, b: Vector, threshold: int) -> bool:
    """Whether a random sample of ``a``'s participants already leaves many off any fit.

    If fewer than ``threshold`` of n participants were left over, a sample of ``SAMPLE``
    would hold about SAMPLE·threshold/n of them; holding four times that (and at least 16)
    means the statistics are unrelated, and the exact count (a merge of both lists) is spared.
    """
    n = a.ids.size
    if n < 4 * SAMPLE:
        return False
    rng = np.random.default_rng(n)
    pick = np.sort(rng.choice(n, SAMPLE, replace=False))
    ids, values = a.ids[pick], a.values[pick]
    at = np.minimum(np.searchsorted(b.ids, ids), max(b.ids.size - 1, 0))
    found = (b.ids[at] == ids) if b.ids.size else np.zeros(SAMPLE, dtype=bool)
    # a sample holds few of a bound's k: any bound it shows moves with the bounds (fewer
    # off, so "apart" is said less often and the exact count decides)
    off = _off_mode(values[~found]) + (_best_line(values[found], b.values[at[found]], 1)
                                       if found.any() else 0)
    return off > max(16, 4 * SAMPLE * threshold / n)


def _off_mode(values: npt.NDArray[np.float64]) -> int:
    """Values that differ from the most common one (a constant is known from a count)."""
    if values.size == 0:
        return 0
    _, counts = np.unique(values, return_counts=True)
    return int(values.size - counts.max())


def _best_line(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], held: int,
               upto: int | None = None) -> int:
    """The fewest points off a line ``x = α·y + β`` (any α, β), searched as RANSAC does;
    those at a bound held by ``held`` or more in both are not off (see _with_the_bounds).
    Exact below ``upto``; a number at or above it may be any number at or above it."""
    n = x.size
    off = _Lines(x, y, held, upto).off
    best = off(1.0, 0.0)
    if best == 0 or n < 2:
        return best
    if _constant(y):  # x must be constant too
        return min(best, _off_mode(x))
    rng = np.random.default_rng(n)  # deterministic: the same outputs, the same answer
    # a few participants: every pair (12 random pairs missed the line through 11 of 20, one
    # time in seventy); many: pairs drawn at random, as RANSAC does
    pairs = (list(itertools.combinations(range(n), 2)) if n * (n - 1) // 2 <= _ALL_PAIRS
             else [_apart(y, int(i), int(j), rng)
                   for i, j in rng.integers(0, n, size=(TRIALS, 2))])
    for i, j in pairs:
        if y[i] == y[j]:
            continue
        alpha = (x[i] - x[j]) / (y[i] - y[j])
        best = min(best, off(alpha, x[i] - alpha * y[i]))
        if y[i] != 0:
            best = min(best, off(x[i] / y[i], 0.0))
        if best == 0:
            break
    return best


def _constant(y: npt.NDArray[np.float64]) -> bool:
    """Whether ``y`` holds one value (NaNs alike, as ``np.unique`` counts them), in one pass:
    ``np.unique`` sorted or hashed all of it for this (numpy 2.4 hashes, ten times slower
    than a sort on 500,000 distinct numbers)."""
    return bool(np.all(y == y[0])) or bool(np.isnan(y).all())


def _apart(y: npt.NDArray[np.float64], i: int, j: int, rng: np.random.Generator
           ) -> tuple[int, int]:
    """``(i, j)``, or where ``y`` is the same at both, ``j`` drawn again among those whose
    ``y`` differs from ``i``'s: a line needs two values, and in a column constant but for a
    few (a crafted one of accomplices at three levels) two drawn at random hardly ever
    differ."""
    if y[i] != y[j]:
        return i, j
    other = np.flatnonzero(y != y[i])
    return (i, int(rng.choice(other))) if other.size else (i, j)


class _Lines:
    """Counts the points off lines ``x = α·y + β`` as the pairwise audit does: not those at a
    bound held by ``held`` in both (_with_the_bounds), nor those a clip alone put off the
    line (_off). Exact below ``upto``: each line is tried on a probe of the points first;
    those off it among the probe are off it among all, so a line the probe already puts
    ``upto`` off cannot be one that isolates fewer, and its exact count is spared (most
    lines, between unrelated statistics at 500,000 participants)."""

    def __init__(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], held: int,
                 upto: int | None = None) -> None:
        n = x.size
        self.x, self.y, self.upto = x, y, upto
        self.bounded = _with_the_bounds(x, [y], held)
        self.edges = (_at_a_bound(x, held), _at_a_bound(y, held)) if n > 2 else None
        self.ranges = _ranges(x, y) if n else None
        probe = _probe(n) if upto is not None else None
        self.probed = None if probe is None else (
            x[probe], y[probe], self.bounded[probe],
            self.edges and (self.edges[0][probe], self.edges[1][probe]))

    def off(self, alpha: float, beta: float) -> int:
        if self.probed is not None and self.upto is not None:
            x, y, bounded, edges = self.probed
            if _off(x, y, alpha, beta, bounded, edges, self.ranges) >= self.upto:
                return self.upto
        return _off(self.x, self.y, alpha, beta, self.bounded, self.edges, self.ranges)


def _probe(n: int) -> npt.NDArray[np.int64] | None:
    """The points a candidate line or fit is tried on first (None: few enough to count all);
    drawn by ``n`` alone, so the same outputs are decided alike."""
    if n <= 4 * _PROBE:
        return None
    return np.random.default_rng(n).choice(n, _PROBE, replace=False)


def _ranges(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
            ) -> tuple[float, float, float, float]:
    return float(x.min()), float(x.max()), float(y.min()), float(y.max())


def _off(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], alpha: float,
         beta: float, bounded: npt.NDArray[np.bool_],
         edges: tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]] | None = None,
         ranges: tuple[float, float, float, float] | None = None) -> int:
    """How many are off the line, not counting those whom the clips alone put off it.

    Each statistic is clipped at its own keyed rank (enclave/margin.py, winsor.rank), so the
    same values clipped at the 12th and at the 17th largest differ for those between: such a
    point lies where clipping the line's value to x's bounds, or x to the line's bounds of y,
    would put it. The target of "a value zeroed, then clipped" does not (their raw value is
    inside the other's bounds), and is counted. ``ranges``: x's and y's lowest and highest
    (when x and y are a part of the points: the clips are the whole vectors')."""
    fitted = alpha * y + beta
    scale = np.abs(x) + np.abs(fitted) + 1.0
    tolerance = _RELATIVE * scale
    off = np.abs(x - fitted) > tolerance
    if off.any() and edges is not None:
        # only a point at its own vector's bound (held by the threshold: a clip's) can have
        # been put there by a clip
        here, there = edges
        x_low, x_high, y_low, y_high = ranges or _ranges(x, y)
        ends = sorted((alpha * y_low + beta, alpha * y_high + beta))
        clipped_here = here & (np.abs(np.clip(fitted, x_low, x_high) - x) <= tolerance)
        clipped_there = there & (np.abs(np.clip(x, ends[0], ends[1]) - fitted) <= tolerance)
        off &= ~(clipped_here | clipped_there)
    return int(np.count_nonzero(off & ~bounded))


def _at_a_bound(v: npt.NDArray[np.float64], held: int) -> npt.NDArray[np.bool_]:
    """Those at ``v``'s lowest or highest value when ``held`` or more share it (a clip's)."""
    at = np.zeros(v.size, dtype=np.bool_)
    for edge in (v == v.min(), v == v.max()):
        if int(np.count_nonzero(edge)) >= held:
            at |= edge
    return at


def _with_the_bounds(x: npt.NDArray[np.float64], others: Sequence[npt.NDArray[np.float64]],
                     held: int) -> npt.NDArray[np.bool_]:
    """The participants at a winsorised bound of ``x`` and of every one of ``others``.

    Contributions are winsorised (enclave/winsor.py): at least k hold each bound (everyone
    clipped to it, and its owner), and when one person moves past it the bound moves to the
    next value and the k − 1 others with it. Those at such a bound in every release carry
    bounds, not their own values, so a fit of one release by the others discloses nothing
    of them and they are not counted off it. One at a bound of some releases only still is
    (a value zeroed, then clipped: its raw value is in the others); so is one at an extreme
    held by fewer than ``held`` (the threshold), which is no clip's bound but their value."""
    found = np.zeros(x.size, dtype=np.bool_)
    if x.size <= 2:
        return found
    # at the same end in every release: one at the top of one and the bottom of another has
    # been moved, not clipped (a GWAS's trait set to its top clip, then its bottom, for one)
    low, high = np.ones(x.size, dtype=np.bool_), np.ones(x.size, dtype=np.bool_)
    for v in (x, *others):
        low &= _at_end(v, held, v.min())
        high &= _at_end(v, held, v.max())
    return low | high


def _at_end(v: npt.NDArray[np.float64], held: int, end: float) -> npt.NDArray[np.bool_]:
    """Those at ``end`` of ``v`` when ``held`` or more share it (a clip's bound)."""
    at = v == end
    return at if int(np.count_nonzero(at)) >= held else np.zeros(v.size, dtype=np.bool_)


def clashes(news: list[Vector], earlier: list[Vector], threshold: int, *,
            within: bool) -> list[tuple[int, str, int]]:
    """(position in ``news``, the other's label, participants isolated) for every clash.

    ``within``: also compare the new statistics with each other (one output's own cells),
    but never one fit's variables with each other (see ``_own_fit``).
    """
    found: list[tuple[int, str, int]] = []
    top = margin.highest(threshold)  # counted exactly up to the highest line a pair can draw
    for i, new in enumerate(news):
        others = list(earlier) + ([o for o in news[i + 1:] if not _own_fit(new, o)]
                                  if within else [])
        for other in others:
            if not (_may_overlap(new, other) and _comparable(new, other)):
                continue
            isolated = leftover(new, other, threshold, top)
            if (isolated == 0 and new.kind) or _short(
                    isolated, threshold, WITHIN if within else RULE, new, other):
                # two statistics of one kind clash identical too: the later repeats the
                # earlier, and hiding it only when one person apart would say which it is
                found.append((i, other.label, isolated))
                break
    return found


def span_clashes(news: list[Vector], earlier: list[Vector], threshold: int
                 ) -> list[tuple[int, str, int]]:
    """Clashes with *combinations* of several statistics over the same participants.

    Three sums over the same people, x, x + z and z with one person's z changed, differ
    pairwise everywhere, yet (x + z) − x − z′ is that person's value. For each new statistic,
    the earlier statistics of its kind (and the new ones before it) over exactly the same
    participants form a basis; the new one is fitted as a combination of them plus a
    constant, exactly, on a few participants drawn at random (as RANSAC does), and the
    participants off that fit are counted. Between 1 and k − 1 of them is a clash: the
    combination isolates them. None is a clash too, for a statistic: it follows from the
    others, and showing it only then would say whether the one person's z was changed.
    """
    found: list[tuple[int, str, int]] = []
    pool = list(earlier)
    mine = {id(v) for v in news}
    for i, new in enumerate(news):
        same = [o for o in pool if _family(o) == _family(new) and _comparable(o, new)
                and not (id(o) in mine and _own_fit(new, o))
                and o.ids.size == new.ids.size and np.array_equal(o.ids, new.ids)]
        if len(same) > MAX_BASIS:
            found.append((i, f"{len(same)} statistics over exactly these participants, more "
                             f"than the {MAX_BASIS} that can be weighed together", 0))
            pool.append(new)
            continue
        if len(same) >= 2:
            isolated = _off_span(new.values, [o.values for o in same], threshold,
                                 margin.highest(threshold))
            if (isolated == 0 and new.kind) or _short(isolated, threshold, "span", new):
                found.append((i, " + ".join(repr(o.label) for o in same[:3])
                              + (" …" if len(same) > 3 else ""), isolated))
        pool.append(new)
    return found


def _off_span(x: npt.NDArray[np.float64], basis: list[npt.NDArray[np.float64]],
              threshold: int, upto: int) -> int:
    """The fewest points off an exact fit of ``x`` by ``basis`` and a constant (exact below
    ``upto``; bounds held by ``threshold``).

    A fit that is one earlier statistic's line (every other column's weight negligible) is
    counted as the pairwise audit counts that line, clips and all: two fits winsorise a
    variable at their own keyed ranks, so the same ages differ for the few between the
    ranks, and only the clips put them off (the pairwise audit excuses them; here they
    blocked an honest Poisson model after a logistic one, one time in four). A fit of
    several columns excuses a point only as one variable clipped several ways: its weights
    add up to 1 and its constant is 0, one value clipped by x's bounds and each weighed
    column's gives all their values there (``_Clips``), cut at one end: a third model's age
    beside two earlier ones. A target whose value is moved inside any of them, or a
    column's clip borrowed for another's value (age top-coded at 60 beside age), is
    counted."""
    basis = _distinct(basis)
    columns = np.column_stack([*basis, np.ones_like(x)])
    n, p = columns.shape
    if n < p + 4:
        return int(n)  # too few participants to fit: the pairwise and threshold rules speak
    rng = np.random.default_rng(n * 31 + p)
    bounded = _with_the_bounds(x, basis, threshold)  # as for pairs: they move with them
    # as for lines (_best_line): each fit is tried on a probe of the points first, and one
    # that already leaves ``upto`` off there cannot be one that leaves fewer
    probe = _probe(n)
    if probe is not None:
        probed = (columns[probe], x[probe], bounded[probe])
    reach = np.abs(columns[:, :-1]).max(axis=0)  # how far each column can move a point
    lines: dict[int, _Lines] = {}
    x_scale = float(np.abs(x).max(initial=0.0)) + 1.0
    clips: _Clips | None = None  # made when a fit first weighs several columns

    def explained(fit: npt.NDArray[np.float64], weighed: list[int],
                  among: npt.NDArray[np.int64] | None = None
                  ) -> Callable[[npt.NDArray[np.intp]], npt.NDArray[np.bool_]] | None:
        # only a fit that gives back an unclipped value unchanged (weights adding up to 1,
        # no constant: one variable as several fits clipped it) has clips to excuse; any
        # other leaves each excused point a function of its own value (the third red team:
        # weights adding up to 2, or 1 and −1, over points no column clips)
        nonlocal clips
        if not weighed or abs(float(fit[weighed].sum()) - 1.0) > _ONE or abs(
                float(fit[-1])) > _CONSTANT * x_scale:
            return None
        if clips is None:
            clips = _Clips([x, *basis], threshold)
        return clips.consistent(weighed, among)

    best = n
    for _ in range(TRIALS // 2):
        rows = _determining(columns, rng.choice(n, size=min(n, 2 * p + 4), replace=False),
                            reach, rng)
        fit = np.asarray(np.linalg.lstsq(columns[rows], x[rows], rcond=None)[0],
                         dtype=np.float64)
        weighed = _weighed(fit, reach)
        if len(weighed) == 1:
            one = weighed[0]
            if one not in lines:
                lines[one] = _Lines(x, basis[one], threshold, upto)
            count = lines[one].off(float(fit[one]), float(fit[-1]))
        else:
            # several columns: a point is not off where one value, clipped by x's bounds
            # and by each weighed column's own, gives all their values there (the same
            # variable as several fits clipped it at their own ranks); a constant (none
            # weighed) excuses no one
            if probe is not None and _off_fit(*probed, fit,
                                              explained(fit, weighed, probe)) >= upto:
                continue
            count = _off_fit(columns, x, bounded, fit, explained(fit, weighed))
        best = min(best, count)
        if best < upto:
            break
    return int(best)


class _Clips:
    """Where each vector's clips lie: its lowest and highest values, and who holds them
    when ``held`` or more do (a clip's bound, as for pairs)."""

    def __init__(self, vectors: list[npt.NDArray[np.float64]], held: int) -> None:
        self.vectors = vectors
        self.ends = [(float(v.min()), float(v.max()), _at_end(v, held, v.min()),
                      _at_end(v, held, v.max())) for v in vectors]

    def consistent(self, weighed: list[int], among: npt.NDArray[np.int64] | None = None
                   ) -> Callable[[npt.NDArray[np.intp]], npt.NDArray[np.bool_]]:
        """For points ``at``: whether one value v gives x's value and each weighed
        column's (x is vector 0, column j vector j + 1), each its own clip of v: v itself
        where a vector is inside its bounds, at least its top where it holds its top, at
        most its bottom where it holds its bottom. Direction-aware, and a vector that holds
        a point's own value fixes v: a target moved inside any vector is no clip's."""
        which = [0, *(j + 1 for j in weighed)]

        def at(places: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
            """``places`` among all points, or among ``among`` (a probe's) if given."""
            points = places if among is None else among[places]
            low = np.full(points.size, -np.inf)
            high = np.full(points.size, np.inf)
            topped = np.zeros(points.size, dtype=np.bool_)
            bottomed = np.zeros(points.size, dtype=np.bool_)
            for i in which:
                values = self.vectors[i][points]
                bottom, top, at_bottom, at_top = self.ends[i]
                lows, tops = at_bottom[points], at_top[points]
                inside = ~(lows | tops)
                topped |= tops & ~lows
                bottomed |= lows & ~tops
                low = np.where(inside, np.maximum(low, values), low)
                high = np.where(inside, np.minimum(high, values), high)
                low = np.where(tops, np.maximum(low, top), low)
                high = np.where(lows, np.minimum(high, bottom), high)
            scale = (np.abs(np.where(np.isfinite(low), low, 0.0))
                     + np.abs(np.where(np.isfinite(high), high, 0.0)) + 1.0)
            # clips of one variable cut one end each time: a point at one vector's top
            # and another's bottom lies between bounds no clip of one variable puts there
            return np.asarray((low <= high + _RELATIVE * scale) & ~(topped & bottomed))

        return at


def _distinct(basis: list[npt.NDArray[np.float64]]) -> list[npt.NDArray[np.float64]]:
    """``basis`` without repeats: two fits of one cohort read the same BMI, and a column
    twice splits its weight between the copies however it likes (a fit that weighs one
    variable then seemed to weigh two). Told apart by a few values first, then whole."""
    kept: list[npt.NDArray[np.float64]] = []
    seen: dict[bytes, list[npt.NDArray[np.float64]]] = {}
    for column in basis:
        head = np.ascontiguousarray(column[:: max(1, column.size // 64)]).tobytes()
        alike = seen.setdefault(head, [])
        if not any(other is column or np.array_equal(other, column) for other in alike):
            alike.append(column)
            kept.append(column)
    return kept


def _determining(columns: npt.NDArray[np.float64], rows: npt.NDArray[np.int64],
                 reach: npt.NDArray[np.float64], rng: np.random.Generator
                 ) -> npt.NDArray[np.int64]:
    """``rows`` and, where they do not determine the fit as all rows do, a few more that
    do: a column that is constant but for a few participants (or another column's copy but
    for a few) is constant among rows drawn at random, so its weight would be anyone's and
    the fit would put those few off, a count over the line that hid the target among them
    (an earlier fit's variable made of k accomplices and the target at 100, beside age, and
    a new one, age plus it plus the target's value). For each direction the drawn rows do
    not see, two participants it moves are drawn at random among all it moves."""
    scale = np.append(np.where(reach > 0, reach, 1.0), 1.0)
    for _ in range(columns.shape[1]):
        _, singular, vt = np.linalg.svd(columns[rows] / scale, full_matrices=True)
        seen = int(np.count_nonzero(singular > 1e-9 * max(float(singular.max(initial=0)),
                                                            1e-300)))
        if seen == vt.shape[0]:
            return rows
        # how far each participant moves along the unseen directions (columns scaled to at
        # most 1, directions of unit length: at most √p; rounding, about 1e-16)
        with np.errstate(invalid="ignore", over="ignore"):  # an infinite value: moved
            moved = np.abs(columns @ (vt[seen:] / scale).T).max(axis=1)
        movers = np.flatnonzero(moved > 1e-9)
        if movers.size == 0:
            return rows  # collinear in every row too: any weight is the same fit
        rows = sets.union(rows, rng.choice(movers, size=min(2, movers.size), replace=False))
    return rows


_NEGLIGIBLE = 0.1 * _RELATIVE  # what all other columns together may move a point, at most
# a fit's weights add up to 1 to within half the fit's own tolerance, so that what they miss
# by never puts a point off the fit by itself (the fourth red team: weights 1 + 9e-7 put
# targets holding their own values inside every bound off it, and excused them, leaving
# each one's value times 9e-7 in the sums); a constant is the same for everyone, and says
# nothing of anyone, so it is 0 to within a looser share of x's scale
_ONE = 0.5 * _SPAN_RELATIVE
_CONSTANT = 1e-6


def _weighed(fit: npt.NDArray[np.float64], reach: npt.NDArray[np.float64]) -> list[int]:
    """The columns a fit weighs, heaviest first: all but those that together move no point
    by more than a tenth of the pairwise audit's tolerance (so that the fit is theirs). None:
    a constant, which no column's clip explains."""
    weights = np.abs(fit[:-1]) * reach
    if not np.isfinite(weights).all():
        return list(range(weights.size))
    order = np.argsort(-weights, kind="stable")
    # the lightest columns whose weights add up to no more than the negligible
    light = np.cumsum(weights[order][::-1])[::-1] <= _NEGLIGIBLE
    return [int(j) for j in order[~light]]


def _off_fit(columns: npt.NDArray[np.float64], x: npt.NDArray[np.float64],
             bounded: npt.NDArray[np.bool_], fit: npt.NDArray[np.float64],
             clipped: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.bool_]] | None = None
             ) -> int:
    """Points off the fit but for ``bounded`` and, among the rest, those ``clipped``
    (given their places) explains."""
    fitted = columns @ fit
    scale = np.abs(x) + np.abs(fitted) + 1.0
    off = np.flatnonzero((np.abs(x - fitted) > _SPAN_RELATIVE * scale) & ~bounded)
    if clipped is None or off.size == 0:
        return int(off.size)
    return int(np.count_nonzero(~clipped(off)))


def partition_clashes(news: list[Vector], partitions: Sequence[Sequence[BitMap]],
                      threshold: int) -> list[tuple[int, int]]:
    """(position in ``news``, participants isolated) for each statistic that takes one value
    per group whose count is known, but for a few participants.

    A mean whose every contribution is a constant the researcher chose for a group they know
    the count of (80 groups of a released count table, say), but the target's, gives the
    target's value from one release, however the constants change from release to release (an
    attacker's review "zoomed" on a BMI this way in a handful of means, each step set by their
    own error). Each of ``partitions`` (the groups of one release) cuts the statistic's
    participants into cells (those in exactly the same of its groups, and those in none); so
    do all of them together, finest. In each cell of at least k the most common contribution
    is known with the cell's count, so those off it are counted; a smaller cell's count is not
    known (the combination audit sees to it), so all its members are. Between 1 and k − 1 in
    any one cutting is a clash: a target alone in a cell that groups built around them is one,
    and a measured variable is thousands, however finely the releases cut it."""
    found: list[tuple[int, int]] = []
    keys = secret_keys(sum(len(part) for part in partitions))
    # statistics over the same participants (a variable's mean, SD and quantiles) share
    # their cuttings: each is made once per set of participants
    # (by the participants themselves: each statistic holds its own copy of the same ids, and
    # keyed by the copy, a summary after a survival table cut 500,000 people 90 times, 20 s)
    cuttings: dict[bytes, list[npt.NDArray[np.uint64] | None]] = {}
    # and statistics with the same contributions too (a variable's mean and SD) share
    # what each cutting isolates (by the cutting's array: all releases together are one
    # release's cutting when only it cuts them)
    off: dict[tuple[int, bytes], int] = {}
    digests: dict[int, tuple[object, bytes]] = {}

    def digest(array: npt.NDArray[Any]) -> bytes:
        """An array's content, named (statistics share arrays: each is read once)."""
        if id(array) not in digests:
            content = np.round(array, 9) if array.dtype.kind == "f" else array
            digests[id(array)] = (array, hashlib.blake2b(
                np.ascontiguousarray(content).tobytes(), digest_size=16).digest())
        return digests[id(array)][1]

    upto = margin.highest(threshold)
    # the probe's cuttings and counts are shared alike (a summary's ten statistics over the
    # same people cut the same probe: 20 cuttings were a fifth of a table 1 summary's check)
    probes: dict[bytes, _Probe | None] = {}
    apart: dict[tuple[bytes, bytes], bool] = {}
    for i, new in enumerate(news):
        if _family(new) or new.ids.size < threshold:
            continue
        same = digest(new.ids)
        if same not in probes:
            probes[same] = _probe_cuttings(new.ids, partitions, keys)
        alike = digest(new.values)
        if (same, alike) not in apart:
            apart[(same, alike)] = _probed_apart(new, probes[same], upto)
        if apart[(same, alike)]:
            continue
        if same not in cuttings:
            cuttings[same] = _cuttings(new.ids, partitions, keys)
        for cells in cuttings[same]:
            if (id(cells), alike) not in off:
                off[(id(cells), alike)] = _off_cells(new, cells, threshold)
            isolated = off[(id(cells), alike)]
            if _short(isolated, threshold, "partition", new):
                found.append((i, isolated))
                break
    return found


# a probe's positions among a statistic's participants, and its cuttings (_cuttings)
_Probe = tuple[npt.NDArray[np.intp], list[npt.NDArray[np.uint64] | None]]


def _probe_cuttings(ids: npt.NDArray[np.int64], partitions: Sequence[Sequence[BitMap]],
                    keys: npt.NDArray[np.uint64]) -> _Probe | None:
    """A probe of ``ids`` (positions, sorted; drawn by their number alone) and its cuttings
    (:func:`_cuttings`); None where there are too few to probe."""
    pick = _probe(ids.size)
    if pick is None:
        return None
    pick = np.sort(pick)
    return pick, _cuttings(ids[pick], partitions, keys)


def _probed_apart(new: Vector, probe: _Probe | None, upto: int) -> bool:
    """Whether a probe of the statistic's participants (``_probe_cuttings`` of its ids)
    already puts ``upto`` or more off their cell's most common contribution in every
    cutting: then so does the whole, and the exact count is spared (a measured variable,
    most statistics at 500,000).

    A cell's members are those with the same groups, so the probe's cells are the cells'
    probed members, and in each, those off the probe's most common value are off the
    cell's too (or the cell, small, counts whole): the probe's count is a lower bound."""
    if probe is None:
        return False
    pick, cuttings = probe
    values = np.round(new.values[pick], 9)
    return all(_off_every_cell(values, cells) >= upto for cells in cuttings)


def _off_every_cell(values: npt.NDArray[np.float64],
                    cells: npt.NDArray[np.uint64] | None) -> int:
    """Those off their cell's most common value, in every cell whatever its size (None:
    all in one cell)."""
    return _off_modes(np.zeros(values.size, dtype=np.uint64) if cells is None else cells,
                      values, 0)


def secret_keys(n: int) -> npt.NDArray[np.uint64]:
    """``n`` random 64-bit keys, none 0, drawn afresh for each audit. Groups are told apart
    by sums or XORs of their keys, which are linear: keys anyone could compute (a fixed seed
    in public code) let a researcher choose groups whose combinations collide, and so merge
    a small cell into a large one. Drawn after the groups, any two cells collide by chance
    alone (2⁻⁶⁴)."""
    keys = np.frombuffer(os.urandom(8 * max(1, n)), dtype=np.uint64).copy()
    keys[keys == 0] = 1
    return keys


def _cuttings(ids: npt.NDArray[np.int64], partitions: Sequence[Sequence[BitMap]],
              keys: npt.NDArray[np.uint64]) -> list[npt.NDArray[np.uint64] | None]:
    """The cells ``ids`` fall into (each participant's XOR of the keys of the groups they
    are in; None: not cut), cut by all ``partitions`` together, finest, then by each of the
    ``MAX_PARTITIONS`` most recent alone. Each release's groups are placed once: all of
    them together are the XOR of each one's cells."""
    members = BitMap(ids.astype(np.uint32))
    place = places(ids)
    own: list[npt.NDArray[np.uint64] | None] = []
    at = 0
    for part in partitions:
        own.append(_cells_of(ids, members, part, keys[at:at + len(part)], place))
        at += len(part)
    cut = [cells for cells in own if cells is not None]
    together = cut[0] if len(cut) == 1 else None
    if len(cut) > 1:
        together = np.bitwise_xor.reduce(cut)
    return [together, *own[-MAX_PARTITIONS:]]


MAX_PARTITIONS = 32  # earlier releases whose own groups are tried one by one (most recent)


def _cells_of(ids: npt.NDArray[np.int64], members: BitMap, groups: Sequence[BitMap],
              keys: npt.NDArray[np.uint64], place: _Place | None = None
              ) -> npt.NDArray[np.uint64] | None:
    """Each participant's cell (an XOR of the keys of the groups they are in), or None when
    the groups do not cut them; ``place``: :func:`places` of ``ids``, if made already."""
    cell = np.zeros(ids.size, dtype=np.uint64)
    cut = False
    place = places(ids) if place is None else place
    for group, key in zip(groups, keys, strict=False):
        inside = group & members
        if 0 < len(inside) < len(members):
            cut = True
            cell[place(np.frombuffer(inside.to_array(), dtype=np.uint32))] ^= key
    return cell if cut else None


_Place = Callable[[npt.NDArray[np.uint32]], npt.NDArray[np.integer]]
_DENSE = 1 << 24  # ids below this (project pseudonyms are 7 digits) are placed by a table


def places(ids: npt.NDArray[np.int64]) -> _Place:
    """Where each of a sorted subset of ``ids`` (sorted, distinct) sits in them: by a table
    indexed by id where the ids are small and many (a 500,000-long subset a few ms, against
    50 ms searched), else searched (for a few thousand ids, writing a table over the 7-digit
    range cost more than every search)."""
    if ids.size and ids[0] >= 0 and ids[-1] < _DENSE and ids.size * 64 > ids[-1]:
        table = np.empty(int(ids[-1]) + 1, dtype=np.int32)  # read only at the ids themselves
        table[ids] = np.arange(ids.size, dtype=np.int32)
        return lambda subset: table[subset]
    return lambda subset: np.searchsorted(ids, subset.astype(np.int64))


def _off_cells(new: Vector, cell: npt.NDArray[np.uint64] | None, threshold: int) -> int:
    """Participants off their cell's most common contribution."""
    if cell is None:
        return 0  # one cell: the statistic's own spread is the precision rule's, none isolated
    return _off_modes(cell, np.round(new.values, 9), threshold)


def _off_modes(cell: npt.NDArray[np.uint64], values: npt.NDArray[np.float64],
               threshold: int) -> int:
    """Those off their cell's most common value; a cell smaller than ``threshold`` has no
    count anyone knows, so all its members count."""
    frame = pl.DataFrame({"cell": cell, "value": values})
    counts = frame.group_by("cell", "value").agg(pl.len().alias("n"))
    per_cell = counts.group_by("cell").agg(pl.col("n").sum().alias("size"),
                                           pl.col("n").max().alias("mode"))
    known = pl.when(pl.col("size") >= threshold).then(pl.col("mode")).otherwise(0)
    return int(per_cell.select((pl.col("size") - known).sum()).item() or 0)


def _short(isolated: int, threshold: int, kind: str, new: Vector,
           other: Vector | None = None) -> bool:
    """Whether ``isolated`` participants (more than none) fall short of the keyed line,
    drawn by the statistics' contributions (enclave/margin.py: copies of one statistic share
    the draw), which are read only where the line is drawn."""
    if isolated <= 0:
        return False
    if isolated < threshold or isolated >= margin.highest(threshold):
        return margin.short(isolated, threshold, kind)
    against = () if other is None else (margin.of(other.ids), margin.of(other.values))
    return margin.short(isolated, threshold, kind, *against,
                        members=np.concatenate([new.ids, new.values.view(np.int64)]))


def _comparable(a: Vector, b: Vector) -> bool:
    """Statistics of one kind (or of an unknown one, kept before kinds were): across kinds no
    combination gives a value back (a sum less a median is no one's), and comparing them
    would hide a pair one person apart while showing an identical one, which tells them
    apart."""
    return not (a.kind and b.kind and a.kind != b.kind)


def _own_fit(a: Vector, b: Vector) -> bool:
    """Two variables one fit read (its time and event, outcome and covariate). They are not
    two releases of one thing: the fit's figures are rounded to what one participant can
    move (precision), so no difference of them gives a value back; and comparing them made
    the check's action the bit (a time that is the event's line but for the target, only if
    obese, blocked the table only then)."""
    return bool(_family(a)) and _family(a) == _family(b)


def _may_overlap(a: Vector, b: Vector) -> bool:
    return (_family(a) == _family(b) and bool(a.ids.size and b.ids.size)
            and a.ids[0] <= b.ids[-1] and b.ids[0] <= a.ids[-1])


FIT = " variable "  # the label of a variable a model, survival curve or correlation read
# a GWAS covariate's name ends so (genomics/study.py): compared with covariates only
COVARIATE = " (covariate)"


def _family(vector: Vector) -> str:
    """What a vector may be compared with: a released statistic (sum, mean, SD, quantile)
    with statistics; a variable a fit read with the same kind of fit only (a model refitted
    with one person's outcome changed). A fit does not release the sum of what it read (its
    estimates are rounded to what one participant can move, see precision), so a fit beside
    a summary over a few more people is no difference of sums.

    A GWAS's covariates are a family of their own. Its effects are sums of genotypes times
    the trait's residuals: two GWAS of one trait over groups a few apart give those few's
    genotypes, and so do two adjusted for a covariate changed for a few (covariate against
    covariate); a trait beside another GWAS's covariate gives nothing (the second's effects
    are of another trait), yet the clip or a few people missing the other trait set them
    apart, and an honest GWAS of diabetes adjusted for BMI after one of BMI was blocked.
    Their residuals are weighed against each other whatever the roles
    (``concentrated_clashes``). A covariate released before roles were kept is labelled
    as a trait, and is compared with traits."""
    head, found, name = vector.label.partition(FIT)
    if not found:
        return ""
    return head + COVARIATE if COVARIATE in name else head


def findings(news: list[Vector], found: list[tuple[int, str, int]], threshold: int,
             where: str, positions: Sequence[int | None], rule: str = RULE) -> list[Finding]:
    """Block for each clash; ``positions`` map a vector to its cell in the output."""
    out = []
    for i, other, _isolated in found:  # how many is not said: it would be a small count
        out.append(Finding(
            rule, Verdict.BLOCK,
            f"{news[i].label!r} and {other!r}{where} are computed from the same values of the "
            f"same people except for fewer than a line drawn from the threshold of "
            f"{threshold} (perhaps none): the later would say nothing new, or subtracting one "
            "from the other would give the own values of those few; use the same definition "
            "of the variable in both, once", positions[i]))
    return out


RESIDUAL = " (residual)"  # a GWAS trait's residuals: what every per-variant effect is made of
CONCENTRATED = "differencing.concentrated"


def concentrated_clashes(news: list[Vector], earlier: list[Vector], threshold: int,
                         share: float, cap: int = 100) -> list[tuple[int, str]]:
    """(position in ``news``, the other's label) for each GWAS residual vector that differs
    from another (an earlier release's, or one before it in ``news``) mostly for a few people.

    A GWAS's effects are Σ g̃·r / Σ g̃² over its residuals r, so two GWAS whose residuals
    differ mostly for a few participants differ, per variant, by those few's genotypes. Exact
    comparison (``clashes``) is beaten by jitter far below what the effects' rounding shows,
    or by moving the target from one clip to the other; so here the difference is weighed:
    over everyone in either (no residual where absent), the part of one that the best line
    ``α·other + β`` leaves is a clash when the keyed k of them hold more than ``share`` of
    it (the residual spread rule of genomics/study.py, applied to differences)."""
    found: list[tuple[int, str]] = []
    residuals = [i for i, v in enumerate(news) if RESIDUAL in v.label]
    before = [v for v in earlier if RESIDUAL in v.label]  # "… (residual) (release out_…)"
    for at, i in enumerate(residuals):
        others = [v for v in before + [news[j] for j in residuals[at + 1:]]
                  if _overlap(news[i], v)]
        # every trait over (much of) this group is another sum Σ g̃·r of the same genotypes:
        # past ``cap`` of them, combinations are too many to weigh, so no more are released
        many = sum(1 for v in others if _shared(news[i], v) >= 0.5)
        clash = (f"{many} GWAS traits released over much the same group, the most allowed "
                 f"is {cap}") if many >= cap else None
        clash = clash or next((o.label for o in others
                               if _concentrated(news[i], [o], threshold, share)), None)
        # and against all of them at once, however many (a window of the most recent is one
        # an attacker steers by what they release): y1 − y2 − y3, or a cycle of thirty
        # traits summing to one person, isolates them when no pair does
        if clash is None and len(others) > 1 and _concentrated(news[i], others, threshold,
                                                                share):
            clash = f"a combination of {len(others)} GWAS traits"
        if clash is not None:
            found.append((i, clash))
    return found


def _shared(a: Vector, b: Vector) -> float:
    """The share of ``a``'s participants that ``b`` has too."""
    return np.intersect1d(a.ids, b.ids, assume_unique=True).size / max(a.ids.size, 1)


def _overlap(a: Vector, b: Vector) -> bool:
    return bool(a.ids.size and b.ids.size
                and np.intersect1d(a.ids, b.ids, assume_unique=True).size)


def _concentrated(a: Vector, others: list[Vector], threshold: int, share: float) -> bool:
    """Whether what the best combination ``Σ α·other + β`` leaves of ``a`` (over everyone in
    any of them, 0 where absent) is mostly a few people's: more than ``share`` of it goes when
    the keyed k with most left over are let go too."""
    ids = a.ids
    for other in others:
        ids = sets.union(ids, other.ids)
    x = np.zeros(ids.size)
    x[np.searchsorted(ids, a.ids)] = a.values
    design = np.zeros((ids.size, len(others) + 1))
    design[:, -1] = 1.0
    for column, other in enumerate(others):
        design[np.searchsorted(ids, other.ids), column] = other.values
    # the part of x outside the span of the others: an orthonormal basis of their columns
    # (scaled, and those that add nothing dropped), so duplicates and near-copies among them
    # change nothing and the answer does not hang on a solver's rank cut-off
    basis = column_basis(design)
    d2 = np.square(x - basis @ (basis.T @ x))
    total = float(d2.sum())
    if total <= 1e-12 * max(float(np.square(x).sum()), 1e-300):
        # the same residuals (rescaled, shifted, combined): every effect's numerator is an
        # earlier one's, so all a repeat can add is what its other covariates do to the
        # denominators, which a few people's cells change (the fifth review read a target's
        # genotypes that way): a repeat clashes, as identical statistics do elsewhere
        return True
    k = margin.reach(threshold, "gwas difference", a.label, *(o.label for o in others))
    if d2.size <= k:
        return True
    # the k with most left over, let go as well: a fit of the others absorbs part of one
    # person's difference into everyone's (their row is unlike anyone's), so what is left is
    # weighed with them free, and a clash when freeing k takes away more than ``share``
    few = np.argpartition(d2, d2.size - k)[d2.size - k:]
    # letting them go is a free column for each of them (1 on their row, 0 elsewhere): those
    # columns take the k rows whatever their values, so what the wider fit leaves is the fit
    # of the others over everyone else's rows (the same least squares, without a column per
    # person freed: each wider basis cost a QR of k more columns, most of a GWAS's check)
    rest_of = np.ones(ids.size, dtype=bool)
    rest_of[few] = False
    narrower = column_basis(design[rest_of])
    kept = x[rest_of]
    rest = float(np.square(kept - narrower @ (narrower.T @ kept)).sum())
    return total - rest > share * total

