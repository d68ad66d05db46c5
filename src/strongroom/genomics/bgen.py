"""BGEN (UK Biobank's imputed format) walked and decoded in plain Python and NumPy.

BGEN's reference reader (``bgen``, in C, through cbgen) trusts the lengths a file states: a file
cut to two thirds or padded to 2 GiB crashed it (exit 139), and a genotype block whose stated
uncompressed length is wrong is decoded without a word. Here every length is checked against
the file before it is followed, and every genotype block against what its header implies, so a
damaged file is refused saying where, and a good one reads exactly as cbgen reads it (the tests
compare the two on plink2's exports). Decoding is vectorised; decompression is zlib's.

Read here: layout 2 (BGEN 1.2, 1.3), unphased diploid biallelic probabilities at any bit depth,
uncompressed or zlib; layout 1 (BGEN 1.1) uncompressed or zlib. Refused, saying so: zstd
compression (export it with zlib), phased or multiallelic variants, other ploidy.

Which allele is ALT: the second (UK Biobank's files put the reference allele first).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from strongroom.genomics.layouts import Buffer, GenotypeFileError, mapped, need, text

_COMPRESSION = {0: "none", 1: "zlib", 2: "zstd"}
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")
_LAYOUT2_HEAD = struct.Struct("<IHBB")  # samples, alleles, least and most ploidy


@dataclass(frozen=True)
class Variant:
    """Where one variant's genotype block lies, and its stated uncompressed length."""

    start: int
    length: int
    decompressed: int


@dataclass(frozen=True)
class BgenLayout:
    """A BGEN file's structure, walked to its exact end."""

    samples: int
    variants: int
    compression: int
    layout: int
    sample_ids: list[str] | None
    chrom: list[str]
    pos: list[int]
    rsid: list[str]
    alleles: list[list[str]]
    blocks: list[Variant]


def walk(path: Path) -> BgenLayout:
    """Every block of a BGEN file, lengths checked before they are followed, to its exact end."""
    size = path.stat().st_size
    name = path.name
    with mapped(path) as data:
        need(name, size, 24, "its header")
        first, lh, m, n = struct.unpack_from("<IIII", data, 0)
        magic = bytes(data[16:20])
        if magic != b"bgen":
            raise GenotypeFileError(f"{name} is not a BGEN file (bytes 17-20 are {magic!r}, not "
                                    "b'bgen'); export it with plink2 --export bgen-1.2 or "
                                    "qctool")
        if lh < 20 or lh > first:
            raise GenotypeFileError(f"{name}: its header says it is {lh:,} bytes long and its "
                                    f"variants start at byte {first + 4:,}, which cannot both "
                                    "be true: the header is damaged")
        need(name, size, 4 + lh, "its header")
        (flags,) = _U32.unpack_from(data, lh)  # the header block's last four bytes
        compression, layout, has_ids = flags & 3, (flags >> 2) & 15, flags >> 31
        if compression not in _COMPRESSION or layout not in (1, 2) or flags & 0x7FFFFFC0:
            raise GenotypeFileError(f"{name}: header flags 0x{flags:08x} name no BGEN layout "
                                    "(layout 1 or 2; compression none, zlib or zstd)")
        if compression == 2:
            raise GenotypeFileError(f"{name} is zstd-compressed (BGEN 1.3), which is not read "
                                    "here; export it with zlib (plink2 --export bgen-1.2, or "
                                    "qctool -bgen-compression zlib)")
        if n == 0 or m == 0:
            raise GenotypeFileError(f"{name} holds {n:,} samples and {m:,} variants: nothing "
                                    "to read")
        ids = _samples(name, data, size, 4 + lh, first + 4, n) if has_ids else None
        chrom, pos, rsid, alleles, blocks = _variants(name, data, size, first + 4, m, n,
                                                      layout, compression)
    return BgenLayout(n, m, compression, layout, ids, chrom, pos, rsid, alleles, blocks)


