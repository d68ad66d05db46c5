"""File plumbing shared by the readers and writers: sniffing, record scanning, atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from strongroom.cohort.problems import IngestError, Problem

PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
_QUOTE, _NEWLINE, _CR = ord('"'), ord("\n"), ord("\r")
_CHUNK = 1 << 24  # 16 MiB: bounds the scanner's scratch memory whatever the file size


def unreadable(path: Path, why: str) -> IngestError:
    return IngestError([Problem(path.name, f"cannot read the file: {why}")])


def first_bytes(path: Path, n: int = 4) -> bytes:
    """The first ``n`` bytes; ``IngestError`` if the file cannot be opened at all."""
    try:
        with path.open("rb") as fh:
            head = fh.read(n)
    except OSError as exc:
        raise unreadable(path, exc.strerror or str(exc)) from exc
    if head.startswith(_GZIP_MAGIC):
        raise unreadable(path, "it is gzip-compressed; decompress it first")
    return head


@dataclass(frozen=True)
class Records:
    """What a quote-aware scan of a delimited file found, per record (header included)."""

    widths: np.ndarray  # number of fields in each record
    blank: np.ndarray  # whether the record is an empty line


@dataclass(frozen=True)
class Totals:
    """Whole-file counts from a quote-aware scan."""

    records: int  # records, the header included; a final line without newline counts
    separators: int  # separators outside quoted fields


def _outside(data: np.ndarray, inside: int) -> tuple[np.ndarray | bool, int]:
    """Which bytes lie outside double quotes, given the state at the chunk start.

    Files without quotes (most UKB extracts) skip the cumulative sum.
    """
    quotes = data == _QUOTE
    if not quotes.any():
        return not inside, inside
    # uint8 cumsum wraps at 256, which keeps the parity we need
    parity = (np.cumsum(quotes, dtype=np.uint8) + inside) & 1
    return parity == 0, int(parity[-1])


def count_totals(path: Path, separator: str) -> Totals:
    """Count records and separators in one cheap pass (no per-record arrays)."""
    sep = ord(separator)
    records = separators = 0
    inside = 0
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            data = np.frombuffer(chunk, dtype=np.uint8)
            outside, inside = _outside(data, inside)
            separators += int(np.count_nonzero((data == sep) & outside))
            records += int(np.count_nonzero((data == _NEWLINE) & outside))
            last = chunk[-1:]
    if last and last != b"\n":
        records += 1
    return Totals(records, separators)


def scan_records(path: Path, separator: str) -> Records:
    """Count the fields of every record, honouring double-quoted fields (RFC 4180).

    Polars pads short rows with nulls without a word, so a truncated file would read as
    missing values; this scan finds such rows first. It works on 16 MiB chunks with NumPy,
    carrying the open record and the quote state across chunk boundaries.
    """
    sep = ord(separator)
    widths: list[np.ndarray] = []
    blanks: list[np.ndarray] = []
    inside = 0  # 1 while inside a quoted field at the chunk boundary
    open_seps = 0  # separators already seen in the record still open at the boundary
    open_len = 0  # its bytes so far
    last_byte = -1
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            data = np.frombuffer(chunk, dtype=np.uint8)
            outside, inside_next = _outside(data, inside)
            seps = np.cumsum((data == sep) & outside, dtype=np.int64)
            ends = np.flatnonzero((data == _NEWLINE) & outside)
            if ends.size:
                at_end = seps[ends]
                count = np.diff(at_end, prepend=0)
                count[0] += open_seps
                length = np.diff(ends, prepend=-1)  # bytes before each newline, + 1
                length[0] += open_len
                before = np.where(ends > 0, data[np.maximum(ends - 1, 0)], last_byte)
                widths.append(count + 1)
                blanks.append((length == 1) | ((length == 2) & (before == _CR)))
                open_seps = int(seps[-1] - at_end[-1])
                open_len = data.size - 1 - int(ends[-1])
            else:
                open_seps += int(seps[-1])
                open_len += data.size
            inside = inside_next
            last_byte = int(data[-1])
    if open_len:  # last record without a final newline
        widths.append(np.array([open_seps + 1]))
        blanks.append(np.array([open_len == 1 and last_byte == _CR]))
    if not widths:
        return Records(np.zeros(0, np.int64), np.zeros(0, bool))
    return Records(np.concatenate(widths), np.concatenate(blanks))


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A file handle whose contents replace ``path`` only if the block completes.

    Written beside the target (same file system, so ``os.replace`` is atomic) and fsynced
    first, so a crash leaves either the old file or the complete new one. The temporary file
    is created 0600, and the output keeps that: these files hold participant data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
