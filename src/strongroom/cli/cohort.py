"""`strongroom cohort …`: synthesise, ingest, convert, inspect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from strongroom.cli.common import (
    DEFAULT_DATA_DIR,
    DataDir,
    KeyFile,
    console,
    on_use,
    progress_bar,
    refusals,
)
from strongroom.cli.operators import OperatorName, Reason, named
from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.problems import IngestError
from strongroom.cohort.styles import Style

if TYPE_CHECKING:
    from strongroom.cohort import ingest, modeldir, validate
    from strongroom.cohort import store as cohort_store
    from strongroom.cohort import summary as cohort_summary
    from strongroom.cohort.summary import StoreSummary
else:  # imported when a command first uses them (cli/common.py on_use)
    ingest = on_use("strongroom.cohort.ingest")
    modeldir = on_use("strongroom.cohort.modeldir")
    validate = on_use("strongroom.cohort.validate")
    cohort_store = on_use("strongroom.cohort.store")  # `store`, `summary`: local names below
    cohort_summary = on_use("strongroom.cohort.summary")

# validate.CONSISTENCY_RULES, written here: reading them would import Polars to list the
# options (tests/unit/test_cli_start.py holds the two equal)
CONSISTENCY_RULES = ("event-before-birth",)

cohort_app = typer.Typer(help="The cohort: synthesise, ingest, convert, inspect.",
                         no_args_is_help=True)


@cohort_app.command("synth")
def cohort_synth(
    out: Annotated[Path, typer.Option(help="Directory to write the cohort to.")],
    participants: Annotated[int, typer.Option(min=1, help="Number of participants.")] = 500_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same cohort).")] = 1,
) -> None:
    """Synthesise a realistic UK Biobank–shaped cohort (storage-model Parquet files)."""
    from strongroom.cohort.synth import synthesise

    with refusals(), progress_bar(100, "synthesising") as progress:
        cohort = synthesise(participants, seed, progress=progress)
        modeldir.write_cohort_dir(cohort, out, {"seed": seed, "participants": participants})
    console.print(f"wrote {participants:,} synthetic participants to {out}")


@cohort_app.command("ingest")
def cohort_ingest(
    files: Annotated[list[Path], typer.Argument(
        help="UKB files (ukbconv CSV/TSV, R tab, RAP CSV, Parquet) or a synth directory.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
    relax: Annotated[list[str] | None, typer.Option(
        help=f"Relax a cross-field rule by name ({', '.join(CONSISTENCY_RULES)}).")] = None,
    operator: OperatorName = None,
    reason: Reason = None,
) -> None:
    """Validate files against the data dictionary and store them as the new cohort (who
    ingests it and why are kept in its audit event)."""
    with refusals():
        by = named(operator, reason, "cohort ingest")
    with refusals(), cohort_store.Store.open(data_dir, key_file) as store, progress_bar(
        len(files) + 8, "ingesting"
    ) as progress:
        version = ingest.ingest(store, files, relax=relax or (), progress=progress, by=by)
        from strongroom.platform import open_audit  # the CLI's start stays light

        with open_audit(store):
            pass  # the ingest's event, committed with it, goes into the signed log
    console.print(f"stored cohort version {version.id}: {version.participants:,} participants")


@cohort_app.command("info")
def cohort_info(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe the store and its current cohort (counts and sizes only)."""
    with refusals(), cohort_store.Store.open(data_dir, key_file) as store:
        summary = cohort_summary.summarise(store)
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        print_summary(summary)


@cohort_app.command("convert")
def cohort_convert(
    source: Annotated[Path, typer.Argument(help="A UKB-format file to read.")],
    target: Annotated[Path, typer.Argument(help="The file to write.")],
    style: Annotated[Style, typer.Option(help="Output style.")],
    dictionary: Annotated[Path | None, typer.Option(
        help="Data dictionary (JSON); default: the shipped one.")] = None,
) -> None:
    """Convert a file between UKB formats, validating it on the way."""
    from strongroom.cohort.formats import read_table, write_table

    with refusals():
        chosen = Dictionary.load(dictionary) if dictionary else shipped_dictionary()
        result = read_table(source, chosen)
        if result.problems:
            raise IngestError(result.problems)
        cohort = validate.validate(result.cohort, chosen, source.name)
        write_table(cohort, target, style, chosen)
    console.print(f"wrote {target} ({style.value})")


def print_summary(summary: StoreSummary) -> None:
    console.print(f"data directory {summary.root} — store {summary.store_id}, "
                  f"key id {summary.key_id}")
    console.print(f"dictionary: {summary.dictionary_fields} fields "
                  f"(sha256 {summary.dictionary_digest[:16]}…)")
    if summary.version is None:
        console.print("no cohort stored yet: `strongroom cohort ingest FILE… -d DIR "
                      "--operator NAME --reason TEXT`")
        return
    version = summary.version
    table = Table(title=f"cohort version {version['id']} ({version['created_at']})")
    for column in ("table", "rows", "columns", "sealed bytes"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, info in version["tables"].items():
        table.add_row(name, f"{info['rows']:,}", str(info["columns"]), f"{info['bytes']:,}")
    console.print(table)
    console.print(f"{version['participants']:,} participants; "
                  f"{summary.stored_bytes / 2**20:.1f} MiB encrypted at rest")
    sources = [s for s in version.get("sources") or [] if "name" in s]
    if sources:  # what it was ingested from, as the custodian can check against their files
        console.print("ingested from:")
        for source in sources:
            console.print(f"  {source['name']}  {source['bytes']:,} bytes  "
                          f"sha256 {source['sha256']}", soft_wrap=True)


