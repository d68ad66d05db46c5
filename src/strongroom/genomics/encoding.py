"""How a chunk of genotypes is laid out before it is sealed: variants × samples, packed.

Hard calls (every dosage 0, 1, 2 or missing) take two bits each, four samples to a byte, as in
PLINK's ``.bed``; anything else (imputed dosages) is 16-bit fixed point, finer than BGEN's usual
8-bit probabilities so nothing is lost. The header names the layout and the shape, so a chunk
is decoded without outside knowledge, and a chunk of another shape is refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Dosages = npt.NDArray[np.float32]

MAGIC = b"SRGT1"
_HEADER = struct.Struct("<5sBII")  # magic, layout, samples, variants
HARD, FIXED = 1, 2
_MISSING_CODE = 3  # two-bit code of a missing call
_FIXED_MISSING = 65535
_FIXED_SCALE = 65534 / 2  # dosage 2 -> 65534

# byte -> its four two-bit codes' dosages (low bits first)
_UNPACK = np.array(
    [[(b >> (2 * k)) & 3 for k in range(4)] for b in range(256)], dtype=np.uint8)
_DOSAGE_OF_CODE = np.array([0.0, 1.0, 2.0, np.nan], dtype=np.float32)
_TABLE = _DOSAGE_OF_CODE[_UNPACK]  # 256 × 4 float32
_DECODE_BYTES = 1 << 20  # packed bytes decoded at once: their intp indices are 8 MiB


class ChunkError(ValueError):
    """A chunk that is not what its header or the reader expects."""


def encode(dosages: Dosages) -> bytes:
    """Pack samples × variants dosages (NaN missing) into one chunk's bytes."""
    return _Chunk(dosages).encode()


@dataclass(frozen=True)
class Packed:
    """One chunk as it goes into the store: its packed bytes and, per variant, the sums the
    store keeps (ALT frequency, call count, imputation quality) so that nothing reads the
    dosages twice."""

    first: int  # the chunk's first variant in the file
    count: int
    chunk: bytes
    alt_sum: npt.NDArray[np.float64]
    alt_sq: npt.NDArray[np.float64]
    called: npt.NDArray[np.int64]
    imputed: npt.NDArray[np.bool_]


def pack(first: int, dosages: Dosages) -> Packed:
    """Samples × variants dosages from variant ``first`` on, packed with their sums."""
    chunk = _Chunk(dosages)
    data = chunk.encode()
    alt_sum, alt_sq, called = chunk.sums()
    return Packed(first=first, count=chunk.m, chunk=data, alt_sum=alt_sum, alt_sq=alt_sq,
                  called=called, imputed=chunk.imputed())


# each byte's count of the two-bit codes 1, 2 and 3 (missing) among its four samples
_CODE_COUNTS = np.stack([np.count_nonzero(np.equal(_UNPACK, code), axis=1) for code in (1, 2, 3)],
                        axis=1).astype(np.float64)


