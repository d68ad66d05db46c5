"""The raw-row scanner: participant-level rows and participant IDs in anything that leaves.

Every payload is read into tables (``readers.py``) and searched two ways.

**Participant IDs.** Any whole number that is a master ID (``eid``) or a project pseudonym
is looked up in a bitset of all of them. UK Biobank-style IDs are 7-digit numbers, and with
several projects the IDs fill a good share of the 7-digit range, so one 7-digit count in an
aggregate table can collide with an ID by chance. One such value alone is therefore not
blocked; two or more distinct IDs, a column made mostly of IDs, or an ID in a column named as
an ID column are (a participant list, or one person's rows, always look like one of these).

**Raw rows.** A row is participant-level when its values single out one cohort record on
several columns at once. Columns may be renamed, reordered or dropped and values rounded, so
nothing is matched by name or by exact value:

1. Each payload number gets its apparent precision (the fewest decimals that write it), and a
   key at that precision. A cohort value x matches a payload value v shown with d decimals
   when ``floor(x · 10^d)`` is ``v · 10^d`` or one less: that covers rounding half up, half
   even and half down, truncation and ceiling, and values shown at full precision.
2. Each payload column is mapped to the cohort columns (same kind: number or date; enough
   recorded decimals) that explain its values best: the log-likelihood of the column's values
   under each cohort column's distribution at the payload's precision (an index of key counts
   per column and precision, built once per cohort version). The top few are kept.
3. Rows are linked to candidate records by a hash join on the keys of their most selective
   mapped cells (1–6 of them, taken in one order for the whole table, until a few records
   share the key), then every candidate is compared on every mapped cell. A row singles out
   a record when one record, and only one, matches it best, on at least 3 columns, and a
   match that good is unlikely by coincidence: the expected number of records matching those
   values by chance (cohort size × the product of each value's frequency), times the number
   of column subsets that could have matched, is below 1 in 1000. Each column's mapping is
   first settled by the rows themselves: the cohort column that the best records of at least
   3 rows agree on (a one-row verdict instead pays for every mapping it tried).
4. The payload is blocked when at least 3 rows single out participants, or one row does so
   beyond doubt (chance below 1 in 10⁸ on at least 4 columns). A table is read whole, then
   section by section (a listing appended below a summary is mapped on its own), then
   transposed (participants as columns are as disclosive).

Most aggregate tables are settled before any record is linked: a row can only single someone
out on as many columns as it has cells of distinct payload and cohort columns, and only as
improbably as its most selective cells allow. When these bounds show that fewer than 3 rows
could, and none beyond doubt, the search is skipped; its outcome would have been the same.
Otherwise rows are confirmed a bounded batch at a time, keeping only each batch's best
records and votes, and the records that match a row on the very same cells (often thousands,
found by coarse link keys) are scored once for all of them: a GWAS of 19,000 variants against
500,000 records went from 96 s and 20 GB to 7 s and under 1 GB, with the same outcome.

Aggregate outputs pass because their rows do not look like any one record: a mean is rarely
any participant's value on three columns at once, and a count, a percentage and a category
code match thousands of records or none. Findings say how many rows and columns matched,
never which values or participants. Not covered: categories written as their labels
("Female") rather than codes, and rows of only a few coarse values (three integers cannot
single out one of 500,000 people, and are not reported).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.special import gammaln

from strongroom import sets
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import EID, parse_column_name
from strongroom.outputs.ids import IdSet
from strongroom.outputs.readers import (
    TOKEN,
    Payload,
    PayloadTable,
    UnreadablePayload,
    read_payload,
)
from strongroom.outputs.verdicts import Finding, Verdict

RULE_ROWS = "raw_rows"
RULE_IDS = "identifiers"
RULE_FORMAT = "unrecognised_format"

MAX_PRECISION = 6  # decimals beyond this are not a rounded cohort value
MIN_COLUMNS = 3  # a row must match a record on at least this many columns
MIN_ROWS = 3  # rows that must single out participants before the payload is blocked
CHANCE = 1e-3  # a match this unlikely by coincidence singles out a participant
STRONG_CHANCE = 1e-8  # one row suffices when chance is this small, on 4+ columns
STRONG_COLUMNS = 4
HYPOTHESES = 3  # cohort columns kept per payload column
LINK_HYPOTHESES = 2  # of which used to link (every kept one confirms)
LINK_POSTING = 4.0  # link on enough cells that about this many records share the key
MAX_LINK_POSTING = 2000.0  # rows needing more are too unspecific to single anyone out
MAX_LINK_CELLS = 6
LINK_ROWS = 1000  # rows linked at once (their candidate pairs are held together)
MAX_ROW_CELLS = 64  # a row's most selective cells scored (enough evidence; bounds wide rows)
MAX_SECTIONS = 50  # sections of a table scanned on their own (the largest)
MAP_SAMPLE = 5000  # rows used to map columns (all rows are then linked and confirmed)
MAX_JOINS = 300  # distinct link keys per chunk of rows; beyond this the scan refuses (fail closed)
# and per table (a join and its confirmation take 10-20 ms at 500,000 records, so a table's
# search takes under two minutes): a GWAS of 19,319 variants needs 309 (two chunks); a table
# of 200,000 rows each with its own decimals would need 44,650 (7 minutes)
MAX_TABLE_JOINS = 5000

_SLOT_SHIFT = 40  # composite key: (column × 8 + precision) << 40 | (key + 2^39)
_KEY_OFFSET = 1 << 39
_ASCII_DIGIT = re.compile(r"[0-9]")
_ID_NAME = re.compile(r"(?i)(^|[^a-z])(e|p)?id([^a-z]|$)|participant|pseudonym")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_Pairs = tuple[IntArray, IntArray, IntArray, IntArray]  # cell, cohort column, count, span


@dataclass(frozen=True)
class IndexedColumn:
    """One cohort column as scaled integers (value × 10^precision); NULL is the dtype's min."""

    name: str
    is_date: bool
    precision: int
    values: npt.NDArray[np.signedinteger]
    low: int
    high: int

    @property
    def null(self) -> int:
        return int(np.iinfo(self.values.dtype).min)

    def keys(self, digits: int | IntArray, rows: IntArray | None = None) -> IntArray:
        """Floor keys at ``digits`` decimals, one for all or one per row (NULL stays the
        int64 minimum, which no payload key is)."""
        raw = self.values if rows is None else self.values[rows]
        wide = raw.astype(np.int64)
        out: IntArray = np.floor_divide(wide, 10 ** (self.precision - digits))
        out[raw == self.null] = np.iinfo(np.int64).min
        return out


