"""Damaged genotype files, as a custodian's disk, a bad export or a careless edit make them.

Each damage takes a good file set (PLINK 1, PLINK 2 or BGEN, written by the real tools) and
breaks its structure: lists a row short or long, truncations, padding, headers whose counts lie,
lengths that point past the end, bytes that are not text. Every one of them must be refused,
naming the problem; none may be stored, crash the caller or leave anything behind. Damage that
leaves a structurally valid file with other genotypes (a flipped call) is not here: no reader
can tell it from data.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.genotype_files import convert, genotypes, write_bed

N, M = 303, 57  # N % 4 == 3: a .fam one row short or long keeps the .bed's size
TWO_GIB = 2 << 30


@dataclass(frozen=True)
class Damage:
    name: str
    apply: Callable[[Path], Path]  # a copy of the good set's main file -> the file to ingest
    says: str  # a fragment the refusal must contain (regular expression)


def good_sets(where: Path, eids: list[str]) -> dict[str, Path]:
    """One good set per format, for the first N of ``eids``."""
    bed = write_bed(where / "good" / "array", genotypes(N, M, seed=3), eids[:N])
    return {"bed": bed, "pgen": convert(bed, "pgen"), "bgen": convert(bed, "bgen")}


def copy_set(main: Path, to: Path) -> Path:
    to.mkdir(parents=True)
    for f in main.parent.glob(main.stem + ".*"):
        if f.suffix != ".log":
            shutil.copy(f, to / f.name)
    return to / main.name


# -- editing helpers --------------------------------------------------------------------------


def _lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    path.write_text("".join(line + "\n" for line in edit(path.read_text().splitlines())))


def _bytes(path: Path, edit: Callable[[bytearray], bytes | bytearray]) -> None:
    path.write_bytes(bytes(edit(bytearray(path.read_bytes()))))


def _put(data: bytearray, at: int, fmt: str, value: int) -> bytearray:
    struct.pack_into(fmt, data, at, value)
    return data


def _pad_sparse(path: Path, to: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(to)  # a hole: 2 GiB that take no disk


def _sibling(suffix: str) -> Callable[[Path], Path]:
    return lambda main: main.with_suffix(suffix)


def _drop_row(at: int) -> Callable[[list[str]], list[str]]:
    return lambda lines: lines[:at] + lines[at + 1:]


def _edit(which: Callable[[Path], Path], edit: Callable[[list[str]], list[str]]
          ) -> Callable[[Path], Path]:
    def apply(main: Path) -> Path:
        _lines(which(main), edit)
        return main
    return apply


def _edit_bytes(which: Callable[[Path], Path], edit: Callable[[bytearray], bytes | bytearray]
                ) -> Callable[[Path], Path]:
    def apply(main: Path) -> Path:
        _bytes(which(main), edit)
        return main
    return apply


def _same(main: Path) -> Path:
    return main


def _remove(which: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def apply(main: Path) -> Path:
        which(main).unlink()
        return main
    return apply


def _sparse(main: Path) -> Path:
    _pad_sparse(main, main.stat().st_size + TWO_GIB)
    return main


GARBAGE = bytes(range(128, 256)) * 8


def _common(main_suffix: str, samples: str, variants: str, extra_eid: str) -> list[Damage]:
    """Damage every format can suffer: to its main file's length, and to its text lists."""
    main = _same
    s, v = _sibling(samples), _sibling(variants)
    return [
        Damage("truncated by one byte", _edit_bytes(main, lambda d: d[:-1]), "truncated"),
        Damage("truncated to two thirds", _edit_bytes(main, lambda d: d[:len(d) * 2 // 3]),
               "truncated"),
        Damage("truncated to a third", _edit_bytes(main, lambda d: d[:len(d) // 3]),
               "truncated"),
        Damage("empty", _edit_bytes(main, lambda d: b""), "truncated|does not start|not a"),
        Damage("one junk byte appended", _edit_bytes(main, lambda d: d + b"\x00"),
               "longer than"),
        Damage("1 KiB of junk appended", _edit_bytes(main, lambda d: d + GARBAGE),
               "longer than"),
        Damage("padded with 2 GiB", _sparse, "longer than"),
        Damage(f"{samples} not text", _edit_bytes(s, lambda d: GARBAGE), "not a text file"),
        Damage(f"{variants} not text", _edit_bytes(v, lambda d: GARBAGE),
               "not a text file|cannot be read"),
        Damage(f"{samples} missing", _remove(s),
               f"{samples}.*missing|carries no sample|not participant IDs"),
        Damage(f"{samples} one row long (a participant)",
               _edit(s, lambda lines: [*lines, _like(lines[-1], extra_eid)]),
               "not a set|probably lists a person|samples"),
        Damage(f"{samples} two rows long",
               _edit(s, lambda lines: [*lines, _like(lines[-1], extra_eid),
                                       _like(lines[-1], extra_eid + "1")]),
               "not a set|need|samples"),
    ]


def _like(line: str, eid: str) -> str:
    parts = line.split()
    first = parts[0]
    return " ".join(eid if p == first else p for p in parts)


# -- PLINK 1 --------------------------------------------------------------------------------


def bed_damages(extra_eid: str) -> list[Damage]:
    fam, bim = _sibling(".fam"), _sibling(".bim")

    def padding_bit(data: bytearray) -> bytearray:
        per = -(-N // 4)
        data[3 + 10 * per + per - 1] |= 0x80  # variant 11: a call past the last sample
        return data

    return [
        *_common(".bed", ".fam", ".bim", extra_eid),
        Damage(".fam one row short (the 100th person)", _edit(fam, _drop_row(99)),
               "carry calls past the last"),
        Damage(".fam's last row missing", _edit(fam, _drop_row(N - 1)),
               "carry calls past the last"),
        Damage(".fam two rows short", _edit(fam, lambda lines: lines[:50] + lines[52:]),
               "carry calls past the last"),
        Damage("a call in one variant's padding bits", _edit_bytes(_same, padding_bit),
               "carry calls past the last"),
        Damage("wrong magic", _edit_bytes(_same, lambda d: b"\x6c\x1c" + d[2:]),
               "not a variant-major"),
        Damage("sample-major .bed", _edit_bytes(_same, lambda d: d[:2] + b"\x00" + d[3:]),
               "not a variant-major"),
        Damage("only the magic", _edit_bytes(_same, lambda d: d[:3]), "truncated"),
        Damage(".bim one row short", _edit(bim, _drop_row(5)), "longer than its lists"),
        Damage(".bim one row long",
               _edit(bim, lambda lines: [*lines, lines[-1].replace("rs1056", "rs9999")]),
               "truncated"),
        Damage(".bim row of five columns",
               _edit(bim, lambda lines: [*lines[:3], "\t".join(lines[3].split()[:5]),
                                         *lines[4:]]), "line 4 has 5 columns"),
        Damage(".fam row of five columns",
               _edit(fam, lambda lines: [*lines[:3], " ".join(lines[3].split()[:5]),
                                         *lines[4:]]), "line 4 has 5 columns"),
        Damage(".bim position not a number",
               _edit(bim, lambda lines: [_col(lines[0], 3, "12x"), *lines[1:]]),
               "not a whole number"),
        Damage(".bim negative position",
               _edit(bim, lambda lines: [_col(lines[0], 3, "-5"), *lines[1:]]), "negative"),
        Damage(".bim allele 0", _edit(bim, lambda lines: [_col(lines[0], 4, "0"), *lines[1:]]),
               "alleles that are not"),
        Damage(".bim REF equals ALT",
               _edit(bim, lambda lines: [_col(lines[0], 4, lines[0].split()[5]), *lines[1:]]),
               "alleles that are not"),
        Damage(".bim duplicate ID",
               _edit(bim, lambda lines: [lines[0], _col(lines[1], 1, lines[0].split()[1]),
                                         *lines[2:]]), "more than once"),
        Damage(".fam duplicate ID",
               _edit(fam, lambda lines: [lines[0], _col(lines[1], 1, lines[0].split()[1]),
                                         *lines[2:]]), "more than once"),
        Damage(".fam empty", _edit(fam, lambda lines: []), "lists no samples"),
        Damage(".bim empty", _edit(bim, lambda lines: []), "lists no variants"),
        Damage(".bim missing", _remove(bim), "missing"),
        Damage(".fam IDs not participant IDs",
               _edit(fam, lambda lines: [_col(line, 1, f"S{k}") for k, line in
                                         enumerate(lines)]), "not participant IDs"),
        Damage(".fam a stranger", _edit(fam, lambda lines: [_col(lines[0], 1, "424242"),
                                                            *lines[1:]]),
               "not participants of the current cohort"),
    ]


def _col(line: str, at: int, value: str) -> str:
    parts = line.split()
    parts[at] = value
    return "\t".join(parts)


# -- PLINK 2 --------------------------------------------------------------------------------


def pgen_damages(extra_eid: str) -> list[Damage]:
    psam, pvar = _sibling(".psam"), _sibling(".pvar")
    pgen = _same
    types_at = 12 + 8  # one variant block: one offset
    lengths_at = types_at + -(-M * 4 // 8)

    def garble_record_types(data: bytearray) -> bytearray:
        for k in range(types_at, lengths_at):
            data[k] = 0x77  # record type 7 for every variant: not what the bytes hold
        return data

    def garble_records(data: bytearray) -> bytearray:
        start = struct.unpack_from("<Q", data, 12)[0]
        data[start:] = bytes([0xFF]) * (len(data) - start)
        return data

    return [
        *_common(".pgen", ".psam", ".pvar", extra_eid),
        Damage(".psam one row short (the 100th person)", _edit(psam, _drop_row(100)),
               "holds 303 samples but"),
        Damage(".psam's last row missing", _edit(psam, _drop_row(N)), "holds 303 samples"),
        Damage(".pvar one row short", _edit(pvar, _drop_row(7)), "holds 57 variants"),
        Damage(".pvar one row long",
               _edit(pvar, lambda lines: [*lines, lines[-1].replace("rs1056", "rs9999")]),
               "holds 57 variants"),
        Damage("only the header's first 12 bytes", _edit_bytes(pgen, lambda d: d[:12]),
               "truncated"),
        Damage("only two bytes", _edit_bytes(pgen, lambda d: d[:2]), "not a PLINK 2"),
        Damage("wrong magic", _edit_bytes(pgen, lambda d: b"\x6c\x1c" + d[2:]), "not a PLINK 2"),
        Damage("storage mode 0x01", _edit_bytes(pgen, lambda d: d[:2] + b"\x01" + d[3:]),
               "PLINK 1 .bed named .pgen"),
        Damage("storage mode 0x05 (reserved)",
               _edit_bytes(pgen, lambda d: d[:2] + b"\x05" + d[3:]), "storage mode 0x05"),
        Damage("storage mode 0x11", _edit_bytes(pgen, lambda d: d[:2] + b"\x11" + d[3:]),
               "storage mode 0x11"),
        Damage("storage mode 0x02 on a variable-width file",
               _edit_bytes(pgen, lambda d: d[:2] + b"\x02" + d[3:]), "contradicts|bytes but"),
        Damage("header variant count + 5", _edit_bytes(pgen, lambda d: _put(d, 3, "<I", M + 5)),
               "holds 62 variants"),
        Damage("header variant count - 1", _edit_bytes(pgen, lambda d: _put(d, 3, "<I", M - 1)),
               "holds 56 variants"),
        Damage("header sample count + 1", _edit_bytes(pgen, lambda d: _put(d, 7, "<I", N + 1)),
               "holds 304 samples"),
        Damage("header sample count - 1", _edit_bytes(pgen, lambda d: _put(d, 7, "<I", N - 1)),
               "holds 302 samples"),
        Damage("record-table layout reserved",
               _edit_bytes(pgen, lambda d: _put(d, 11, "<B", (d[11] & 0xF0) | 0x0F)),
               "reserved record-table layout"),
        Damage("allele counts in two bytes",
               _edit_bytes(pgen, lambda d: _put(d, 11, "<B", d[11] | 0x20)),
               "more than 254|bytes but"),
        Damage("first record offset + 1",
               _edit_bytes(pgen, lambda d: _put(d, 12, "<Q", struct.unpack_from("<Q", d, 12)[0]
                                                + 1)), "does not start where|bytes but"),
        Damage("first record offset past the end",
               _edit_bytes(pgen, lambda d: _put(d, 12, "<Q", 1 << 40)),
               "does not start where|bytes but"),
        Damage("a record length + 1",
               _edit_bytes(pgen, lambda d: _put(d, lengths_at + 3, "<B", d[lengths_at + 3] + 1)),
               "bytes but its header and record table say"),
        Damage("a record length 0", _edit_bytes(pgen, lambda d: _put(d, lengths_at + 3, "<B", 0)),
               "length 0"),
        Damage("bits past the last record type",
               _edit_bytes(pgen, lambda d: _put(d, lengths_at - 1, "<B", d[lengths_at - 1]
                                                | 0x70)), "past its last variant"),
        Damage("record types garbled", _edit_bytes(pgen, garble_record_types),
               "record types carry bits past"),
        Damage("records garbled", _edit_bytes(pgen, garble_records),
               "cannot be read|stopped|carry calls past"),
        Damage(".pvar without its header", _edit(pvar, lambda lines: [
            line for line in lines if not line.startswith("#")]), "header line"),
        Damage(".pvar without ALT", _edit(pvar, lambda lines: [
            "\t".join(line.split("\t")[:4]) for line in lines]), "header line"),
        Damage(".psam header without IID",
               _edit(psam, lambda lines: [lines[0].replace("IID", "XID"), *lines[1:]]),
               "no IID column"),
        Damage(".psam row of another width",
               _edit(psam, lambda lines: [*lines[:5], lines[5] + "\textra", *lines[6:]]),
               "line 6 has"),
        Damage(".pvar missing", _remove(pvar), "missing"),
        Damage(".pvar position not a number",
               _edit(pvar, lambda lines: [*lines[:1], _col(lines[1], 1, "x1"), *lines[2:]]),
               "not a whole number"),
        Damage(".pvar duplicate ID",
               _edit(pvar, lambda lines: [*lines[:2], _col(lines[2], 2, lines[1].split()[2]),
                                          *lines[3:]]), "more than once"),
    ]


# -- BGEN -----------------------------------------------------------------------------------


def _first_variant(data: bytes | bytearray) -> int:
    return int(struct.unpack_from("<I", data, 0)[0]) + 4


def _variant_fields(data: bytes | bytearray, k: int) -> dict[str, int]:
    """Where variant ``k``'s fields sit in a layout-2, compressed BGEN (test-side walk)."""
    at = _first_variant(data)
    for j in range(k + 1):
        fields = {}
        for name in ("id", "rsid", "chrom"):
            fields[name] = at
            at += 2 + struct.unpack_from("<H", data, at)[0]
        at += 4
        fields["alleles"] = at
        count = struct.unpack_from("<H", data, at)[0]
        at += 2
        fields["allele1"] = at
        for _ in range(count):
            at += 4 + struct.unpack_from("<I", data, at)[0]
        fields["C"] = at
        fields["D"] = at + 4
        fields["data"] = at + 8
        c = struct.unpack_from("<I", data, at)[0]
        fields["end"] = at + 4 + c
        if j < k:
            at = fields["end"]
    return fields


def bgen_damages(extra_eid: str) -> list[Damage]:
    sample = _sibling(".sample")
    bgen = _same
    middle = M // 2

    def at_variant(k: int, field: str, fmt: str, value: Callable[[int], int]
                   ) -> Callable[[bytearray], bytearray]:
        def edit(data: bytearray) -> bytearray:
            where = _variant_fields(data, k)[field]
            old = struct.unpack_from(fmt, data, where)[0]
            return _put(data, where, fmt, value(old))
        return edit

    def garble_block(data: bytearray) -> bytearray:
        f = _variant_fields(data, middle)
        data[f["data"]:f["end"]] = bytes([0x5A]) * (f["end"] - f["data"])
        return data

    def recompress(payload: Callable[[bytes], bytes]) -> Callable[[bytearray], bytearray]:
        """Variant ``middle``'s genotype block replaced by a well-compressed other payload."""
        def edit(data: bytearray) -> bytearray:
            f = _variant_fields(data, middle)
            plain = zlib.decompress(bytes(data[f["data"]:f["end"]]))
            new = payload(plain)
            packed = zlib.compress(new)
            block = struct.pack("<II", len(packed) + 4, len(new)) + packed
            return data[:f["C"]] + block + data[f["end"]:]
        return edit

    def clear_sample_flag(data: bytearray) -> bytearray:
        lh = struct.unpack_from("<I", data, 4)[0]
        return _put(data, lh, "<I", struct.unpack_from("<I", data, lh)[0] & 0x7FFFFFFF)

    def header_flags(change: Callable[[int], int]) -> Callable[[bytearray], bytearray]:
        def edit(data: bytearray) -> bytearray:
            lh = struct.unpack_from("<I", data, 4)[0]
            return _put(data, lh, "<I", change(struct.unpack_from("<I", data, lh)[0]))
        return edit

    def sample_block(field: int, change: Callable[[int], int]
                     ) -> Callable[[bytearray], bytearray]:
        def edit(data: bytearray) -> bytearray:
            at = 4 + struct.unpack_from("<I", data, 4)[0] + field
            fmt = "<H" if field == 8 else "<I"
            return _put(data, at, fmt, change(struct.unpack_from(fmt, data, at)[0]))
        return edit

    def non_ascii_rsid(data: bytearray) -> bytearray:
        at = _variant_fields(data, 3)["rsid"] + 2
        data[at] = 0xE9
        return data

    return [
        *_common(".bgen", ".sample", ".bgen", extra_eid)[:8],
        *[d for d in _common(".bgen", ".sample", ".bgen", extra_eid)[9:]],
        Damage("only 20 bytes", _edit_bytes(bgen, lambda d: d[:20]), "truncated"),
        Damage("wrong magic", _edit_bytes(bgen, lambda d: d[:16] + b"bgxn" + d[20:]),
               "not a BGEN file"),
        Damage("magic zeroed (pre-1.1)", _edit_bytes(bgen, lambda d: d[:16] + bytes(4) + d[20:]),
               "not a BGEN file"),
        Damage("header variant count + 5", _edit_bytes(bgen, lambda d: _put(d, 8, "<I", M + 5)),
               "truncated"),
        Damage("header variant count - 1", _edit_bytes(bgen, lambda d: _put(d, 8, "<I", M - 1)),
               "longer than its header says"),
        Damage("header sample count + 1", _edit_bytes(bgen, lambda d: _put(d, 12, "<I", N + 1)),
               "sample block lists 303 samples"),
        Damage("header sample count - 1", _edit_bytes(bgen, lambda d: _put(d, 12, "<I", N - 1)),
               "sample block lists 303 samples"),
        Damage("variants' offset + 1",
               _edit_bytes(bgen, lambda d: _put(d, 0, "<I", struct.unpack_from("<I", d, 0)[0]
                                                + 1)), "damaged|truncated|past"),
        Damage("variants' offset past the end",
               _edit_bytes(bgen, lambda d: _put(d, 0, "<I", 0xFFFFFFF0)), "truncated|past"),
        Damage("header length 10", _edit_bytes(bgen, lambda d: _put(d, 4, "<I", 10)),
               "header is damaged"),
        Damage("header length past the variants",
               _edit_bytes(bgen, lambda d: _put(d, 4, "<I", _first_variant(d) + 100)),
               "header is damaged"),
        Damage("compression 3", _edit_bytes(bgen, header_flags(lambda f: f | 3)),
               "header flags"),
        Damage("layout 3", _edit_bytes(bgen, header_flags(lambda f: (f & ~0x3C) | (3 << 2))),
               "header flags"),
        Damage("layout 0", _edit_bytes(bgen, header_flags(lambda f: f & ~0x3C)),
               "header flags"),
        Damage("a reserved flag", _edit_bytes(bgen, header_flags(lambda f: f | (1 << 20))),
               "header flags"),
        Damage("sample block count + 1", _edit_bytes(bgen, sample_block(4, lambda v: v + 1)),
               "sample block lists 304"),
        Damage("sample block length + 1", _edit_bytes(bgen, sample_block(0, lambda v: v + 1)),
               "sample block runs past"),
        Damage("first sample ID 65,535 bytes",
               _edit_bytes(bgen, sample_block(8, lambda v: 0xFFFF)), "runs past its block"),
        Damage("rsid 65,535 bytes", _edit_bytes(bgen, at_variant(2, "rsid", "<H",
                                                               lambda v: 0xFFFF)),
               "runs past|damaged|truncated|not plain text"),
        Damage("three alleles", _edit_bytes(bgen, at_variant(2, "alleles", "<H", lambda v: 3)),
               "truncated|damaged|not plain text|biallelic"),
        Damage("allele 4 GiB long", _edit_bytes(bgen, at_variant(2, "allele1", "<I",
                                                               lambda v: 0xFFFFFFF0)),
               "runs past the end"),
        Damage("genotype block length + 1", _edit_bytes(bgen, at_variant(middle, "C", "<I",
                                                                       lambda v: v + 1)),
               "damaged|truncated|not plain text|longer"),
        Damage("genotype block 4 GiB", _edit_bytes(bgen, at_variant(middle, "C", "<I",
                                                                  lambda v: 0xFFFFFFF0)),
               "runs past the end"),
        Damage("uncompressed length 0", _edit_bytes(bgen, at_variant(middle, "D", "<I",
                                                                   lambda v: 0)),
               "lengths are impossible"),
        Damage("uncompressed length doubled", _edit_bytes(bgen, at_variant(middle, "D", "<I",
                                                                         lambda v: 2 * v)),
               "does not decompress to the"),
        Damage("compressed bytes garbled", _edit_bytes(bgen, garble_block),
               "cannot be decompressed"),
        Damage("genotype block for another sample count",
               _edit_bytes(bgen, recompress(lambda p: struct.pack("<I", N - 1) + p[4:])),
               "is for 302 samples"),
        Damage("genotype block of 3 alleles",
               _edit_bytes(bgen, recompress(lambda p: p[:4] + struct.pack("<H", 3) + p[6:])),
               "has 3 alleles"),
        Damage("genotype block of 32-bit probabilities claimed",
               _edit_bytes(bgen, recompress(lambda p: p[:9 + N] + bytes([32]) + p[10 + N:])),
               "not the 2,424 that 303 samples at 32 bits"),
        Damage("genotype block of 0-bit probabilities claimed",
               _edit_bytes(bgen, recompress(lambda p: p[:9 + N] + bytes([0]) + p[10 + N:])),
               "stored in 0 bits"),
        Damage("genotype block phased",
               _edit_bytes(bgen, recompress(lambda p: p[:8 + N] + bytes([1]) + p[9 + N:])),
               "is phased"),
        Damage("genotype block of a haploid sample",
               _edit_bytes(bgen, recompress(lambda p: p[:8] + bytes([1]) + p[9:])),
               "not stored as unphased diploid"),
        Damage("genotype probabilities over 1",
               _edit_bytes(bgen, recompress(lambda p: p[:10 + N] + bytes([200, 100])
                                            + p[12 + N:])), "more than 1"),
        Damage("genotype block cut short",
               _edit_bytes(bgen, recompress(lambda p: p[:len(p) // 2])),
               "holds 146 bytes of probabilities"),
        Damage("rsid not text", _edit_bytes(bgen, non_ascii_rsid), "not plain text"),
        Damage(".sample one row short (the 100th person)",
               _edit(sample, _drop_row(101)), "lists 302 samples"),
        Damage(".sample second header line wrong",
               _edit(sample, lambda lines: [lines[0], "1 1 1 D", *lines[2:]]),
               "not an Oxford .sample"),
        Damage("no .sample and no IDs inside",
               lambda main: (main.with_suffix(".sample").unlink(),
                             _bytes(main, clear_sample_flag), main)[-1],
               "carries no sample IDs"),
    ]


DAMAGES = {"bed": bed_damages, "pgen": pgen_damages, "bgen": bgen_damages}


def leftovers() -> list[str]:
    """Scratch a reader may have left in the temporary directory."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    return sorted(p.name for p in tmp.glob("strongroom-bgen-*"))
