"""Reading marks back from a suspect file, scoring every recipient, and the verdict.

**Reading a mark.** Detection knows the master value ``m`` of every linked cell, so a marked
cell of a copy holds ``m + δ`` (symbol 1) or ``m − δ`` (symbol 0). A leaked file may have been
rounded, noised or mixed, so each column is read with a small model fitted to the suspect itself:

- its *grid*: the coarsest step ``10⁻ᵈ`` on which at least 90% of its values lie (0 if none);
- its *noise* ``σ`` and *outlier share* ``ε``: maximum likelihood over a fixed ladder of
  candidates, for residuals that are ``±δ``, plus Gaussian noise, rounded to the grid, mixed with
  a broad outlier density (foreign, synthetic or wrongly linked rows).

The cell's *soft symbol* is the posterior mean of ``s = 2x − 1`` under that model,
``w = (P₊ − P₋) / (P₊ + P₋ + outlier)`` in ``[−1, 1]``, with ``P±`` the probability of the
observed value given ``m ± δ``. Untouched copies give ``w = ±1``; rounding makes a cell count
only where ``m + δ`` and ``m − δ`` round apart (≈20% of cells at 10×, ≈2% at 100× coarser);
noise makes ``w`` small and proportional to the residual.

*Dates* (``kind == "date"``, whole days, ``δ`` one day) are read the same way, except when the
suspect has coarsened them to the calendar: when ≥ 90% of its dates fall on one day of the
month (a month, quarter or year truncation, ``1998-05-01``) or on one weekday (a week), the
cell is read by comparing calendar periods: ``P±`` is 1 when ``m ± δ`` falls in the period of
the observed date and 0 otherwise. Only cells within a day of a period's end can then tell
``+δ`` from ``−δ`` (≈ 2 in 30 for months); every other cell reads ``w = 0``. A day-level model
would read a truncated date as a value moved backwards by half a month — a systematic ``−δ``
reading of every cell — which is no evidence against anyone but wastes the score's variance.

**Scores.** For recipient ``j`` with symbols ``x`` and biases ``p``, two scores over the same
positions: the symmetric Tardos score ``Σ w (x − p)/√(p(1−p))`` (Škorić et al.), which resists
collusion, and the flat correlation ``Σ w (x − p)``, the stronger one against a single noisy
copy. A position is used once (duplicate rows keep the strongest reading), at most
``MAX_POSITIONS`` of them, the strongest ``|w|`` first (ties broken at random).

**The bound.** Under the null hypothesis (an innocent recipient: its symbols are independent of
the suspect file, which it never touched), each term is a two-point variable with a known law
(``x ~ Bernoulli(p)`` exactly, ``codes.py``), mean 0, variance ``w²·c²·p(1−p)`` and bounded.
Nothing else about the file or the attack is assumed. For every ``λ > 0``,

``P(S ≥ s) = exp(K(λ) − λs) · E_λ[e^{−λ(S − s)}; S ≥ s]``,  ``K(λ) = Σ log E e^{λ c (x − p)}``,

where ``E_λ`` is the law tilted by ``λ`` (still independent two-point terms, with
``logit q = logit p + λc``). The first factor is the Chernoff bound with the *exact*
moment-generating function (at least as tight as Bernstein's or Bennett's, which bound the same
``K`` from above). The second is at most 1, and — Berry–Esseen applied to the tilted sum,
``sup|F − Φ| ≤ 0.56·L`` for independent terms (Shevtsova 2010), ``L`` the Lyapunov ratio
``Σ E|X − EX|³ / sd³`` computed exactly — at most its Gaussian value
``e^{−a²/2}·erfcx((a + k)/√2)/2`` (``a = (s − E_λS)/sd``, ``k = λ·sd``) plus ``2·0.56·L``.
This recovers the ``1/(z√(2π))`` Chernoff omits: on many weak readings (a noisy copy) the
bound is within ≈2× of the exact tail instead of ≈15–20×, ≈2.7 nats of evidence; on few
strong ones ``L`` is large and it falls back to Chernoff. Both factors are evaluated at each
``λ`` of a grid (and refined near the naming line); any ``λ`` gives a valid bound.

With ``N`` recipients holding any position of the suspect (the others score 0 whatever their
symbols, so can never be named) and two scores each, the system-wide false-accusation
probability is at most ``2N · min(bound)``; a recipient is named only when that is ≤ 10⁻⁹.
Everyone else stays unnamed, and a file with no passing recipient is *inconclusive*. The bound
is checked against the exact null law of lattice scores and on null trials (keys never used
for the file) in the tests, and on every innocent recipient of every trial in the benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import polars as pl
from scipy.optimize import minimize_scalar
from scipy.special import erfcx, expit, log_expit, ndtr

from strongroom import sets
from strongroom.cohort.model import EID
from strongroom.extracts import codes
from strongroom.extracts.bands import Banded
from strongroom.extracts.carriers import DATE, Carrier, as_numbers
from strongroom.extracts.periods import PERIOD_DAYS, Calendar, infer_calendar

T = TypeVar("T")
U = TypeVar("U")

THRESHOLD = 1e-9  # system-wide false-accusation probability for naming anyone
# positions scored per recipient (the strongest readings first; a rule of the file alone, so
# any cap keeps the bound). 100,000 hard readings give a guilty copy ln P in the tens of
# thousands; at 500,000 rows × 1,000 recipients each position costs an AES block per recipient
MAX_POSITIONS = 100_000
MIN_WEIGHT = 1e-3  # readings weaker than this carry no usable evidence
ON_GRID_SHARE = 0.9
FIT_SAMPLE = 20_000
_GRID_CHUNK = 1 << 16  # values per step of ``infer_grid``
SIGMAS = (0.0, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 14.0, 20.0, 30.0, 50.0,
          100.0)  # candidate noise SDs, in units of δ
OUTLIERS = (1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.8)
KINDS = ("tardos", "flat")  # the fingerprint's two scores
# evidence of other carriers (``score``'s ``other``); "values" is the marks read from each
# column's values with no row linked (``multiset.py``); "bands" is membership's p-value times
# the band origins' evidence, with its own exact law (``band_evidence.combined_log_p``)
OTHER_KINDS = ("values", "membership", "decoys", "residual", "bands")
ALL_KINDS = (*KINDS, *OTHER_KINDS)
# shares of the 10⁻⁹ given to each kind of evidence, per recipient that could be named by it:
# the membership, decoy and band tests are strong when they hold at all (or, for bands, add
# to membership), so a tenth each costs them a few rows while the fingerprint keeps almost
# all of its share (ln 1.15 nats); the linkage-free reading of the marks ("values", its two
# scores' p-value doubled) is as strong as the linked one on an intact copy and the only
# evidence on a re-paired one, so it takes a fingerprint's share (3.3 shares per recipient,
# not 2.3: 0.36 nats more for every kind); "residual" is the fingerprint read again on the
# rows every named recipient's copy withheld (``residual.py``: what a union of copies leaves),
# a tenth like membership (3.4 shares per recipient: 0.03 nats more for every kind)
WEIGHTS = {"tardos": 1.0, "flat": 1.0, "values": 1.0, "membership": 0.1, "decoys": 0.1,
           "residual": 0.1, "bands": 0.1}
BERRY_ESSEEN = 0.56  # sup|F − Φ| ≤ 0.56·L, independent non-identical terms (Shevtsova 2010)
_LAMBDAS = np.geomspace(1e-3, 1e3, 33)  # times 1/√V: the Chernoff grid, refined for the best


# -- reading marks ------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadModel:
    """How one suspect column was read: its grid, noise and outlier share."""

    grid: float  # the suspect's rounding step; 0 when not on any decimal grid
    sigma: float  # Gaussian noise SD
    outlier: float  # share of cells that fit neither mark
    cells: int  # linked, markable cells with a value
    informative: float  # Σ w² over them: hard-mark equivalents
    calendar: str = ""  # dates only: "week", "month", "quarter" or "year" when truncated


def infer_grid(values: np.ndarray) -> float:
    """The coarsest decimal step (10³ … 10⁻¹²) holding ≥ 90% of ``values``; 0 if none does."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0
    middle = float(np.median(np.abs(values)))  # scaling by 10ᵈ scales the median alike
    size = len(values)
    step = min(size, _GRID_CHUNK)
    scaled, off = np.empty(step), np.empty(step)
    for decimals in range(-3, 13):
        if middle * 10.0**decimals > 1e10:  # beyond what a float64 value can still resolve
            break
        near = 0
        for start in range(0, size, step):  # a chunk at a time: a grid too coarse is refused
            # as soon as the values left could no longer reach the share (the same count)
            part = values[start:start + step]
            s, o = scaled[:len(part)], off[:len(part)]
            np.multiply(part, 10.0**decimals, out=s)
            np.subtract(s, np.rint(s), out=o)
            np.abs(o, out=o)
            np.abs(s, out=s)
            near += int(np.count_nonzero(o <= 1e-6 + 4e-16 * s))
            if (near + size - start - len(part)) / size < ON_GRID_SHARE:
                break
        if near / size >= ON_GRID_SHARE:  # as np.mean(near) did
            return float(10.0**-decimals)
    return 0.0