@dataclass(frozen=True)
class RowIndex:
    """The cohort's records and key counts for one version, and the participant IDs."""

    n: int
    columns: tuple[IndexedColumn, ...]
    keys: IntArray  # sorted composite keys of every (column, precision, value)
    counts: npt.NDArray[np.int32]  # records holding each key
    ids: IdSet  # master IDs and live pseudonyms (kept in step by the output service)

    @classmethod
    def build(cls, participants: pl.DataFrame, dictionary: Dictionary) -> RowIndex:
        """Index a cohort's participant table (eid + columns) and its master IDs."""
        columns = tuple(c for name in participants.columns if name != EID
                        if (c := _index_column(name, participants[name], dictionary)))
        keys, counts = _key_counts(columns)
        return cls(participants.height, columns, keys, counts,
                   IdSet(participants[EID].cast(pl.Int64).to_numpy()))

    @property
    def nbytes(self) -> int:
        return (sum(c.values.nbytes for c in self.columns) + self.keys.nbytes
                + self.counts.nbytes + self.ids.nbytes)

    def lookup(self, column: IntArray, digits: IntArray, key: IntArray) -> IntArray:
        """Records whose column value has floor key ``key`` at ``digits`` decimals."""
        composite = ((column * 8 + digits) << _SLOT_SHIFT) + (key + _KEY_OFFSET)
        at = np.searchsorted(self.keys, composite)
        at = np.minimum(at, len(self.keys) - 1)
        found = self.keys[at] == composite
        return np.where(found, self.counts[at], 0).astype(np.int64)

    def is_id(self, values: IntArray) -> npt.NDArray[np.bool_]:
        return self.ids.contains(values)


def scan(index: RowIndex, data: bytes, filename: str) -> list[Finding]:
    """Findings for participant IDs or participant-level rows in a payload (none: it passes)."""
    try:
        payload = read_payload(data, filename)
    except UnreadablePayload as exc:
        return [Finding(RULE_FORMAT, Verdict.BLOCK, "; ".join(exc.reasons))]
    return identifier_findings(index, payload) + raw_row_findings(index, payload)


# -- building the index --------------------------------------------------------------------


def _index_column(name: str, series: pl.Series, dictionary: Dictionary) -> IndexedColumn | None:
    is_date = series.dtype == pl.Date or isinstance(series.dtype, pl.Datetime)
    if is_date:
        numbers = series.cast(pl.Date).cast(pl.Int32).cast(pl.Float64)
    elif series.dtype.is_numeric() or series.dtype == pl.Boolean:
        numbers = series.cast(pl.Float64)
    elif series.dtype == pl.String:
        numbers = series.cast(pl.Float64, strict=False)
        if numbers.null_count() > series.null_count() + 0.01 * series.len():
            return None  # text that is not numbers: not matchable by value
    else:
        return None
    values = numbers.to_numpy()
    present = np.isfinite(values)
    if not present.any():
        return None
    precision = 0 if is_date else max(_hinted_precision(name, dictionary),
                                      _precision_of(values[present]))
    scaled = np.round(values[present] * 10.0**precision).astype(np.int64)
    low, high = int(scaled.min()), int(scaled.max())
    dtype = next(t for t in (np.int8, np.int16, np.int32, np.int64)
                 if np.iinfo(t).min < low and high <= np.iinfo(t).max)
    stored: npt.NDArray[np.signedinteger] = np.full(len(values), np.iinfo(dtype).min,
                                                    dtype=dtype)
    stored[present] = scaled
    return IndexedColumn(name, is_date, precision, stored, low, high)


def _hinted_precision(name: str, dictionary: Dictionary) -> int:
    try:
        fld = dictionary.field(parse_column_name(name, dictionary).field_id)
    except (KeyError, ValueError):
        return 0  # a column the dictionary does not name: its data say its precision
    return fld.precision or 0 if fld.is_numeric else 0


def _precision_of(values: FloatArray) -> int:
    """The fewest decimals that write every value (capped at MAX_PRECISION)."""
    for digits in range(MAX_PRECISION + 1):
        scaled = values * 10.0**digits
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 + 1e-12 * np.abs(scaled)):
            return digits
    return MAX_PRECISION


def _key_counts(columns: tuple[IndexedColumn, ...]) -> tuple[IntArray, npt.NDArray[np.int32]]:
    """Records per floor key, for every column at every precision up to its own."""
    all_keys, all_counts = [], []
    for j, col in enumerate(columns):
        present = col.values[col.values != col.null].astype(np.int64)
        span = col.high - col.low + 1
        if span <= 4 * len(present) + 1024:  # dense: a histogram, no sort
            hist = np.bincount(present - col.low, minlength=span)
            uniques = np.nonzero(hist)[0].astype(np.int64) + col.low
            counts = hist[hist > 0].astype(np.int64)
        else:
            uniques, counts = np.unique(present, return_counts=True)
        for digits in range(col.precision, -1, -1):
            if digits < col.precision:  # coarser keys: merge runs of the finer ones
                coarse = np.floor_divide(uniques, 10)
                starts = np.flatnonzero(np.r_[True, coarse[1:] != coarse[:-1]])
                uniques, counts = coarse[starts], np.add.reduceat(counts, starts)
            slot = (j * 8 + digits) << _SLOT_SHIFT
            all_keys.append(slot + uniques + _KEY_OFFSET)
            all_counts.append(counts.astype(np.int32))
    if not all_keys:
        return np.empty(0, np.int64), np.empty(0, np.int32)
    keys = np.concatenate(all_keys)
    order = np.argsort(keys, kind="stable")
    return keys[order], np.concatenate(all_counts)[order]


# -- participant IDs -----------------------------------------------------------------------


