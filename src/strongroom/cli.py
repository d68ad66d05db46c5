"""The command line. Thin: every command composes a domain package's service functions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from strongroom.cohort.crypto import DecryptionError
from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.formats import Style, read_table, write_table
from strongroom.cohort.ingest import ingest
from strongroom.cohort.modeldir import write_cohort_dir
from strongroom.cohort.problems import IngestError
from strongroom.cohort.store import Store, StoreError, init_store
from strongroom.cohort.summary import StoreSummary, summarise
from strongroom.cohort.synth import synthesise
from strongroom.cohort.validate import CONSISTENCY_RULES, validate
from strongroom.demo import run_demo

app = typer.Typer(
    help="Strongroom: a trusted research environment for sensitive health cohorts.",
    no_args_is_help=True,
    add_completion=False,
)
cohort_app = typer.Typer(help="The cohort: synthesise, ingest, convert, inspect.",
                         no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")

console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", "-d", envvar="STRONGROOM_DATA_DIR",
                 help="The Strongroom data directory."),
]
KeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="STRONGROOM_KEY_FILE",
                 help="The store's master key file (kept outside the data directory)."),
]
DEFAULT_DATA_DIR = Path("strongroom-data")


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn expected failures into a clear message and exit code 1 (no traceback)."""
    try:
        yield
    except IngestError as exc:
        errors.print(exc.summary(), markup=False)
        raise typer.Exit(1) from None
    except (StoreError, DecryptionError, FileExistsError, FileNotFoundError, ValueError) as exc:
        errors.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[str, int], None]]:
    """A Rich progress bar fed by domain callbacks ``(stage, advance)``; quiet if not a TTY."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=errors, disable=not errors.is_terminal) as bar:
        task = bar.add_task(label, total=total)

        def advance(stage: str, step: int) -> None:
            bar.update(task, advance=step, description=f"{label}: {stage}")

        yield advance
        bar.update(task, completed=total, description=f"{label}: done")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="The data directory to create.")],
    key_file: Annotated[Path | None, typer.Option(
        "--key-file", help="Where to write the master key (outside the directory). "
        "Default: ~/.config/strongroom/keys/<store-id>.key")] = None,
    dictionary: Annotated[Path | None, typer.Option(
        help="A data dictionary (JSON) instead of the shipped one.")] = None,
    database_url: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL of the metadata database (default: SQLite in the directory).")] = None,
) -> None:
    """Create a data directory and its master key."""
    with _refusals():
        chosen = Dictionary.load(dictionary) if dictionary else None
        store = init_store(directory, key_file=key_file, dictionary=chosen,
                           database_url=database_url)
        store.close()
    console.print(f"created {store.root} (store {store.config.store_id})")
    if store.config.key_file:
        console.print(f"master key written to {store.config.key_file}: keep it apart from "
                      "the data directory and back it up; without it the cohort is unreadable")


@cohort_app.command("synth")
def cohort_synth(
    out: Annotated[Path, typer.Option(help="Directory to write the cohort to.")],
    participants: Annotated[int, typer.Option(min=1, help="Number of participants.")] = 500_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same cohort).")] = 1,
) -> None:
    """Synthesise a realistic UK Biobank–shaped cohort (storage-model Parquet files)."""
    with _refusals(), _progress(100, "synthesising") as progress:
        cohort = synthesise(participants, seed, progress=progress)
        write_cohort_dir(cohort, out, {"seed": seed, "participants": participants})
    console.print(f"wrote {participants:,} synthetic participants to {out}")


@cohort_app.command("ingest")
def cohort_ingest(
    files: Annotated[list[Path], typer.Argument(
        help="UKB files (ukbconv CSV/TSV, R tab, RAP CSV, Parquet) or a synth directory.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
    relax: Annotated[list[str] | None, typer.Option(
        help=f"Relax a cross-field rule by name ({', '.join(CONSISTENCY_RULES)}).")] = None,
) -> None:
    """Validate files against the data dictionary and store them as the new cohort."""
    with _refusals(), Store.open(data_dir, key_file) as store, _progress(
        len(files) + 8, "ingesting"
    ) as progress:
        version = ingest(store, files, relax=relax or (), progress=progress)
    console.print(f"stored cohort version {version.id}: {version.participants:,} participants")


@cohort_app.command("info")
def cohort_info(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe the store and its current cohort (counts and sizes only)."""
    with _refusals(), Store.open(data_dir, key_file) as store:
        summary = summarise(store)
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        _print_summary(summary)


@cohort_app.command("convert")
def cohort_convert(
    source: Annotated[Path, typer.Argument(help="A UKB-format file to read.")],
    target: Annotated[Path, typer.Argument(help="The file to write.")],
    style: Annotated[Style, typer.Option(help="Output style.")],
    dictionary: Annotated[Path | None, typer.Option(
        help="Data dictionary (JSON); default: the shipped one.")] = None,
) -> None:
    """Convert a file between UKB formats, validating it on the way."""
    with _refusals():
        chosen = Dictionary.load(dictionary) if dictionary else shipped_dictionary()
        result = read_table(source, chosen)
        if result.problems:
            raise IngestError(result.problems)
        cohort = validate(result.cohort, chosen, source.name)
        write_table(cohort, target, style, chosen)
    console.print(f"wrote {target} ({style.value})")


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Demo data directory.")] = Path(
        "strongroom-demo"),
    participants: Annotated[int, typer.Option(min=1)] = 500_000,
    seed: Annotated[int, typer.Option()] = 2026,
) -> None:
    """The main job: a data directory with a synthetic cohort, ingested and summarised."""
    with _refusals(), _progress(100 + 8, "demo") as progress:
        result = run_demo(directory, participants, seed, progress)
    _print_summary(result.summary)
    console.print(f"master key: {result.key_file} (outside the data directory)")
    table = Table(title="Participants by sex and smoking status (DuckDB over the decrypted store)")
    for column in ("sex", "smoking status", "participants"):
        table.add_column(column, justify="right" if column == "participants" else "left")
    for sex, smoking, count in result.smoking_by_sex:
        table.add_row(sex, smoking, f"{count:,}")
    console.print(table)
    console.print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))


def _print_summary(summary: StoreSummary) -> None:
    console.print(f"data directory {summary.root} — store {summary.store_id}, "
                  f"key id {summary.key_id}")
    console.print(f"dictionary: {summary.dictionary_fields} fields "
                  f"(sha256 {summary.dictionary_digest[:16]}…)")
    if summary.version is None:
        console.print("no cohort stored yet: `strongroom cohort ingest FILE…`")
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


def main() -> None:
    """Entry point of the ``strongroom`` command."""
    app(prog_name="strongroom")


if __name__ == "__main__":
    main()
