"""Marks read from a column's values alone: evidence that needs no row linkage.

Attribution by rows (``accuse.read_marks``) needs each suspect row linked to its participant,
and linkage needs a row's columns to stay together. A leaker who re-pairs rows (half of each
row's columns swapped with another row of the same sex and birth month), shuffles or cuts
them still leaves every marked *value* in its column: a copy's cell is ``m + δ`` (symbol 1) or
``m − δ`` (symbol 0) for the master value ``m`` of some participant, and that value says which
symbol it carries wherever few master cells could have produced it. This module reads those
values as soft symbols of positions (participant, column), column by column, with no row
linked, and scores them with the fingerprint's own bound (``accuse.score``).

**Reading.** For one carrier column, in units of its amplitude ``δ``: the suspect's values on
the carrier's grid, with their multiplicities ``k(Y)``; the master's *marked* cells (present,
``markable``, ``chosen`` — the same cells every copy marks) and *unmarked* cells. A suspect
value ``Y`` can have come from a marked cell at ``Y − 1`` (symbol 1), one at ``Y + 1``
(symbol 0), or an unmarked cell at ``Y``: ``C(Y)`` of them in all. Each of those candidates is
given an equal share ``k(Y) / C(Y)`` of the value, and a marked cell ``i`` (master value
``M``) reads

``w_i = clip(k(M + 1)/C(M + 1) − k(M − 1)/C(M − 1), −1, 1)``:

``+1`` when the suspect holds ``M + δ`` and no other cell could explain it, ``−1`` for
``M − δ``, a fraction when the value is shared with other candidates, and 0 when neither
neighbour is present. A column the suspect holds on a coarser grid than the carrier's (it was
rounded) is not read: its values no longer say which neighbour they came from, and would only
add noise. A date truncated to calendar periods is read by period (``read_periods``): a value
is a period, and a marked cell reads only where ``M − 1`` and ``M + 1`` fall in different
periods — every mark on a month's edge (``Carrier.edges``) when the periods are months.

**Within blocks.** A re-pairer keeps each row's quasi-identifiers (sex, year and month of
birth) with the cells it keeps, or the rows stop being plausible people. So a second reading
counts candidates only among master cells of the row's *block* — the master rows equal to it
on every quasi-identifier the file holds exactly (``exact_columns``: its values are master
values; never a marked column): a value then has a handful of candidates instead of dozens,
which is what lets coarse columns (height in whole centimetres, 10% of cells marked) speak.
If the seller scrambled those columns too, this reading loses its power and the first still
holds. A third reading blocks on *every* exact categorical column the file holds (smoking,
alcohol, ethnic group, medications…; issue 57): a copy of categories and a date kept whole has
blocks of a handful of participants, so a date has one or two candidates and reads almost as
if its row were linked. Each reading is scored; ``ValueEvidence.log_p`` takes the smallest of
the ``2·R`` score bounds (two scores on each of ``R`` readings) times ``2·R``.

**Undoing cheap counters** (issue 57): text labels are read back as codes before linkage
(``labels.py``), and a date column moved by a constant number of days is found within the
finest blocks and read moved back (``date_shift``). Both are functions of the file, the
dictionary and the master alone.

**The bound stays a bound.** The readings (which positions, and their ``w``) are a function of
the suspect file, the master values, the carriers and the system-wide bias key alone. An
innocent recipient's symbols are independent draws ``x ~ Bernoulli(p)`` under its own key
(``codes.py``), and a file made from other recipients' copies, from the raw cohort or from
nothing is independent of them; each position is read once (duplicates keep the strongest
reading). So, conditionally on the readings, an innocent's score is exactly the sum of
independent two-point terms that ``accuse``'s Chernoff–Berry–Esseen bound assumes — the same
argument as for linked readings, with no assumption about linkage, the attack, or how many
candidates a value had (a value explained by several cells only dilutes the evidence).

**Combining with the row-linked evidence** (``accuse.score``'s ``other``, kind ``"values"``):
this evidence's p-value per recipient is the smallest of its score bounds times their number,
``2·R·min(p)`` over the two scores of each of the ``R`` readings (Bonferroni, whatever their
dependence: the blocks, like the readings, never look at a key), and it takes its own share of
the 10⁻⁹ in the same weighted union as the fingerprint, membership, decoy and band evidence
(``accuse.WEIGHTS``). For every recipient ``r`` and kind ``k`` with weight ``w_k`` among
``T = Σ w_k·N_k``, ``P(p_{r,k} ≤ w_k·α/T) ≤ w_k·α/T`` under the null for ``r``; a union over every
(recipient, kind) that could be named gives a system-wide false-accusation probability of at
most ``α``, whatever the dependence between the kinds — the linked and the linkage-free
readings of one cell are the same symbol read twice, so they are never added, only the stronger
p-value used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from strongroom import sets
from strongroom.cohort.model import EID
from strongroom.extracts import accuse, arrays, codes, orders
from strongroom.extracts.accuse import Marks, ReadModel
from strongroom.extracts.carriers import DATE, ORDER, Carrier, as_numbers
from strongroom.extracts.periods import Calendar, infer_calendar

Blocks = tuple[np.ndarray, np.ndarray]  # block id per suspect row, per master row
Positions = tuple[np.ndarray, np.ndarray, np.ndarray]  # ids, carrier indices, soft symbols
MAX_POSITIONS = 25_000  # per reading, the strongest first: ~0.4 s for 1,000 recipients
KIND = "values"


def _units(values: np.ndarray, amplitude: float) -> tuple[np.ndarray, np.ndarray]:
    """Values as whole units of ``amplitude`` (int64), and which of them lie on that grid."""
    scaled = np.divide(values, amplitude)
    rounded = np.rint(scaled)
    finite = np.isfinite(scaled)
    # ``|scaled − rounded| <= 1e-6 + 4e-16·|scaled|`` in three buffers instead of eight (the
    # same numbers); where ``scaled`` is NaN or infinite, ``on`` is False whatever it says
    with np.errstate(invalid="ignore"):
        gap = np.subtract(scaled, rounded)
        np.abs(gap, out=gap)
        tolerance = np.abs(scaled, out=scaled)
        np.add(np.multiply(tolerance, 4e-16, out=tolerance), 1e-6, out=tolerance)
        on = np.less_equal(gap, tolerance)
    on &= finite
    np.copyto(rounded, 0.0, where=~on)
    # the whole units into the gap's buffer, no longer needed (``astype``'s cast, in place
    # of a fourth array)
    units = gap.view(np.int64)
    np.copyto(units, rounded, casting="unsafe")
    return units, on


def _lookup(keys: np.ndarray, table: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``counts`` of each of ``keys`` in the sorted unique ``table`` (0 where absent)."""
    if len(table) == 0:
        return np.zeros(len(keys), dtype=np.float64)
    at = np.clip(np.searchsorted(table, keys), 0, len(table) - 1)
    found: np.ndarray = np.where(table[at] == keys, counts[at], 0).astype(np.float64)
    return found


