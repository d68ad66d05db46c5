"""Readers and writers for the files custodians hold, to and from the storage model.

``read_table`` recognises the format from the file itself (Parquet by its magic bytes; text by
its header: ukbconv ``31-0.0``, R ``f.31.0.0`` or RAP ``p31``) and returns the cohort as text
(Parquet: as typed in the file) with a ``_row`` column in every table, plus every structural
problem found. Values are not checked here: ``strongroom.cohort.validate`` does that.
``write_table`` writes a (typed) cohort in any of the styles, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.formats._files import PARQUET_MAGIC, first_bytes
from strongroom.cohort.formats.naming import Naming
from strongroom.cohort.formats.parquet import read_parquet, write_parquet
from strongroom.cohort.formats.text import TAB_SUFFIXES, read_text, write_text
from strongroom.cohort.formats.wide import from_model, to_model
from strongroom.cohort.model import Cohort
from strongroom.cohort.problems import ROW, Problem
from strongroom.cohort.styles import Style  # its own module: named without the readers

__all__ = [
    "ROW",
    "ReadResult",
    "Style",
    "from_model",
    "read_table",
    "to_model",
    "write_table",
]


_TEXT_STYLES = {Naming.UKBCONV: Style.UKBCONV, Naming.RTAB: Style.RTAB, Naming.RAP: Style.RAP}


@dataclass
class ReadResult:
    cohort: Cohort
    problems: list[Problem]
    style: Style


def read_table(path: Path, dictionary: Dictionary) -> ReadResult:
    """Read a UKB-format file into the storage model, as text (Parquet: as typed).

    Structural problems (unknown fields, bad or duplicate column names, indices outside the
    field's range, no eid, no rows) are returned and their columns dropped. A file that cannot
    be read at all (missing, compressed, not UTF-8, rows of the wrong width) raises
    ``IngestError``.
    """
    source = path.name
    if first_bytes(path) == PARQUET_MAGIC:
        wide, style = read_parquet(path, dictionary, source), Style.PARQUET
    else:
        wide = read_text(path, dictionary, source)
        style = _TEXT_STYLES[wide.naming]
    cohort, problems = to_model(wide.frame, wide.keys, dictionary, source)
    return ReadResult(cohort, wide.problems + problems, style)


def write_table(cohort: Cohort, path: Path, style: Style, dictionary: Dictionary) -> None:
    """Write ``cohort`` in ``style``; the file appears complete or not at all.

    ukbconv and RAP text are comma-separated unless ``path`` ends in .tsv, .tab or .txt;
    R tab is always tab-separated with NA for missing values.
    """
    tab = path.suffix.lower() in TAB_SUFFIXES
    if style == Style.PARQUET:
        write_parquet(cohort, path, dictionary)
    elif style == Style.RTAB:
        write_text(cohort, path, dictionary, Naming.RTAB, "\t", "NA")
    else:
        naming = Naming.UKBCONV if style == Style.UKBCONV else Naming.RAP
        write_text(cohort, path, dictionary, naming, "\t" if tab else ",", "")