def _prob(y: np.ndarray, mu: np.ndarray, sigma: float, grid: float,
          amplitude: float) -> np.ndarray:
    """P(observed ``y`` | true value ``mu``) under noise ``sigma`` and rounding to ``grid``."""
    floor = 1e-3 * (grid if grid > 0 else amplitude)
    s = max(sigma, floor)
    if grid > 0:
        out: np.ndarray = _ndtr((y - mu + grid / 2) / s) - _ndtr((y - mu - grid / 2) / s)
        return out
    z = (y - mu) / s
    density: np.ndarray = np.exp(-0.5 * z * z) / (s * math.sqrt(2 * math.pi))
    return density


NDTR_ONE, NDTR_ZERO = 9.0, -39.0  # ``ndtr`` is exactly 1 at and above, 0 at and below
# (``1 − erfc/2`` rounds to 1 past 8.3; ``erfc/2`` underflows to 0 below −37.7; a test holds
# SciPy to it)


def _ndtr(z: np.ndarray) -> np.ndarray:
    """``scipy.special.ndtr``, the same numbers, computed only where it is not exactly 0 or
    1: an intact copy's cells lie hundreds of noise floors from the other mark."""
    out: np.ndarray = (z >= NDTR_ONE).astype(np.float64)
    open_ = ~((z >= NDTR_ONE) | (z <= NDTR_ZERO))  # NaN stays NaN through ndtr
    if open_.all():
        return np.asarray(ndtr(z), dtype=np.float64)
    out[open_] = ndtr(z[open_])
    return out


def _outlier_mass(grid: float, carrier: Carrier) -> float:
    width = 8.0 * carrier.sd  # a broad density: values that fit neither mark
    return (grid if grid > 0 else 1.0) / width


