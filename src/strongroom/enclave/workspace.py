"""The enclave's working state: the decrypted cohort, project views and definitions, cached.

Decrypting 500,000 participants takes about a second; a grouped count must answer in well under
100 ms. So the server keeps, in memory only, the current cohort version, each project's view
(keyed by the grants and the pseudonym map it was built from) and each decrypted definition
(keyed by its file's modification). Nothing cached is ever written out in the clear; a change
of grants, pseudonyms, cohort version or definition makes a fresh entry, and a closed project's
files (and so its cache keys) are gone.

An engine that keeps the cohort elsewhere (Spark: sealed on the cluster's storage) is handed
the cohort version a table at a time instead (:meth:`Enclave.sources`), and definitions and
aggregate SQL then read views that live there: on that path the host never loads the cohort.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl

from strongroom import sets
from strongroom.access import pseudonyms
from strongroom.access.context import AccessContext
from strongroom.access.keys import open_project_key
from strongroom.access.models import Project
from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.model import Cohort
from strongroom.cohort.store import Store
from strongroom.enclave import definitions
from strongroom.enclave.engine import Limits
from strongroom.enclave.engines import DuckDBEngine, Engine
from strongroom.enclave.sources import CHUNK_ROWS, CohortSource, Table
from strongroom.enclave.view import project_view
from strongroom.errors import Invalid, Unavailable

T = TypeVar("T")
DEFINITIONS = "definitions"
# the decrypted definitions kept in memory, in bytes (the most recently used kept whatever its
# size): about ten of 500,000 rows, one of 5,000,000 (a study's analyses read one in turn)
DEFINITIONS_HELD = 256 << 20
VIEWS_KEPT = 4  # a project's views (frames and the engine's) and master IDs
OUTSIDE = ("the result names participants outside the project's view; its contributors "
           "cannot be established, so it is refused")


class _Building:
    """An entry being built: the others asking for the same key wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: object = None
        self.built = False
        self.generation = 0
        self.by = threading.get_ident()  # the thread building it


class LruCache:
    """A small least-recently-used map; ``get`` builds a missing entry once, outside the map's
    lock: whoever asks for the same key waits for that build, and nobody else does. A cache is
    shared by every project (its keys name the project), so one project's build (a view, a
    definition whose rows are its answer's size) must not hold up another project's request:
    that wait would time the build from outside. ``budget``: at most that many bytes held too,
    as ``weigh`` tells each entry's (the newest entry is kept whatever it weighs)."""

    def __init__(self, size: int, budget: int | None = None,
                 weigh: Callable[[object], int] | None = None):
        self.size = size
        self.budget = budget
        self._weigh = weigh
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._weights: dict[Hashable, int] = {}
        self._building: dict[Hashable, _Building] = {}
        self._generation = 0  # a build begun before a ``clear`` is not kept
        self._lock = threading.Lock()  # held for bookkeeping only, never during a build

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]  # type: ignore[return-value]
                pending = self._building.get(key)
                mine = pending is None
                if pending is None:
                    pending = self._building[key] = _Building()
                    pending.generation = self._generation
            if mine:
                return self._build(key, build, pending)
            if pending.by == threading.get_ident():  # waiting for itself would never end
                raise RuntimeError(f"the cache's entry {key!r} asked for itself while built")
            pending.done.wait()
            if pending.built:
                return pending.value  # type: ignore[return-value]
            # that build failed: ask again (this caller builds, and sees its own error)

    def _build(self, key: Hashable, build: Callable[[], T], pending: _Building) -> T:
        try:
            value = build()
            weight = self._weigh(value) if self._weigh is not None else 0
        except BaseException:
            with self._lock:
                if self._building.get(key) is pending:
                    del self._building[key]
            pending.done.set()
            raise
        with self._lock:
            if pending.generation == self._generation:
                self._items[key] = value
                if self._weigh is not None:
                    self._weights[key] = weight
            while len(self._items) > self.size or (
                    self.budget is not None and len(self._items) > 1
                    and sum(self._weights.values()) > self.budget):
                old, _ = self._items.popitem(last=False)
                self._weights.pop(old, None)
            if self._building.get(key) is pending:  # not a later build's, after a clear
                del self._building[key]
        pending.value, pending.built = value, True
        pending.done.set()
        return value

    def clear(self) -> None:
        """Forget every entry; a build under way is answered to whoever asked for it before,
        and kept by no one (who asks after builds afresh)."""
        with self._lock:
            self._items.clear()
            self._weights.clear()
            self._building.clear()
            self._generation += 1