def _samples(name: str, data: Buffer, size: int, at: int, limit: int, n: int) -> list[str]:
    need(name, size, at + 8, "its sample block")
    length, count = struct.unpack_from("<II", data, at)
    if count != n:
        raise GenotypeFileError(f"{name}: its sample block lists {count:,} samples but its "
                                f"header says {n:,}: the file is damaged")
    end = at + length
    if end > limit:
        raise GenotypeFileError(f"{name}: its sample block runs past where the variants start: "
                                "the file is damaged")
    need(name, size, end, "its sample block")
    ids, pos = [], at + 8
    for k in range(n):
        if pos + 2 > end:
            raise GenotypeFileError(f"{name}: the sample block ends before sample {k + 1:,}: "
                                    "the file is damaged")
        (width,) = _U16.unpack_from(data, pos)
        if pos + 2 + width > end:
            raise GenotypeFileError(f"{name}: sample {k + 1:,}'s ID runs past its block: the "
                                    "file is damaged")
        ids.append(text(name, data[pos + 2:pos + 2 + width], f"sample {k + 1:,}'s ID"))
        pos += 2 + width
    if pos != end:
        raise GenotypeFileError(f"{name}: its sample block is {length:,} bytes but its IDs "
                                f"take {pos - at:,}: the file is damaged")
    return ids


def _variants(name: str, data: Buffer, size: int, at: int, m: int, n: int, layout: int,
              compression: int) -> tuple[list[str], list[int], list[str], list[list[str]],
                                         list[Variant]]:
    chrom: list[str] = []
    pos: list[int] = []
    rsid: list[str] = []
    alleles: list[list[str]] = []
    blocks: list[Variant] = []

    def number(width: struct.Struct, what: str, k: int) -> int:
        nonlocal at
        if at + width.size > size:
            raise GenotypeFileError(f"{name} ends inside variant {k + 1:,}'s {what}: the file "
                                    "is truncated (or its header counts more variants than it "
                                    "holds)")
        (value,) = width.unpack_from(data, at)
        at += width.size
        return int(value)

    def string(width: struct.Struct, what: str, k: int) -> str:
        nonlocal at
        length = number(width, what, k)
        if at + length > size:
            raise GenotypeFileError(f"{name}: variant {k + 1:,}'s {what} ({length:,} bytes) "
                                    "runs past the end of the file: the file is truncated or "
                                    "damaged")
        value = text(name, data[at:at + length], f"variant {k + 1:,}'s {what}")
        at += length
        return value

    for k in range(m):
        if layout == 1 and number(_U32, "sample count", k) != n:
            raise GenotypeFileError(f"{name}: variant {k + 1:,} is for another number of "
                                    f"samples than the header's {n:,}: the file is damaged")
        string(_U16, "ID", k)
        rsid.append(string(_U16, "rsid", k))
        chrom.append(string(_U16, "chromosome", k))
        pos.append(number(_U32, "position", k))
        count = 2 if layout == 1 else number(_U16, "allele count", k)
        alleles.append([string(_U32, f"allele {a + 1}", k) for a in range(count)])
        if layout == 1 and not compression:
            length = decompressed = 6 * n
        else:
            length = number(_U32, "genotype block length", k)
            decompressed = 6 * n if layout == 1 else length
            if layout == 2 and compression:
                decompressed = number(_U32, "uncompressed length", k)
                length -= 4
            # at most 32 bits for each of a sample's two probabilities: a larger stated length
            # is a damaged file (or a decompression bomb)
            if length < 0 or (layout == 2 and not 10 + n <= decompressed <= 10 + 9 * n):
                raise GenotypeFileError(f"{name}: variant {k + 1:,}'s genotype block lengths "
                                        "are impossible: the file is damaged")
        if at + length > size:
            raise GenotypeFileError(f"{name}: variant {k + 1:,}'s genotype block runs past the "
                                    "end of the file: the file is truncated (or its header "
                                    f"counts {m:,} variants where it holds fewer)")
        blocks.append(Variant(at, length, decompressed))
        at += length
    if at != size:
        raise GenotypeFileError(f"{name}: its {m:,} variants end at byte {at:,} but the file "
                                f"holds {size:,}: it is longer than its header says (junk "
                                "appended, or the header's variant count is short)")
    return chrom, pos, rsid, alleles, blocks


