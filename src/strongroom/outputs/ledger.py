"""The differencing ledger: every participant set released to an institution's projects.

Two released counts whose participant sets differ by a few people reveal those people's count
by subtraction ("everyone" minus "everyone but one" is one person). The ledger remembers, per
released cell, the set of participants behind it, in master-ID space (``eid``) so that the
projects of one institution, whose pseudonyms differ, are compared with each other. Sets are
Roaring bitmaps, each sealed with the master key under a context naming its row, so that a row
cannot be read without the key nor moved to another institution, project or release.

A new set A (of a release with population U_A) and an earlier set B (population U_B) clash
when |A Δ B| > 0 falls short of the threshold's keyed line (k plus a margin drawn per pair of
cells, ``enclave.margin``: at a fixed k, "everyone" and "everyone but k − 1 accomplices and
the target if obese" clash only for a lean target), and likewise for the complements: A
against U_B \\ B, U_A \\ A against B, and U_A \\ A against U_B \\ B (a complement is known by
subtraction from the released total). Two counts of people (or two percentages) clash
identical too (``overlap.close``): a repeat says nothing new, and showing it only when
identical would tell "the target is in both" from "one apart". Since
|A Δ B| ≥ ||A| − |B||, only rows whose size, or complement size, lies within the highest line
(2k − 1) of |A| or |U_A \\ A| can clash: the database selects those by index before any bitmap is
decrypted.
"""

from __future__ import annotations

