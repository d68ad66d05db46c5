"""The numbers that stand for a cohort version's eids on the cluster (issue 56).

No key a query is granted opens the master IDs: each cohort table is sealed on the cluster
with a surrogate in place of its eid. A surrogate is a keyed pseudorandom function of the eid
(AES-128 of it as one block, its first 62 bits, plus one) under a key drawn for the cohort
version and held only in this process, so the host keeps no table of them: per participant
it holds only which eids the participant table has, as a compressed bitmap (about 1 MB at
5,000,000 participants, where a drawn table of eids and surrogates took 76 MB). Surrogates
are checked distinct over the participant table when the key is drawn (a clash among 62-bit
numbers is all but impossible; another key is drawn if one happens).
"""

from __future__ import annotations

import secrets

import numpy as np
import numpy.typing as npt
import polars as pl
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pyroaring import BitMap64

from strongroom import sets
from strongroom.cohort.model import EID

SID = "_sid"  # the cohort's tables on the cluster: a surrogate of eid in its place


_SLICE = 1 << 19  # eids enciphered at a time: the cipher's buffers 8 MB, not the cohort's


class Surrogates:
    """A cohort version's surrogates: ``of`` any eids, and whether the participant table
    (``members``: its eids, when made; ``key``: a fixed key, for tests) holds each. ``tag``
    names the version's sealed copies."""

    def __init__(self, members: BitMap64, key: bytes | None = None):
        wanted = sets.bitmap_values(members)
        while True:
            self._key = key if key is not None else secrets.token_bytes(16)
            made = self.numbers(wanted)
            made.sort()  # in place: distinct if no two neighbours are equal
            if not bool(np.any(made[1:] == made[:-1])):
                break
            if key is not None:
                raise ValueError("two eids have the same surrogate under this key")
        del made, wanted
        self._members = members
        self.tag = secrets.token_hex(8)

    def numbers(self, eids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Each eid's surrogate, in 1 … 2^62 (whether the cohort holds it or not)."""
        made = np.empty(eids.size, dtype=np.int64)
        # ECB is the block cipher applied to each eid on its own: a keyed permutation of
        # single blocks (equal eids, equal surrogates, as a surrogate must be)
        encryptor = Cipher(algorithms.AES(self._key), modes.ECB()).encryptor()  # noqa: S305
        for start in range(0, eids.size, _SLICE):
            part = eids[start:start + _SLICE]
            blocks = np.zeros((part.size, 2), dtype=">i8")
            blocks[:, 0] = part
            first = np.frombuffer(encryptor.update(blocks.tobytes()), dtype=">u8")[::2]
            made[start:start + part.size] = (first >> np.uint64(2)).astype(np.int64) + 1
        encryptor.finalize()
        return made

    def of(self, eids: pl.Series) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Each eid's surrogate (0 where the participant table lacks it), and whether the
        participant table holds it."""
        wanted = eids.cast(pl.Int64).fill_null(-1).to_numpy()
        found = sets.within(wanted, sets.bitmap_values(sets.bitmap(wanted) & self._members))
        return np.where(found, self.numbers(wanted), 0), found

    def replace(self, chunk: pl.DataFrame) -> pl.DataFrame:
        """A chunk of a cohort table with its eids' surrogates for them (rows of an eid
        the participant table lacks, which no view could join, left out)."""
        sids, found = self.of(chunk[EID])
        rest = [c for c in chunk.columns if c != EID]
        return chunk.with_columns(pl.Series(SID, sids)).filter(pl.Series(found)) \
            .select(SID, *rest)
