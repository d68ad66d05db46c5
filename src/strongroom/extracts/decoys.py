"""Decoy participants: plausible people who exist only in one recipient's extract.

Each extract carries at least ``MIN_DECOYS`` decoys (44: a random 10% of the file still holds
one with probability 1 − 0.9⁴⁴ ≈ 0.99). They are drawn from the cohort's own synthetic
generator under a secret seed, so they are as plausible as the generator, and unique to the
recipient: another extract's decoys are another draw. Rare outcomes are left out, so that a
decoy never draws attention or stands for a real rarity: no cancers, no deaths, no codes held
by fewer than one participant in a thousand, and no values in the extreme tails of any column.
The tail share is 1% of each column for narrow extracts and shrinks for wide ones, so that the
*absence* of tail values cannot give decoys away either (with 16 measurements and 1% tails, 15%
of real rows hold some tail value, which alone would let a classifier reach AUC 0.57). Decoys
get fresh pseudonymous IDs, used by no participant and no other decoy.

Values are the generator's own, never remapped column by column: that would break the exact
relations a classifier checks first (BMI is weight over height squared). Whether the generator
is good enough for the cohort at hand is measured, not assumed: ``distinguishability`` trains
classifiers (k nearest neighbours, a quadratic logistic model, and a search for missing tails)
to tell the decoys' population from the extract's real rows, and ``make_decoys`` refuses when
the cross-validated AUC exceeds ``MAX_AUC``.

The decoys of an extract are kept as a ``DecoySet`` (rows as released, plus column specs),
serialisable to bytes for sealed storage; ``find_decoys`` looks for them in a suspect file by
values (the same linkage as for participants), never by IDs, which leakers change.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from strongroom.access.pseudonyms import random_ids
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import EID
from strongroom.cohort.synth.generator import synthesise
from strongroom.errors import Invalid
from strongroom.extracts import linkage
from strongroom.extracts.linkage import ColumnSpec, Linked

MIN_DECOYS = 44  # 1 − 0.9^44 ≥ 0.99: a 10% subset of the rows still holds a decoy
RARE_SHARE = 0.001  # codes held by fewer than 1 in 1,000 real rows are rare outcomes
TAIL_SHARE = 0.01  # values in the outer 1% of a column (both tails) are extreme …
TAIL_BUDGET = 0.05  # … unless that would exclude more than 5% of real rows in all
MIN_REFERENCE = 1_000  # real rows needed to judge rarity, tails and plausibility on them
MAX_AUC = 0.55  # decoys' population must be no easier to tell from real rows than this
CHECK_ROWS = 2_000  # rows per side in the plausibility check
ATTEMPTS = 4  # fresh synthetic pools tried before refusing
_META = b"strongroom.decoys"
_REGISTRY_MAGIC = b"SRDECOY1"


@dataclass(frozen=True)
class DecoySet:
    """One extract's decoys: rows as released (``eid`` holds their pseudonyms) and specs."""

    rows: pl.DataFrame
    specs: dict[str, ColumnSpec]

    def to_bytes(self) -> bytes:
        table = self.rows.to_arrow()
        meta = {"version": 1, "specs": [
            {"name": s.name, "kind": s.kind, "unit": s.unit, "keyable": s.keyable}
            for s in self.specs.values()]}
        table = table.replace_schema_metadata({_META: json.dumps(meta).encode()})
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DecoySet:
        if not data.startswith(b"PAR1"):
            raise Invalid("a decoy record cannot be read (wrong header); was it decrypted "
                          "first?")
        try:
            table = pq.read_table(pa.BufferReader(data))
            meta = json.loads((table.schema.metadata or {})[_META])
            specs = {s["name"]: ColumnSpec(s["name"], s["kind"], float(s["unit"]),
                                           bool(s["keyable"])) for s in meta["specs"]}
        except (pa.ArrowException, KeyError, ValueError, TypeError) as exc:
            raise Invalid(f"a decoy record cannot be read ({type(exc).__name__}); it may be "
                          "damaged or from another system") from exc
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return cls(frame, specs)


@dataclass(frozen=True)
class Decoys:
    """What ``make_decoys`` made: the rows to release and their sealed-storage form."""

    rows: pl.DataFrame
    specs: dict[str, ColumnSpec]

    @property
    def registry(self) -> bytes:
        """This extract's decoys as bytes, for the caller to seal and keep."""
        return DecoySet(self.rows, self.specs).to_bytes()