def identifier_findings(index: RowIndex, payload: Payload) -> list[Finding]:
    """Block two or more distinct participant IDs, or a column that is an ID column."""
    found: list[IntArray] = []
    columns_with_ids = 0
    id_column = False
    for table in payload.tables:
        grid = _grid(table.numbers)
        for at, name in enumerate(table.numbers.columns):
            values = _whole_numbers(grid[:, at])
            hits = values[index.is_id(values)]
            if len(hits) == 0:
                continue
            found.append(hits)
            columns_with_ids += 1
            base = table.sources.get(name, name)
            present = int(table.numbers[name].is_not_null().sum())
            # an ID in a column named as one, or a column mostly of IDs (one person's rows)
            id_column |= bool(_ID_NAME.search(base)) or (present >= 2 and 2 * len(hits) > present)
        names = [*table.text.columns, *table.numbers.columns]
        if not any(_ASCII_DIGIT.search(n) for n in names):
            continue  # other digits do not parse as numbers: no ID in these names
        header = _whole_numbers(
            pl.Series(names, dtype=pl.String).str.extract_all(TOKEN).explode().drop_nulls()
            .str.replace_all(",", "").cast(pl.Float64, strict=False).drop_nulls().to_numpy())
        if (header_ids := header[index.is_id(header)]).size:
            found.append(header_ids)
            columns_with_ids += 1
    if not found:
        return []
    distinct = len(sets.distinct(np.concatenate(found)))
    if distinct < 2 and not id_column:
        # a single ID-valued number is let through: with many projects, IDs fill much of the
        # 7-digit range, so one 7-digit count or sum collides by chance (module docstring)
        return []
    what = "value is a participant ID" if distinct == 1 else "values are participant IDs"
    return [Finding(
        RULE_IDS, Verdict.BLOCK,
        f"{distinct} distinct {what} (master or project pseudonyms), in {columns_with_ids} "
        f"column{'s' if columns_with_ids != 1 else ''}; participant IDs may never leave the "
        "enclave: remove them and release aggregates",
    )]


def _grid(numbers: pl.DataFrame) -> FloatArray:
    """A table's numbers as a (row, column) array; NULL is NaN."""
    if numbers.width == 0:
        return np.empty((numbers.height, 0))
    grid: FloatArray = numbers.select(pl.all().cast(pl.Float64)).to_numpy()
    return grid


def _whole_numbers(values: FloatArray) -> IntArray:
    values = values[np.isfinite(values)]  # NULL (NaN) and infinities out
    values = values[np.abs(values) < 2**53]
    whole: IntArray = values[values == np.round(values)].astype(np.int64)
    return whole


# -- raw rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Matched:
    rows: int
    strong: bool
    fewest: int
    most: int


def raw_row_findings(index: RowIndex, payload: Payload) -> list[Finding]:
    """Block payloads with rows that each single out one participant's record."""
    findings = []
    for table in payload.tables:
        cells = _cells(table)
        if cells.height == 0:
            continue
        try:
            found = _scan_table(index, table, cells)
        except _TooComplexError:
            findings.append(Finding(RULE_ROWS, Verdict.BLOCK, _too_complex(table)))
            continue
        if found is not None:
            findings.append(Finding(RULE_ROWS, Verdict.BLOCK, _reason(table, *found)))
    return findings


def _scan_table(index: RowIndex, table: PayloadTable,
                cells: pl.DataFrame) -> tuple[str, _Matched] | None:
    """The first reading of a table in which rows single out participants, if any.

    The whole table, then each section of it (runs of rows between rows without numbers, as
    when a file appends a listing below a summary: each section is mapped on its own), then
    the table transposed (participants as columns).
    """
    readings = [("", cells)]
    sections = _sections(cells)
    readings += [("", part) for part in sections] if len(sections) > 1 else []
    if table.numbers.height >= MIN_COLUMNS and table.numbers.width >= MIN_COLUMNS:
        readings.append((" (read with rows and columns swapped)",
                         cells.rename({"r": "c", "c": "r"})))
    for how, reading in readings:
        matched = match_rows(index, reading)
        if matched.rows >= MIN_ROWS or matched.strong:
            return how, matched
    return None


def _sections(cells: pl.DataFrame) -> list[pl.DataFrame]:
    """Runs of consecutive rows with numbers (a row without any number ends a run)."""
    present = sets.distinct(cells["r"].to_numpy())
    if len(present) == 0 or present[-1] - present[0] + 1 == len(present):  # one run
        return [cells] if len(present) >= 2 else []
    rows = pl.Series("r", present)
    section = (rows.diff().fill_null(1) > 1).cum_sum()
    starts = pl.DataFrame({"r": rows, "section": section})
    parts = (cells.join(starts, on="r")
             .partition_by("section", include_key=False, maintain_order=True))
    parts = [p for p in parts if p["r"].n_unique() >= 2]
    return sorted(parts, key=lambda p: -p["r"].n_unique())[:MAX_SECTIONS]


def _reason(table: PayloadTable, how: str, matched: _Matched) -> str:
    where = f"table {table.name!r}" if table.name not in ("", "$") else "the payload"
    span = (f"{matched.fewest}" if matched.fewest == matched.most
            else f"{matched.fewest} to {matched.most}")
    if matched.rows == 1:
        found = (f"1 row of {where}{how} matches a participant record on {span} columns, "
                 "singling out one participant")
    else:
        found = (f"{matched.rows} rows of {where}{how} match participant records on {span} "
                 "columns each, every one singling out one participant")
    return f"{found}: participant-level data may not leave the enclave; release aggregates instead"


def _too_complex(table: PayloadTable) -> str:
    where = f"table {table.name!r}" if table.name not in ("", "$") else "the payload"
    return (f"{where} is too large or irregular for the raw-row scanner to check fully, so it "
            "is refused; split it into smaller, regular tables")


class _TooComplexError(Exception):
    pass


_NO_CELLS = {"r": pl.Int64, "c": pl.Int64, "v": pl.Float64, "date": pl.Boolean}


