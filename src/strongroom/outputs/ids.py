"""The participant IDs the raw-row scanner blocks: the cohort's master IDs and every live
project's pseudonyms.

Pseudonyms are added one project at a time as projects come into use, so a new project costs
one read of its own map, not a rebuild over every project (which grew with the number of
projects on every analysis after one was created). Only a map that is rewritten or a project
that is no longer live rebuilds the set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from strongroom import sets
from strongroom.access.pseudonyms import HIGH, LOW
from strongroom.errors import Invalid

IntArray = npt.NDArray[np.int64]


class IdSet:
    """Master IDs (fixed for a cohort version) and pseudonyms (kept in step with projects)."""

    def __init__(self, eids: npt.ArrayLike):
        self.eid_low, self.eid_high, self.eid_bits = _bitset(np.asarray(eids))
        self._pids = np.zeros(HIGH - LOW, dtype=bool)  # one flag per possible pseudonym
        self._stamps: dict[str, int] = {}  # project → the map version folded in
        self._lock = threading.Lock()

    def sync(self, stamps: Mapping[str, int], load: Callable[[str], npt.ArrayLike]) -> None:
        """Bring the pseudonyms in line with ``stamps`` (each live project's map version);
        ``load(project_id)`` reads one project's pseudonyms."""
        with self._lock:
            if dict(stamps) == self._stamps:
                return
            changed = any(stamps.get(p) != s for p, s in self._stamps.items())
            flags = np.zeros_like(self._pids) if changed else self._pids
            for project, stamp in stamps.items():
                if changed or self._stamps.get(project) != stamp:
                    flags[_window(np.asarray(load(project)), project)] = True
            self._pids, self._stamps = flags, dict(stamps)  # a rebuild is swapped in whole

    def contains(self, values: IntArray) -> npt.NDArray[np.bool_]:
        """Which values are a master ID or a live pseudonym."""
        inside = (values >= self.eid_low) & (values <= self.eid_high)
        offset = np.where(inside, values - self.eid_low, 0)
        eid = inside & (((self.eid_bits[offset >> 3] >> (7 - (offset & 7))) & 1) == 1)
        flags = self._pids
        window = (values >= LOW) & (values < HIGH)
        pid = window & flags[np.where(window, values - LOW, 0)]
        hit: npt.NDArray[np.bool_] = eid | pid
        return hit

    def __getstate__(self) -> dict[str, object]:  # pickled (a benchmark's child): no lock
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return int(self.eid_bits.nbytes + self._pids.nbytes)


def _window(pids: np.ndarray, project: str) -> IntArray:
    if len(pids) == 0:
        return np.empty(0, np.int64)
    if not np.issubdtype(pids.dtype, np.integer) or pids.min() < LOW or pids.max() >= HIGH:
        raise Invalid(f"project {project}'s pseudonym map holds values that are not 7-digit "
                      "IDs, so outputs cannot be checked for them; the map is damaged: the "
                      "custodian must restore the project's directory")
    offsets: IntArray = pids.astype(np.int64) - LOW
    return offsets


def _bitset(ids: np.ndarray) -> tuple[int, int, npt.NDArray[np.uint8]]:
    if len(ids) == 0:
        return 1, 0, np.zeros(1, np.uint8)
    if not np.issubdtype(ids.dtype, np.integer):
        raise Invalid(f"participant IDs must be whole numbers, not {ids.dtype}")
    every = sets.distinct(ids.astype(np.int64))
    low, high = int(every[0]), int(every[-1])
    if low < 0 or high - low >= 2**32:
        raise Invalid("participant IDs must be non-negative and span fewer than 2^32 values")
    flags = np.zeros(high - low + 1, dtype=bool)
    flags[every - low] = True
    return low, high, np.packbits(flags)