class DecoyRegistry:
    """Decoys of many extracts: extract id → ``DecoySet``; serialisable as one blob."""

    def __init__(self, sets: Mapping[str, DecoySet] | None = None):
        self.sets: dict[str, DecoySet] = dict(sets or {})

    def add(self, extract_id: str, decoys: DecoySet | Decoys) -> None:
        self.sets[extract_id] = DecoySet(decoys.rows, decoys.specs)

    def rows(self, extract_id: str) -> pl.DataFrame:
        return self.sets[extract_id].rows

    @property
    def extract_ids(self) -> list[str]:
        return list(self.sets)

    def to_bytes(self) -> bytes:
        parts = [_REGISTRY_MAGIC, struct.pack(">I", len(self.sets))]
        for extract_id, decoy_set in self.sets.items():
            name, blob = extract_id.encode(), decoy_set.to_bytes()
            parts += [struct.pack(">I", len(name)), name, struct.pack(">Q", len(blob)), blob]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> DecoyRegistry:
        if not data.startswith(_REGISTRY_MAGIC):
            raise Invalid("not a decoy registry (wrong header); was it decrypted first?")
        view, at = memoryview(data), len(_REGISTRY_MAGIC)
        try:
            (count,), at = struct.unpack_from(">I", view, at), at + 4
            sets = {}
            for _ in range(count):
                (size,), at = struct.unpack_from(">I", view, at), at + 4
                name, at = bytes(view[at:at + size]).decode(), at + size
                (size,), at = struct.unpack_from(">Q", view, at), at + 8
                if at + size > len(view):
                    raise ValueError("truncated")
                sets[name], at = DecoySet.from_bytes(bytes(view[at:at + size])), at + size
        except (struct.error, ValueError) as exc:
            raise Invalid("the decoy registry is truncated or damaged") from exc
        return cls(sets)


# -- making decoys ---------------------------------------------------------------------------


def make_decoys(
    frame: pl.DataFrame,
    dictionary: Dictionary,
    *,
    count: int = MIN_DECOYS,
    taken: Iterable[int] | np.ndarray = (),
    seed: int | None = None,
) -> Decoys:
    """``count`` decoys with the columns (and types) of ``frame``, an extract's real rows.

    ``frame`` holds ``eid`` and the extract's participant-table columns, unmarked; its rows
    serve as the reference for tails, rare codes and marginals. ``taken`` are pseudonyms the
    decoys must not reuse (the project's, and other extracts' decoys). ``seed`` is secret; by
    default a fresh one from the operating system, so that every extract's decoys differ.
    """
    if count < MIN_DECOYS:
        raise Invalid(f"an extract needs at least {MIN_DECOYS} decoys (a 10% subset of the "
                      f"file must still hold one with 99% probability), not {count}")
    columns = [c for c in frame.columns if c != EID]
    if not columns:
        raise Invalid("decoys need at least one participant-table column to fill")
    specs = linkage.column_specs(columns, dictionary)
    secret = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
    rng = np.random.default_rng(secret)
    pool_size = max(12 * count, 2_000)
    worst = 0.0
    for _ in range(ATTEMPTS):  # a fresh (and larger, if need be) pool after each failure
        pool, strata, everyone = _pool(pool_size, int(rng.integers(2**62)), dictionary,
                                       columns)
        keep = _ordinary(pool, frame, specs).to_numpy()
        if keep.sum() < count:
            pool_size *= 4
            continue
        weights = _reweighting(strata, keep, everyone)
        auc = _excess_auc(frame.select(columns), pool, weights, specs, rng)
        if auc <= MAX_AUC:
            chosen = pool[_draw(weights, count, rng)]
            break
        worst = max(worst, auc)  # the generator drew an unlike cohort: draw again
    else:
        if worst:
            raise Invalid(f"decoys for these columns would be too easy to tell from real rows "
                          f"(classifier AUC {worst:.3f} > {MAX_AUC} in {ATTEMPTS} draws); the "
                          "synthetic generator does not fit this cohort well enough — "
                          "recalibrate it, or release fewer columns")
        raise Invalid("too few ordinary synthetic participants for the decoys; the extract's "
                      "columns exclude almost everyone (rare codes or narrow tails)")
    pids = random_ids(count, np.asarray(list(taken) if not isinstance(taken, np.ndarray)
                                        else taken, dtype=np.int64))
    rows = chosen.with_columns(pl.Series(EID, pids)).select([EID, *columns])
    rows = rows.with_columns(pl.col(EID).cast(pl.Int64),
                             *[pl.col(c).cast(frame.schema[c]) for c in columns])
    return Decoys(rows, specs)