def _cells(table: PayloadTable) -> pl.DataFrame:
    """Every finite number of a table, long: row, column, value, whether it is a date.

    Column by column, and by row within a column.
    """
    numbers = table.numbers
    if numbers.width == 0 or numbers.height == 0:
        return pl.DataFrame(schema=_NO_CELLS)
    positions = {name: i for i, name in enumerate(numbers.columns)}
    dates = np.zeros(numbers.width, dtype=np.bool_)
    dates[[positions[n] for n in table.date_columns if n in positions]] = True
    flat = np.ascontiguousarray(_grid(numbers).T).ravel()  # column by column
    at = np.flatnonzero(np.isfinite(flat) & (np.abs(flat) < 1e12))
    column = at // numbers.height
    return pl.DataFrame({"r": (at % numbers.height).astype(np.int64),
                         "c": column.astype(np.int64), "v": flat[at], "date": dates[column]},
                        schema=_NO_CELLS)


def _digits_and_keys(v: FloatArray) -> tuple[IntArray, IntArray]:
    """Each value's apparent precision (−1: none up to MAX_PRECISION) and its key there."""
    powers = 10.0 ** np.arange(MAX_PRECISION + 1)
    scaled = v[:, None] * powers[None, :]
    ok = np.abs(scaled - np.round(scaled)) <= 1e-6 + 1e-12 * np.abs(scaled)
    digits = np.where(ok.any(axis=1), ok.argmax(axis=1), -1).astype(np.int64)
    keys = np.round(scaled[np.arange(len(v)), np.maximum(digits, 0)]).astype(np.int64)
    return digits, keys


def match_rows(index: RowIndex, cells: pl.DataFrame) -> _Matched:
    """How many rows single out one record (rows ``r``, columns ``c`` of long cells)."""
    if index.n == 0 or not index.columns:
        return _Matched(0, False, 0, 0)
    digits, keys = _digits_and_keys(cells["v"].to_numpy())
    cells = cells.with_columns(d=pl.Series(digits), k=pl.Series(keys)).filter(pl.col("d") >= 0)
    every = None
    # small tables (mapped on every row, so the screen sees what the search would) are tried
    # on bounds first; on large ones the bounds rarely settle anything and would cost time
    if cells.height <= _BOUNDED and cells["r"].n_unique() <= MAP_SAMPLE:
        every = _every_pair(index, cells)
        if _screened_out(index, cells, every):
            return _Matched(0, False, 0, 0)
    mapped = _map_columns(index, cells, every)
    if mapped.height == 0:
        return _Matched(0, False, 0, 0)
    hits = _mapped_hits(index, cells, mapped)
    if hits.height == 0:
        return _Matched(0, False, 0, 0)
    hits = _feasible(index, hits)
    if hits.height == 0 or (hits.height <= _BOUNDED and _cannot_block(
            index, hits["r"].to_numpy(), hits["c"].to_numpy(), hits["j"].to_numpy(),
            hits["logf"].to_numpy(), exact=True)):
        return _Matched(0, False, 0, 0)
    links = _link(index, hits)
    if links is None:
        return _Matched(0, False, 0, 0)
    return _confirm(index, hits, links)


# -- bounds that settle a table before any record is linked ------------------------------
#
# A row counts towards a block only if one record matches it on ``score`` cells of distinct
# payload columns and distinct cohort columns (``_dedupe``), so ``score`` is at most both
# numbers of columns, and that record's summed log frequency is at least the sum of the
# row's ``score`` most selective cells. When these bounds show that fewer than ``MIN_ROWS``
# rows could reach ``MIN_COLUMNS`` and that none could be a strong match, linking cannot block
# the table, and is skipped: the outcome is the search's, only sooner. Bounds must clear their
# limits by ``_SLACK`` (sums taken in another order differ in the last bits).

_SLACK = 1e-6
_BOUNDED = 20_000  # cells (or hits) up to which bounds are tried before the search


def _screened_out(index: RowIndex, cells: pl.DataFrame, every: _Pairs) -> bool:
    """Whether bounds show that no row of ``cells`` can count, before any Polars work.

    ``every`` is every (cell, cohort column) pair (``_every_pair``). Each payload column keeps
    every cohort column that could be among the ``HYPOTHESES`` that ``_map_columns`` keeps
    (ties and rounding included), so these hits hold all that the search would use.
    """
    at, j, count, span = every
    if len(at) == 0:
        return True
    c = cells["c"].to_numpy()[at]
    width = len(index.columns)
    pair, pair_at = np.unique(c * width + j, return_inverse=True)
    loglik = np.bincount(pair_at, weights=np.log(count / (span * index.n)))
    found = np.bincount(pair_at)
    owner = pair // width
    score = loglik + (np.bincount(cells["c"].to_numpy())[owner] - found) * math.log(0.5 / index.n)
    order = np.lexsort((-score, owner))
    rank = _rank_within(owner[order])
    cut = np.full(int(owner.max()) + 1, -np.inf)  # each payload column's last kept score
    cut[owner[order[rank == HYPOTHESES - 1]]] = score[order[rank == HYPOTHESES - 1]]
    bar = cut[owner]
    kept = score >= bar - _SLACK * (1.0 + np.abs(np.where(np.isfinite(bar), bar, 0.0)))
    use = kept[pair_at]
    r = cells["r"].to_numpy()[at[use]]
    return _cannot_block(index, r, c[use], j[use], np.log(count[use] / index.n), exact=False)


