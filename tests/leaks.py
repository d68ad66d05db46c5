"""Search stored bytes for participant values, as text and in binary encodings."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from strongroom.cohort.store import Store
from strongroom.db import Base


def stored_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def everything_stored(store: Store) -> bytes:
    """Every byte under the data directory plus every row of the metadata database as text
    (which, on PostgreSQL, lives outside the directory)."""
    rows = []
    with store.engine.connect() as con:
        for table in Base.metadata.sorted_tables:
            rows += [json.dumps(list(r), default=str) for r in con.execute(select(table))]
    return stored_bytes(store.root) + "\n".join(rows).encode()


def text_leaks(blob: bytes, values: Iterable[object]) -> list[str]:
    """Values found as text standing alone: a whole run of letters, digits, dots and dashes
    (as a value appears in CSV, JSON or SQL text), not a piece of a longer run such as a hex
    hash, where a short number could match by chance."""
    tokens = set(re.findall(rb"[0-9A-Za-z.\-]+", blob))
    tokens |= {t.lstrip(b"-") for t in tokens}  # "-27.38" holds 27.38
    tokens |= {part for t in tokens for part in t.split(b"T")}  # "2011-05-17T00" holds a date
    return sorted({str(v) for v in values if str(v).encode() in tokens})


def binary_leaks(blob: bytes, ints: Iterable[int] = (), floats: Iterable[float] = ()) -> list[str]:
    """64-bit little-endian integers and doubles (Parquet's and Arrow's plain encodings)."""
    found = [f"int {i}" for i in ints if struct.pack("<q", i) in blob]
    found += [f"double {x}" for x in floats if struct.pack("<d", x) in blob]
    return found