def _reweighting(strata: np.ndarray, keep: np.ndarray, everyone: np.ndarray) -> np.ndarray:
    """Draw weights over the pool: zero for excluded rows; for the rest, the ratio of each
    sex-and-birth-year stratum's share among ``everyone`` generated and among those kept.

    Leaving out the ill, the extreme and the rare tilts the rest (more women, younger);
    re-weighting restores the cohort's make-up, so the tilt cannot give decoys away.
    """
    labels, index = np.unique(strata, return_inverse=True)
    at = np.searchsorted(labels, everyone)
    known = (at < labels.size) & (labels[np.minimum(at, labels.size - 1)] == everyone)
    before = np.bincount(at[known], minlength=labels.size) / everyone.size
    after = np.bincount(index, weights=keep.astype(np.float64), minlength=labels.size)
    after = after / max(after.sum(), 1.0)
    ratio = np.divide(before, after, out=np.zeros_like(before), where=after > 0)
    weights = np.where(keep, ratio[index], 0.0)
    return np.asarray(weights / weights.sum())


def _draw(weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(rng.choice(weights.size, size=count, replace=False, p=weights))


def _excess_auc(real: pl.DataFrame, pool: pl.DataFrame, weights: np.ndarray,
                specs: Mapping[str, ColumnSpec], rng: np.random.Generator) -> float:
    """How well classifiers tell the decoys' population from the real rows, less three
    standard errors of a chance AUC (so that chance alone never refuses)."""
    if real.height < MIN_REFERENCE:
        return 0.5  # too few real rows to judge; the generator is trusted as it is
    real = real.sample(min(real.height, CHECK_ROWS), seed=int(rng.integers(2**62)))
    eligible = pool[_draw(weights, min(int(np.count_nonzero(weights)), CHECK_ROWS), rng)]
    auc = distinguishability(real, eligible, specs, seed=int(rng.integers(2**62)))
    n1, n0 = eligible.height, real.height
    return float(auc - 3.0 * np.sqrt((n1 + n0 + 1) / (12.0 * n1 * n0)))


def _pool(size: int, seed: int, dictionary: Dictionary, columns: Sequence[str]
          ) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Synthetic participants without cancers or deaths, projected to the extract's columns;
    their sex-and-birth-year strata, and the strata of everyone generated (the ill too)."""
    try:
        cohort = synthesise(size, seed, dictionary, hospital=False)  # only the ill matter
    except (KeyError, ValueError) as exc:
        raise Invalid(f"the synthetic generator cannot make decoys for this dictionary: "
                      f"{exc}") from exc
    missing = [c for c in columns if c not in cohort.participants.columns]
    if missing:
        raise Invalid(f"the synthetic generator does not produce columns {missing}; decoys "
                      "cannot be made for them")
    ill = [t[EID] for name, t in cohort.events.items() if name in ("cancers", "deaths")]
    gone = pl.concat(ill).unique() if ill else pl.Series(EID, [], pl.Int64)
    people = cohort.participants
    well = ~people[EID].is_in(gone.implode()).to_numpy()
    stratum = np.zeros(people.height, dtype=np.int64)
    for name in ("p31", "p34"):  # sex, year of birth: what the exclusions tilt most
        if name in people.columns:
            stratum = stratum * 10_000 + people[name].fill_null(0).cast(pl.Int64).to_numpy()
    return people.select(columns).filter(pl.Series(well)), stratum[well], stratum


def _ordinary(pool: pl.DataFrame, real: pl.DataFrame, specs: Mapping[str, ColumnSpec]
              ) -> pl.Series:
    """Pool rows holding no rare code and no extreme value in any of the extract's columns."""
    reference = real if real.height >= MIN_REFERENCE else pool
    keep = np.ones(pool.height, dtype=np.bool_)
    numeric = [c for c, s in specs.items() if s.kind == "number"]
    tail = min(TAIL_SHARE, TAIL_BUDGET / max(len(numeric), 1)) / 2  # per side
    for name, spec in specs.items():
        values = pool[name]
        if spec.kind == "code":
            shares = reference[name].drop_nulls().value_counts(normalize=True)
            common = shares.filter(pl.col("proportion") >= RARE_SHARE)[name]
            keep &= (values.is_null() | values.is_in(common.implode())).to_numpy()
        elif spec.kind == "number":
            ref = reference[name].drop_nulls().cast(pl.Float64).to_numpy()
            if ref.size == 0:
                continue
            low, high = np.quantile(ref, [tail, 1.0 - tail])
            v = values.cast(pl.Float64).to_numpy()
            keep &= np.isnan(v) | ((v >= low) & (v <= high))
    return pl.Series(keep)




# -- how well can decoys be told apart? ------------------------------------------------------


def distinguishability(
    real: pl.DataFrame,
    decoys: pl.DataFrame,
    specs: Mapping[str, ColumnSpec],
    seed: int = 0,
) -> float:
    """The best cross-validated AUC of classifiers telling ``decoys`` from ``real`` rows.

    Three classifiers, all written here (scikit-learn is not a dependency): k nearest
    neighbours on standardised features (non-parametric: picks up any local difference), a
    ridge logistic model on features and their squares, and the largest |z| of a row (decoys
    hold no extreme values, so their absence is itself a clue). Each AUC is two-fold
    cross-validated and folded about 0.5, so 0.5 means no better than a coin.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    x_real, x_decoy, z_columns = _features(real, decoys, specs)
    x = np.vstack([x_real, x_decoy])
    y = np.concatenate([np.zeros(len(x_real)), np.ones(len(x_decoy))])
    fold = rng.permutation(len(y)) % 2
    knn = np.empty(len(y))
    logit = np.empty(len(y))
    # one BLAS thread: a second thrashes on these small products on a busy two-core host
    with threadpool_limits(limits=1, user_api="blas"):
        for k in (0, 1):
            train, test = fold != k, fold == k
            knn[test] = _knn_scores(x[train], y[train], x[test])
            logit[test] = _logit_scores(x[train], y[train], x[test], z_columns)
    tails = -np.max(np.abs(x[:, z_columns]), axis=1) if z_columns.size else np.zeros(len(y))
    return max(_folded_auc(score, y) for score in (knn, logit, tails))


def _features(real: pl.DataFrame, decoys: pl.DataFrame, specs: Mapping[str, ColumnSpec]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised numbers (0 where missing) with missing flags, and one-hot codes."""
    parts_r: list[np.ndarray] = []
    parts_d: list[np.ndarray] = []
    z_columns: list[int] = []
    width = 0
    for name, spec in specs.items():
        r, d = real[name], decoys[name]
        if spec.kind in ("number", "date"):
            rv, dv = _as_float(r), _as_float(d)
            present = rv[~np.isnan(rv)]  # a column every real row lacks is all flags, no scale
            mean = float(present.mean()) if present.size else 0.0
            sd = (float(present.std()) if present.size else 0.0) or 1.0
            for v, parts in ((rv, parts_r), (dv, parts_d)):
                parts.append(np.nan_to_num((v - mean) / sd)[:, None])
                parts.append(np.isnan(v)[:, None].astype(np.float64))
            z_columns.append(width)
            width += 2
        elif spec.kind == "code":
            shares = r.drop_nulls().value_counts(normalize=True)
            codes = shares.filter(pl.col("proportion") >= 0.01)[name].to_list()
            for col, parts in ((r, parts_r), (d, parts_d)):
                hot = [(col == c).fill_null(False).to_numpy() for c in codes] + [
                    col.is_null().to_numpy()]
                parts.append(np.column_stack(hot).astype(np.float64))
            width += len(codes) + 1
    return np.hstack(parts_r), np.hstack(parts_d), np.asarray(z_columns, dtype=np.int64)


def _as_float(series: pl.Series) -> np.ndarray:
    if series.dtype in (pl.Date, pl.Datetime):
        series = series.cast(pl.Date).cast(pl.Int32)
    return np.asarray(series.cast(pl.Float64).fill_nan(None).to_numpy(), dtype=np.float64)


def _knn_scores(x: np.ndarray, y: np.ndarray, q: np.ndarray, k: int = 25) -> np.ndarray:
    """Share of decoys among each query's ``k`` nearest training rows (class-balanced)."""
    k = min(k, len(x))
    norms = np.sum(x * x, axis=1)
    votes = np.empty(len(q))
    for start in range(0, len(q), 1024):  # brute force in blocks: exact, and fast at this size
        block = q[start:start + 1024]
        d2 = norms[None, :] - 2.0 * block @ x.T
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]
        votes[start:start + len(block)] = y[nearest].mean(axis=1)
    share = y.mean()
    return np.asarray(votes / share - (1 - votes) / (1 - share))