def _counts(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct ``units`` and how often each occurs (``np.unique``'s answer; by
    counting into bins, not hashing, when the values span a range not much wider than
    their number)."""
    if len(units) and int(units.max()) - int(units.min()) <= 4 * len(units) + 1024:
        low = int(units.min())
        bins = np.bincount(units - low)
        table = np.flatnonzero(bins)
        return (table + low).astype(units.dtype), bins[table]
    table, _, counts = arrays.unique(units, return_counts=True)
    return table, counts


def readable(carrier: Carrier, suspect: np.ndarray,
             rng: np.random.Generator | None = None) -> bool:
    """Whether the suspect column's values can say which neighbour they came from: on the
    carrier's grid (not rounded coarser) and, for dates, not truncated to calendar periods
    (judged on a sample of ``accuse.FIT_SAMPLE`` values)."""
    values = suspect[np.isfinite(suspect)]
    if len(values) == 0:
        return False
    if len(values) > accuse.FIT_SAMPLE:
        rng = rng if rng is not None else np.random.default_rng(0)
        values = values[rng.choice(len(values), accuse.FIT_SAMPLE, replace=False)]
    if carrier.kind == DATE and infer_calendar(values) is not None:
        return False
    grid = accuse.infer_grid(values)
    return grid == 0.0 or grid <= carrier.amplitude * (1 + 1e-9)


def blocks_of(suspect: Mapping[str, np.ndarray], master: Mapping[str, np.ndarray]) -> Blocks:
    """One block id per suspect row and per master row: equal ids, equal values on every
    column given (missing equals missing). Ids are dense, from 0, in the order of the
    columns' values (as ``np.unique`` would number them)."""
    columns = sorted(set(suspect) & set(master))
    n = len(next(iter(suspect.values()))) if suspect else 0
    ids = np.zeros(n + len(next(iter(master.values()))) if master else n, dtype=np.int64)
    for column in columns:
        both = np.concatenate([np.asarray(suspect[column], dtype=np.float64),
                               np.asarray(master[column], dtype=np.float64)])
        code = _ordered_codes(both)
        ids = _dense_ranks(ids * (int(code.max(initial=0)) + 1) + code)
    return ids[:n], ids[n:]


def _ordered_codes(values: np.ndarray) -> np.ndarray:
    """An integer per value, increasing with the value, equal for equal values, NaN last
    (``np.unique``'s inverse, or, for whole numbers over a narrow range, value − minimum:
    the same order, so the same dense ranks after :func:`_dense_ranks`)."""
    finite = np.isfinite(values)
    present = values[finite]
    if len(present) and not np.isinf(values).any():
        low, high = float(present.min()), float(present.max())
        if high - low <= 4 * len(values) + 1024 and bool(np.all(present == np.rint(present))):
            out = np.full(len(values), int(high - low) + 1, dtype=np.int64)
            out[finite] = (present - low).astype(np.int64)
            return out
    _, code = np.unique(values, return_inverse=True)  # NaNs are one value (equal_nan)
    return np.asarray(code, dtype=np.int64).ravel()


def _dense_ranks(keys: np.ndarray) -> np.ndarray:
    """Each key's rank among the distinct keys (``np.unique``'s inverse), by marking the
    keys in an array over their range where it is narrow, by a sort otherwise."""
    low, high = int(keys.min(initial=0)), int(keys.max(initial=0))
    if high - low <= 4 * len(keys) + 1024:
        seen = np.zeros(high - low + 1, dtype=np.int64)
        seen[keys - low] = 1
        rank: np.ndarray = (np.cumsum(seen) - 1)[keys - low]
        return rank
    _, inverse, _ = arrays.unique(keys, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).ravel()


def by_name(suspect: pl.DataFrame, values: Mapping[str, np.ndarray],
            carriers: Sequence[Carrier]) -> dict[str, np.ndarray]:
    """Linkage's suspect values per master column, plus any carrier column linkage left
    unmatched that the suspect holds under its own name as numbers or dates (a column whose
    distribution a mix of copies moved too far for linkage still carries its values)."""
    out = dict(values)
    for carrier in carriers:
        names = (orders.columns_of(carrier, suspect.columns) if carrier.kind == ORDER
                 else [carrier.column])
        for column in names:
            if column in out or column not in suspect.columns:
                continue
            series = suspect[column]
            if series.dtype.is_numeric() or series.dtype in (pl.Date, pl.Datetime):
                out[column] = as_numbers(series)
    return out


def exact_columns(suspect: Mapping[str, np.ndarray], master: Mapping[str, np.ndarray],
                  share: float = 0.99, most: int = 1_000) -> dict[str, np.ndarray]:
    """The master values of the columns the suspect holds exactly, as blocks need them: at
    least ``share`` of its present values are master values, and at most ``most`` distinct
    ones (codes, not measurements)."""
    out = {}
    for column in sorted(set(suspect) & set(master)):
        mine = np.asarray(suspect[column], dtype=np.float64)
        mine = mine[np.isfinite(mine)]
        ref = np.asarray(master[column], dtype=np.float64)
        levels = sets.distinct(ref[np.isfinite(ref)])
        if len(mine) == 0 or len(levels) > most:
            continue
        if float(np.mean(np.isin(mine, levels))) >= share:
            out[column] = ref
    return out


def _within(blocks: Blocks, y: np.ndarray, on: np.ndarray, m: np.ndarray,
            present: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Units made unique per block (``block · stride + unit``, neighbours never crossing a
    block), or None when they would not fit in 62 bits."""
    values = np.concatenate([y[on], m[present]])
    if len(values) == 0:
        return None
    low, high = int(values.min()), int(values.max())
    stride = high - low + 3
    top = int(max(blocks[0].max(initial=0), blocks[1].max(initial=0))) + 1
    if top * stride >= 2**62:
        return None
    return blocks[0] * stride + (y - low + 1), blocks[1] * stride + (m - low + 1)


@dataclass(frozen=True)
class Cells:
    """One carrier's master cells as every reading of the suspect sees them (computed once
    per attribution, shared by the readings with and without blocks): the values in units of
    the amplitude, which are present, which carry a mark, and the marked cells' ids."""

    units: np.ndarray  # int64 units of the amplitude (0 where not on its grid)
    present: np.ndarray  # on the carrier's grid (present)
    marked: np.ndarray  # markable and chosen (``Carrier.marked``)
    unmarked: np.ndarray  # present and not marked
    marked_eids: np.ndarray  # ``eids[marked]``

    @classmethod
    def of(cls, carrier: Carrier, eids: np.ndarray, master: np.ndarray,
           bias_key: bytes) -> Cells:
        eids = np.asarray(eids, dtype=np.int64)
        master = np.asarray(master, dtype=np.float64)
        m, present = _units(master, carrier.amplitude)
        marked = carrier.marked(bias_key, eids, master, among=present)
        return cls(m, present, marked, present & ~marked, eids[marked])


@dataclass
class Shared:
    """What the readings of one suspect share: each carrier's master cells and the
    suspect's values in its units, by the carrier's index."""

    cells: dict[int, Cells] = field(default_factory=dict)
    units: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # each carrier's calendar and readability, as the first reading judged them from its
    # draws of the seed's generator, and that generator's state after them (by seed): the
    # same draws give the same answers in every reading, which then skips them
    judged: dict[tuple[int, int], tuple[Calendar | None, bool]] = field(default_factory=dict)
    drawn: dict[int, Mapping[str, Any]] = field(default_factory=dict)


def master_cells(master: pl.DataFrame, carriers: Sequence[Carrier], bias_key: bytes
                 ) -> dict[int, Cells]:
    """Every value carrier's master cells (:class:`Cells`), by index into ``carriers``: a
    function of the master alone, so attribution makes them while the suspect is linked
    (:func:`gather`'s ``cells``)."""
    eids = master[EID].cast(pl.Int64).to_numpy()
    return {index: Cells.of(carrier, eids, as_numbers(master[carrier.column]), bias_key)
            for index, carrier in enumerate(carriers)
            if carrier.kind != ORDER and carrier.column in master.columns}


DENSE = 1 << 22  # key ranges up to this are counted in arrays, not sorted tables


def read_column(carrier: Carrier, suspect: np.ndarray, eids: np.ndarray, master: np.ndarray,
                bias_key: bytes, blocks: Blocks | None = None, cells: Cells | None = None,
                units: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The marked master cells this column's suspect values read, and their soft symbols.

    ``suspect``: the suspect's values of the column, rows in any order (NaN: missing);
    ``eids``/``master``: every master participant and its value of the column. ``blocks``
    (:func:`blocks_of`): a value is then explained only by master cells of its row's block.
    ``cells`` (:meth:`Cells.of`) and ``units`` (``_units`` of ``suspect``): the same
    master's and suspect's, computed once for several readings.
    """
    cells = cells if cells is not None else Cells.of(carrier, eids, master, bias_key)
    y, on = units if units is not None else _units(np.asarray(suspect, dtype=np.float64),
                                                   carrier.amplitude)
    m = cells.units
    if blocks is not None:
        found = _within(blocks, y, on, m, cells.present)
        if found is None:
            return np.empty(0, np.int64), np.empty(0)
        y, m = found
    y = y[on]
    if len(y) == 0:
        return np.empty(0, np.int64), np.empty(0)
    marked, unmarked = cells.marked, cells.unmarked
    ids = cells.marked_eids
    cells_m = m[marked]
    if not len(cells_m):
        return ids, np.empty(0)
    w = _dense_read(y, cells_m, m[unmarked])
    if w is None:
        marked_table, marked_counts = _counts(cells_m)
        plain_table, plain_counts = _counts(m[unmarked])
        seen, k = _counts(y)
        candidates = (_lookup(seen - 1, marked_table, marked_counts)
                      + _lookup(seen + 1, marked_table, marked_counts)
                      + _lookup(seen, plain_table, plain_counts))
        share = np.where(candidates > 0, k / np.maximum(candidates, 1), 0.0)
        order = np.argsort(cells_m)  # sorted queries: searchsorted runs far faster
        ordered = cells_m[order]
        w = np.empty(len(cells_m))
        w[order] = _lookup(ordered + 1, seen, share) - _lookup(ordered - 1, seen, share)
    keep = np.abs(w) >= accuse.MIN_WEIGHT
    return ids[keep], np.clip(w[keep], -1.0, 1.0)


def _dense_read(y: np.ndarray, marked: np.ndarray, plain: np.ndarray) -> np.ndarray | None:
    """:func:`read_column`'s soft symbols by counting into arrays over the keys' range (the
    same shares, the same sums: ``k(Y)/C(Y)`` at every key), or None when the range is too
    wide for arrays."""
    low = min(int(y.min()), int(marked.min()), int(plain.min()) if len(plain) else 0) - 1
    high = max(int(y.max()), int(marked.max()), int(plain.max()) if len(plain) else 0) + 1
    span = high - low + 1
    if span > max(DENSE, 4 * (len(y) + len(marked) + len(plain))):
        return None
    k = np.bincount(y - low, minlength=span)
    at = marked - low
    # marked cells by key, one slot up: ``below[i]`` counts keys i − 1, ``below[i + 2]`` i + 1
    below = np.bincount(at + 1, minlength=span + 2)
    plain_counts = np.bincount(plain - low, minlength=span)

    def share(keys: np.ndarray) -> np.ndarray:
        """``k(Y)/C(Y)`` at ``keys`` (0 where no candidate), C the marked cells one unit
        below and above plus the unmarked at Y; computed only where it is read, or at every
        key when the range is narrow (every key read lies strictly inside the range, and at
        its two ends ``k`` is 0): each key's quotient is the same either way."""
        candidates = ((below[keys] + below[keys + 2]) + plain_counts[keys]).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            found: np.ndarray = np.where(candidates > 0,
                                         k[keys] / np.maximum(candidates, 1), 0.0)
        return found

    if span <= 4 * len(at):  # a narrow range: every key's share at once, then read twice
        # the same quotient at each key as ``share(np.arange(span))``, read from slices of
        # the counts rather than gathered through an index (the same numbers, in place)
        table = below[:span] + below[2:]
        table += plain_counts
        none = table <= 0
        # counts are whole numbers far below 2⁵³: ``k / max(C, 1)`` is the same quotient of
        # the same two doubles as with both made floats first
        found = np.true_divide(k, np.maximum(table, 1, out=table))
        np.copyto(found, 0.0, where=none)
        before = np.subtract(at, 1, out=at)  # keys − 1: ``found[2:]`` there is keys + 1
        out: np.ndarray = found[2:][before] - found[:-2][before]
        return out
    out = share(at + 1) - share(at - 1)
    return out


def read_periods(carrier: Carrier, calendar: Calendar, suspect: np.ndarray, eids: np.ndarray,
                 master: np.ndarray, bias_key: bytes, blocks: Blocks | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_column` for a date carrier the suspect holds truncated to ``calendar``'s
    periods (months, quarters, years, weeks): a value is a period, a marked cell at ``M``
    explains the period of ``M + 1`` (symbol 1) or of ``M − 1`` (symbol 0), and reads only
    where the two differ (a mark on a month's edge, ``Carrier.edges``: every one, for
    months); any other cell explains its own period. The same equal shares of each value
    among its candidates, within ``blocks`` when given."""
    eids = np.asarray(eids, dtype=np.int64)
    master = np.asarray(master, dtype=np.float64)
    y = calendar.bins(np.asarray(suspect, dtype=np.float64))
    present = np.isfinite(master)
    marked = carrier.marked(bias_key, eids, master, among=present)
    same = calendar.bins(master)
    up = calendar.bins(master + carrier.amplitude)
    down = calendar.bins(master - carrier.amplitude)
    crossing = marked & (up != down)
    plain = present & ~crossing
    on = np.isfinite(y)
    labels = np.concatenate([y[on], same[present]])
    if not len(labels) or not crossing.any():
        return np.empty(0, np.int64), np.empty(0)
    low = int(labels.min()) - 2
    stride = int(labels.max()) - low + 3
    sb, mb = blocks if blocks is not None else (np.zeros(len(y), np.int64),
                                                np.zeros(len(master), np.int64))
    if (int(max(sb.max(initial=0), mb.max(initial=0))) + 1) * stride >= 2**62:
        return np.empty(0, np.int64), np.empty(0)

    def keyed(block: np.ndarray, label: np.ndarray) -> np.ndarray:
        out: np.ndarray = block * stride + (np.nan_to_num(label).astype(np.int64) - low)
        return out

    seen, k = _counts(keyed(sb[on], y[on]))
    up_table, up_counts = _counts(keyed(mb[crossing], up[crossing]))
    down_table, down_counts = _counts(keyed(mb[crossing], down[crossing]))
    plain_table, plain_counts = _counts(keyed(mb[plain], same[plain]))
    candidates = (_lookup(seen, up_table, up_counts) + _lookup(seen, down_table, down_counts)
                  + _lookup(seen, plain_table, plain_counts))
    share = np.where(candidates > 0, k / np.maximum(candidates, 1), 0.0)
    w = (_lookup(keyed(mb[crossing], up[crossing]), seen, share)
         - _lookup(keyed(mb[crossing], down[crossing]), seen, share))
    keep = np.abs(w) >= accuse.MIN_WEIGHT
    return eids[crossing][keep], np.clip(w[keep], -1.0, 1.0)


def _calendar(carrier: Carrier, values: np.ndarray, rng: np.random.Generator
              ) -> Calendar | None:
    """The calendar periods a date carrier's suspect values were truncated to, or None."""
    if carrier.kind != DATE:
        return None
    present = values[np.isfinite(values)]
    if len(present) > accuse.FIT_SAMPLE:
        present = present[rng.choice(len(present), accuse.FIT_SAMPLE, replace=False)]
    return infer_calendar(present) if len(present) else None


def read(carriers: Sequence[Carrier], suspect: Mapping[str, np.ndarray], eids: np.ndarray,
         master: Mapping[str, np.ndarray], bias_key: bytes, seed: int = 0,
         cap: int = MAX_POSITIONS, blocks: Blocks | None = None,
         extra: Positions | None = None,
         shared: Shared | None = None) -> Marks:
    """Soft symbols of every marked master cell the suspect's values point to, column by
    column, with no row linked. ``suspect[column]``: the suspect's values (any row order);
    ``eids``/``master[column]``: every master participant and its values (dates as days).

    A column's readings are one per master cell; carriers describing the same column (made
    from different cohort versions) are merged so that each position is read once. At most
    ``cap`` positions are kept, the strongest first (ties drawn at random from ``seed``).
    ``blocks``: read each value only against master cells of its row's block (exact columns
    a re-pairer keeps, such as sex and month of birth: far fewer candidates per value).
    ``extra``: positions read otherwise with no row linked (the order marks of multi-answer
    fields, :func:`read_orders`), indices into ``carriers``: distinct positions, added.
    ``shared``: kept between readings of the same suspect values, master and carriers
    (:func:`gather`'s): each carrier's master cells and suspect units, made once.
    """
    rng = np.random.default_rng(seed)
    parts_eid, parts_idx, parts_w = [], [], []
    models: dict[str, ReadModel] = {}
    table = codes.column_tags([c.column for c in carriers])
    shared = shared if shared is not None else Shared()
    judged = seed in shared.drawn  # an earlier reading judged every carrier below
    for column in dict.fromkeys(c.column for c in carriers if c.kind != ORDER):
        if column not in suspect or column not in master:
            continue
        values = np.asarray(suspect[column], dtype=np.float64)
        col_eid, col_idx, col_w = [], [], []
        for index, carrier in enumerate(carriers):
            if carrier.column != column:
                continue
            if judged:
                calendar, ok = shared.judged[seed, index]
            else:
                calendar = _calendar(carrier, values, rng)
                ok = calendar is None and readable(carrier, values, rng)
                shared.judged[seed, index] = (calendar, ok)
            if calendar is not None:  # a date truncated to its month (or coarser)
                who, w = read_periods(carrier, calendar, values, eids, master[column],
                                      bias_key, blocks)
            elif ok:
                if index not in shared.cells:
                    shared.cells[index] = Cells.of(carrier, eids, master[column], bias_key)
                if index not in shared.units:
                    shared.units[index] = _units(values, carrier.amplitude)
                who, w = read_column(carrier, values, eids, master[column], bias_key, blocks,
                                     cells=shared.cells[index], units=shared.units[index])
            else:
                continue
            col_eid.append(who)
            col_idx.append(np.full(len(w), index, dtype=np.int32))
            col_w.append(w)
        if not col_eid or not sum(len(w) for w in col_w):
            continue
        who, idx, w = (np.concatenate(col_eid), np.concatenate(col_idx),
                       np.concatenate(col_w))
        if len(col_eid) > 1:  # one reading per position: the strongest
            who, idx, w = accuse.strongest_per_position(who, idx, w, table)
        models[column] = ReadModel(carriers[int(idx[0])].amplitude, 0.0, 0.0,
                                   int(np.isfinite(values).sum()), float(np.sum(w * w)))
        parts_eid.append(who)
        parts_idx.append(idx)
        parts_w.append(w)
    if judged:  # where the judging draws left the generator
        rng.bit_generator.state = shared.drawn[seed]
    else:
        shared.drawn[seed] = rng.bit_generator.state
    if extra is not None and len(extra[2]):
        who, idx, w = extra
        for index in sets.distinct(idx):
            mine = w[idx == index]
            models[carriers[int(index)].column] = ReadModel(0.0, 0.0, 0.0, len(mine),
                                                            float(np.sum(mine * mine)))
        keep = np.abs(w) >= accuse.MIN_WEIGHT
        parts_eid.append(who[keep])
        parts_idx.append(idx[keep])
        parts_w.append(w[keep])
    if not parts_eid:
        empty = np.empty(0)
        return Marks(list(carriers), empty.astype(np.int64), empty.astype(np.int32), empty,
                     empty.astype(np.uint32), models)
    capped_from = 0
    total = sum(len(w) for w in parts_w)
    if total > cap:
        capped_from = total
        keep = strongest(np.abs(np.concatenate(parts_w)), cap, rng)
        # the kept readings taken from each part (its stretch of the ascending ``keep``),
        # not from every reading laid end to end: the same entries, in the same order
        ends = np.cumsum([len(w) for w in parts_w])
        cuts = np.searchsorted(keep, ends)
        taken = [keep[start:stop] - (end - len(w)) for start, stop, end, w in
                 zip(np.concatenate([[0], cuts[:-1]]), cuts, ends, parts_w, strict=True)]
        all_eid, all_idx, all_w = (np.concatenate([p[t] for p, t in zip(parts, taken,
                                                                          strict=True)])
                                   for parts in (parts_eid, parts_idx, parts_w))
    else:
        all_eid, all_idx, all_w = (np.concatenate(parts_eid), np.concatenate(parts_idx),
                                   np.concatenate(parts_w))
    threshold = codes.thresholds(bias_key, all_eid, table[all_idx])
    return Marks(list(carriers), all_eid, all_idx, all_w, threshold, models, capped_from)


def strongest(strength: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (ascending) of the ``cap`` largest ``strength``, ties at the cut drawn at
    random: a rule that never looks at a recipient's key, so the bound holds for any draw."""
    cut = _cut(strength, cap)
    above = np.flatnonzero(strength > cut)
    tied = np.flatnonzero(strength == cut)
    chosen = rng.choice(tied, cap - len(above), replace=False)
    return np.sort(np.concatenate([above, chosen]))


def _cut(strength: np.ndarray, cap: int) -> float:
    """The ``cap``-th largest ``strength`` (``0 < cap <= len``): the largest itself when at
    least ``cap`` readings share it (an intact copy's hard readings, all 1), without the
    partition of every reading that finds it otherwise."""
    top = float(strength.max())
    if cap > 0 and int(np.count_nonzero(strength == top)) >= cap:
        return top
    return float(np.partition(strength, len(strength) - cap)[len(strength) - cap])


@dataclass(frozen=True)
class Reading:
    """One linkage-free reading of the suspect and every recipient's scores on it."""

    name: str  # "values", or "values within <exact columns>"
    marks: Marks
    scores: dict[str, accuse.Score]  # extract id -> its scores on these readings alone


@dataclass(frozen=True)
class ValueEvidence:
    """The linkage-free evidence: one or two readings (values alone; values within the
    blocks of exact columns), and the ``Other`` that ``accuse.score`` combines with the rest.

    A recipient's p-value is the smallest of its ``2·R`` score bounds (two scores on each of
    ``R`` readings) times ``2·R``: Bonferroni over every score, whatever their dependence.
    """

    readings: tuple[Reading, ...]
    shifts: Mapping[str, int] = field(default_factory=dict)  # date column -> days moved

    @property
    def marks(self) -> Marks:
        """The first reading's marks (values alone)."""
        return self.readings[0].marks

    @property
    def scores(self) -> dict[str, accuse.Score]:
        """The first reading's scores (values alone)."""
        return self.readings[0].scores

    def log_p(self, extract_id: str) -> float:
        """ln of the recipient's p-value over every reading and score (Bonferroni)."""
        found = [r.scores[extract_id] for r in self.readings
                 if extract_id in r.scores and r.scores[extract_id].positions > 0]
        if not found:
            return 0.0
        tests = len(accuse.KINDS) * len(self.readings)
        return min(0.0, min(s.log_p for s in found) + math.log(tests))

    def held(self) -> list[str]:
        return sorted({e for r in self.readings for e, s in r.scores.items() if s.positions})

    def other(self) -> accuse.Other:
        held = self.held()
        return accuse.Other({e: self.log_p(e) for e in held}, len(held))


def score(name: str, marks: Marks, recipients: Sequence[accuse.Recipient]) -> Reading:
    """Every recipient scored on one reading (``accuse.score``'s own bound)."""
    scores = accuse.score(marks, recipients) if len(marks) else []
    return Reading(name, marks, {s.extract_id: s for s in scores})


def evidence(marks: Marks, recipients: Sequence[accuse.Recipient]) -> ValueEvidence:
    """The evidence of a single reading (values alone)."""
    return ValueEvidence((score(KIND, marks, recipients),))


def gather(values: Mapping[str, np.ndarray], master: pl.DataFrame,
           carriers: Sequence[Carrier], recipients: Sequence[accuse.Recipient],
           bias_key: bytes, seed: int = 0, cap: int = MAX_POSITIONS,
           keys: Mapping[str, np.ndarray] | None = None,
           categories: Mapping[str, np.ndarray] | None = None,
           cells: Mapping[int, Cells] | None = None) -> ValueEvidence:
    """The linkage-free evidence of a suspect whose columns linkage matched: ``values`` is
    :class:`linkage.Linked`'s (master column -> the suspect's values, rows as read), ``master``
    the cohort (``eid`` + columns). ``keys``: exact, unmarked master columns as linkage
    compares them (column -> master values in ``master``'s row order) whose suspect values are
    in ``values`` too; when given, a second reading within their blocks. ``categories``: the
    same for every exact, unmarked categorical column the suspect holds (quasi-identifiers and
    the rest); when they are more than ``keys``, a third reading within their blocks.

    A date carrier the suspect holds shifted by a whole number of days is read shifted back
    (:func:`date_shift`, judged within the finest blocks given; ``ValueEvidence.shifts``).
    ``cells``: :func:`master_cells` of the same master, carriers and bias key, made already."""
    columns = sorted({c.column for c in carriers} & set(values) & set(master.columns))
    eids = master[EID].cast(pl.Int64).to_numpy()
    suspect = {c: values[c] for c in columns}
    cohort = {c: as_numbers(master[c]) for c in columns}
    extra = read_orders(carriers, values, master)
    exact = sorted(set(keys or {}) & set(values))
    blocks = (blocks_of({c: values[c] for c in exact}, {c: keys[c] for c in exact})
              if exact and keys is not None else None)
    wide = sorted(set(categories or {}) & set(values))
    fine = (blocks_of({c: values[c] for c in wide}, {c: categories[c] for c in wide})
            if categories is not None and wide and not set(wide) <= set(exact) else None)
    shifts: dict[str, int] = {}
    finest = fine if fine is not None else blocks
    for column in dict.fromkeys(c.column for c in carriers if c.kind == DATE):
        if column in suspect and finest is not None and infer_calendar(
                np.asarray(suspect[column], dtype=np.float64)[:accuse.FIT_SAMPLE]) is None:
            shift = date_shift(suspect[column], cohort[column], finest,
                               np.random.default_rng(seed))
            if shift:
                shifts[column] = shift
                suspect[column] = np.asarray(suspect[column], dtype=np.float64) - shift
    shared = Shared(dict(cells or {}))  # the master's cells and the suspect's units, made
    # once for every reading
    readings = [score(KIND, read(carriers, suspect, eids, cohort, bias_key, seed=seed,
                                 cap=cap, extra=extra, shared=shared), recipients)]
    if blocks is not None:
        marks = read(carriers, suspect, eids, cohort, bias_key, seed=seed, cap=cap,
                     blocks=blocks, extra=extra, shared=shared)
        readings.append(score(f"{KIND} within {', '.join(exact)}", marks, recipients))
    if fine is not None:
        marks = read(carriers, suspect, eids, cohort, bias_key, seed=seed, cap=cap,
                     blocks=fine, extra=extra, shared=shared)
        readings.append(score(f"{KIND} within {len(wide)} categorical columns", marks,
                              recipients))
    return ValueEvidence(tuple(readings), shifts)


MAX_SHIFT = 400  # days a date column may have been moved by, as a whole
SHIFT_SAMPLE = 4_000  # suspect dates the shift is judged on
SHIFT_GAIN = 2.0  # a shift is taken when it puts this many times more dates on a master date


def date_shift(suspect: np.ndarray, master: np.ndarray, blocks: Blocks,
               rng: np.random.Generator) -> int:
    """The whole number of days a seller moved every date of a column by, or 0.

    For each shift ``o`` (``|o| ≤ MAX_SHIFT``), how many suspect dates (a sample) minus ``o``
    equal a master date of their row's block; the best ``o`` is taken when it explains
    ``SHIFT_GAIN`` times as many as no shift and a third of the sample (a copy as issued
    matches at 0: every unmarked date is its master's). Blocks of several exact categories
    hold a handful of participants each, so a wrong shift matches by chance only; with no
    blocks every shift matches (the cohort has a date on most days) and none is taken. A
    function of the file and the master alone: reading the shifted-back dates keeps the
    null law of every recipient."""
    y = np.asarray(suspect, dtype=np.float64)
    m = np.asarray(master, dtype=np.float64)
    sb, mb = blocks
    rows = np.flatnonzero(np.isfinite(y))
    known = np.isfinite(m)
    if len(rows) < 20 or not known.any():
        return 0
    if len(rows) > SHIFT_SAMPLE:
        rows = np.sort(rng.choice(rows, SHIFT_SAMPLE, replace=False))
    low = int(m[known].min()) - MAX_SHIFT - 1
    stride = int(m[known].max()) - low + 2 * MAX_SHIFT + 3
    if (int(max(sb.max(initial=0), mb.max(initial=0))) + 1) * stride >= 2**62:
        return 0
    table = sets.distinct(mb[known] * stride + (m[known].astype(np.int64) - low))
    days = y[rows].astype(np.int64) - low
    inside = (days >= 0) & (days < stride)
    base = sb[rows] * stride
    shifts = np.arange(-MAX_SHIFT, MAX_SHIFT + 1)
    hits = np.zeros(len(shifts), dtype=np.int64)
    for i, o in enumerate(shifts.tolist()):
        day = days - o
        ok = inside & (day >= 0) & (day < stride)
        keys = base[ok] + day[ok]
        at = np.clip(np.searchsorted(table, keys), 0, max(len(table) - 1, 0))
        hits[i] = int(np.sum(table[at] == keys)) if len(table) else 0
    best = int(np.argmax(hits))
    at_zero = int(hits[MAX_SHIFT])
    if shifts[best] == 0 or hits[best] < SHIFT_GAIN * max(at_zero, 1) \
            or hits[best] < len(rows) / 3:
        return 0
    return int(shifts[best])


def read_orders(carriers: Sequence[Carrier], values: Mapping[str, np.ndarray],
                master: pl.DataFrame) -> Positions:
    """The order marks of every multi-answer field (``orders.py``) the suspect holds, read
    from each row's tuple of the field: positions as :func:`read`'s ``extra`` takes them."""
    chosen = [(i, c) for i, c in enumerate(carriers) if c.kind == ORDER]
    columns = {col for _, c in chosen for col in orders.columns_of(c, master.columns)}
    return orders.read(chosen, {c: values[c] for c in columns if c in values},
                       {c: as_numbers(master[c]) for c in columns})