class ProjectCaches:
    """One :class:`LruCache` per project, so that no project's entries are let go to make room
    for another's: in one cache for every project, four other projects' first requests (or a
    definition of many rows) evicted this project's view, and its next free request, slower
    by the rebuild, told that they had run (a red team, 12 of 12). A project's cache is
    dropped once the project has not used it for ``idle`` seconds: judged by the project's
    own last use alone, so whether it finds its entries depends on its own requests only,
    and the host holds the caches of the projects at work lately, not of every project."""

    IDLE = 15 * 60.0

    def __init__(self, make: Callable[[], LruCache], idle: float = IDLE,
                 clock: Callable[[], float] = time.monotonic):
        self._make = make
        self._idle = idle
        self._clock = clock
        self._caches: dict[str, tuple[LruCache, float]] = {}
        self._lock = threading.RLock()  # bookkeeping only; re-entrant, as a test may hold it

    def of(self, project_id: str) -> LruCache:
        now = self._clock()
        with self._lock:
            for held, (_, used) in list(self._caches.items()):
                if now - used > self._idle:  # this one's own next use would drop it too
                    del self._caches[held]
            cache = self._caches[project_id][0] if project_id in self._caches \
                else self._make()
            self._caches[project_id] = (cache, now)
            return cache

    def get(self, project_id: str, key: Hashable, build: Callable[[], T]) -> T:
        return self.of(project_id).get(key, build)


class MasterIds:
    """A project's pids mapped to master IDs (the ledger's, shared by an institution's
    projects). A pid's position is that of its master ID among the project's, ascending; so a
    set of contributors comes out in master-ID order by marking positions, without the sort
    that was a tenth of a grouped count's time at 500,000. A large project finds positions by
    a table over the whole pid range (one gather); a small one, for which filling that 40 MB
    table cost more than all its lookups, by searching its sorted pids."""

    DENSE = 64  # sets above 1/64 of the project (or of the pid range) are marked, not sorted

    def __init__(self, pids: np.ndarray, eids: np.ndarray):
        """``pids[i]``'s master ID is ``eids[i]``, with ``eids`` ascending."""
        self.eids = eids
        self._ranks: np.ndarray | None = None  # ranks[pid]: 1 + its position (0: not ours)
        self._sorted: np.ndarray | None = None  # or the pids ascending, with their positions
        self._order: np.ndarray | None = None
        if pids.size * self.DENSE >= pseudonyms.HIGH:
            self._ranks = np.zeros(pseudonyms.HIGH, dtype=np.uint32)
            self._ranks[pids] = np.arange(1, pids.size + 1, dtype=np.uint32)
        else:
            self._order = np.argsort(pids)
            self._sorted = pids[self._order].astype(np.int64)

    def positions(self, contributors: npt.ArrayLike) -> np.ndarray:
        """Each contributor's position among the project's master IDs; a pid that is not the
        project's refuses the result (its contributors cannot be established)."""
        pids = np.asarray(contributors, dtype=np.int64)
        if not pids.size:
            return np.zeros(0, dtype=np.int64)
        if self._ranks is not None:
            if int(pids.min()) < 0 or int(pids.max()) >= len(self._ranks):
                raise Invalid(OUTSIDE)
            found: np.ndarray = self._ranks[pids]
            if int(found.min()) == 0:
                raise Invalid(OUTSIDE)
            return found.astype(np.int64) - 1
        assert self._sorted is not None and self._order is not None
        at = np.searchsorted(self._sorted, pids)
        if int(at.max()) >= self._sorted.size or \
                not np.array_equal(self._sorted[at], pids):
            raise Invalid(OUTSIDE)
        placed: np.ndarray = self._order[at]
        return placed

    def __call__(self, contributors: npt.ArrayLike) -> np.ndarray:
        """The contributors' master IDs, in the contributors' order."""
        found: np.ndarray = self.eids[self.positions(contributors)]
        return found.astype(np.int64)

    def distinct(self, contributors: npt.ArrayLike) -> np.ndarray:
        """The contributors' distinct master IDs, ascending."""
        positions = self.positions(contributors)
        if positions.size * self.DENSE > self.eids.size:
            marks = np.zeros(self.eids.size, dtype=np.bool_)
            marks[positions] = True
            positions = np.flatnonzero(marks)
        else:
            positions = sets.distinct(positions)
        found: np.ndarray = self.eids[positions]
        return found