def _rank_within(groups: IntArray) -> IntArray:
    """Each element's position within its run of equal ``groups`` (already grouped)."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    ranks: IntArray = np.arange(len(groups)) - np.repeat(starts, lengths)
    return ranks


def _cannot_block(index: RowIndex, r: IntArray, c: IntArray, j: IntArray, logf: FloatArray,
                  *, exact: bool) -> bool:
    """Whether no row of these hits can count towards a block (bounds above).

    ``exact``: the hits are the search's own, after ``_feasible``. Otherwise they hold every
    hit the search could have, or more (each row is then tested for feasibility here, and the
    number of column subsets tried is taken at its least, 1). Linking could also refuse a
    table as too complex; that cannot happen with at most ``MAX_JOINS / LINK_HYPOTHESES²``
    feasible rows.
    """
    if len(r) == 0:
        return True
    rows, row_at = np.unique(r, return_inverse=True)
    order = np.lexsort((logf, c, row_at))
    row_at, c, j, logf = row_at[order], c[order], j[order], logf[order]
    first = np.r_[True, (row_at[1:] != row_at[:-1]) | (c[1:] != c[:-1])]
    cell_row, best = row_at[first], logf[first]  # each (row, payload column)'s best
    order = np.lexsort((best, cell_row))  # by row, most selective first
    cell_row, best = cell_row[order], best[order]
    pos = _rank_within(cell_row)
    cols = np.bincount(cell_row, minlength=len(rows))
    width = int(j.max()) + 1
    linked = sets.distinct(row_at * width + j) // width  # each (row, cohort column)'s row
    reach = np.minimum(cols, np.bincount(linked, minlength=len(rows)))
    if exact:
        feasible = np.ones(len(rows), dtype=np.bool_)
    else:
        top = pos < MAX_ROW_CELLS
        total = np.bincount(cell_row[top], weights=best[top], minlength=len(rows))
        room = math.log(CHANCE) - math.log(index.n)
        feasible = (cols >= MIN_COLUMNS) & (total <= room + _SLACK)
    if int(feasible.sum()) * LINK_HYPOTHESES**2 > MAX_JOINS:
        return False
    reach = np.where(feasible, reach, 0)
    if int((reach >= MIN_COLUMNS).sum()) >= MIN_ROWS:
        return False
    # a strong match: the first pass's chance, over each row's most selective cells
    keep = reach[cell_row] >= STRONG_COLUMNS
    cell_row, best, pos = cell_row[keep], best[keep], pos[keep]
    if len(cell_row) == 0:
        return True
    summed = np.cumsum(best)
    summed -= (summed - best)[pos == 0][np.searchsorted(sets.distinct(cell_row), cell_row)]
    score = (pos + 1).astype(np.float64)
    m = cols[cell_row].astype(np.float64) if exact else score
    tries = gammaln(m + 1) - gammaln(score + 1) - gammaln(m - score + 1)
    chance = math.log(index.n) + summed + tries + score * math.log(HYPOTHESES)
    can = (score >= STRONG_COLUMNS) & (score <= reach[cell_row])
    return not bool(np.any(can & (chance <= math.log(STRONG_CHANCE) + _SLACK)))


_BATCH = 2_000_000  # (candidate × cell) comparisons per batch when confirming
_KEEP_PAIRS = 10_000_000  # candidate pairs kept between the two passes (16 bytes each)
_CHUNK = 4096  # cells compared with every cohort column at once (bounds scratch memory)


def _pairs(index: RowIndex, cells: pl.DataFrame, mapped: pl.DataFrame | None = None
           ) -> pl.DataFrame:
    """(cell, cohort column) pairs where some record holds a value the cell could round.

    Every cohort column, or only the ``mapped`` ones of the cell's payload column; a pair needs
    the same kind, enough recorded decimals and a value inside the column's range. ``count``
    is how many records match; ``i`` is the cell's position in ``cells``.
    """
    if mapped is None:
        found = _every_pair(index, cells)
    else:
        both = (cells.with_row_index("i").select(pl.col("i").cast(pl.Int64), "c")
                .join(mapped.select("c", "j"), on="c"))
        found = _count_pairs(index, cells, both["i"].to_numpy(), both["j"].to_numpy())
    return _pairs_frame(found)


def _pairs_frame(found: _Pairs) -> pl.DataFrame:
    return pl.DataFrame(dict(zip(("i", "j", "count", "span"), found, strict=True)),
                        schema={"i": pl.Int64, "j": pl.Int64, "count": pl.Int64,
                                "span": pl.Int64})


def _every_pair(index: RowIndex, cells: pl.DataFrame) -> _Pairs:
    """``_pairs`` of every cell with every cohort column, a bounded chunk of cells at a time."""
    width, size = len(index.columns), cells.height
    parts = [_count_pairs(index, cells, np.repeat(np.arange(s, min(s + _CHUNK, size)), width),
                          np.tile(np.arange(width), min(_CHUNK, size - s)))
             for s in range(0, size, _CHUNK)]
    if not parts:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, empty
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]))


def _count_pairs(index: RowIndex, cells: pl.DataFrame, cell_at: IntArray,
                 col_at: IntArray) -> _Pairs:
    """The given (cell, cohort column) pairs that some record matches, and how many do."""
    cols = index.columns
    is_date = np.array([c.is_date for c in cols])
    precision = np.array([c.precision for c in cols], dtype=np.int64)
    low = np.array([c.low for c in cols], dtype=np.int64)
    high = np.array([c.high for c in cols], dtype=np.int64)
    d, k = cells["d"].to_numpy()[cell_at], cells["k"].to_numpy()[cell_at]
    shift = precision[col_at] - d
    scale = 10 ** np.clip(shift, 0, 18)
    ok = ((shift >= 0) & (cells["date"].to_numpy()[cell_at] == is_date[col_at])
          & (k >= np.floor_divide(low[col_at], scale) - 1)
          & (k <= np.floor_divide(high[col_at], scale)))
    cell_at, col_at, d, k = cell_at[ok], col_at[ok], d[ok], k[ok]
    count = index.lookup(col_at, d, k)
    coarser = precision[col_at] > d  # rounded: the key below may hold the value too
    count += np.where(coarser, index.lookup(col_at, d, k - 1), 0)
    found = count > 0
    return (cell_at[found].astype(np.int64), col_at[found].astype(np.int64), count[found],
            np.where(coarser, 2, 1)[found].astype(np.int64))


def _map_columns(index: RowIndex, cells: pl.DataFrame, every: _Pairs | None = None
                 ) -> pl.DataFrame:
    """For each payload column, the cohort columns its values are most likely drawn from.

    ``every``: ``_every_pair`` of ``cells``, when already known (tables of at most
    ``MAP_SAMPLE`` rows, which are mapped on every row).
    """
    rows = cells["r"].unique()
    if len(rows) > MAP_SAMPLE:
        keep = rows.sample(MAP_SAMPLE, seed=0)
        cells = cells.filter(pl.col("r").is_in(keep.implode()))
        every = None
    cells = cells.with_row_index("i").with_columns(pl.col("i").cast(pl.Int64))
    pairs = _pairs(index, cells) if every is None else _pairs_frame(every)
    if pairs.height == 0:
        return pl.DataFrame(schema={"c": pl.Int64, "j": pl.Int64, "rank": pl.Int64})
    miss = math.log(0.5 / index.n)
    sizes = cells.group_by("c").len("cells")
    scored = (
        pairs.join(cells.select("i", "c"), on="i")
        .group_by("c", "j")
        # per key width: a rounded column's two-key bucket must not look twice as likely
        .agg(hits=pl.len(), loglik=(pl.col("count") / (pl.col("span") * index.n)).log().sum())
        .join(sizes, on="c")
        .with_columns(score=pl.col("loglik") + (pl.col("cells") - pl.col("hits")) * miss)
        .sort("c", "score", descending=[False, True])
        .with_columns(rank=pl.int_range(pl.len()).over("c"))
        .filter(pl.col("rank") < HYPOTHESES)
    )
    return scored.select("c", "j", pl.col("rank").cast(pl.Int64))


def _mapped_hits(index: RowIndex, cells: pl.DataFrame, mapped: pl.DataFrame) -> pl.DataFrame:
    """Every row's cells under its column's mapped cohort columns, where some record matches."""
    pairs = _pairs(index, cells, mapped)
    cells = cells.with_row_index("i").with_columns(pl.col("i").cast(pl.Int64))
    return (
        pairs.join(cells.select("i", "r", "c", "d", "k"), on="i")
        .join(mapped, on=["c", "j"])
        .with_columns(logf=(pl.col("count") / index.n).log())
        .select("r", "c", "j", "rank", "d", "k", "logf")
    )


def _feasible(index: RowIndex, hits: pl.DataFrame) -> pl.DataFrame:
    """Rows that could single someone out even if every mapped cell matched.

    A row keeps its ``MAX_ROW_CELLS`` most selective cells: more add nothing to the evidence
    and would only multiply the work on very wide rows.
    """
    best = (hits.group_by("r", "c").agg(pl.col("logf").min())
            .sort("r", "logf")
            .filter(pl.int_range(pl.len()).over("r") < MAX_ROW_CELLS))
    room = math.log(CHANCE) - math.log(index.n)
    ok = (
        best.group_by("r")
        .agg(cols=pl.len(), total=pl.col("logf").sum())
        .filter((pl.col("cols") >= MIN_COLUMNS) & (pl.col("total") <= room))
    )
    return hits.join(best.join(ok.select("r"), on="r", how="semi").select("r", "c"),
                     on=["r", "c"], how="semi")


def _link(index: RowIndex, hits: pl.DataFrame) -> _Links | None:
    """Candidate (row, record) pairs: hash joins on each row's most selective cells.

    Columns are taken in one order for the whole table (most selective first), so that rows
    share link keys and the joins stay few; each row takes cells until about
    ``LINK_POSTING`` records would share its combined key. None: no row can be linked.
    """
    log_n = math.log(index.n)
    linkable = hits.filter(pl.col("rank") < LINK_HYPOTHESES)
    order = (linkable.group_by("c").agg(med=pl.col("logf").median())
             .sort("med", "c").with_row_index("order").select("c", pl.col("order").cast(pl.Int64)))
    best = (
        linkable.group_by("r", "c").agg(best=pl.col("logf").min())
        .join(order, on="c")
        .sort("r", "order")
        .with_columns(before=pl.col("best").cum_sum().over("r") - pl.col("best"),
                      pos=pl.int_range(pl.len()).over("r"))
        .filter((pl.col("pos") < MAX_LINK_CELLS)
                & (log_n + pl.col("before") > math.log(LINK_POSTING)))
    )
    enough = (best.group_by("r").agg(total=pl.col("best").sum())
              .filter(log_n + pl.col("total") <= math.log(MAX_LINK_POSTING)))
    chosen = best.join(enough.select("r"), on="r", how="semi").select("r", "c", "pos")
    # alternatives for the first two link cells (twin columns such as two blood pressure
    # readings look alike); later cells use their best mapping
    options = (linkable.join(chosen, on=["r", "c"])
               .sort("r", "pos", "rank")
               .filter((pl.col("pos") < 2) | (pl.int_range(pl.len()).over("r", "pos") == 0)))
    signatures = _signatures(options)
    if signatures.height == 0:
        return None
    return _Links(index, signatures)


class _Links:
    """A table's link joins, made for a chunk of ``LINK_ROWS`` rows at a time: a chunk's
    candidate pairs are held together, a table's never (a long table of coarse statistics
    links each row to thousands of records)."""

    def __init__(self, index: RowIndex, signatures: pl.DataFrame) -> None:
        self.index = index
        chunk = ((pl.col("r").rank("dense") - 1) // LINK_ROWS).cast(pl.Int64)
        signatures = signatures.with_columns(chunk=chunk)
        # a chunk's joins are bounded, not the table's: a long table of statistics (a GWAS
        # of many variants) is searched in more chunks, not refused for its length
        joins = signatures.group_by("chunk").agg(pl.col("sig").n_unique())["sig"].to_numpy()
        if int(joins.max()) > MAX_JOINS or int(joins.sum()) > MAX_TABLE_JOINS:
            raise _TooComplexError
        self.chunks = signatures.partition_by("chunk", include_key=False)
        self._firsts: dict[tuple[int, int], IntArray] = {}  # first keys shared by joins

    def rows(self, at: int) -> pl.DataFrame:
        return self.chunks[at].select("r").unique()

    def pairs(self, at: int) -> pl.DataFrame:
        """Chunk ``at``'s candidate (row, record) pairs, each once, by row."""
        groups = self.chunks[at].partition_by("sig")
        return _distinct_pairs(self.index,
                               pl.concat([_join(self.index, g, self._firsts) for g in groups]))


