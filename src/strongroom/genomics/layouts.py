"""What a genotype file says about its own shape, checked byte by byte before a library reads it.

A genotype file is a list of people (``.fam``, ``.psam``, ``.sample`` or BGEN's own sample block)
and a block of bytes per variant. If the list and the blocks disagree by one person, every
genotype after that person lands on the next one, silently: the readers (bed-reader, pgenlib)
trust the counts they are given, and some crash on a file whose lengths lie. So each
format's structure is walked here in plain Python, every length checked against the file
before it is followed:

- PLINK 1 ``.bed``: the exact size, and the unused bits at the end of each variant's block,
  which must be zero: a ``.fam`` one row short (or long) leaves a person's calls there (or
  reads the zero padding as a person whose every call is the same).
- PLINK 2 ``.pgen``: the header's sample and variant counts against ``.psam``/``.pvar``, the
  variant record table (types, lengths, block offsets) and the exact size it implies.
- BGEN: see bgen.py, which walks and decodes it in plain Python.

Nothing here decodes a genotype: that is the libraries' job, in a process a crash cannot take
down (isolated.py).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

Buffer = bytes | mmap.mmap  # a file's bytes, read or mapped


class GenotypeFileError(ValueError):
    """A genotype file that cannot be taken as it is; the message says what and what to do."""


# -- PLINK 1 --------------------------------------------------------------------------------

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
_SAME_CALL_AT_LEAST = 50  # variants of one identical call before "that person is padding"


def check_bed(path: Path, n: int, m: int, fam: str, bim: str) -> None:
    """A ``.bed`` of ``n`` samples × ``m`` variants: magic, exact size, zero padding bits."""
    if not n or not m:
        raise GenotypeFileError(f"{path.name}: {fam if not n else bim} lists no "
                                f"{'samples' if not n else 'variants'}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(3)
    if magic != BED_MAGIC:
        raise GenotypeFileError(
            f"{path.name} is not a variant-major PLINK 1 .bed (it does not start with bytes "
            "6c 1b 01); write it with plink --make-bed")
    per = -(-n // 4)
    expected = 3 + per * m
    if size != expected:
        raise GenotypeFileError(
            f"{path.name} holds {size:,} bytes but {n:,} samples ({fam}) × {m:,} variants "
            f"({bim}) need {expected:,}: the file is "
            f"{'truncated' if size < expected else 'longer than its lists say'}, or its "
            ".fam/.bim are not the ones it was written with")
    last = np.memmap(path, dtype=np.uint8, mode="r", offset=3, shape=(m, per))[:, per - 1]
    used = 2 * (n % 4)
    dirty = np.flatnonzero(last >> used) if used else np.zeros(0, np.intp)
    if dirty.size:
        raise GenotypeFileError(
            f"{path.name}: {dirty.size:,} of {m:,} variants carry calls past the last of the "
            f"{n:,} samples {fam} lists (first: variant {dirty[0] + 1:,}); {fam} is missing "
            "people, so every genotype after a missing row would land on the wrong person. "
            "Use the .fam the .bed was written with")
    # A .fam one row long reads the zero padding as its last person: code 00 at every variant.
    code = (last >> (2 * ((n - 1) % 4))) & 3
    if m >= _SAME_CALL_AT_LEAST and not code.any():
        raise GenotypeFileError(
            f"{path.name}: the last person {fam} lists has the same call (code 00) at every one "
            f"of {m:,} variants, which is what the .bed's zero padding reads as: {fam} "
            "probably lists a person the .bed does not hold. Use the .fam the .bed was "
            "written with")


# -- PLINK 2 --------------------------------------------------------------------------------

_PGEN_BLOCK = 1 << 16
_FIXED_MODES = {0x02: 0, 0x03: 2, 0x04: 4}  # mode -> extra bytes per sample beyond hardcalls


def check_pgen(path: Path, n: int, m: int, psam: str, pvar: str) -> None:
    """A ``.pgen`` whose header says ``n`` samples and ``m`` variants, whose record table is
    consistent and whose size is exactly what the table says."""
    size = path.stat().st_size
    with mapped(path) as data:
        if size < 3 or data[:2] != b"\x6c\x1b":
            raise GenotypeFileError(
                f"{path.name} is not a PLINK 2 .pgen (it does not start with bytes "
                "6c 1b); write it with plink2 --make-pgen")
        mode = data[2]
        if mode == 0x01:
            raise GenotypeFileError(
                f"{path.name} is a PLINK 1 .bed named .pgen: rename it .bed, with "
                "its .bim and .fam")
        if mode not in _FIXED_MODES and mode != 0x10:
            raise GenotypeFileError(
                f"{path.name} uses .pgen storage mode 0x{mode:02x}, which is not read here "
                "(modes 0x02-0x04 and 0x10 are): rewrite it with plink2 --make-pgen")
        if size < 12:
            raise GenotypeFileError(f"{path.name} ends inside its 12-byte header: it is truncated")
        variants, samples, ctrl = struct.unpack_from("<IIB", data, 3)
        if samples != n:
            raise GenotypeFileError(
                f"{path.name} holds {samples:,} samples but {psam} lists {n:,}: they are not a "
                "set, and genotypes would land on the wrong people; use the .psam written with "
                "the .pgen")
        if variants != m:
            raise GenotypeFileError(
                f"{path.name} holds {variants:,} variants but {pvar} lists {m:,}: they are not "
                "a set; use the .pvar written with the .pgen")
        if mode in _FIXED_MODES:
            if ctrl & 63:
                raise GenotypeFileError(
                    f"{path.name}: header byte 12 (0x{ctrl:02x}) contradicts its "
                    "fixed-width storage mode: the header is damaged")
            start = 12 + (-(-variants // 8) if ctrl >> 6 == 3 else 0)
            width = -(-samples // 4) + _FIXED_MODES[mode] * samples
            expected = start + variants * width
            full = list(range(start, start + variants * width, width))
        else:
            expected, full = _variable_width_end(path.name, data, size, variants, ctrl)
        if size != expected:
            raise GenotypeFileError(
                f"{path.name} holds {size:,} bytes but its header and record table say "
                f"{expected:,}: the file is "
                f"{'truncated' if size < expected else 'longer than it says (junk appended?)'}")
        _clean_padding(path.name, data, full, samples, psam)


def _clean_padding(name: str, data: Buffer, starts: list[int], n: int, psam: str) -> None:
    """The unused bits after the last sample of each 2-bit genotype vector must be zero: calls
    there belong to a person the header (and ``psam``) leave out."""
    used = 2 * (n % 4)
    if not used:
        return
    last = -(-n // 4) - 1
    dirty = [k for k, at in enumerate(starts) if data[at + last] >> used]
    if dirty:
        raise GenotypeFileError(
            f"{name}: {len(dirty):,} variant records carry calls past the last of the {n:,} "
            f"samples its header and {psam} list: a person is missing from both, and every "
            "genotype after them would land on the wrong person. Use the .pgen and .psam "
            "written together by plink2")


def _variable_width_end(name: str, data: Buffer, size: int, m: int, ctrl: int
                        ) -> tuple[int, list[int]]:
    """Where the last variant record of a mode-0x10 .pgen ends, from its record table; and
    where each record that starts with a full 2-bit genotype vector (record type 0 in its low
    three bits) starts, for the padding check."""
    if ctrl & 15 > 7:
        raise GenotypeFileError(
            f"{name}: header byte 12 (0x{ctrl:02x}) names a reserved record-table "
            "layout: the header is damaged")
    type_bits = 4 if ctrl & 15 < 4 else 8
    length_bytes = (ctrl & 3) + 1
    allele_bytes = (ctrl >> 4) & 3
    if allele_bytes > 1:
        raise GenotypeFileError(f"{name}: header byte 12 (0x{ctrl:02x}) stores allele counts in "
                                f"{allele_bytes} bytes (more than 254 ALT alleles): not read here")
    flagged = ctrl >> 6 == 3
    blocks = -(-m // _PGEN_BLOCK)
    at = 12 + 8 * blocks
    need(name, size, at, "the variant block offsets")
    # copies, not views: a view would pin the file's map open past an error
    offsets = np.frombuffer(data, dtype="<u8", count=blocks, offset=12).copy()
    header_end = at + sum(
        -(-count * type_bits // 8) + count * (length_bytes + allele_bytes)
        + (-(-count // 8) if flagged else 0)
        for count in (min(_PGEN_BLOCK, m - k * _PGEN_BLOCK) for k in range(blocks)))
    end = 0
    full: list[int] = []
    for k in range(blocks):
        count = min(_PGEN_BLOCK, m - k * _PGEN_BLOCK)
        types_len = -(-count * type_bits // 8)
        need(name, size, at + types_len + count * length_bytes, f"block {k + 1}'s record table")
        if type_bits == 4 and count % 2 and data[at + types_len - 1] >> 4:
            raise GenotypeFileError(
                f"{name}: block {k + 1}'s record types carry bits past its last "
                "variant: the record table is damaged")
        packed = np.frombuffer(data, dtype=np.uint8, count=types_len, offset=at).copy()
        types = (np.column_stack([packed & 15, packed >> 4]).ravel()[:count] if type_bits == 4
                 else packed)
        at += types_len
        raw = np.frombuffer(data, dtype=np.uint8, count=count * length_bytes, offset=at).copy()
        lengths = raw.reshape(count, length_bytes).astype(np.uint64) @ (
            np.uint64(256) ** np.arange(length_bytes, dtype=np.uint64))
        at += count * length_bytes + count * allele_bytes + (-(-count // 8) if flagged else 0)
        need(name, size, at, f"block {k + 1}'s record table")
        if not lengths.all():
            raise GenotypeFileError(
                f"{name}: variant {k * _PGEN_BLOCK + int(np.argmin(lengths)) + 1:,}"
                " has a record of length 0: the record table is damaged")
        start = int(offsets[k])
        if k == 0 and start != header_end:
            raise GenotypeFileError(f"{name}: the first variant record does not start where the "
                                    "header ends: the header is damaged")
        if k and start != end:
            raise GenotypeFileError(f"{name}: variant block {k + 1} starts at byte {start:,}, not "
                                    f"{end:,} where block {k} ends: the record table is damaged")
        starts = start + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        full += starts[(types & 7) == 0].tolist()
        end = start + int(lengths.sum())
    return end, full


# -- shared ---------------------------------------------------------------------------------


def need(name: str, size: int, end: int, what: str) -> None:
    if end > size:
        raise GenotypeFileError(f"{name} ends inside {what}: the file is truncated or damaged")


def text(name: str, raw: Buffer, what: str) -> str:
    try:
        return bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        raise GenotypeFileError(f"{name}: {what} is not plain text: the file is damaged") from None


@contextmanager
def mapped(path: Path) -> Iterator[Buffer]:
    """A read-only map of a file (an empty file maps to ``b""``). Take copies, not views, of
    what is read: a view left alive (say in an error's traceback) would keep it from closing."""
    if not path.stat().st_size:
        yield b""
        return
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data