def dosages(name: str, data: Buffer, shape: BgenLayout, k: int) -> npt.NDArray[np.float32]:
    """Variant ``k``'s ALT dosages (NaN missing), its block checked against its header."""
    block = shape.blocks[k]
    raw = bytes(data[block.start:block.start + block.length])
    where = f"{name}: variant {k + 1:,} ({shape.rsid[k]})"
    if shape.compression:
        unpack = zlib.decompressobj()
        try:
            plain = unpack.decompress(raw, block.decompressed + 1)
        except zlib.error as exc:
            raise GenotypeFileError(f"{where}: its genotype block cannot be decompressed "
                                    f"({exc}): the file is damaged") from None
        if len(plain) != block.decompressed or not unpack.eof or unpack.unused_data:
            raise GenotypeFileError(f"{where}: its genotype block does not decompress to the "
                                    f"{block.decompressed:,} bytes it states: the file is "
                                    "damaged")
    else:
        plain = raw
    n = shape.samples
    if shape.layout == 1:
        if len(plain) != 6 * n:
            raise GenotypeFileError(f"{where}: its genotype block holds {len(plain):,} bytes, "
                                    f"not the {6 * n:,} of {n:,} samples: the file is damaged")
        p = np.frombuffer(plain, dtype="<u2").reshape(n, 3).astype(np.float64) / 32768
        out = p[:, 1] + 2 * p[:, 2]
        out[~p.any(axis=1)] = np.nan  # all three zero: missing
        return out.astype(np.float32)
    return _layout2(where, plain, n)


def _layout2(where: str, plain: bytes, n: int) -> npt.NDArray[np.float32]:
    samples, count, least, most = _LAYOUT2_HEAD.unpack_from(plain, 0)
    if samples != n:
        raise GenotypeFileError(f"{where}: its genotype block is for {samples:,} samples, not "
                                f"the file's {n:,}: the file is damaged")
    if count != 2:
        raise GenotypeFileError(f"{where} has {count} alleles in its genotype block; split "
                                "multiallelic variants (plink2 --make-pgen multiallelics=-)")
    ploidy = np.frombuffer(plain, dtype=np.uint8, count=n, offset=8)
    phased, bits = plain[8 + n], plain[9 + n]
    if least != 2 or most != 2 or np.any((ploidy & 0x3F) != 2) or phased > 1:
        raise GenotypeFileError(f"{where} is not stored as unphased diploid genotype "
                                "probabilities; export it with plink2 --export bgen-1.2")
    if phased:
        raise GenotypeFileError(f"{where} is phased; export unphased probabilities (plink2 "
                                "--export bgen-1.2)")
    if not 1 <= bits <= 32:
        raise GenotypeFileError(f"{where}: its probabilities are stored in {bits} bits; BGEN "
                                "allows 1 to 32: the file is damaged")
    body = plain[10 + n:]
    expected = -(-2 * n * bits // 8)
    if len(body) != expected:
        raise GenotypeFileError(f"{where}: its genotype block holds {len(body):,} bytes of "
                                f"probabilities, not the {expected:,} that {n:,} samples at "
                                f"{bits} bits take: the file is damaged")
    if bits in (8, 16, 32):
        values = np.frombuffer(body, dtype=f"<u{bits // 8}").astype(np.float64)
    else:
        unpacked = np.unpackbits(np.frombuffer(body, dtype=np.uint8), bitorder="little")
        weights = np.left_shift(np.uint64(1), np.arange(bits, dtype=np.uint64))
        values = (unpacked[:2 * n * bits].reshape(2 * n, bits).astype(np.uint64) @ weights
                  ).astype(np.float64)
    pairs = values.reshape(n, 2)
    top = float((1 << bits) - 1)
    if np.any(pairs.sum(axis=1) > top):
        raise GenotypeFileError(f"{where}: a sample's genotype probabilities add up to more "
                                "than 1: the file is damaged")
    p = pairs / top  # P(AA), P(AB); P(BB) is the rest
    out = p[:, 1] + 2 * (1 - p[:, 0] - p[:, 1])
    out[(ploidy & 0x80) != 0] = np.nan
    return out.astype(np.float32)