def _distinct_pairs(index: RowIndex, pairs: pl.DataFrame) -> pl.DataFrame:
    """Each (row, record) once, by row: as one integer each (hashing two columns of millions
    of pairs as rows of bytes took gigabytes)."""
    key = sets.distinct(pairs["r"].to_numpy() * index.n + pairs["rec"].to_numpy())
    return pl.DataFrame({"r": key // index.n, "rec": key % index.n})


def _signatures(options: pl.DataFrame) -> pl.DataFrame:
    """Each row's link keys under every combination of its cells' link mappings."""
    combos: pl.DataFrame | None = None
    for pos in range(MAX_LINK_CELLS):
        step = options.filter(pl.col("pos") == pos).select(
            "r", pl.col("j").alias(f"j{pos}"), pl.col("d").alias(f"d{pos}"),
            pl.col("k").alias(f"k{pos}"))
        if step.height == 0:
            break
        if combos is None:
            combos = step
            continue
        cell = [f"j{pos}", f"d{pos}", f"k{pos}"]
        clash = pl.any_horizontal(pl.col(f"j{q}") == pl.col(f"j{pos}") for q in range(pos))
        # an option whose cohort column an earlier link cell already uses is dropped; a cell
        # with no other option is left out of the link, never its row (a copy of a column
        # would otherwise hide every row from the search)
        combos = (
            combos.with_row_index("combo").join(step, on="r", how="left")
            .with_columns(ok=pl.col(f"j{pos}").is_null() | ~clash.fill_null(False))
            .filter(pl.col("ok") | ~pl.col("ok").any().over("combo"))
            .with_columns(pl.when(pl.col("ok")).then(pl.col(c)).otherwise(None).alias(c)
                          for c in cell)
            .unique(["combo", *cell], keep="first", maintain_order=True)
            .drop("combo", "ok")
        )
    if combos is None:
        return pl.DataFrame(schema={"r": pl.Int64, "sig": pl.String})
    parts = [c for c in combos.columns if c[0] in "jd" and c[1:].isdigit()]
    return combos.with_columns(
        sig=pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in parts],
                          separator=",")
    )