import array
import datetime as dt
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from pyroaring import BitMap
from sqlalchemy import (
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import bindparam
from sqlalchemy.sql.base import Executable

from strongroom.cohort.crypto import DecryptionError, MasterKey, decrypt, encrypt
from strongroom.db import Base, UTCDateTime
from strongroom.enclave import margin
from strongroom.errors import Conflict, Invalid, Unavailable
from strongroom.outputs.contributions import Vector
from strongroom.outputs.overlap import COUNT, acts, close
from strongroom.outputs.verdicts import Finding, Verdict

RULE = "differencing"
UINT32 = 2**32
assert array.array("I").itemsize == 4, "the ledger needs 32-bit unsigned ints"
_RANGES_PER_QUERY = 200  # SQLite refuses expressions nested deeper than 1000
_ORDINALS_PER_QUERY = 500  # well within every database's count of bound parameters


class LedgerRelease(Base):
    """A release's whole population (the set its complements are taken in)."""

    __tablename__ = "outputs_ledger_releases"

    release_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(32), index=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    population_size: Mapped[int] = mapped_column(Integer)
    population_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class LedgerCell(Base):
    """One released cell: its label, its size, and its participants (sealed)."""

    __tablename__ = "outputs_ledger_cells"

    release_id: Mapped[str] = mapped_column(
        ForeignKey("outputs_ledger_releases.release_id"), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    institution_id: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    population_size: Mapped[int] = mapped_column(Integer)
    complement_size: Mapped[int] = mapped_column(Integer)  # population_size − size
    # keyed digest of the release's population: an identical population needs no opening
    population_digest: Mapped[str] = mapped_column(String(64))
    members_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # what the group counts (overlap.COUNT, PERCENT, VALUES, OTHER): which pairs are compared;
    # cells recorded before it was kept count as counts (compared with every new count)
    family: Mapped[str] = mapped_column(String(8), default=COUNT, server_default=COUNT)

    __table_args__ = (
        Index("ix_outputs_ledger_cells_size", "institution_id", "size"),
        Index("ix_outputs_ledger_cells_complement", "institution_id", "complement_size"),
    )


class LedgerVector(Base):
    """One released statistic's contributions: each participant's own total (sealed), for
    value-aware differencing (:mod:`strongroom.outputs.contributions`)."""

    __tablename__ = "outputs_ledger_vectors"

    release_id: Mapped[str] = mapped_column(
        ForeignKey("outputs_ledger_releases.release_id"), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    institution_id: Mapped[str] = mapped_column(String(32), index=True)
    project_id: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    values_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # the statistic's kind (contributions.Vector.kind); "" for those recorded before it was kept
    kind: Mapped[str] = mapped_column(String(40), default="", server_default="")


RELEASES: Table = LedgerRelease.__table__  # type: ignore[assignment]
CELLS: Table = LedgerCell.__table__  # type: ignore[assignment]
VECTORS: Table = LedgerVector.__table__  # type: ignore[assignment]




@dataclass(frozen=True)
class Recording:
    """A release's ledger rows, sealed (:meth:`Ledger.sealed`) and not yet written."""

    release: dict[str, Any]
    cells: list[dict[str, Any]]
    vectors: list[dict[str, Any]]

    @property
    def release_id(self) -> str:
        return str(self.release["release_id"])


@dataclass
class CheckStats:
    """What the last check did: rows the size filter let through, bitmaps opened, time."""

    candidates: int = 0
    decrypted: int = 0
    comparisons: int = 0
    seconds: float = 0.0


@dataclass
class _Earlier:
    """One earlier cell, opened only if its size lets it clash."""

    release_id: str
    ordinal: int
    institution_id: str
    project_id: str
    label: str
    size: int
    population_size: int
    population_digest: str
    sealed: bytes
    family: str = COUNT
    members: BitMap | None = None

    @property
    def complement_size(self) -> int:
        return self.population_size - self.size


@dataclass
class _Clash:
    difference: int
    earlier: _Earlier
    new_side: str  # "cell" or "complement"
    old_side: str


@dataclass
class _New:
    label: str
    members: BitMap
    population: BitMap
    population_digest: Callable[[], str]  # computed once, and only if a comparison needs it
    family: str = COUNT
    clashes: list[_Clash] = field(default_factory=list)

    @property
    def complement_size(self) -> int:
        return len(self.population) - len(self.members)


class Ledger:
    """Check new cells against, and record released cells in, one metadata database."""

    def __init__(self, engine: Engine, key: MasterKey):
        self.engine = engine
        self.key = key
        self.last_stats = CheckStats()
        # released rows never change: what was opened once is kept (memory only)
        self._opened_cells: dict[tuple[str, int], tuple[str, BitMap]] = {}
        self._opened_vectors: dict[tuple[str, int], Vector] = {}

    # -- everything released (for the combination audit and value differencing) ------------

    def releases(self, institution_id: str, *, session: Session | None = None) -> int:
        """How many releases the institution's ledger holds. Nothing is ever taken out of
        the ledger, so an unchanged number is an unchanged ledger."""
        with self._session(session) as db:
            return int(db.scalar(select(func.count()).select_from(RELEASES).where(
                RELEASES.c.institution_id == institution_id)) or 0)


    def released_groups(self, institution_id: str, *,
                        session: Session | None = None) -> list[tuple[str, BitMap, str]]:
        """Every released cell of the institution's projects, as (label, participants,
        family)."""
        with self._session(session) as db:  # rows read; opened outside the transaction
            rows = self._listed(db, CELLS, institution_id, CELLS.c.family)
            found = self._sealed(db, CELLS, CELLS.c.members_sealed, rows, self._opened_cells)
        for release_id, ordinal, project_id, label, sealed in found:
            members = BitMap.deserialize(self._unseal(sealed, _cell_context(
                institution_id, project_id, release_id, ordinal)))
            self._opened_cells[(release_id, ordinal)] = (
                f"{label} (release {release_id})", members)
        return [(*self._opened_cells[(row.release_id, row.ordinal)], row.family)
                for row in rows]

    def released_vectors(self, institution_id: str, *,
                         session: Session | None = None) -> list[Vector]:
        """Every released statistic's contributions for the institution's projects."""
        with self._session(session) as db:  # rows read; opened outside the transaction
            rows = self._listed(db, VECTORS, institution_id, VECTORS.c.kind)
            found = self._sealed(db, VECTORS, VECTORS.c.values_sealed, rows,
                                 self._opened_vectors)
        kinds = {(row.release_id, row.ordinal): row.kind for row in rows}
        for release_id, ordinal, project_id, label, sealed in found:
            plain = _vector_bytes(self._unseal(sealed, _vector_context(
                institution_id, project_id, release_id, ordinal)))
            self._opened_vectors[(release_id, ordinal)] = Vector.from_bytes(
                f"{label} (release {release_id})", plain, kinds[(release_id, ordinal)])
        return [self._opened_vectors[(row.release_id, row.ordinal)] for row in rows]

    @staticmethod
    def _listed(db: Session, table: Table, institution_id: str, *more: Any) -> list[Any]:
        """The institution's released rows of ``table`` in order, without their sealed
        bytes (a vector is about 1 MB: read from the database only the first time)."""
        return list(db.execute(select(table.c.release_id, table.c.ordinal, *more)
                               .where(table.c.institution_id == institution_id)
                               .order_by(table.c.release_id, table.c.ordinal)))

    @staticmethod
    def _sealed(db: Session, table: Table, sealed: Any, rows: list[Any],
                opened: Mapping[tuple[str, int], object]) -> list[Any]:
        """(release, ordinal, project, label, sealed bytes) of the ``rows`` not yet opened."""
        wanted: dict[str, list[int]] = {}
        for row in rows:
            if (row.release_id, row.ordinal) not in opened:
                wanted.setdefault(row.release_id, []).append(row.ordinal)
        found: list[Any] = []
        for release_id, ordinals in wanted.items():
            for at in range(0, len(ordinals), _ORDINALS_PER_QUERY):
                found += db.execute(select(table.c.release_id, table.c.ordinal,
                                           table.c.project_id, table.c.label, sealed)
                                    .where(table.c.release_id == release_id, table.c.ordinal.in_(
                                        ordinals[at:at + _ORDINALS_PER_QUERY])))
        return found

    # -- check -----------------------------------------------------------------------------

    def check(self, institution_id: str, project_id: str,
              cells: Sequence[tuple[str, np.ndarray | BitMap]],
              population: np.ndarray | BitMap, threshold: int, *,
              session: Session | None = None,
              families: Sequence[str] | None = None) -> list[Finding]:
        """Findings for new cells that difference against anything already released.

        ``cells`` are (label, eids) pairs; a finding's ``cell`` is the position in ``cells``.
        Every earlier release of the institution's projects counts, this project's included.
        ``families`` (overlap.COUNT …, one per cell): which earlier cells each is compared
        with, and whether an identical one clashes (two counts: yes).
        """
        started = time.perf_counter()
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise Invalid(f"the differencing threshold must be a whole number ≥ 1, "
                          f"not {threshold!r}")
        universe = _bitmap(population, "the population")
        members = [(label, _bitmap(e, f"cell {label!r}")) for label, e in cells]
        _require_inside(members, universe)
        digest = cache(lambda: self._digest(universe))
        kinds = list(families) if families is not None else [COUNT] * len(members)
        news = [_New(label, m, universe, digest, family)
                for (label, m), family in zip(members, kinds, strict=True)]
        stats = CheckStats()
        # the rows are read in short transactions (on SQLite every transaction holds the one
        # write lock, which other requests' free steps wait for); every bitmap is opened and
        # compared outside them, as the time that takes depends on what was released
        with self._session(session) as db:
            earlier = self._candidates(db, institution_id, news, threshold)
        stats.candidates = len(earlier)
        wanted = sorted({old.release_id for old in earlier
                         if self._needs_population(news, old, threshold)})
        populations: dict[str, Any] = {}  # release → its row (plain values, not ORM)
        if wanted:
            with self._session(session) as db:
                for at in range(0, len(wanted), _ORDINALS_PER_QUERY):
                    populations |= {row.release_id: row for row in db.execute(select(
                        RELEASES.c.release_id, RELEASES.c.institution_id,
                        RELEASES.c.project_id, RELEASES.c.population_sealed).where(
                            RELEASES.c.release_id.in_(wanted[at:at + _ORDINALS_PER_QUERY])))}
        overlaps: dict[str, tuple[BitMap, int]] = {}  # release → (U_B, |U_A ∩ U_B|)
        for old in earlier:
            self._compare(populations, news, old, threshold, overlaps, stats)
        stats.seconds = time.perf_counter() - started
        self.last_stats = stats
        return [_finding(i, new, project_id, threshold)
                for i, new in enumerate(news) if new.clashes]

    def _candidates(self, db: Session, institution_id: str, news: list[_New],
                    threshold: int) -> list[_Earlier]:
        """Rows whose size or complement size is within the threshold of a new size."""
        sizes = sorted({len(n.members) for n in news} | {n.complement_size for n in news})
        top = margin.highest(threshold)
        ranges = _merge([(s - top + 1, s + top - 1) for s in sizes])
        found: dict[tuple[str, int], _Earlier] = {}
        for start in range(0, len(ranges), _RANGES_PER_QUERY):
            chunk = ranges[start:start + _RANGES_PER_QUERY]
            bounds = {f"lo{i}": lo for i, (lo, _) in enumerate(chunk)}
            bounds |= {f"hi{i}": hi for i, (_, hi) in enumerate(chunk)}
            for row in db.execute(_near_query(len(chunk)),
                                  {"institution_id": institution_id, **bounds}):
                found.setdefault((row.release_id, row.ordinal), _Earlier(*row))
        return list(found.values())

    @staticmethod
    def _rules(new: _New, old: _Earlier, top: int) -> list[bool]:
        """Which of the four rules the sizes let clash: cell against cell, cell against the
        earlier complement, complement against cell, complement against complement."""
        a, b = len(new.members), old.size
        ca, cb = new.complement_size, old.complement_size
        return [abs(a - b) < top, abs(a - cb) < top, abs(ca - b) < top, abs(ca - cb) < top]

    def _needs_population(self, news: list[_New], old: _Earlier, threshold: int) -> bool:
        """Whether comparing ``old`` will open its release's population (read beforehand)."""
        top = margin.highest(threshold)
        for new in news:
            if not acts(new.family, old.family):
                continue
            rules = self._rules(new, old, top)
            if (rules[1] or rules[3]) and old.population_digest != new.population_digest():
                return True
        return False

    def _compare(self, populations: Mapping[str, Any], news: list[_New],
                 old: _Earlier, threshold: int, overlaps: dict[str, tuple[BitMap, int]],
                 stats: CheckStats) -> None:
        """Apply the four rules to each new cell that the sizes let clash with ``old``.

        Symmetric differences are counted from intersections (B ⊆ U_B, A ⊆ U_A), so no
        complement of a large population is ever built.
        """
        top = margin.highest(threshold)
        for new in news:
            if not acts(new.family, old.family):
                continue
            a, b = len(new.members), old.size
            ca, cb = new.complement_size, old.complement_size
            rules = self._rules(new, old, top)
            if not any(rules):
                continue
            members = self._members(old, stats)
            ab = new.members.intersection_cardinality(members)
            b_ua = new.population.intersection_cardinality(members)
            a_ub = ua_ub = 0
            if (rules[1] or rules[3]) and old.population_digest == new.population_digest():
                ua_ub, a_ub = len(new.population), a  # the same population: nothing to open
            elif rules[1] or rules[3]:
                population, ua_ub = self._overlap(populations, old, new.population,
                                                  overlaps, stats)
                a_ub = new.members.intersection_cardinality(population)
            both_rest = ua_ub - a_ub - b_ua + ab  # |(U_A \ A) ∩ (U_B \ B)|
            deltas = [a + b - 2 * ab, a + cb - 2 * (a_ub - ab), ca + b - 2 * (b_ua - ab),
                      ca + cb - 2 * both_rest]
            sides = [("cell", "cell"), ("cell", "complement"), ("complement", "cell"),
                     ("complement", "complement")]
            for applies, delta, (new_side, old_side), size in zip(
                    rules, deltas, sides, (a, a, ca, ca), strict=True):
                stats.comparisons += applies
                if applies and (delta or size) and close(
                        int(delta), threshold, new.family, old.family, "ledger",
                        new.members, members):
                    new.clashes.append(_Clash(int(delta), old, new_side, old_side))

    def _members(self, old: _Earlier, stats: CheckStats) -> BitMap:
        if old.members is None:
            old.members = BitMap.deserialize(self._unseal(old.sealed, _cell_context(
                old.institution_id, old.project_id, old.release_id, old.ordinal)))
            stats.decrypted += 1
        return old.members

    def _overlap(self, populations: Mapping[str, Any], old: _Earlier,
                 universe: BitMap, overlaps: dict[str, tuple[BitMap, int]], stats: CheckStats
                 ) -> tuple[BitMap, int]:
        """The earlier release's population, and its overlap with the new one (cached)."""
        if old.release_id not in overlaps:
            row = populations.get(old.release_id)
            if row is None:
                raise Unavailable("the differencing ledger is inconsistent: a cell's release "
                                  "is missing; the check cannot decide, so it refuses")
            population = BitMap.deserialize(self._unseal(row.population_sealed,
                                                         _population_context(
                                                             row.institution_id,
                                                             row.project_id, row.release_id)))
            stats.decrypted += 1
            overlaps[old.release_id] = (population,
                                        universe.intersection_cardinality(population))
        return overlaps[old.release_id]

    def _digest(self, population: BitMap) -> str:
        """HMAC of a population under a key derived from the master key (not a plain hash)."""
        mac_key = hashlib.sha256(b"strongroom outputs-ledger digest\0" + self.key.secret).digest()
        canonical = population.to_array().tobytes()  # the sorted IDs, whatever the containers
        return hmac.new(mac_key, canonical, hashlib.sha256).hexdigest()

    def _unseal(self, blob: bytes, context: str) -> bytes:
        try:
            return decrypt(blob, self.key, context)
        except DecryptionError as exc:
            raise Unavailable(f"the differencing ledger cannot be read ({exc}); the check "
                              "cannot decide, so it refuses") from None

    # -- record ----------------------------------------------------------------------------

    def record(self, institution_id: str, project_id: str, release_id: str,
               cells: Sequence[tuple[str, np.ndarray | BitMap]],
               population: np.ndarray | BitMap, *,
               session: Session | None = None, vectors: Sequence[Vector] = (),
               families: Sequence[str] | None = None) -> None:
        """Remember a release's cells and population, in one transaction: :meth:`sealed`,
        then :meth:`write`.

        With ``session``, the rows join the caller's transaction (commit is the caller's).
        """
        self.write(self.sealed(institution_id, project_id, release_id, cells, population,
                               vectors=vectors, families=families), session=session)

    def sealed(self, institution_id: str, project_id: str, release_id: str,
               cells: Sequence[tuple[str, np.ndarray | BitMap]],
               population: np.ndarray | BitMap, *, vectors: Sequence[Vector] = (),
               families: Sequence[str] | None = None) -> Recording:
        """A release's rows, built and sealed, ready for :meth:`write`: everything recording
        does whose time depends on the release (its cells' sizes, its statistics), done
        outside any transaction, so that the write holds locks only to insert them."""
        universe = _bitmap(population, "the population")
        members = [(label, _bitmap(e, f"cell {label!r}")) for label, e in cells]
        _require_inside(members, universe)
        kinds = list(families) if families is not None else [COUNT] * len(members)
        if len(kinds) != len(members):
            raise Invalid("give one family per cell (or none)")
        for name, value, limit in (("institution id", institution_id, 32),
                                   ("project id", project_id, 32),
                                   ("release id", release_id, 64)):
            if not value or len(value) > limit:
                raise Invalid(f"the {name} must be 1–{limit} characters, not {value!r}")
        digest = self._digest(universe)
        return Recording(
            release={"release_id": release_id, "institution_id": institution_id,
                     "project_id": project_id, "population_size": len(universe),
                     "population_sealed": encrypt(_serialise(universe), self.key,
                                                  _population_context(
                                                      institution_id, project_id, release_id))},
            cells=[{"release_id": release_id, "ordinal": i, "institution_id": institution_id,
                    "project_id": project_id, "label": label, "size": len(m),
                    "population_size": len(universe),
                    "complement_size": len(universe) - len(m),
                    "population_digest": digest, "family": kinds[i],
                    "members_sealed": encrypt(_serialise(m), self.key, _cell_context(
                        institution_id, project_id, release_id, i))}
                   for i, (label, m) in enumerate(members)],
            vectors=[{"release_id": release_id, "ordinal": i, "institution_id": institution_id,
                      "project_id": project_id, "label": v.label, "size": int(v.ids.size),
                      "kind": v.kind,
                      "values_sealed": encrypt(v.to_bytes(), self.key, _vector_context(
                          institution_id, project_id, release_id, i))}
                     for i, v in enumerate(vectors)])

    def write(self, recording: Recording, *, session: Session | None = None) -> None:
        """Insert a :meth:`sealed` release's rows, in one transaction (with ``session``, the
        caller's: commit is the caller's). Nothing here is computed: the rows are written as
        they were sealed."""
        release_id = recording.release_id
        with self._session(session) as db:
            if db.get(LedgerRelease, release_id) is not None:
                raise Conflict(f"release {release_id} is already in the differencing ledger")
            db.add(LedgerRelease(**recording.release, recorded_at=dt.datetime.now(dt.UTC)))
            try:
                db.flush()  # the release row first: the cells refer to it
            except IntegrityError:  # recorded meanwhile by another transaction
                raise Conflict(f"release {release_id} is already in the differencing "
                               "ledger") from None
            if recording.cells:  # one multi-row INSERT: a release may hold thousands of cells
                db.execute(insert(CELLS), recording.cells)
            if recording.vectors:
                db.execute(insert(VECTORS), recording.vectors)

    def count(self, institution_id: str | None = None) -> int:
        """Cells held (for an institution, or in all)."""
        query = select(CELLS.c.ordinal)
        if institution_id is not None:
            query = query.where(CELLS.c.institution_id == institution_id)
        with Session(self.engine) as db:
            return len(db.execute(query).all())

    @contextmanager
    def _session(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
            return
        with Session(self.engine) as db, db.begin():
            yield db


# -- helpers -------------------------------------------------------------------------------


def _bitmap(eids: np.ndarray | BitMap, what: str) -> BitMap:
    """A bitmap of master IDs; they must be whole numbers that fit in 32 bits."""
    if isinstance(eids, BitMap):
        return eids
    values = np.asarray(eids)
    if values.ndim != 1:
        raise Invalid(f"{what} must be a flat array of participant IDs")
    if values.size == 0:
        return BitMap()
    if not np.issubdtype(values.dtype, np.integer):
        raise Invalid(f"{what} must hold whole-number participant IDs, not {values.dtype}")
    if values.min() < 0 or values.max() >= UINT32:
        raise Invalid(f"{what} holds IDs outside 0–{UINT32 - 1}; the ledger takes master "
                      "participant IDs (eid), not other numbers")
    packed = array.array("I")  # from raw bytes: 15× faster than iterating a NumPy array
    packed.frombytes(np.ascontiguousarray(values, dtype=np.uint32).tobytes())
    return BitMap(packed)


_NEAR_QUERIES: dict[int, Executable] = {}


def _near_query(ranges: int) -> Executable:
    """Cells of an institution whose size or complement size lies in one of ``ranges``
    ranges (parameters ``lo0``, ``hi0`` …), built once per count: building the expression
    costs more than running it."""
    if ranges not in _NEAR_QUERIES:
        near = [CELLS.c.size.between(bindparam(f"lo{i}"), bindparam(f"hi{i}"))
                for i in range(ranges)]
        near += [CELLS.c.complement_size.between(bindparam(f"lo{i}"), bindparam(f"hi{i}"))
                 for i in range(ranges)]
        _NEAR_QUERIES[ranges] = select(
            CELLS.c.release_id, CELLS.c.ordinal, CELLS.c.institution_id,
            CELLS.c.project_id, CELLS.c.label, CELLS.c.size, CELLS.c.population_size,
            CELLS.c.population_digest, CELLS.c.members_sealed, CELLS.c.family,
        ).where(and_(CELLS.c.institution_id == bindparam("institution_id"), or_(*near)))
    return _NEAR_QUERIES[ranges]


def _require_inside(members: list[tuple[str, BitMap]], universe: BitMap) -> None:
    for label, bitmap in members:
        # the members outside, counted (pyroaring's issubset is ten times slower on sparse sets)
        if bitmap.difference_cardinality(universe):
            raise Invalid(f"cell {label!r} holds participants outside its release's "
                          "population; give the population the cells were counted in")


def _serialise(bitmap: BitMap) -> bytes:
    bitmap.run_optimize()
    return bytes(bitmap.serialize())


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _cell_context(institution_id: str, project_id: str, release_id: str, ordinal: int) -> str:
    # JSON keeps the parts apart whatever characters the IDs hold
    return "outputs-ledger:cell:" + json.dumps([institution_id, project_id, release_id, ordinal])


def _vector_bytes(unsealed: bytes) -> bytes:
    """A kept vector's bytes: compact ones as they are (Vector.to_bytes), those kept before
    compressed by zlib (whose streams begin 0x78, never the compact mark)."""
    return unsealed if unsealed[:1] != b"\x78" else zlib.decompress(unsealed)


def _vector_context(institution_id: str, project_id: str, release_id: str, ordinal: int) -> str:
    return "outputs-ledger:vector:" + json.dumps([institution_id, project_id, release_id,
                                                  ordinal])


def _population_context(institution_id: str, project_id: str, release_id: str) -> str:
    return "outputs-ledger:population:" + json.dumps([institution_id, project_id, release_id])


def _finding(position: int, new: _New, project_id: str, threshold: int) -> Finding:
    """One finding per new cell, naming its closest clash (and how many others there are)."""
    clash = min(new.clashes, key=lambda c: (c.difference, c.earlier.release_id,
                                            c.earlier.ordinal))
    old = clash.earlier
    mine = (f"cell {new.label!r}" if clash.new_side == "cell"
            else f"the rest of the population outside cell {new.label!r}")
    theirs = (f"cell {old.label!r}" if clash.old_side == "cell"
              else f"the rest of its population outside cell {old.label!r}")
    where = "" if old.project_id == project_id else f" of project {old.project_id}"
    others = len(new.clashes) - 1
    more = f" (and {others} other earlier cell{'s' if others > 1 else ''})" if others else ""
    return Finding(
        RULE, Verdict.BLOCK,
        f"{mine[0].upper()}{mine[1:]} rests on the same participants as {theirs} in release "
        f"{old.release_id}{where} but for fewer than a line drawn from the threshold of "
        f"{threshold} (perhaps none){more}: it would say nothing new, or reveal a group that "
        "small by subtraction (how many is not said: that number would be the small group's "
        "count)",
        position,
    )
