"""Genotype files as custodians hold them: PLINK 1 (``.bed/.bim/.fam``), PLINK 2
(``.pgen/.pvar/.psam``) and BGEN 1.2 (UK Biobank's imputed format).

Each is opened into a :class:`GenotypeFile`: its sample IDs, its variant table and a reader of
ALT dosages by slices of variants (never the whole matrix). Everything a file says about its own
shape is checked when it is opened, before a byte of it is used, so a truncated file, a file
whose sample list does not match its genotypes, or a variant with impossible alleles is refused
naming the problem. Readers are the formats' own well-kept libraries: bed-reader, pgenlib
(plink2's) and cbgen (BGEN's reference implementation, ``bgen``, in C).

Which allele is ALT: PLINK 1's allele 1 (the ``.bim``'s fifth column), PLINK 2's ALT, and
BGEN's second allele (UK Biobank's imputed files put the reference allele first; plink2 reads
them with ``ref-first``).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

Dosages = npt.NDArray[np.float32]

VARIANT_SCHEMA = {"chrom": pl.String, "pos": pl.Int64, "id": pl.String, "ref": pl.String,
                  "alt": pl.String}
_ALLELE = re.compile(r"^[ACGT]+$")
_BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
_SHOWN = 5  # how many offending rows an error names


class GenotypeFileError(ValueError):
    """A genotype file that cannot be taken as it is; the message says what and what to do."""


class GenotypeFile(ABC):
    """One genotype file set, opened and checked; read ALT dosages with :meth:`read`."""

    kind: str

    def __init__(self, path: Path, samples: list[str], variants: pl.DataFrame):
        self.path = path
        self.samples = samples
        self.variants = variants
        _check_samples(path, samples)
        _check_variants(path, variants)

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def n_variants(self) -> int:
        return self.variants.height

    @abstractmethod
    def read(self, start: int, stop: int) -> Dosages:
        """ALT dosages of variants ``start`` to ``stop``: samples × variants, NaN missing."""

    def chunks(self, size: int) -> Iterator[tuple[int, Dosages]]:
        """The whole file as ``(first variant, dosages)`` slices of ``size`` variants."""
        for start in range(0, self.n_variants, size):
            yield start, self.read(start, min(start + size, self.n_variants))

    def files(self) -> list[Path]:
        """The files this set is made of (what an ingest records the digests of)."""
        return [self.path]

    @abstractmethod
    def close(self) -> None:
        """Release the reader's file handles."""

    def __enter__(self) -> GenotypeFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_genotypes(path: Path) -> GenotypeFile:
    """Open a genotype file set by its main file or its stem (``cohort`` for ``cohort.bed``).

    The format comes from the suffix: ``.bed`` PLINK 1, ``.pgen`` PLINK 2, ``.bgen`` BGEN.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".bed", ".pgen", ".bgen"):
        found = [p for s in (".bed", ".pgen", ".bgen") if (p := path.with_name(path.name + s))
                 .is_file()]
        if len(found) != 1:
            raise GenotypeFileError(
                f"{path}: name a .bed (PLINK 1), .pgen (PLINK 2) or .bgen (BGEN) file"
                + (f"; several match: {', '.join(p.name for p in found)}" if found else ""))
        path, suffix = found[0], found[0].suffix
    if not path.is_file():
        raise GenotypeFileError(f"{path} does not exist (or is not a file)")
    if suffix == ".bed":
        return Plink1.open(path)
    return Plink2.open(path) if suffix == ".pgen" else Bgen.open(path)


# -- PLINK 1 --------------------------------------------------------------------------------


class Plink1(GenotypeFile):
    kind = "plink1"

    def __init__(self, path: Path, samples: list[str], variants: pl.DataFrame):
        super().__init__(path, samples, variants)
        from bed_reader import open_bed  # imported here: its Rust extension is not light

        self._bed = open_bed(path, iid_count=len(samples), sid_count=variants.height,
                             properties={"iid": samples})

    @classmethod
    def open(cls, path: Path) -> Plink1:
        fam, bim = path.with_suffix(".fam"), path.with_suffix(".bim")
        for needed in (fam, bim):
            if not needed.is_file():
                raise GenotypeFileError(f"{path.name} needs {needed.name} beside it; it is missing")
        samples = _columns(fam, 6, "fam", "FID IID father mother sex phenotype")[1]
        cols = _columns(bim, 6, "bim", "chromosome id cM position allele1 allele2")
        variants = _variant_frame(bim, cols[0], cols[3], cols[1], ref=cols[5], alt=cols[4])
        with open(path, "rb") as fh:
            magic = fh.read(3)
        if magic != _BED_MAGIC:
            raise GenotypeFileError(
                f"{path.name} is not a variant-major PLINK 1 .bed (it does not start with "
                "bytes 6c 1b 01); write it with plink --make-bed")
        expected = 3 + -(-len(samples) // 4) * variants.height
        size = path.stat().st_size
        if size != expected:
            raise GenotypeFileError(
                f"{path.name} holds {size:,} bytes but {len(samples):,} samples ({fam.name}) × "
                f"{variants.height:,} variants ({bim.name}) need {expected:,}: the file is "
                f"{'truncated' if size < expected else 'longer than its lists say'}, or its "
                ".fam/.bim are not the ones it was written with")
        return cls(path, samples, variants)

    def read(self, start: int, stop: int) -> Dosages:
        out: Dosages = self._bed.read(np.s_[:, start:stop], dtype="float32", order="F")
        return out

    def files(self) -> list[Path]:
        return [self.path, self.path.with_suffix(".bim"), self.path.with_suffix(".fam")]

    def close(self) -> None:
        self._bed.__del__()


# -- PLINK 2 --------------------------------------------------------------------------------


class Plink2(GenotypeFile):
    kind = "plink2"

    def __init__(self, path: Path, samples: list[str], variants: pl.DataFrame):
        super().__init__(path, samples, variants)
        import pgenlib

        try:
            self._reader = pgenlib.PgenReader(bytes(path), raw_sample_ct=len(samples))
        except RuntimeError as exc:
            raise GenotypeFileError(f"{path.name} cannot be read as PLINK 2 with "
                                    f"{len(samples):,} samples: {exc}") from None
        found = self._reader.get_variant_ct()
        if found != variants.height:
            self._reader.close()
            raise GenotypeFileError(
                f"{path.name} holds {found:,} variants but its .pvar lists {variants.height:,}: "
                "the files are not a set; write them together with plink2 --make-pgen")

    @classmethod
    def open(cls, path: Path) -> Plink2:
        psam, pvar = path.with_suffix(".psam"), path.with_suffix(".pvar")
        for needed in (psam, pvar):
            if not needed.is_file():
                raise GenotypeFileError(f"{path.name} needs {needed.name} beside it; it is missing")
        samples = _psam_ids(psam)
        header, rows = _pvar(pvar)
        variants = _variant_frame(pvar, rows["#CHROM"], rows["POS"], rows["ID"], ref=rows["REF"],
                                  alt=rows["ALT"])
        del header
        return cls(path, samples, variants)

    def read(self, start: int, stop: int) -> Dosages:
        n, m = self.n_samples, stop - start
        out = np.empty((m, n), dtype=np.float32)
        try:
            for j in range(m):
                self._reader.read_dosages(start + j, out[j])
        except RuntimeError as exc:
            raise GenotypeFileError(f"{self.path.name}: variant {start + j + 1} cannot be "
                                    f"read ({exc}); the file is damaged or truncated") from None
        out[out == -9] = np.nan
        return np.asfortranarray(out.T)

    def files(self) -> list[Path]:
        return [self.path, self.path.with_suffix(".pvar"), self.path.with_suffix(".psam")]

    def close(self) -> None:
        self._reader.close()


def _psam_ids(psam: Path) -> list[str]:
    lines = psam.read_text().splitlines()
    if not lines or not lines[0].startswith("#"):
        # a .psam without a header is a .fam
        return _columns(psam, 6, "psam", "FID IID father mother sex phenotype")[1]
    names = lines[0].lstrip("#").split()
    if "IID" not in names:
        raise GenotypeFileError(f"{psam.name}'s header has no IID column")
    at = names.index("IID")
    ids = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if len(parts) != len(names):
            raise GenotypeFileError(f"{psam.name} line {number} has {len(parts)} columns, its "
                                    f"header {len(names)}")
        ids.append(parts[at])
    return ids


def _pvar(pvar: Path) -> tuple[list[str], dict[str, list[str]]]:
    header: list[str] = []
    with open(pvar) as fh:
        for line in fh:
            if line.startswith("##"):
                continue
            if line.startswith("#CHROM"):
                header = line.split()
            break
    needed = ["#CHROM", "POS", "ID", "REF", "ALT"]
    if not header or any(c not in header for c in needed):
        raise GenotypeFileError(f"{pvar.name} has no '#CHROM POS ID REF ALT' header line; write "
                                "it with plink2 --make-pgen")
    frame = pl.read_csv(pvar, separator="\t", comment_prefix="##", has_header=True,
                        infer_schema=False, quote_char=None)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise GenotypeFileError(f"{pvar.name} is not tab-separated with columns {needed}")
    return header, {c: frame[c].to_list() for c in needed}


# -- BGEN -----------------------------------------------------------------------------------


class Bgen(GenotypeFile):
    kind = "bgen"

    def __init__(self, path: Path, samples: list[str], variants: pl.DataFrame,
                 offsets: npt.NDArray[np.uint64], scratch: Path):
        super().__init__(path, samples, variants)
        import cbgen

        self._scratch = scratch
        self._offsets = offsets
        self._bgen = cbgen.bgen_file(path)

    @classmethod
    def open(cls, path: Path) -> Bgen:
        import cbgen

        # cbgen indexes the file into a metafile (offsets and variant names, no genotypes):
        # it lives in a private temporary folder and goes when the file is closed.
        scratch = Path(tempfile.mkdtemp(prefix="strongroom-bgen-"))
        try:
            with cbgen.bgen_file(path) as bgen:
                n = bgen.nsamples
                ids = _bgen_samples(path, bgen, n)
                meta = scratch / "index.metafile"
                bgen.create_metafile(meta, verbose=False)
            chrom, pos, rsid, alleles, offsets = [], [], [], [], []
            with cbgen.bgen_metafile(meta) as mf:
                for k in range(mf.npartitions):
                    part = mf.read_partition(k).variants
                    chrom += [_text(c) for c in part.chromosome]
                    pos += [int(p) for p in part.position]
                    rsid += [_text(r) for r in part.rsid]
                    alleles += [_text(a) for a in part.allele_ids]
                    offsets.append(np.asarray(part.offset, dtype=np.uint64))
        except RuntimeError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise GenotypeFileError(f"{path.name} cannot be read as BGEN ({exc}); the file is "
                                    "damaged, truncated or not BGEN 1.2") from None
        pairs = [a.split(",") for a in alleles]
        not_biallelic = [i for i, p in enumerate(pairs) if len(p) != 2]
        if not_biallelic:
            shutil.rmtree(scratch, ignore_errors=True)
            raise GenotypeFileError(
                f"{path.name}: {len(not_biallelic)} variants are not biallelic (first: "
                f"{_first(rsid, not_biallelic)}); split them (plink2 --make-pgen "
                "multiallelics=-) before ingest")
        variants = _variant_frame(path, chrom, pos, rsid, ref=[p[0] for p in pairs],
                                  alt=[p[1] for p in pairs])
        return cls(path, ids, variants, np.concatenate(offsets) if offsets else
                   np.zeros(0, np.uint64), scratch)

    def read(self, start: int, stop: int) -> Dosages:
        out = np.empty((self.n_samples, stop - start), dtype=np.float32, order="F")
        for j in range(start, stop):
            try:
                g = self._bgen.read_genotype(int(self._offsets[j]), precision=32)
            except RuntimeError as exc:
                raise GenotypeFileError(f"{self.path.name}: variant {j + 1} cannot be read "
                                        f"({exc}); the file is damaged or truncated") from None
            prob = g.probability
            if g.phased or prob.shape[1] != 3 or int(np.max(g.ploidy, initial=2)) != 2:
                raise GenotypeFileError(
                    f"{self.path.name}: variant {j + 1} is not stored as unphased diploid "
                    "genotype probabilities; export it with plink2 --export bgen-1.2")
            out[:, j - start] = prob[:, 1] + 2 * prob[:, 2]  # NaN where missing
        return out

    def close(self) -> None:
        self._bgen.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


def _bgen_samples(path: Path, bgen: Any, n: int) -> list[str]:
    sample = path.with_suffix(".sample")
    if sample.is_file():
        lines = sample.read_text().splitlines()
        if len(lines) < 2 or lines[1].split()[:3] != ["0", "0", "0"]:
            raise GenotypeFileError(f"{sample.name} is not an Oxford .sample file (two header "
                                    "lines, the second starting 0 0 0)")
        ids = [line.split()[1] for line in lines[2:] if line.strip()]
        if len(ids) != n:
            raise GenotypeFileError(f"{sample.name} lists {len(ids):,} samples but {path.name} "
                                    f"holds {n:,}: they are not a set")
        return ids
    contains = getattr(bgen, "contain_samples", False)
    if not contains:
        raise GenotypeFileError(f"{path.name} carries no sample IDs and has no {sample.name} "
                                "beside it; add the .sample file it was written with")
    return [_text(s) for s in bgen.read_samples()]


# -- shared checks --------------------------------------------------------------------------


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _first(names: list[str], at: list[int]) -> str:
    shown = ", ".join(names[i] for i in at[:_SHOWN])
    return shown + (" …" if len(at) > _SHOWN else "")


def _columns(path: Path, width: int, what: str, names: str) -> list[list[str]]:
    columns: list[list[str]] = [[] for _ in range(width)]
    with open(path) as fh:
        for number, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != width:
                raise GenotypeFileError(
                    f"{path.name} line {number} has {len(parts)} columns; a .{what} has {width} "
                    f"({names})")
            for column, value in zip(columns, parts, strict=True):
                column.append(value)
    return columns


def _variant_frame(path: Path, chrom: list[str], pos: Sequence[object], ids: list[str], *,
                   ref: list[str], alt: list[str]) -> pl.DataFrame:
    try:
        positions = [int(str(p)) for p in pos]
    except ValueError:
        bad = next(str(p) for p in pos if not str(p).lstrip("-").isdigit())
        raise GenotypeFileError(f"{path.name}: position {bad!r} is not a whole number") from None
    return pl.DataFrame({"chrom": chrom, "pos": positions, "id": ids, "ref": ref, "alt": alt},
                        schema=VARIANT_SCHEMA)


def _check_samples(path: Path, samples: list[str]) -> None:
    if not samples:
        raise GenotypeFileError(f"{path.name} lists no samples")
    seen: set[str] = set()
    twice = [s for s in samples if s in seen or seen.add(s)]  # type: ignore[func-returns-value]
    if twice:
        raise GenotypeFileError(f"{path.name}: {len(twice)} sample IDs appear more than once "
                                f"(first: {', '.join(twice[:_SHOWN])})")


def _check_variants(path: Path, variants: pl.DataFrame) -> None:
    if variants.is_empty():
        raise GenotypeFileError(f"{path.name} lists no variants")
    problems = []
    bad = variants.with_row_index("row").filter(
        ~pl.col("ref").str.contains(_ALLELE.pattern) | ~pl.col("alt").str.contains(_ALLELE.pattern)
        | (pl.col("ref") == pl.col("alt")))
    if bad.height:
        first = ", ".join(f"{r['id']} ({r['ref']}/{r['alt']})" for r in bad.head(_SHOWN).iter_rows(
            named=True))
        problems.append(f"{bad.height} variants have alleles that are not two different A/C/G/T "
                        f"sequences (first: {first}); fix or drop them (plink2 --snps-only)")
    duplicated = variants.filter(pl.col("id").is_duplicated())["id"].unique(maintain_order=True)
    if duplicated.len():
        problems.append(f"{duplicated.len()} variant IDs appear more than once (first: "
                        f"{', '.join(duplicated.head(_SHOWN).to_list())}); give each variant a "
                        "unique ID (plink2 --set-all-var-ids @:#:$r:$a)")
    if (variants["pos"] < 0).any():
        problems.append("some positions are negative")
    if problems:
        raise GenotypeFileError(f"{path.name}: " + "; ".join(problems))