def _join(index: RowIndex, group: pl.DataFrame,
          firsts: dict[tuple[int, int], IntArray]) -> pl.DataFrame:
    """Records matching one signature's rows on all of its link keys."""
    # a signature's rows share their link cells (a cell left out of the link is null in all)
    used = [int(c[1:]) for c in group.columns
            if c[0] == "j" and c[1:].isdigit() and group[c].null_count() == 0]
    spec = [(int(group[f"j{u}"][0]), int(group[f"d{u}"][0])) for u in used]
    width = len(spec)
    # payload side: each row's keys, and the key below where the cohort holds more decimals
    payload = group.select("r", *(pl.col(f"k{u}").alias(f"k{p}") for p, u in enumerate(used)))
    for p, (j, d) in enumerate(spec):
        if index.columns[j].precision > d:
            payload = payload.with_columns(
                pl.concat_list(pl.col(f"k{p}") - 1, pl.col(f"k{p}"))).explode(f"k{p}")
    # cohort side: records whose first key is wanted at all, then their other keys
    if spec[0] not in firsts:
        firsts[spec[0]] = index.columns[spec[0][0]].keys(spec[0][1])
    first = firsts[spec[0]]
    wanted = np.flatnonzero(np.isin(first, payload["k0"].unique().to_numpy()))
    records = pl.DataFrame({"rec": wanted.astype(np.int64), "k0": first[wanted]})
    for p, (j, d) in enumerate(spec[1:], start=1):
        records = records.with_columns(pl.Series(f"k{p}", index.columns[j].keys(d, wanted)))
    on = [f"k{p}" for p in range(width)]
    return payload.join(records, on=on).select(pl.col("r").cast(pl.Int64), "rec")


def _confirm(index: RowIndex, hits: pl.DataFrame, links: _Links) -> _Matched:
    """Score candidate records on every mapped cell; count the rows that single one out.

    First pass: every kept mapping of every column may match (each row's chance is then
    charged for the mappings tried). Second pass: each column's mapping is fixed to the cohort
    column its rows' best records agree on (at least ``MIN_ROWS`` of them), and rows are
    scored again under that mapping alone.

    Both passes go a bounded batch of rows at a time and keep only each batch's summary (its
    rows' best records and their votes), never every match at once: a row's best record and
    its votes depend on that row's matches alone, so the summaries add up to the whole. The
    first pass's candidate pairs are kept for the second up to ``_KEEP_PAIRS``, and made again
    beyond it.
    """
    kept: dict[int, pl.DataFrame] = {}

    def batches() -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        for at in range(len(links.chunks)):
            pairs = kept.get(at)
            if pairs is None:
                pairs = links.pairs(at)
                if sum(p.height for p in kept.values()) + pairs.height <= _KEEP_PAIRS:
                    kept[at] = pairs
            yield from _batches(hits.join(links.rows(at), on="r", how="semi"), pairs)

    strong, tallies = [], []
    for rows_hits, rows_pairs in batches():
        pair, hit = _agreeing(index, rows_hits, rows_pairs)
        if len(pair) == 0:
            continue
        first = _best(index, _scored(rows_hits, rows_pairs, pair, hit), rows_hits, HYPOTHESES)
        strong.append(first.filter((pl.col("chance") <= math.log(STRONG_CHANCE))
                                   & (pl.col("score") >= STRONG_COLUMNS)))
        # votes: each hit on which its row's best record agrees (one best record per row)
        is_first = np.zeros(rows_pairs.height, dtype=np.bool_)
        is_first[first["rec"].to_numpy()] = True
        agree = np.bincount(hit[is_first[pair]], minlength=rows_hits.height)
        tallies.append(rows_hits.with_columns(votes=pl.Series(agree)).filter(pl.col("votes") > 0)
                       .group_by("c", "j").agg(pl.col("votes").sum(), pl.col("rank").min()))
    if not tallies:
        return _Matched(0, False, 0, 0)
    votes = (
        pl.concat(tallies)
        .group_by("c", "j").agg(pl.col("votes").sum(), pl.col("rank").min())
        .filter(pl.col("votes") >= MIN_ROWS)
        .sort("c", "votes", "rank", descending=[False, True, False])
        .unique("c", keep="first")
        .select("c", "j")
    )
    singled = []
    for rows_hits, rows_pairs in batches():
        agreed_hits = rows_hits.join(votes, on=["c", "j"], how="semi")
        pair, hit = _agreeing(index, agreed_hits, rows_pairs)
        if len(pair):
            second = _best(index, _scored(agreed_hits, rows_pairs, pair, hit), agreed_hits, 1)
            singled.append(second.filter(pl.col("chance") <= math.log(CHANCE)))
    # every batch that matched added to strong (its strong matches, perhaps none): not empty
    found = pl.concat(singled + strong).select("r", "score")
    if found.height == 0:
        return _Matched(0, False, 0, 0)
    scores = found["score"].cast(pl.Int64).to_numpy()
    # rows reported: those singled out either way (a strong match blocks whatever the count)
    is_strong = any(s.height for s in strong)
    return _Matched(found["r"].n_unique(), is_strong, int(scores.min()), int(scores.max()))


