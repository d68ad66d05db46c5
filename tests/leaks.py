"""Search stored bytes for participant values, as text and in binary encodings."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from pathlib import Path


def stored_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def text_leaks(blob: bytes, values: Iterable[object]) -> list[str]:
    """Values found as text standing alone (not inside a longer run of letters or digits,
    where hex hashes and ids in the metadata could match a short number by chance)."""
    words = sorted({str(v) for v in values}, key=len, reverse=True)
    if not words:
        return []
    pattern = re.compile(
        rb"(?<![0-9A-Za-z])(" + b"|".join(re.escape(w.encode()) for w in words)
        + rb")(?![0-9A-Za-z])"
    )
    return sorted({m.group(1).decode() for m in pattern.finditer(blob)})


def binary_leaks(blob: bytes, ints: Iterable[int] = (), floats: Iterable[float] = ()) -> list[str]:
    """64-bit little-endian integers and doubles (Parquet's and Arrow's plain encodings)."""
    found = [f"int {i}" for i in ints if struct.pack("<q", i) in blob]
    found += [f"double {x}" for x in floats if struct.pack("<d", x) in blob]
    return found