class _Chunk:
    """One chunk's dosages read once into what both its bytes and its sums are made from:
    the store's ingest packs every variant of a cohort's genotypes (500,000 samples × 8,000
    variants in the demo), and each pass over the float dosages costs seconds there."""

    def __init__(self, dosages: Dosages):
        if dosages.ndim != 2:
            raise ChunkError("a chunk is samples × variants")
        self.n, self.m = dosages.shape
        self.values = np.ascontiguousarray(dosages.T, dtype=np.float32)  # variants × samples
        # fmin/fmax skip NaN (missing) without copying; ±inf and anything outside 0-2 refused
        if self.values.size and (np.fmin.reduce(self.values, axis=None) < 0
                                 or np.fmax.reduce(self.values, axis=None) > 2):
            raise ChunkError("dosages must lie between 0 and 2")
        self.missing = np.isnan(self.values)
        # a missing call as code 3 (NaN's cast is undefined, and overwritten); a dosage that is
        # not whole loses its fraction here, and is told by comparing with the value
        with np.errstate(invalid="ignore"):
            self.codes = self.values.astype(np.uint8)
        self.codes[self.missing] = _MISSING_CODE
        self.hard = bool(np.all((self.codes == self.values) | self.missing))
        self._packed: npt.NDArray[np.uint8] | None = None

    def encode(self) -> bytes:
        if self.hard:
            return _HEADER.pack(MAGIC, HARD, self.n, self.m) + bytes(self.packed().tobytes())
        fixed = np.where(self.missing, _FIXED_MISSING,
                         np.rint(np.nan_to_num(self.values) * _FIXED_SCALE))
        return _HEADER.pack(MAGIC, FIXED, self.n, self.m) + fixed.astype("<u2").tobytes()

    def packed(self) -> npt.NDArray[np.uint8]:
        """Variants × ⌈samples / 4⌉ bytes, four two-bit codes each, low bits first (the padding
        samples of the last byte code 0)."""
        if self._packed is None:
            width = -(-self.n // 4) * 4
            padded = np.zeros((self.m, width), dtype=np.uint8)
            padded[:, :self.n] = self.codes
            quads = padded.reshape(self.m, -1, 4)
            self._packed = (quads[..., 0] | (quads[..., 1] << 2) | (quads[..., 2] << 4)
                            | (quads[..., 3] << 6))
        return self._packed

    def sums(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                            npt.NDArray[np.int64]]:
        """Per variant: the ALT dosages' sum and sum of squares over called samples, and how
        many were called. Hard calls are counted from the packed bytes (a histogram of each
        variant's bytes: exact, and the same figures as summing the dosages)."""
        if self.hard:
            counts = np.stack([np.bincount(row, minlength=256) for row in self.packed()]) \
                if self.m else np.zeros((0, 256), np.int64)
            ones, twos, missing = (counts @ _CODE_COUNTS).T
            return ones + 2 * twos, ones + 4 * twos, (self.n - missing).astype(np.int64)
        filled = np.where(self.missing, np.float32(0), self.values)
        return (filled.sum(axis=1, dtype=np.float64),
                np.square(filled, dtype=np.float64).sum(axis=1),
                (self.n - self.missing.sum(axis=1)).astype(np.int64))

    def imputed(self) -> npt.NDArray[np.bool_]:
        """Per variant: whether any dosage is not a whole number."""
        if self.hard:
            return np.zeros(self.m, dtype=np.bool_)
        off = (self.codes != self.values) & ~self.missing
        fractional: npt.NDArray[np.bool_] = off.any(axis=1)
        return fractional


def look_up(table: npt.NDArray[np.float32], packed: npt.NDArray[np.uint8],
            out: npt.NDArray[np.float32]) -> None:
    """``out[i, j] = table[packed[i, j]]`` (variants × packed bytes × 4 samples), a slice of
    variants at a time: ``np.take`` makes its byte indices ``intp`` first, 8 bytes each."""
    step = max(1, _DECODE_BYTES // max(1, packed.shape[1]))
    for a in range(0, packed.shape[0], step):
        np.take(table, packed[a:a + step], axis=0, out=out[a:a + step], mode="clip")


def decode(chunk: bytes, rows: npt.NDArray[np.intp] | None = None) -> Dosages:
    """The samples × variants dosages of a chunk; only the samples at ``rows`` if given."""
    if len(chunk) < _HEADER.size:
        raise ChunkError("a chunk shorter than its header")
    magic, layout, n, m = _HEADER.unpack_from(chunk)
    if magic != MAGIC:
        raise ChunkError("not a genotype chunk")
    body = memoryview(chunk)[_HEADER.size:]
    if layout == HARD:
        per = -(-n // 4)
        if len(body) != per * m:
            raise ChunkError(f"a chunk of {n} samples × {m} variants holds {len(body)} bytes")
        packed = np.frombuffer(body, dtype=np.uint8).reshape(m, per)
        if rows is not None and rows.size * 8 < n:  # a few samples: gather them alone
            return np.asfortranarray(_TABLE[packed[:, rows // 4], rows % 4].T)
        # variants × samples rows, C order, are samples × variants in Fortran order: the
        # lookup writes straight into what the GWAS reads, with no copy after it (most of the
        # samples: every one decoded, then the rows taken, is faster than gathering them)
        buffer = np.empty((m, per, 4), dtype=np.float32)
        look_up(_TABLE, packed, buffer)
        out = buffer.reshape(m, per * 4)[:, :n]
        if rows is not None:
            out = np.take(out, rows, axis=1)
        return np.asfortranarray(out.T)
    if layout == FIXED:
        if len(body) != 2 * n * m:
            raise ChunkError(f"a chunk of {n} samples × {m} variants holds {len(body)} bytes")
        fixed = np.frombuffer(body, dtype="<u2").reshape(m, n)
        if rows is not None:
            fixed = fixed[:, rows]
        values = fixed.astype(np.float32) / np.float32(_FIXED_SCALE)
        values[fixed == _FIXED_MISSING] = np.nan
        return np.asfortranarray(values.T)
    raise ChunkError(f"unknown chunk layout {layout}")
