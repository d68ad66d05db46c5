"""`strongroom risk` and `strongroom anonymise`: re-identification risk of a table file, and a
least-loss anonymisation of it. Both read CSV (any delimiter), TSV or Parquet and need no
data directory; ``anonymise`` takes hierarchies from files in ARX's CSV layout.

Quasi-identifiers default to the columns whose data-dictionary field has the role
``quasi_identifier`` or ``event_date`` (UK Biobank column names in any style); ``--qi`` names
them instead. Registered on the main app as plain commands (see ``cli/__init__.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.cli.common import console, on_use, refusals
from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.errors import Invalid

if TYPE_CHECKING:
    from strongroom.privacy import anonymise as privacy_anonymise
    from strongroom.privacy import classes, fields, hierarchies, hierarchy_files
    from strongroom.privacy import files as table_files
    from strongroom.privacy import risk as privacy_risk
    from strongroom.privacy.classes import Missing
else:  # imported when a command first uses them (cli/common.py on_use)
    classes = on_use("strongroom.privacy.classes")
    fields = on_use("strongroom.privacy.fields")
    hierarchies = on_use("strongroom.privacy.hierarchies")
    hierarchy_files = on_use("strongroom.privacy.hierarchy_files")
    # `risk` and `anonymise` are the commands; `files` a local name
    privacy_risk = on_use("strongroom.privacy.risk")
    privacy_anonymise = on_use("strongroom.privacy.anonymise")
    table_files = on_use("strongroom.privacy.files")

# privacy_risk.DEFAULT_K and privacy_anonymise.DEFAULT_SUPPRESSION, written here: reading them
# would import Polars, NumPy and SciPy to list the options (tests/unit/test_cli_start.py holds
# them equal)
DEFAULT_K = 5
DEFAULT_SUPPRESSION = 0.02

FileArg = Annotated[Path, typer.Argument(help="The table: CSV, TSV or Parquet.")]
QiOpt = Annotated[list[str] | None, typer.Option(
    "--qi", help="A quasi-identifier column (repeat, or separate with commas). Default: the "
    "columns the data dictionary marks quasi_identifier or event_date.")]
SensitiveOpt = Annotated[list[str] | None, typer.Option(
    "--sensitive", help="A sensitive attribute column, for l-diversity and t-closeness "
    "(repeat, or separate with commas).")]
DictionaryOpt = Annotated[Path | None, typer.Option(
    "--dictionary", help="A data dictionary (JSON) instead of the shipped one.")]
DelimiterOpt = Annotated[str | None, typer.Option(
    "--delimiter", help="The text file's delimiter: one character (; , |) or tab. Default: "
    "told from the header line (tab, else ; when it holds more ; than commas, else ,).")]
OrderedOpt = Annotated[list[str] | None, typer.Option(
    "--ordered", help="A sensitive attribute measured with the ordered distance in "
    "t-closeness (repeat, or separate with commas); when given, the others use the equal "
    "distance. Default: numeric and date columns the dictionary does not call categorical.")]
HierarchyOpt = Annotated[list[str] | None, typer.Option(
    "--hierarchy", help="COLUMN=FILE: the column's generalisation hierarchy in ARX's CSV "
    "layout (one row per value: the value, then its label at each level, ; separated; "
    "repeat for each column). Default: the data dictionary's, else by the column's type.")]


def _dictionary(path: Path | None) -> Dictionary:
    return Dictionary.load(path) if path else shipped_dictionary()


def risk(
    file: FileArg,
    qi: QiOpt = None,
    sensitive: SensitiveOpt = None,
    population: Annotated[int | None, typer.Option(
        "--population", min=1, help="The table is a sample of a population of this size "
        "(journalist and marketer risk, population uniques).")] = None,
    sampling_fraction: Annotated[float | None, typer.Option(
        "--sampling-fraction", help="The table is this share (0–1] of its population.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Classes smaller than this are "
                                   "reported as at risk.")] = DEFAULT_K,
    missing: Annotated[str, typer.Option(
        "--missing", help="value: a missing value is a value of its own (default); ignore: "
        "rows with a missing quasi-identifier are left out, as pandas/pycanon do.")] = "value",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")
                       ] = False,
    dictionary: DictionaryOpt = None,
    delimiter: DelimiterOpt = None,
    ordered: OrderedOpt = None,
) -> None:
    """Measure a table's re-identification risk: k, uniques, l, t, attacker risks."""
    with refusals():
        if population is not None and sampling_fraction is not None:
            raise Invalid("give --population or --sampling-fraction, not both")
        if missing not in classes.MISSING_POLICIES:
            raise Invalid(f"--missing must be one of {', '.join(classes.MISSING_POLICIES)}")
        frame = table_files.read_table(file, delimiter)
        chosen = fields.choose(frame, qi or [], sensitive or [], _dictionary(dictionary),
                               ordered)
        if population is not None:
            frame_of = privacy_risk.SamplingFrame.of_population(frame.height, population)
        elif sampling_fraction is not None:
            frame_of = privacy_risk.SamplingFrame.of_fraction(frame.height, sampling_fraction)
        else:
            frame_of = privacy_risk.SamplingFrame.cohort(frame.height)
        miss: Missing = "ignore" if missing == "ignore" else "value"
        report = privacy_risk.assess(frame, chosen.quasi_identifiers, chosen.sensitive,
                                     sampling=frame_of, ordered=chosen.ordered, threshold_k=k,
                                     missing=miss)
    if as_json:
        print(report.json())
    else:
        console.print(report.text(), highlight=False, markup=False)