def fit_model(y: np.ndarray, m: np.ndarray, carrier: Carrier, grid: float,
              seed: int = 0) -> tuple[float, float]:
    """Maximum-likelihood noise SD and outlier share over the fixed candidate ladder."""
    if len(y) > FIT_SAMPLE:
        pick = np.random.default_rng(seed).choice(len(y), FIT_SAMPLE, replace=False)
        y, m = y[pick], m[pick]
    # every cell's likelihood is a function of its (y, m) alone: each distinct pair's is
    # computed once and gathered back per cell, the same numbers summed in the same order
    y, m, back = _distinct_pairs(y, m)
    delta = carrier.amplitude
    q = _outlier_mass(grid, carrier)
    best, best_ll = (0.0, OUTLIERS[0]), -math.inf
    for scale in SIGMAS:
        sigma = scale * delta
        both = 0.5 * (_prob(y, m + delta, sigma, grid, delta)
                      + _prob(y, m - delta, sigma, grid, delta))
        for eps in OUTLIERS:
            ll = float(np.sum(np.log((1 - eps) * both + eps * q + 1e-300)[back]))
            if ll > best_ll:
                best, best_ll = (sigma, eps), ll
    return best


def _distinct_pairs(y: np.ndarray, m: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``(y, m)`` pairs (bit for bit) and, per cell, its pair's index."""
    y, m = np.ascontiguousarray(y, dtype=np.float64), np.ascontiguousarray(m, dtype=np.float64)
    if not len(y):
        return y, m, np.zeros(0, dtype=np.int64)
    yb, mb = y.view(np.uint64), m.view(np.uint64)
    order = np.lexsort((mb, yb))
    new = np.ones(len(y), dtype=np.bool_)
    new[1:] = (yb[order[1:]] != yb[order[:-1]]) | (mb[order[1:]] != mb[order[:-1]])
    back = np.empty(len(y), dtype=np.int64)
    back[order] = np.cumsum(new) - 1
    first = order[new]
    return y[first], m[first], back


def soft_symbols(y: np.ndarray, m: np.ndarray, carrier: Carrier, grid: float, sigma: float,
                 outlier: float) -> np.ndarray:
    """Posterior mean of ``2x − 1`` per cell (``w`` in [−1, 1]; 0 where nothing is known)."""
    delta = carrier.amplitude
    plus = _prob(y, m + delta, sigma, grid, delta)
    minus = _prob(y, m - delta, sigma, grid, delta)
    q = _outlier_mass(grid, carrier)
    total = (1 - outlier) * 0.5 * (plus + minus) + outlier * q
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(total > 0, (1 - outlier) * 0.5 * (plus - minus) / total, 0.0)
    clipped: np.ndarray = np.clip(np.nan_to_num(w), -1.0, 1.0)
    return clipped


# -- dates coarsened to the calendar ---------------------------------------------------------

def read_calendar(y: np.ndarray, m: np.ndarray, carrier: Carrier, calendar: Calendar
                  ) -> tuple[float, np.ndarray]:
    """Outlier share and soft symbols of dates truncated to ``calendar``: ``P±`` is whether
    ``m ± δ`` falls in the observed date's period; a cell where both (or neither) do reads 0."""
    observed = calendar.bins(y)
    plus = (calendar.bins(m + carrier.amplitude) == observed).astype(np.float64)
    minus = (calendar.bins(m - carrier.amplitude) == observed).astype(np.float64)
    q = PERIOD_DAYS[calendar.period] / (8.0 * carrier.sd)  # a period of the broad density
    both = 0.5 * (plus + minus)
    outlier = max(OUTLIERS, key=lambda eps: float(np.sum(np.log((1 - eps) * both + eps * q))))
    w = (1 - outlier) * 0.5 * (plus - minus) / ((1 - outlier) * both + outlier * q)
    return outlier, np.clip(w, -1.0, 1.0)


@dataclass
class Marks:
    """The positions read from a suspect: one entry per (participant, carrier) cell used."""

    carriers: list[Carrier]
    eids: np.ndarray  # int64 master eids
    carrier: np.ndarray  # int32 index into ``carriers``
    weight: np.ndarray  # w
    threshold: np.ndarray  # uint32: p = threshold / 2³²
    models: dict[str, ReadModel] = field(default_factory=dict)
    capped_from: int = 0  # positions available before the cap (0: no cap applied)

    @property
    def tags(self) -> np.ndarray:
        table = codes.column_tags([c.column for c in self.carriers])
        return table[self.carrier] if len(self.carriers) else np.empty(0, np.uint64)

    @property
    def bias(self) -> np.ndarray:
        return codes.bias(self.threshold)

    def __len__(self) -> int:
        return len(self.eids)


def read_marks(carriers: Sequence[Carrier], eids: np.ndarray,
               suspect: dict[str, np.ndarray], master: dict[str, np.ndarray],
               bias_key: bytes, seed: int = 0, cap: int = MAX_POSITIONS,
               pool: Executor | None = None, by_eid: np.ndarray | None = None) -> Marks:
    """Soft symbols for every linked, markable cell of every carrier present in ``suspect``.

    ``eids`` are the master eids of the suspect's rows (−1: unlinked); ``suspect[column]`` its
    values per row (NaN: missing); ``master[column]`` the master values of the same rows.
    ``pool``: carriers are read on its threads beside this one (each carrier's reading is its
    own: the same numbers, gathered in the carriers' order). ``by_eid``: ``np.argsort(eids)``,
    when made already.
    """
    eids = np.asarray(eids, dtype=np.int64)
    linked = eids >= 0
    parts_eid, parts_idx, parts_w, parts_row = [], [], [], []
    models: dict[str, ReadModel] = {}
    read = [(index, carrier) for index, carrier in enumerate(carriers)
            if carrier.column in suspect and carrier.column in master]
    for found in each(pool, lambda item: _read_carrier(item[0], item[1], eids, linked,
                                                         suspect, master, bias_key, seed),
                       read):
        if found is None:
            continue
        column, model, row, who, index, w = found
        models[column] = model
        parts_row.append(row)
        parts_eid.append(who)
        parts_idx.append(index)
        parts_w.append(w)
    if not parts_eid:
        empty = np.empty(0)
        return Marks(list(carriers), empty.astype(np.int64), empty.astype(np.int32), empty,
                     empty.astype(np.uint32), models)
    table = codes.column_tags([c.column for c in carriers])
    fast = _in_position_order(eids, parts_row, parts_idx, parts_w, table, by_eid)
    all_eid, all_idx, all_w = fast if fast is not None else strongest_per_position(
        np.concatenate(parts_eid), np.concatenate(parts_idx), np.concatenate(parts_w), table)
    capped_from = 0
    if len(all_w) > cap:
        capped_from = len(all_w)
        order = strongest(all_w, cap, seed)
        all_eid, all_idx, all_w = all_eid[order], all_idx[order], all_w[order]
    threshold = codes.thresholds(bias_key, all_eid, table[all_idx])
    return Marks(list(carriers), all_eid, all_idx, all_w, threshold, models, capped_from)


def _read_carrier(index: int, carrier: Carrier, eids: np.ndarray, linked: np.ndarray,
                  suspect: dict[str, np.ndarray], master: dict[str, np.ndarray],
                  bias_key: bytes, seed: int
                  ) -> tuple[str, ReadModel, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """One carrier's reading (:func:`read_marks`): its column's model, and the rows, eids,
    carrier indices and soft symbols of the cells it reads (None when it reads no cell)."""
    y_all = np.asarray(suspect[carrier.column], dtype=np.float64)
    m_all = np.asarray(master[carrier.column], dtype=np.float64)
    use = carrier.marked(bias_key, eids, m_all, among=linked & np.isfinite(y_all))
    y, m, who = y_all[use], m_all[use], eids[use]
    if len(y) == 0:
        return None
    calendar = infer_calendar(y) if carrier.kind == DATE else None
    if calendar is not None:  # never a day-level model on dates that are not
        grid, sigma = PERIOD_DAYS[calendar.period], 0.0
        outlier, w = read_calendar(y, m, carrier, calendar)
    else:
        grid = infer_grid(y)
        sigma, outlier = fit_model(y, m, carrier, grid, seed)
        w = soft_symbols(y, m, carrier, grid, sigma, outlier)
    model = ReadModel(grid, sigma, outlier, len(y), float(np.sum(w * w)),
                      calendar.period if calendar else "")
    keep = np.abs(w) >= MIN_WEIGHT
    return (carrier.column, model, np.flatnonzero(use)[keep], who[keep],
            np.full(int(keep.sum()), index, dtype=np.int32), w[keep])


def strongest(w: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """The indices (ascending) of the ``cap`` strongest readings, ``|w|`` first and ties
    broken by a random draw seeded by ``seed``: the first ``cap`` of
    ``lexsort((tiebreak, −|w|))``, found by partitions instead of a sort of every reading."""
    tiebreak = np.random.default_rng(seed).random(len(w))
    strength = np.abs(w)
    top = strength.max()  # the cap-th strongest |w|: the strongest when cap share it
    line = (top if cap > 0 and int(np.count_nonzero(strength == top)) >= cap
            else -np.partition(-strength, cap - 1)[cap - 1])
    above = np.flatnonzero(strength > line)
    tied = np.flatnonzero(strength == line)
    need = cap - len(above)
    if need < len(tied):
        tied = tied[np.argpartition(tiebreak[tied], need - 1)[:need]] if need else tied[:0]
    order = np.concatenate([above, tied])
    order.sort()
    return order


def master_values(master: pl.DataFrame, eids: np.ndarray,
                  columns: Iterable[str], queries: np.ndarray | None = None
                  ) -> dict[str, np.ndarray]:
    """The master values of each suspect row's participant (NaN: unlinked or missing; dates
    as whole days since 1970-01-01, as carriers and linkage read them). ``queries``:
    ``np.argsort(eids)``, when made already."""
    order = master[EID].cast(pl.Int64).to_numpy()
    ascending = len(order) < 2 or bool(np.all(order[1:] > order[:-1]))
    sort = np.arange(len(order)) if ascending else np.argsort(order)  # the cohort's own order
    # sorted queries: searchsorted runs far faster
    queries = np.argsort(eids) if queries is None else queries
    at = np.empty(len(eids), dtype=np.int64)
    at[queries] = np.searchsorted(order[sort], eids[queries])
    rows = sort[np.clip(at, 0, max(len(order) - 1, 0))]
    found = (eids >= 0) & (order[rows] == eids) if len(order) else np.zeros(len(eids), bool)
    out = {}
    for column in columns:
        values = as_numbers(master[column])
        out[column] = np.where(found, values[rows], np.nan) if len(order) else np.full(
            len(eids), np.nan)
    return out


def strongest_per_position(eids: np.ndarray, index: np.ndarray, w: np.ndarray,
                            tags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One reading per (participant, column): a duplicated row, or a column two carriers
    describe, must not count the same symbol twice (the bound needs independent terms)."""
    tag = tags[index]
    order = np.lexsort((-np.abs(w), tag, eids))
    eids, index, w, tag = eids[order], index[order], w[order], tag[order]
    first = np.ones(len(eids), dtype=bool)
    first[1:] = (eids[1:] != eids[:-1]) | (tag[1:] != tag[:-1])
    return eids[first], index[first], w[first]


def _in_position_order(eids: np.ndarray, rows: Sequence[np.ndarray],
                       index: Sequence[np.ndarray], w: Sequence[np.ndarray], tags: np.ndarray,
                       by_eid: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`strongest_per_position`'s answer without sorting every reading, when no
    position can be read twice: each linked participant on one row, each column read by one
    carrier (``None`` otherwise). Readings laid out as (participant, column) in a table and
    taken row by row are already in (eid, tag) order."""
    parts = [(r, i, v) for r, i, v in zip(rows, index, w, strict=True) if len(r)]
    if not parts:
        return None
    carrier_of = np.array([int(i[0]) for _, i, _ in parts])
    column = tags[carrier_of]
    if len(sets.distinct(column)) != len(column):
        return None
    # any sort: the answer is used only when the linked eids are distinct, and distinct keys
    # have one order (a stable sort of int64 is a merge sort, several times slower); the
    # rows of every eid sorted (``by_eid``) hold the unlinked (−1) first, then these
    if by_eid is None:
        linked = np.flatnonzero(eids >= 0)
        by_eid = linked[np.argsort(eids[linked])]
    else:
        by_eid = by_eid[int(np.count_nonzero(eids < 0)):]
    ordered = eids[by_eid]
    if len(ordered) > 1 and bool(np.any(ordered[1:] == ordered[:-1])):
        return None
    rank = np.empty(len(eids), dtype=np.int64)
    rank[by_eid] = np.arange(len(by_eid))
    slot = np.argsort(np.argsort(column))  # each part's place among the columns, by tag
    held = np.zeros((len(by_eid), len(parts)), dtype=np.bool_)
    value = np.zeros((len(by_eid), len(parts)))
    for (r, _, v), at in zip(parts, slot, strict=True):
        held[rank[r], at] = True
        value[rank[r], at] = v
    flat = np.flatnonzero(held)
    carrier_by_slot = np.empty(len(parts), dtype=np.int32)
    carrier_by_slot[slot] = carrier_of
    return (ordered[flat // len(parts)], carrier_by_slot[flat % len(parts)],
            value.reshape(-1)[flat])


# -- scores and the bound -------------------------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    """A registered extract as attribution sees it: its id, symbol key and carriers."""

    extract_id: str
    key: bytes
    carriers: frozenset[Carrier]
    withheld: float = 0.0  # share of participants withheld from it (``membership.py``)
    fields: frozenset[int] = frozenset()  # fields granted (the band test considers these)
    banded: tuple[Banded, ...] = ()  # attributes released in keyed bands (``bands.py``)
    band_key: bytes = b""  # its project's band key (``codes.project_band_key``)
    project_id: str = ""  # extracts of one project share their band origins


@dataclass(frozen=True)
class Score:
    extract_id: str
    positions: int
    tardos: float
    flat: float
    log_bound: float  # natural log of the system-wide false-accusation bound
    log_p: float = 0.0  # ln of this recipient's own bound (smaller score tail), before the union
    kind_log_p: tuple[float, ...] = ()  # ln of each kind's tail bound, in ``ALL_KINDS`` order
    union: float = 0.0  # ln of the shares the 10⁻⁹ is divided into (``score``)

    @property
    def bound(self) -> float:
        """The bound as a number (below 10⁻³⁰⁰ it is shown as 10⁻³⁰⁰, which it is under)."""
        return max(math.exp(min(self.log_bound, 0.0)), 1e-300)

    @property
    def accused(self) -> bool:
        return self.log_bound <= math.log(THRESHOLD)


def _coefficients(w: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    return {"tardos": w / np.sqrt(p * (1 - p)), "flat": w}


def log_mgf(coef: np.ndarray, p: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """``K(λ) = Σ log E exp(λ c (x − p))`` for ``x ~ Bernoulli(p)``, at each ``λ``."""
    return tilts(coef, p, lambdas).cumulant


@dataclass(frozen=True)
class Tilts:
    """The null score's law tilted by each ``λ``: what the tail bound needs, per ``λ``.

    Under the law tilted by ``λ`` (density ``e^{λS − K(λ)}``) the terms stay independent
    two-point variables, ``x ~ Bernoulli(q)`` with ``logit q = logit p + λc``.
    """

    lambdas: np.ndarray
    cumulant: np.ndarray  # K(λ)
    mean: np.ndarray  # E_λ S
    sd: np.ndarray  # √Var_λ S
    lyapunov: np.ndarray  # Σ E_λ|Xᵢ − E_λXᵢ|³ / sd³: the Berry–Esseen ratio


@dataclass(frozen=True)
class _Null:
    """What :func:`tilts` needs of ``S = Σ c (x − p)`` that no ``λ`` changes."""

    coef: np.ndarray
    logit_p: np.ndarray
    square: np.ndarray
    cube: np.ndarray
    base: float
    drift: float

    @classmethod
    def of(cls, coef: np.ndarray, p: np.ndarray) -> _Null:
        square = coef * coef
        return cls(coef, np.log(p) - np.log1p(-p), square, square * np.abs(coef),
                   float(np.sum(np.log1p(-p))), float(np.sum(coef * p)))


def tilts(coef: np.ndarray, p: np.ndarray, lambdas: np.ndarray,
          null: _Null | None = None) -> Tilts:
    """:class:`Tilts` of ``S = Σ c (x − p)`` at each ``λ`` (one pass over positions per λ).
    ``null``: ``_Null.of(coef, p)``, made once for many calls."""
    size = len(lambdas)
    cumulant, mean, var, third = (np.zeros(size) for _ in range(4))
    null = null if null is not None else _Null.of(coef, p)
    coef, logit_p, square, cube = null.coef, null.logit_p, null.square, null.cube
    base, drift = null.base, null.drift
    # the same products as written out below, into buffers made once
    tilted, q, spread, term, other = (np.empty(len(p)) for _ in range(5))
    for i, lam in enumerate(lambdas):  # sums of products, not BLAS: no thread start-ups
        np.add(logit_p, np.multiply(coef, lam, out=tilted), out=tilted)  # logit p + λc
        expit(tilted, out=q)
        np.multiply(q, np.subtract(1, q, out=spread), out=spread)  # q(1 − q)
        # log E e^{λc(x − p)} = log(1 − p) − λcp + log(1 + e^{logit p + λc})
        log_expit(np.negative(tilted, out=other), out=other)
        cumulant[i] = base - lam * drift - float(np.sum(other))
        mean[i] = float(np.sum(np.multiply(coef, q, out=term))) - drift
        var[i] = float(np.sum(np.multiply(square, spread, out=term)))
        np.subtract(1, np.multiply(spread, 2, out=other), out=other)  # q² + (1 − q)²
        np.multiply(np.multiply(cube, spread, out=term), other, out=term)  # = 1 − 2q(1 − q)
        third[i] = float(np.sum(term))
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        lyapunov = np.where(sd > 0, third / sd**3, np.inf)
    return Tilts(np.asarray(lambdas, dtype=np.float64), cumulant, mean, sd, lyapunov)


def _log_erfcx(z: np.ndarray) -> np.ndarray:
    """``log erfcx(z)``, or an upper bound on it far left (``erfcx(z) < 2e^{z²}``)."""
    safe = np.maximum(z, -5.0)
    out: np.ndarray = np.where(z >= -5.0, np.log(erfcx(safe)), z * z + math.log(2.0))
    return out


def _log_tails(tilt: Tilts, scores: np.ndarray) -> np.ndarray:
    """Bounds on ``log P(S ≥ score)`` for many scores, at each ``λ`` of ``tilt`` (columns).

    For every ``λ > 0``, ``P(S ≥ s) = e^{K(λ) − λs} · E_λ[e^{−λ(S − s)}; S ≥ s]``: the first
    factor is Chernoff's bound; the second is at most 1 and, by Berry–Esseen applied to the
    tilted sum (``sup |F − Φ| ≤ C·L``), at most its Gaussian value plus ``2·C·L``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    chernoff = tilt.cumulant[None, :] - scores[:, None] * tilt.lambdas[None, :]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = (scores[:, None] - tilt.mean[None, :]) / tilt.sd[None, :]
        k = (tilt.lambdas * tilt.sd)[None, :]
        gauss = math.log(0.5) + _log_erfcx((a + k) / math.sqrt(2.0)) - 0.5 * a * a
        berry = np.log(2.0 * BERRY_ESSEEN * tilt.lyapunov)[None, :]
        factor = np.minimum(np.logaddexp(gauss, berry), 0.0)
    factor = np.where((tilt.sd > 0)[None, :] & ~np.isnan(factor), factor, 0.0)
    bounds: np.ndarray = np.minimum(chernoff + factor, 0.0)
    return bounds


def _grid(coef: np.ndarray, p: np.ndarray) -> Tilts | None:
    variance = float(np.sum(coef * coef * p * (1 - p)))
    if variance <= 0:
        return None
    return tilts(coef, p, _LAMBDAS / math.sqrt(variance))


def log_tail(coef: np.ndarray, p: np.ndarray, score: float, grid: Tilts | None = None) -> float:
    """``log P(S ≥ score)`` bounded (Chernoff with the exact MGF, sharpened by Berry–Esseen)
    at the best ``λ`` of the grid, refined between its neighbours. ``grid``: :func:`_grid`."""
    grid = grid if grid is not None else _grid(coef, p)
    if grid is None or score <= 0:
        return 0.0
    values = _log_tails(grid, np.array([score]))[0]
    best = int(np.argmin(values))
    low = math.log(grid.lambdas[max(best - 1, 0)])
    high = math.log(grid.lambdas[min(best + 1, len(grid.lambdas) - 1)])
    null = _Null.of(coef, p)  # made once for every λ the search tries
    found = minimize_scalar(
        lambda t: float(_log_tails(tilts(coef, p, np.array([math.exp(t)]), null),
                                   np.array([score]))[0, 0]),
        bounds=(low, high), method="bounded", options={"xatol": 1e-3})
    return float(min(0.0, float(values[best]), float(found.fun)))


@dataclass(frozen=True)
class Other:
    """Evidence of another kind: each recipient's ln p-value under the null (an exact or
    conservative tail), and how many recipients could be named by it (those with positions)."""

    log_p: dict[str, float]
    hypotheses: int


@dataclass(frozen=True)
class Raw:
    """:func:`score`'s first half, which needs no other evidence: every group's shared law
    (:class:`_Prepared`), each member's two scores and their bounds at the grid's best ``λ``
    (the AES under every recipient's key and the null law's tilts). Made beside the other
    readings (``service``), finished by :func:`score` once the union is known."""

    groups: tuple[tuple[_Prepared, tuple[Recipient, ...], np.ndarray, np.ndarray], ...]
    scorable: int  # recipients with at least one position


def raw_scores(marks: Marks, recipients: Sequence[Recipient],
               pool: Executor | None = None) -> Raw:
    """Every recipient's scores and grid bounds (:class:`Raw`); with ``pool``, groups of
    recipients are scored on its threads beside this one (the same numbers)."""
    groups = list(_groups(recipients).items())
    masks = [np.isin(marks.carrier, [i for i, c in enumerate(marks.carriers) if c in carriers])
             for carriers, _ in groups]
    scorable = sum(len(members) for (_, members), mask in zip(groups, masks, strict=True)
                   if mask.any())
    keys = [np.packbits(mask).tobytes() for mask in masks]
    first: dict[bytes, np.ndarray] = {}  # groups reading the same positions share their law
    for key, mask in zip(keys, masks, strict=True):
        first.setdefault(key, mask)
    prepared = dict(zip(first, each(pool, lambda mask: _prepare(marks, mask, pool),
                                     list(first.values())), strict=True))
    # each group's members in parts (two or more when a pool shares the work): a member's
    # scores and bounds are its own, so the parts' rows laid end to end are the group's
    parts = [(at, members[start:start + step]) for at, (_, members) in enumerate(groups)
             for step in [_part(len(members), pool)]
             for start in range(0, max(len(members), 1), step)]
    done = each(pool, lambda part: _raw_group(prepared[keys[part[0]]], part[1]), parts)
    pieces: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for (at, _), piece in zip(parts, done, strict=True):
        pieces.setdefault(at, []).append(piece)
    raw = [(np.concatenate([r for r, _ in pieces[g]]), np.concatenate([t for _, t in pieces[g]]))
           for g in range(len(groups))]
    return Raw(tuple((prepared[keys[at]], tuple(groups[at][1]), *raw[at])
                     for at in range(len(groups))), scorable)


_PART = 128  # members per part of a group scored on a pool: parts enough for both cores


def _part(members: int, pool: Executor | None) -> int:
    """How many of a group's members :func:`raw_scores` scores in one part."""
    return max(members, 1) if pool is None else max(1, min(_PART, math.ceil(members / 2)))


def each(pool: Executor | None, work: Callable[[T], U], items: Sequence[T]) -> list[U]:
    """``[work(x) for x in items]``, the first on this thread and the rest on ``pool``'s
    (any not yet started when this thread is free is done here)."""
    if pool is None or len(items) < 2:
        return [work(x) for x in items]
    futures = [pool.submit(work, x) for x in items[1:]]
    out = [work(items[0])]
    for x, future in zip(items[1:], futures, strict=True):
        out.append(work(x) if future.cancel() else future.result())
    return out


def score(marks: Marks, recipients: Sequence[Recipient],
          hypotheses: int | None = None, other: Mapping[str, Other] | None = None,
          raw: Raw | None = None) -> list[Score]:
    """Every recipient's scores and the system-wide bound, best (smallest bound) first.

    ``hypotheses`` is the number of recipients the fingerprint's union bound covers. By
    default, those with at least one position in the suspect: a recipient with none scores 0
    whatever its symbols, so its bound is 1 and it can never be named — it needs no share of
    the 10⁻⁹. ``other`` adds the evidence of other carriers (``OTHER_KINDS``): the 10⁻⁹ is
    shared over every (recipient, kind) that could be named, in proportion to ``WEIGHTS``, so
    the system-wide false-accusation probability stays at most 10⁻⁹ over all kinds together.
    ``raw``: :func:`raw_scores` of the same marks and recipients, when made already.
    """
    other = dict(other or {})
    unknown = set(other) - set(OTHER_KINDS)
    if unknown:
        raise ValueError(f"unknown kinds of evidence: {sorted(unknown)}")
    raw = raw if raw is not None else raw_scores(marks, recipients)
    n = hypotheses if hypotheses is not None else raw.scorable
    total = sum(WEIGHTS[k] for k in KINDS) * n + sum(
        WEIGHTS[k] * o.hypotheses for k, o in other.items())
    union = math.log(max(1.0, total))
    results: list[Score] = []
    for prepared, members, values, tails in raw.groups:
        results += _score_group(prepared, members, values, tails, union)
    if other:
        results = [_with_other(s, other, union) for s in results]
    results.sort(key=lambda s: (s.log_bound, -s.tardos))
    return results


def _with_other(s: Score, other: Mapping[str, Other], union: float) -> Score:
    """``s`` with the other kinds' evidence: its bound is the best kind's, each kind's p-value
    divided by its weight (a kind with a smaller share needs a smaller p-value)."""
    kinds = s.kind_log_p + tuple(other[k].log_p.get(s.extract_id, 0.0) if k in other else 0.0
                                 for k in OTHER_KINDS)
    best = min(v - math.log(WEIGHTS[k]) for k, v in zip(ALL_KINDS, kinds, strict=True))
    return Score(s.extract_id, s.positions, s.tardos, s.flat, min(0.0, best + union),
                 min(kinds), kinds, union)


def amend(scores: Sequence[Score], kind: str, log_p: Mapping[str, float]) -> list[Score]:
    """``scores`` (each already holding every kind, its union counting ``kind``) with
    ``kind``'s p-values set from ``log_p`` (a recipient absent keeps its own), best first."""
    at = ALL_KINDS.index(kind)
    out = []
    for s in scores:
        if s.extract_id not in log_p or len(s.kind_log_p) != len(ALL_KINDS):
            out.append(s)
            continue
        kinds = tuple(min(0.0, log_p[s.extract_id]) if i == at else v
                      for i, v in enumerate(s.kind_log_p))
        best = min(v - math.log(WEIGHTS[k]) for k, v in zip(ALL_KINDS, kinds, strict=True))
        out.append(Score(s.extract_id, s.positions, s.tardos, s.flat,
                         min(0.0, best + s.union), min(kinds), kinds, s.union))
    out.sort(key=lambda s: (s.log_bound, -s.tardos))
    return out


@dataclass(frozen=True)
class _Prepared:
    """What every recipient reading the same positions shares: coefficients, the null law's
    tilts, the PRF's input blocks."""

    positions: int
    p: np.ndarray
    threshold: np.ndarray
    coef: dict[str, np.ndarray]
    grids: dict[str, Tilts | None]
    matrix: np.ndarray  # kinds × positions, contiguous
    offset: np.ndarray
    blocks: bytes


def _prepare(marks: Marks, mask: np.ndarray, pool: Executor | None = None) -> _Prepared:
    w, threshold = marks.weight[mask], marks.threshold[mask]
    p = codes.bias(threshold)
    coef = _coefficients(w, p)
    # each kind's tilts are their own (``pool``: the two side by side, the same numbers)
    grids = dict(zip(KINDS, each(pool, lambda k: _grid(coef[k], p), list(KINDS)),
                     strict=True))
    matrix = np.stack([coef[k] for k in KINDS])
    blocks = codes.prf_input(marks.eids[mask], marks.tags[mask])  # built once, keyed per member
    return _Prepared(int(mask.sum()), p, threshold, coef, grids, matrix, matrix @ p, blocks)


def _raw_group(prepared: _Prepared, members: Sequence[Recipient]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Recipients holding the same carriers share positions, coefficients and the MGF: each
    member's two scores, and their bounds at the grid's best ``λ``."""
    grids, matrix = prepared.grids, prepared.matrix
    raw = np.empty((len(members), len(KINDS)))
    for row, member in enumerate(members):
        x = codes.symbols_of(member.key, prepared.blocks, prepared.threshold)
        raw[row] = matrix @ x.astype(np.float64) - prepared.offset
    tails = np.stack([_kind_tails(grids[k], raw[:, i]) for i, k in enumerate(KINDS)], axis=1)
    return raw, tails


def _score_group(prepared: _Prepared, members: Sequence[Recipient], raw: np.ndarray,
                 tails: np.ndarray, union: float) -> list[Score]:
    """The members' scores, each bound refined where it is near the naming line."""
    p, coef, grids = prepared.p, prepared.coef, prepared.grids
    out = []
    for row, member in enumerate(members):
        kinds = [float(v) for v in tails[row]]
        if min(kinds) + union <= math.log(THRESHOLD) + 10:  # near the line or past it: refine
            kinds = [min(v, log_tail(coef[k], p, float(raw[row, i]), grids[k]))
                     for i, (k, v) in enumerate(zip(KINDS, kinds, strict=True))]
        best = min(kinds)  # the fingerprint kinds' weights are 1
        out.append(Score(member.extract_id, prepared.positions, float(raw[row, 0]),
                         float(raw[row, 1]), min(0.0, best + union), best, tuple(kinds),
                         union))
    return out


def _kind_tails(grid: Tilts | None, scores: np.ndarray) -> np.ndarray:
    """Every member's bound at the grid's best ``λ`` (valid, slightly loose)."""
    if grid is None:
        return np.zeros(len(scores))
    best: np.ndarray = np.min(_log_tails(grid, scores), axis=1)
    return best


def _groups(recipients: Iterable[Recipient]) -> dict[frozenset[Carrier], list[Recipient]]:
    groups: dict[frozenset[Carrier], list[Recipient]] = {}
    for recipient in recipients:
        groups.setdefault(recipient.carriers, []).append(recipient)
    return groups


def accused(scores: Sequence[Score]) -> list[Score]:
    """The recipients named: system-wide false-accusation bound ≤ 10⁻⁹."""
    return [s for s in scores if s.accused]


def judge(eids: np.ndarray, suspect: dict[str, np.ndarray], master: pl.DataFrame,
          carriers: Sequence[Carrier], recipients: Sequence[Recipient], bias_key: bytes,
          seed: int = 0, cap: int = MAX_POSITIONS, other: Mapping[str, Other] | None = None
          ) -> tuple[Marks, list[Score]]:
    """Read the marks of linked suspect rows and score every recipient (best first)."""
    marks = read_linked(eids, suspect, master, carriers, bias_key, seed=seed, cap=cap)
    return marks, score(marks, recipients, other=other)


def read_linked(eids: np.ndarray, suspect: dict[str, np.ndarray], master: pl.DataFrame,
                carriers: Sequence[Carrier], bias_key: bytes, seed: int = 0,
                cap: int = MAX_POSITIONS, pool: Executor | None = None) -> Marks:
    """:func:`read_marks` on the linked suspect rows, with their master values (``pool``:
    :func:`read_marks`'s)."""
    eids = np.asarray(eids, dtype=np.int64)
    columns = sorted({c.column for c in carriers} & set(suspect) & set(master.columns))
    by_eid = np.argsort(eids)  # made once for the master's values and the positions' order
    return read_marks(carriers, eids, {c: suspect[c] for c in columns},
                      master_values(master, eids, columns, by_eid), bias_key, seed=seed,
                      cap=cap, pool=pool, by_eid=by_eid)
