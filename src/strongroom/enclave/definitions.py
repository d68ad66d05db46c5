"""Dataset definitions: a project's analysis populations and derived variables, kept inside.

A definition is one checked SELECT over the project view (and the project's earlier
definitions, by name). Its result is a participant-level table keyed by ``pid`` that never
leaves the enclave: the researcher sees its :meth:`Definition.public` description (name, SQL,
columns and whether its size passes the threshold), never its rows or its exact size. Frames
are stored as Parquet sealed with the project's key; metadata as JSON beside them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from strongroom import sets
from strongroom.cohort.crypto import DecryptionError, MasterKey, decrypt, encrypt
from strongroom.cohort.model import PARTICIPANTS
from strongroom.cohort.store import atomic_write
from strongroom.enclave import rowlocal, sizes
from strongroom.enclave.engine import Limits
from strongroom.enclave.engines import DuckDBEngine, Engine
from strongroom.enclave.sizes import Size
from strongroom.enclave.sources import Table, known_pids
from strongroom.enclave.sqlguard import check_select, referenced_columns
from strongroom.enclave.view import PID, ProjectSchema, schema_of
from strongroom.errors import Invalid, NotFound

NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
DATA_SUFFIX = ".parquet.srenc"
META_SUFFIX = ".json"
MIN_PARTICIPANTS = 10  # a definition's size verdict: whether it holds at least this many


@dataclass(frozen=True)
class Definition:
    """What is known about a definition's table without reading its rows."""

    name: str
    sql: str
    created_at: datetime
    columns: dict[str, str] = field(default_factory=dict)  # column -> DuckDB type name
    rows: int = 0  # server-side only: exact sizes are not shown to researchers
    participants: int = 0
    size_ok: bool = False  # participants >= the project's threshold
    # checked row-local (enclave/rowlocal.py); definitions stored before that check are not,
    # and must be made again before anything reads them
    row_local: bool = True
    # the most rows (and rows of one participant) its SQL could give, judged from the text
    # and the tables' rounded sizes (enclave/sizes.py); 0 for definitions made before
    bound_rows: int = 0
    bound_per_pid: int = 0

    def bound(self, most: int) -> Size:
        """Its size bound; one made before bounds were kept could be as large as ``most``."""
        if self.bound_rows < 1:
            return Size(most, most)
        return Size(self.bound_rows, self.bound_per_pid)

    def public(self) -> dict[str, Any]:
        """What a researcher may see: no row or participant counts, only the size verdict."""
        return {"name": self.name, "sql": self.sql, "created_at": self.created_at.isoformat(),
                "columns": dict(self.columns), "size_ok": self.size_ok}

    def to_json(self) -> dict[str, Any]:
        return {**self.public(), "rows": self.rows, "participants": self.participants,
                "row_local": self.row_local,
                "bound": {"rows": self.bound_rows, "per_pid": self.bound_per_pid}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Definition:
        return cls(
            name=str(data["name"]), sql=str(data["sql"]),
            created_at=datetime.fromisoformat(str(data["created_at"])),
            columns={str(k): str(v) for k, v in dict(data["columns"]).items()},
            rows=int(data["rows"]), participants=int(data["participants"]),
            size_ok=bool(data["size_ok"]), row_local=bool(data.get("row_local", False)),
            bound_rows=int(dict(data.get("bound") or {}).get("rows", 0)),
            bound_per_pid=int(dict(data.get("bound") or {}).get("per_pid", 0)),
        )  # fmt: skip


def check_name(name: str, taken: Mapping[str, object] | None = None) -> None:
    """Refuse a definition name that is not an identifier or that a view table already uses."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise Invalid(f"{name!r} is not a definition name: use 1–63 lower-case letters, digits "
                      "and _, starting with a letter")
    if name == "eid":
        raise Invalid("'eid' cannot name a definition")
    if taken is not None and name in taken:
        raise Invalid(f"{name!r} is the name of a project table; choose another name")


def build(
    tables: Mapping[str, Table],
    schema: ProjectSchema,
    name: str,
    sql: str,
    limits: Limits,
    min_participants: int = MIN_PARTICIPANTS,
    earlier: Mapping[str, pl.DataFrame] | None = None,
    verdict_key: bytes | None = None,
    bounds: Mapping[str, Size] | None = None,
    engine: Engine | None = None,
) -> tuple[Definition, pl.DataFrame]:
    """Run a definition's SQL over the project view (and earlier definitions) in the enclave.

    ``verdict_key``: the project's secret for the size verdict's margin (:func:`size_verdict`);
    without one the verdict is the bare threshold (for tests of the threshold itself).
    ``bounds``: the earlier definitions' size bounds (:meth:`Definition.bound`); one not
    given is taken to be as large as a query may be. A definition whose SQL could give more
    rows than that is refused before it runs (enclave/sizes.py). ``engine``: where the SQL
    runs (DuckDB on this machine unless given).
    """
    check_name(name, tables)
    earlier = dict(earlier or {})
    for other in earlier:
        check_name(other, tables)
    world: dict[str, Table] = {**tables, **earlier}
    query = check_select(sql, schema.merged(schema_of(earlier)))
    refused = rowlocal.reasons(query)
    if refused:
        raise Invalid(refused)
    bound, most = sizes.admit(query, tables, limits.max_rows,
                              {other: (bounds or {}).get(other) for other in earlier})
    frame = (engine or DuckDBEngine()).select(world, referenced_columns(query), query, limits,
                                              most)
    _check_pids(frame, tables)
    # stored by pid: aggregates over it then need no sort, and row order says nothing
    frame = frame.sort(PID, maintain_order=True)
    people = frame[PID].unique().sort()
    participants = people.len()
    size_ok = (size_verdict(people.to_numpy(), min_participants, verdict_key)
               if verdict_key is not None else participants >= min_participants)
    definition = Definition(
        name=name, sql=sql, created_at=datetime.now(UTC),
        columns=schema_of({name: frame}).tables[name], rows=frame.height,
        participants=participants, size_ok=size_ok,
        bound_rows=bound.rows, bound_per_pid=bound.per_pid,
    )  # fmt: skip
    return definition, frame


def size_drawn(participants: int, threshold: int = MIN_PARTICIPANTS) -> bool:
    """Whether a population of ``participants`` has its size verdict drawn by a margin (from
    half the threshold up to twice it, :func:`size_verdict`): one participant more or fewer
    can then change it, so it answers a question about them, and the output service counts
    it as an answer (``Outputs.define``), as it counts an output shown just over its line."""
    return threshold - threshold // 2 <= participants < 2 * threshold


def size_verdict(pids: npt.NDArray[np.int64], threshold: int, key: bytes) -> bool:
    """Whether a population is big enough, told without saying whether one person is in it.

    Fewer than half the ``threshold``: no. At least twice it: yes. In between, yes only if
    the size reaches ``threshold`` plus a margin drawn from the population itself (a keyed
    hash of its sorted IDs, from −threshold/2 to threshold − 1). The same population always
    gets the same answer, but two populations that differ by one person get independent
    margins, so "nine people, plus the target if their BMI is over 30" is no longer a yes/no
    question about the target: each answer moves the odds by one in 1.5 × threshold, and
    many such questions (each metered and watched) would be needed to tell.
    """
    n = len(pids)
    low = -(threshold // 2)
    if not size_drawn(n, threshold):
        return n >= threshold
    digest = hmac.new(key, np.ascontiguousarray(pids, dtype=np.int64).tobytes(),
                      hashlib.sha256).digest()
    margin = low + int.from_bytes(digest[:8], "big") % (threshold - low)
    return n >= threshold + margin


def _check_pids(frame: pl.DataFrame, tables: Mapping[str, Table]) -> None:
    """A definition is participant-level: a non-null ``pid`` column of the project's IDs."""
    if PID not in frame.columns:
        raise Invalid("a definition must return a pid column (the project's participant IDs), "
                      "e.g. SELECT pid, … FROM participants")
    column = frame[PID]
    if not column.dtype.is_integer():
        raise Invalid(f"the definition's pid column holds {column.dtype} values, not the "
                      "project's integer participant IDs; return pid as a project table holds it")
    if column.null_count():
        raise Invalid("the definition's pid column has empty values; every row must belong "
                      "to a participant (filter with WHERE pid IS NOT NULL)")
    known = known_pids(tables, PARTICIPANTS, PID)
    if not sets.bitmap(column.cast(pl.Int64).to_numpy()) <= (known or sets.bitmap([])):
        raise Invalid("the definition's pid column holds values that are not the project's "
                      "participant IDs; return pid unchanged from a project table")


# -- storage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staged:
    """A definition sealed and written under a name no list reads (``.staged-…``), until
    :meth:`publish` renames it into place: a definition exists for every reader (lists,
    analyses, dummy data) only from the moment it is answered, and its sealing, whose time
    grows with its rows, is done before that moment, not after it."""

    directory: Path
    name: str
    token: str

    def _path(self, suffix: str) -> Path:
        return self.directory / f"{STAGED}{self.token}-{self.name}{suffix}"

    @property
    def data(self) -> Path:
        return self._path(DATA_SUFFIX)

    @property
    def meta(self) -> Path:
        return self._path(META_SUFFIX)

    def stamp(self) -> int:
        """The stamp the definition will have once published (a rename keeps it)."""
        return self.data.stat().st_mtime_ns

    def publish(self) -> None:
        """Rename it into place, data first, so its metadata never lists it without data."""
        os.replace(self.data, self.directory / (self.name + DATA_SUFFIX))
        os.replace(self.meta, self.directory / (self.name + META_SUFFIX))

    def discard(self) -> None:
        self.meta.unlink(missing_ok=True)
        self.data.unlink(missing_ok=True)


STAGED = ".staged-"
# a staged definition is published or discarded within its answer's ladder (hours at most);
# one older than this was left by a process that stopped while it waited, and is removed
STALE_SECONDS = 86_400.0


def stage(
    directory: Path, key: MasterKey, context: str, definition: Definition, frame: pl.DataFrame
) -> Staged:
    """Seal the frame under the project's key and write it, with its metadata, staged."""
    check_name(definition.name)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _clear_stale(directory)
    staged = Staged(directory, definition.name, secrets.token_hex(8))
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    try:  # sealed from the buffer itself (a copy of it is a definition's compressed size)
        with buffer.getbuffer() as plain:
            sealed = encrypt(plain, key, _context(context, definition.name))
        atomic_write(staged.data, sealed)
        del sealed
        atomic_write(staged.meta,
                     json.dumps(definition.to_json(), indent=2, sort_keys=True).encode())
    except BaseException:
        staged.discard()
        raise
    return staged


def _clear_stale(directory: Path) -> None:
    """Remove staged files a stopped process left (sealed, never listed: only their room)."""
    now = time.time()
    for path in directory.glob(STAGED + "*"):
        with contextlib.suppress(FileNotFoundError):
            if now - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()


def save(
    directory: Path, key: MasterKey, context: str, definition: Definition, frame: pl.DataFrame
) -> None:
    """Seal the frame under the project's key, then write the metadata (which lists it)."""
    stage(directory, key, context, definition, frame).publish()


def load(
    directory: Path, key: MasterKey, context: str, name: str
) -> tuple[Definition, pl.DataFrame]:
    """A stored definition and its frame; refused if absent or if the bytes were altered."""
    check_name(name)
    return _read(directory / (name + DATA_SUFFIX), directory / (name + META_SUFFIX), key,
                 context, name)


def load_staged(staged: Staged, key: MasterKey, context: str) -> tuple[Definition,
                                                                        pl.DataFrame]:
    """A staged definition and its frame, as :func:`load` will read it once published."""
    return _read(staged.data, staged.meta, key, context, staged.name)


def _read(data: Path, meta: Path, key: MasterKey, context: str,
          name: str) -> tuple[Definition, pl.DataFrame]:
    if not (data.exists() and meta.exists()):
        raise NotFound(f"the project has no definition named {name!r}")
    try:
        plain = decrypt(data.read_bytes(), key, _context(context, name))
    except DecryptionError:
        raise Invalid(f"the definition {name!r} could not be decrypted: wrong project key or "
                      "altered file; rebuild it from its SQL") from None
    definition = Definition.from_json(json.loads(meta.read_text()))
    if not definition.row_local:
        raise Invalid(f"the definition {name!r} was made before definitions had to be "
                      "row-local and cannot be used; define it again from its SQL (if the SQL "
                      "copies values between participants it will be refused with the reason)")
    return definition, pl.read_parquet(io.BytesIO(plain))


def list_(directory: Path) -> list[Definition]:
    """The project's definitions, by name (metadata only: nothing is decrypted)."""
    if not directory.exists():
        return []
    found = []
    for meta in sorted(directory.glob("*" + META_SUFFIX)):
        name = meta.name.removesuffix(META_SUFFIX)
        if NAME.fullmatch(name) and (directory / (name + DATA_SUFFIX)).exists():
            found.append(Definition.from_json(json.loads(meta.read_text())))
    return found


def stamp(directory: Path, name: str) -> int:
    """A number that changes whenever the definition is saved again (0 if absent): a cache key."""
    check_name(name)
    try:
        return (directory / (name + DATA_SUFFIX)).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def drop(directory: Path, name: str) -> None:
    """Remove a definition: metadata first, so it is never listed without its data."""
    check_name(name)
    meta, data = directory / (name + META_SUFFIX), directory / (name + DATA_SUFFIX)
    if not meta.exists() and not data.exists():
        raise NotFound(f"the project has no definition named {name!r}")
    meta.unlink(missing_ok=True)
    data.unlink(missing_ok=True)


def _context(context: str, name: str) -> str:
    # binds the sealed bytes to the project and the name: a file cannot be swapped for another
    return f"{context}/definition/{name}"
