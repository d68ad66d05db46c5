"""Per-project pseudonymous participant IDs, as UK Biobank issues them per application.

Each project gets random 7-digit IDs drawn without replacement from 1,000,000–9,999,999 by the
operating system's CSPRNG. They are stable within the project (the map is kept, sealed under the
project's key) and unlinkable across projects: two projects' maps are independent draws, and
only the custodian, holding the keys, can join them.
"""

from __future__ import annotations

import io
import os

import numpy as np
import polars as pl

from strongroom import sets
from strongroom.access.context import AccessContext
from strongroom.access.keys import open_project_key
from strongroom.access.models import Project
from strongroom.cohort.crypto import MasterKey, decrypt, encrypt

LOW, HIGH = 1_000_000, 10_000_000  # 7-digit IDs
FILE = "pseudonyms.srenc"


def _context(project_id: str) -> str:
    return f"pseudonyms:{project_id}"


def random_ids(n: int, exclude: np.ndarray) -> np.ndarray:
    """``n`` distinct uniformly random 7-digit IDs not in ``exclude`` (vectorised)."""
    span = HIGH - LOW
    if n + len(exclude) > span:
        raise ValueError(f"cannot issue {n:,} more 7-digit IDs")
    limit = (2**32 // span) * span  # rejection sampling keeps the draw uniform
    chosen = np.empty(0, dtype=np.int64)
    taken = np.asarray(exclude, dtype=np.int64)
    while len(chosen) < n:
        want = int((n - len(chosen)) * 1.3) + 64
        raw = np.frombuffer(os.urandom(4 * want), dtype=np.uint32).astype(np.int64)
        raw = raw[raw < limit] % span + LOW
        raw = raw[~np.isin(raw, taken)]
        _, first = np.unique(raw, return_index=True)
        fresh = raw[np.sort(first)]  # distinct, in draw order
        fresh = fresh[: n - len(chosen)]
        chosen = np.concatenate([chosen, fresh])
        taken = np.concatenate([taken, fresh])
    return chosen


def load(ctx: AccessContext, project: Project) -> pl.DataFrame:
    """The project's map (``eid``, ``pid``); empty before any is issued."""
    return _load(ctx, project, open_project_key(ctx.key, project))  # refused once destroyed


def _load(ctx: AccessContext, project: Project, key: MasterKey) -> pl.DataFrame:
    path = ctx.project_dir(project.id) / FILE
    if not path.exists():
        return pl.DataFrame(schema={"eid": pl.Int64, "pid": pl.Int64})
    return pl.read_parquet(io.BytesIO(decrypt(path.read_bytes(), key, _context(project.id))))


def issue(ctx: AccessContext, project: Project, eids: np.ndarray) -> int:
    """Give every participant in ``eids`` a pseudonym (keeping existing ones); the count new."""
    key = open_project_key(ctx.key, project)
    current = _load(ctx, project, key)
    new_eids = sets.difference(np.asarray(eids, dtype=np.int64), current["eid"].to_numpy())
    if len(new_eids) == 0:
        return 0
    # shuffle so the order of IDs reveals nothing about eid order
    new_eids = new_eids[np.argsort(np.frombuffer(os.urandom(8 * len(new_eids)), np.uint64))]
    added = pl.DataFrame({"eid": new_eids,
                          "pid": random_ids(len(new_eids), current["pid"].to_numpy())})
    table = pl.concat([current, added]).sort("eid")
    buffer = io.BytesIO()
    table.write_parquet(buffer, compression="zstd")
    sealed = encrypt(buffer.getvalue(), key, _context(project.id))
    where = ctx.project_dir(project.id)
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = where / (FILE + ".tmp")
    staging.write_bytes(sealed)
    os.replace(staging, where / FILE)
    return len(new_eids)
