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
    if dosages.ndim != 2:
        raise ChunkError("a chunk is samples × variants")
    n, m = dosages.shape
    values = np.ascontiguousarray(dosages.T, dtype=np.float32)  # variants × samples
    missing = np.isnan(values)
    if np.any(~missing & ((values < 0) | (values > 2))):
        raise ChunkError("dosages must lie between 0 and 2")
    hard = bool(np.all(missing | (values == np.round(values))))
    if hard:
        codes = np.where(missing, _MISSING_CODE, values).astype(np.uint8)
        width = -(-n // 4) * 4
        padded = np.zeros((m, width), dtype=np.uint8)
        padded[:, :n] = codes
        quads = padded.reshape(m, -1, 4)
        packed = quads[..., 0] | (quads[..., 1] << 2) | (quads[..., 2] << 4) | (quads[..., 3] << 6)
        return _HEADER.pack(MAGIC, HARD, n, m) + bytes(packed.tobytes())
    fixed = np.where(missing, _FIXED_MISSING, np.rint(np.nan_to_num(values) * _FIXED_SCALE))
    return _HEADER.pack(MAGIC, FIXED, n, m) + fixed.astype("<u2").tobytes()


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
    return Packed(
        first=first, count=dosages.shape[1], chunk=encode(dosages),
        alt_sum=np.nansum(dosages, axis=0, dtype=np.float64),
        alt_sq=np.nansum(np.square(dosages, dtype=np.float64), axis=0),
        called=(dosages.shape[0] - np.isnan(dosages).sum(axis=0)).astype(np.int64),
        imputed=np.any(np.abs(dosages - np.round(dosages)) > 0, axis=0))


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