def _logit_scores(x: np.ndarray, y: np.ndarray, q: np.ndarray, z_columns: np.ndarray,
                  ridge: float = 1.0, steps: int = 12) -> np.ndarray:
    """A ridge logistic model on the features and the squares of the numbers (Newton)."""
    def design(a: np.ndarray) -> np.ndarray:
        return np.hstack([np.ones((len(a), 1)), a, a[:, z_columns] ** 2])

    xd, qd = design(x), design(q)
    beta = np.zeros(xd.shape[1])
    penalty = ridge * np.eye(xd.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xd @ beta, -30, 30)))
        grad = xd.T @ (p - y) + penalty @ beta
        hess = (xd.T * (p * (1 - p))) @ xd + penalty
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return np.asarray(qd @ beta)


def _folded_auc(score: np.ndarray, y: np.ndarray) -> float:
    """Mann–Whitney AUC of ``score`` for label 1, folded so that 0.5 is chance."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    positives = y == 1
    n1, n0 = positives.sum(), (~positives).sum()
    auc = (ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    return float(max(auc, 1.0 - auc))


# -- finding decoys in a suspect file ---------------------------------------------------------


def find_decoys(
    suspect: pl.DataFrame,
    registry: DecoyRegistry | Mapping[str, bytes | DecoySet],
    *,
    linked: Linked | None = None,
    seed: int = 0,
) -> list[tuple[str, str]]:
    """(extract id, decoy pseudonym) for every decoy found in ``suspect``, by values.

    With ``linked`` (from linking the same suspect to the cohort), its column matching, error
    scales and exact blocking columns are reused, and rows already linked to real
    participants are not searched. Without it, columns are matched to the decoys' own
    columns by distribution (weaker when few decoys are registered), and noise beyond
    rounding and marks is not allowed for. Extracts are searched in groups sharing the
    suspect's columns.
    """
    return sorted({(extract_id, decoy) for extract_id, decoy, _ in
                   match_decoys(suspect, registry, linked=linked, seed=seed)})


def match_decoys(
    suspect: pl.DataFrame,
    registry: DecoyRegistry | Mapping[str, bytes | DecoySet],
    *,
    linked: Linked | None = None,
    seed: int = 0,
) -> list[tuple[str, str, int]]:
    """:func:`find_decoys` with the suspect row (index in ``suspect``) of each match.

    These are candidates by nearest neighbour, not evidence: ``decoy_evidence.weigh`` keeps
    only those that match on every column present and bounds the chance of each.
    """
    sets = _sets(registry)
    if not sets or suspect.height == 0:
        return []
    rows = np.arange(suspect.height)
    if linked is not None:
        rows = rows[linked.eids < 0]
        suspect = suspect[rows]
    found: set[tuple[str, str, int]] = set()
    for extract_ids, columns in _groups(sets, linked):
        master, owners = _union(sets, extract_ids, columns)
        specs = {c: sets[extract_ids[0]].specs[c] for c in columns}
        if linked is not None:
            mapping = {s: m for s, m in linked.columns.items() if m in columns}
            eids = linkage.link_known(suspect, master, specs, mapping, scales=linked.scales,
                                      offsets=linked.offsets, keys=linked.keys, mutual=True,
                                      seed=seed)
        else:
            eids = linkage.link_frames(suspect, master, specs, mutual=True, seed=seed).eids
        for at in np.flatnonzero(eids >= 0):
            extract_id, decoy = owners[int(eids[at])]
            found.add((extract_id, decoy, int(rows[at])))
    return sorted(found)


def _sets(registry: DecoyRegistry | Mapping[str, bytes | DecoySet]) -> dict[str, DecoySet]:
    if isinstance(registry, DecoyRegistry):
        return dict(registry.sets)
    return {extract_id: value if isinstance(value, DecoySet) else DecoySet.from_bytes(value)
            for extract_id, value in registry.items()}


def _groups(sets: Mapping[str, DecoySet], linked: Linked | None
            ) -> list[tuple[list[str], list[str]]]:
    """Extracts grouped by the columns they share with the suspect (all theirs, unlinked)."""
    wanted = set(linked.columns.values()) if linked is not None else None
    groups: dict[tuple[str, ...], list[str]] = {}
    for extract_id, decoy_set in sets.items():
        columns = [c for c in decoy_set.specs if wanted is None or c in wanted]
        if columns:
            groups.setdefault(tuple(sorted(columns)), []).append(extract_id)
    return [(ids, list(columns)) for columns, ids in groups.items()]


def _union(sets: Mapping[str, DecoySet], extract_ids: Sequence[str], columns: Sequence[str]
           ) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """The group's decoys as one master table (``eid`` = position) and who owns each row."""
    frames, owners = [], []
    for extract_id in extract_ids:
        rows = sets[extract_id].rows
        frames.append(rows.select(list(columns)))
        owners += [(extract_id, str(pid)) for pid in rows[EID].to_list()]
    master = pl.concat(frames, how="vertical_relaxed")
    return master.with_columns(pl.Series(EID, np.arange(master.height))), owners