def anonymise(
    file: FileArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the anonymised "
                                      "table (.csv, .tsv or .parquet; never overwritten).")],
    k: Annotated[int, typer.Option("--k", min=1, help="Every class must have at least k "
                                   "records.")] = DEFAULT_K,
    l_div: Annotated[int | None, typer.Option(
        "--l", min=1, help="Every class must hold at least l distinct values of each "
        "sensitive attribute.")] = None,
    t_close: Annotated[float | None, typer.Option(
        "--t", help="Every class's distribution of each sensitive attribute must be within "
        "t (Earth Mover's Distance) of the table's.")] = None,
    suppression_limit: Annotated[float, typer.Option(
        "--suppression-limit", help="The share of records that may be suppressed (all "
        "their quasi-identifiers blanked).")] = DEFAULT_SUPPRESSION,
    qi: QiOpt = None,
    sensitive: SensitiveOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")
                       ] = False,
    dictionary: DictionaryOpt = None,
    delimiter: DelimiterOpt = None,
    ordered: OrderedOpt = None,
    hierarchy: HierarchyOpt = None,
) -> None:
    """Generalise and suppress quasi-identifiers: the least loss meeting k (and l, t)."""
    with refusals():
        if out.exists():
            raise Invalid(f"{out} already exists; choose another name (nothing is "
                          f"overwritten)")
        files = hierarchy_files.parse_options(hierarchy or [])
        frame = table_files.read_table(file, delimiter)
        words = _dictionary(dictionary)
        chosen = fields.choose(frame, qi or [], sensitive or [], words, ordered)
        targets = privacy_anonymise.Targets(k=k, l=l_div, t=t_close,
                                            suppression_limit=suppression_limit,
                                            sensitive=tuple(chosen.sensitive),
                                            ordered=chosen.ordered)
        targets.check()
        given = hierarchy_files.load(frame, files, chosen.quasi_identifiers)
        tree = hierarchies.build(frame, chosen.quasi_identifiers, words, overrides=given)
        done = privacy_anonymise.anonymise(frame, tree, targets)
        after = privacy_risk.assess(done.frame, chosen.quasi_identifiers, chosen.sensitive,
                                    ordered=chosen.ordered, threshold_k=k)
        table_files.write_table(done.frame, out)
    result = {"out": str(out), "solution": done.solution.to_json(),
              "after": {"k": after.k, "classes": after.classes,
                        "sample_uniques": after.sample_uniques,
                        "l_distinct": after.combined.l_distinct if after.combined else None,
                        "t_closeness": after.combined.t_closeness if after.combined else None}}
    if as_json:
        print(json.dumps(result, indent=2))
        return
    s = done.solution
    console.print(f"wrote {out}: {s.rows:,} rows, k = {after.k:,} ({after.classes:,} classes)",
                  highlight=False, markup=False)
    for column, level in s.level_names.items():
        console.print(f"  {column}: {level}", highlight=False, markup=False)
    console.print(f"suppressed {s.suppressed:,} records ({s.suppressed_share:.2%}); loss "
                  f"{s.loss:.4f}, precision {s.precision:.4f}; "
                  f"{'exact' if s.optimal else 'greedy'} search, {s.evaluated:,} of "
                  f"{s.lattice:,} transformations evaluated in {s.seconds:.2f} s",
                  highlight=False, markup=False)