def _batches(hits: pl.DataFrame, pairs: pl.DataFrame
             ) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """Rows' hits and candidate pairs, split into batches of about ``_BATCH`` comparisons.

    Pairs are sorted by row. Each hit gets its ``slot``, its position within its row
    (``_scored`` names sets of hits by them).
    """
    hits = hits.with_columns(slot=pl.int_range(pl.len()).over("r"))
    per_row = (pairs.group_by("r").len("pairs")
               .join(hits.group_by("r").len("cells"), on="r")
               .sort("r")
               .with_columns(batch=(pl.col("pairs") * pl.col("cells")).cum_sum() // _BATCH)
               .select("r", "batch"))
    hits_by = hits.join(per_row, on="r").partition_by("batch", as_dict=True, include_key=False)
    pairs_by = pairs.join(per_row, on="r").sort("r").partition_by(
        "batch", as_dict=True, include_key=False, maintain_order=True)
    return [(hits_by[b], pairs_by[b]) for b in sorted(pairs_by)]


def _agreeing(index: RowIndex, hits: pl.DataFrame, pairs: pl.DataFrame
              ) -> tuple[IntArray, IntArray]:
    """Every (pair, hit) whose record holds the hit's value, as positions in ``pairs`` (sorted
    by row) and ``hits``: each hit is tried on every candidate record of its row."""
    pair_rows = pairs["r"].to_numpy()
    records = pairs["rec"].to_numpy()
    r, j = hits["r"].to_numpy(), hits["j"].to_numpy()
    d, k = hits["d"].to_numpy(), hits["k"].to_numpy()
    starts = np.searchsorted(pair_rows, r, side="left")
    lengths = np.searchsorted(pair_rows, r, side="right") - starts
    found_pairs, found_hits = [], []
    for col_at in sets.distinct(j):
        col = index.columns[int(col_at)]
        these = np.flatnonzero((j == col_at) & (lengths > 0))
        size = lengths[these]
        if size.sum() == 0:
            continue
        hit = np.repeat(these, size)
        ends = np.cumsum(size)
        pair = np.arange(ends[-1]) - np.repeat(ends - size - starts[these], size)
        digits, want = d[hit], k[hit]
        key = col.keys(digits, records[pair])
        # a rounded payload value may also sit one key above the record's
        ok = (key == want) | ((col.precision > digits) & (key == want - 1))
        found_pairs.append(pair[ok])
        found_hits.append(hit[ok])
    if not found_pairs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(found_pairs), np.concatenate(found_hits)


def _dedupe(matched: pl.DataFrame) -> pl.DataFrame:
    """One cohort column per payload column and one payload column per cohort column."""
    return (matched.sort("logf")
            .unique(["r", "rec", "c"], keep="first")
            .unique(["r", "rec", "j"], keep="first"))


_WORD = 16  # bits of a set's mask per float64 count (sums of distinct powers stay exact)


def _scored(hits: pl.DataFrame, pairs: pl.DataFrame, pair: IntArray,
            hit: IntArray) -> pl.DataFrame:
    """Each candidate's score and summed log frequency over its deduplicated cells (``rec``:
    its position in ``pairs``), and ``records``: how many of the row's candidates matched that
    very set of cells.

    Candidates that match a row on the same hits score the same, and a row has few such sets
    (its candidates mostly share the link cells that found them), so each set is deduplicated
    once, for one candidate standing for all of them. A set is named exactly by its row and a
    bitmask of the row's hits (``slot``: a hit's position within its row).
    """
    slot = hits["slot"].to_numpy()[hit]
    n = pairs.height
    present = np.flatnonzero(np.bincount(pair, minlength=n))
    masks = {}
    for w in range(int(slot.max()) // _WORD + 1):
        at = np.flatnonzero(slot // _WORD == w)
        masks[f"w{w}"] = np.bincount(pair[at], weights=np.exp2(slot[at] % _WORD),
                                     minlength=n)[present].astype(np.int64)
    shared = (pl.DataFrame({"r": pairs["r"].to_numpy()[present], "rec": present, **masks})
            .group_by("r", *masks).agg(pl.col("rec").min(), records=pl.len())
            .select("rec", "records"))
    standing = shared["rec"].to_numpy()
    is_standing = np.zeros(n, dtype=np.bool_)
    is_standing[standing] = True
    at = np.flatnonzero(is_standing[pair])
    h = hit[at]
    matched = pl.DataFrame({"r": hits["r"].to_numpy()[h], "rec": pair[at],
                            "c": hits["c"].to_numpy()[h], "j": hits["j"].to_numpy()[h],
                            "logf": hits["logf"].to_numpy()[h]})
    return (_dedupe(matched).group_by("r", "rec")
            .agg(score=pl.len(), logf=pl.col("logf").sum())
            .join(shared, on="rec"))


def _best(index: RowIndex, scored: pl.DataFrame, hits: pl.DataFrame,
          hypotheses: int) -> pl.DataFrame:
    """Each row's best record when it is the only one so good, with its log chance.

    ``scored`` is ``_scored``'s. The chance is the expected number of records matching by
    coincidence (n × Π frequency), times the column subsets of that size among the row's
    cells and the mappings per column.
    """
    width = hits.group_by("r").agg(m=pl.col("c").n_unique())
    best = (
        scored.sort("r", "score", "logf", descending=[False, True, False])
        .group_by("r", maintain_order=True)
        .agg(pl.col("rec").first(), score=pl.col("score").first(),
             logf=pl.col("logf").first(),
             ties=pl.col("records").filter(pl.col("score") == pl.col("score").max()).sum())
        .join(width, on="r")
        .filter((pl.col("ties") == 1) & (pl.col("score") >= MIN_COLUMNS))
    )
    score = best["score"].to_numpy().astype(np.float64)
    m = np.maximum(best["m"].to_numpy().astype(np.float64), score)
    tries = gammaln(m + 1) - gammaln(score + 1) - gammaln(m - score + 1)
    chance = (math.log(index.n) + best["logf"].to_numpy() + tries
              + score * math.log(hypotheses))
    return best.with_columns(chance=pl.Series(chance, dtype=pl.Float64))
