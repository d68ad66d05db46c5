"""Genotype files as custodians hold them: PLINK 1 (``.bed/.bim/.fam``), PLINK 2
(``.pgen/.pvar/.psam``) and BGEN 1.2 (UK Biobank's imputed format).

Each is opened into a :class:`GenotypeFile`: its sample IDs, its variant table and a reader of
ALT dosages by slices of variants (never the whole matrix). Everything a file says about its own
shape is checked when it is opened, before a byte of it is used (layouts.py and bgen.py walk
each format's structure to its exact end), so a truncated or padded file, a file whose sample
list does not match its genotypes, or a variant with impossible alleles is refused naming the
problem. PLINK files are read by the formats' own well-kept libraries, bed-reader and pgenlib
(plink2's); BGEN by bgen.py, because the reference reader (cbgen) crashes on files whose
lengths lie. :func:`open_genotypes` reads in a child process (isolated.py), so a reader that
crashes on a damaged file refuses it instead of taking the platform down.

Which allele is ALT: PLINK 1's allele 1 (the ``.bim``'s fifth column), PLINK 2's ALT, and
BGEN's second allele (UK Biobank's imputed files put the reference allele first; plink2 reads
them with ``ref-first``).
"""

from __future__ import annotations

import mmap
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from strongroom.genomics import bgen, encoding, layouts
from strongroom.genomics.layouts import GenotypeFileError as GenotypeFileError

Dosages = npt.NDArray[np.float32]

VARIANT_SCHEMA = {"chrom": pl.String, "pos": pl.Int64, "id": pl.String, "ref": pl.String,
                  "alt": pl.String}
_ALLELE = re.compile(r"^[ACGT]+$")
_SHOWN = 5  # how many offending rows an error names


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

    def packed(self, size: int) -> Iterator[encoding.Packed]:
        """The whole file as packed chunks of ``size`` variants, with their sums."""
        for start, dosages in self.chunks(size):
            yield encoding.pack(start, dosages)

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
    """Open a genotype file set by its main file or its stem (``cohort`` for ``cohort.bed``),
    read in a child process that a crashing reader cannot take the caller down with.

    The format comes from the suffix: ``.bed`` PLINK 1, ``.pgen`` PLINK 2, ``.bgen`` BGEN.
    """
    from strongroom.genomics.isolated import Isolated

    return Isolated(find_main_file(path))


def find_main_file(path: Path) -> Path:
    """The ``.bed``, ``.pgen`` or ``.bgen`` a path or stem names."""
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
    return path


def open_direct(path: Path) -> GenotypeFile:
    """Open a genotype file set in this process (what the isolated reader's child runs)."""
    suffix = path.suffix.lower()
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
        layouts.check_bed(path, len(samples), variants.height, fam.name, bim.name)
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
        layouts.check_pgen(path, len(samples), variants.height, psam.name, pvar.name)
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
    lines = _read_text(psam).splitlines()
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
    try:
        with open(pvar, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("##"):
                    continue
                if line.startswith("#CHROM"):
                    header = line.split()
                break
    except UnicodeDecodeError:
        raise GenotypeFileError(f"{pvar.name} is not a text file") from None
    needed = ["#CHROM", "POS", "ID", "REF", "ALT"]
    if not header or any(c not in header for c in needed):
        raise GenotypeFileError(f"{pvar.name} has no '#CHROM POS ID REF ALT' header line; write "
                                "it with plink2 --make-pgen")
    try:
        with open(pvar, "rb") as fh:  # a file object: polars takes no path that is not UTF-8
            frame = pl.read_csv(fh, separator="\t", comment_prefix="##", has_header=True,
                                infer_schema=False, quote_char=None)
    except pl.exceptions.PolarsError as exc:
        raise GenotypeFileError(f"{pvar.name} cannot be read as a tab-separated .pvar "
                                f"({str(exc).splitlines()[0]})") from None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise GenotypeFileError(f"{pvar.name} is not tab-separated with columns {needed}")
    return header, {c: frame[c].to_list() for c in needed}


# -- BGEN -----------------------------------------------------------------------------------


class Bgen(GenotypeFile):
    kind = "bgen"

    def __init__(self, path: Path, samples: list[str], variants: pl.DataFrame,
                 shape: bgen.BgenLayout):
        super().__init__(path, samples, variants)
        self._shape = shape
        self._file = open(path, "rb")  # noqa: SIM115 - held for the reader's life
        self._data = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)

    @classmethod
    def open(cls, path: Path) -> Bgen:
        shape = bgen.walk(path)
        ids = _bgen_samples(path, shape)
        not_biallelic = [i for i, a in enumerate(shape.alleles) if len(a) != 2]
        if not_biallelic:
            raise GenotypeFileError(
                f"{path.name}: {len(not_biallelic)} variants are not biallelic (first: "
                f"{_first(shape.rsid, not_biallelic)}); split them (plink2 --make-pgen "
                "multiallelics=-) before ingest")
        variants = _variant_frame(path, shape.chrom, shape.pos, shape.rsid,
                                  ref=[a[0] for a in shape.alleles],
                                  alt=[a[1] for a in shape.alleles])
        return cls(path, ids, variants, shape)

    def read(self, start: int, stop: int) -> Dosages:
        out = np.empty((self.n_samples, stop - start), dtype=np.float32, order="F")
        for j in range(start, stop):
            out[:, j - start] = bgen.dosages(self.path.name, self._data, self._shape, j)
        return out

    def close(self) -> None:
        self._data.close()
        self._file.close()