class Enclave:
    """What enclave services need: the access context, the store, limits, the engine that
    runs checked SQL (DuckDB here unless given) and the caches."""

    def __init__(self, ctx: AccessContext, store: Store, limits: Limits | None = None,
                 engine: Engine | None = None):
        self.ctx = ctx
        self.store = store
        self.engine: Engine = engine or DuckDBEngine()
        self.limits = limits or self.engine.limits
        self._cohorts = LruCache(1)  # by version: the same for every project
        # each project's views and master IDs, and its decrypted definitions' rows (at most
        # 32, and DEFINITIONS_HELD bytes of them, the latest kept whatever its size: a
        # cohort's size of rows each, they would otherwise add up on the host as a study
        # makes them), in caches of its own (ProjectCaches)
        self._views = ProjectCaches(lambda: LruCache(VIEWS_KEPT))
        self._definitions = ProjectCaches(
            lambda: LruCache(32, DEFINITIONS_HELD, _frame_bytes))

    def version(self) -> str:
        current = self.store.current()
        if current is None:
            raise Unavailable("the store holds no cohort yet, so there is nothing to analyse; "
                              "the custodian must ingest one (`strongroom cohort ingest "
                              "FILE… --operator NAME --reason TEXT`)")
        return current.id

    def participants(self) -> int:
        """The current cohort's participants, as its version publishes them (nothing is
        loaded): the size schedules are stated for."""
        self.version()  # says what to do when there is none
        current = self.store.current()
        return current.participants if current is not None else 0

    def cohort(self) -> Cohort:
        version = self.version()
        return self._cohorts.get(version, lambda: self.store.load())

    def key(self, project: Project) -> MasterKey:
        return open_project_key(self.ctx.key, project)  # refused once the key is destroyed

    def pseudonym_stamp(self, project: Project) -> int:
        """Changes whenever the project's pseudonym map is rewritten (0: none yet)."""
        path = self.ctx.project_dir(project.id) / pseudonyms.FILE
        return path.stat().st_mtime_ns if path.exists() else 0

    def pseudonym_map(self, project: Project) -> pl.DataFrame:
        """The project's pseudonyms (``eid``, ``pid``); custodian-side only. Read from its
        sealed file each time, not held: 16 bytes a participant (80 MB at 5,000,000), and
        what is made from it (the view, the master IDs) is kept instead."""
        return pseudonyms.load(self.ctx, project)

    def master_ids(self, project: Project) -> MasterIds:
        """The project's pids in master-ID space (memory only: 40 MB over the 7-digit pid
        range, so that mapping a result's contributors is one gather, not a search)."""
        def build() -> MasterIds:
            mapping = self.pseudonym_map(project).sort("eid")
            return MasterIds(mapping["pid"].to_numpy(),
                             mapping["eid"].to_numpy().astype(np.uint32))

        return self._views.get(project.id, ("master", self.pseudonym_stamp(project)), build)

    def tables(self, project: Project, fields: list[int]) -> dict[str, pl.DataFrame]:
        """The project's view: its pseudonyms and granted fields only."""
        version = self.version()
        key = ("view", version, tuple(fields), self.pseudonym_stamp(project))
        return self._views.get(project.id, key, lambda: project_view(
            self.cohort(), self.pseudonym_map(project), fields, self.ctx.dictionary))

    def cohort_source(self) -> CohortSource:
        """The current cohort version as an engine reads it: a table at a time, a chunk of
        rows at a time, keyed by the digests of its sealed files (nothing is loaded here)."""
        current = self.store.current()
        if current is None:
            self.version()  # says what to do
            raise AssertionError("unreachable")
        version = current.id
        digests = {name: str(table["sha256"]) for name, table in current.tables.items()}
        return CohortSource(version, digests,
                            lambda name: self.store.read_chunks(version, name,
                                                                CHUNK_ROWS))

    def sources(self, project: Project, fields: list[int]) -> Mapping[str, Table]:
        """The project's view where the engine's queries read it: the engine's own (on a
        cluster, built there from the cohort sealed there) or, for an engine that reads
        frames here, :meth:`tables`."""
        version = self.version()
        key = ("sources", version, tuple(fields), self.pseudonym_stamp(project))

        def build() -> Mapping[str, Table]:
            made = self.engine.project_view(self.cohort_source(),
                                            lambda: self.pseudonym_map(project), fields,
                                            self.ctx.dictionary)
            return made if made is not None else self.tables(project, fields)

        return self._views.get(project.id, key, build)

    def release(self) -> None:
        """After a request: the engine gives back what the request left free (Spark's requests
        take seconds, so the Spark engine does; DuckDB's take milliseconds, and its does not)."""
        self.engine.release()

    def definitions_dir(self, project_id: str) -> Path:
        return self.ctx.project_dir(project_id) / DEFINITIONS

    def definition(self, project: Project, name: str) -> tuple[definitions.Definition,
                                                                pl.DataFrame]:
        where = self.definitions_dir(project.id)
        stamp = definitions.stamp(where, name)
        return self._definitions.get(
            project.id, (name, stamp),
            lambda: definitions.load(where, self.key(project), definition_context(project.id),
                                     name))

    def warm_definition(self, project: Project, staged: definitions.Staged) -> None:
        """Read a staged definition into the cache under the stamp it will have once
        published, so that its first analysis waits for no decryption."""
        self._definitions.get(
            project.id, (staged.name, staged.stamp()),
            lambda: definitions.load_staged(staged, self.key(project),
                                            definition_context(project.id)))


def _frame_bytes(entry: object) -> int:
    """A cached definition's weight: its frame's (the entry is its record and its rows)."""
    frame = entry[1] if isinstance(entry, tuple) and len(entry) == 2 else entry
    return int(frame.estimated_size()) if isinstance(frame, pl.DataFrame) else 0


def definition_context(project_id: str) -> str:
    """What a project's sealed definitions are bound to (another project's key cannot open)."""
    return f"definitions:{project_id}"