def _bgen_samples(path: Path, shape: bgen.BgenLayout) -> list[str]:
    sample = path.with_suffix(".sample")
    n = shape.samples
    if sample.is_file():
        lines = _read_text(sample).splitlines()
        if len(lines) < 2 or lines[1].split()[:3] != ["0", "0", "0"]:
            raise GenotypeFileError(f"{sample.name} is not an Oxford .sample file (two header "
                                    "lines, the second starting 0 0 0)")
        rows = [line.split() for line in lines[2:] if line.strip()]
        if any(len(r) < 2 for r in rows):
            raise GenotypeFileError(f"{sample.name}: a line has no second column (ID_2)")
        if len(rows) != n:
            raise GenotypeFileError(f"{sample.name} lists {len(rows):,} samples but {path.name} "
                                    f"holds {n:,}: they are not a set")
        if shape.sample_ids is not None:
            # the file names its own samples: the .sample must name the same, in its order
            # (plink2 writes them as ID_1_ID_2, other tools as ID_2)
            differ = [k for k, (inside, r) in enumerate(zip(shape.sample_ids, rows, strict=True))
                      if inside not in (r[1], f"{r[0]}_{r[1]}")]
            if differ:
                k = differ[0]
                raise GenotypeFileError(
                    f"{sample.name} and the IDs inside {path.name} disagree at {len(differ):,} "
                    f"samples (first: sample {k + 1:,}, {rows[k][1]!r} against "
                    f"{shape.sample_ids[k]!r}): genotypes would land on the wrong people. Use "
                    "the .sample written with the file")
        return [r[1] for r in rows]
    if shape.sample_ids is None:
        raise GenotypeFileError(f"{path.name} carries no sample IDs and has no {sample.name} "
                                "beside it; add the .sample file it was written with")
    return shape.sample_ids


# -- shared checks --------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise GenotypeFileError(f"{path.name} is not a text file") from None


def _first(names: list[str], at: list[int]) -> str:
    shown = ", ".join(names[i] for i in at[:_SHOWN])
    return shown + (" …" if len(at) > _SHOWN else "")


def _columns(path: Path, width: int, what: str, names: str) -> list[list[str]]:
    columns: list[list[str]] = [[] for _ in range(width)]
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != width:
                    raise GenotypeFileError(
                        f"{path.name} line {number} has {len(parts)} columns; a .{what} has "
                        f"{width} ({names})")
                for column, value in zip(columns, parts, strict=True):
                    column.append(value)
    except UnicodeDecodeError:
        raise GenotypeFileError(f"{path.name} is not a text file") from None
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
