"""`strongroom extract create` and `strongroom attribute`: traceable extracts at the console.

Both run as the person signed in with `strongroom login` (a custodian admin makes extracts; a
security analyst or custodian admin attributes), through the same service functions the API
would call. ``extracts_app`` holds both and is added to the main app without a name of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.cli.admin import admin
from strongroom.cli.common import DEFAULT_DATA_DIR, DataDir, KeyFile, console, on_use

if TYPE_CHECKING:
    from strongroom.extracts import service
else:  # imported when a command first uses it (cli/common.py on_use)
    service = on_use("strongroom.extracts.service")

# membership.SHARE, written here: reading it would import Polars, NumPy and SciPy to list the
# options (tests/unit/test_cli_start.py holds the two equal)
WITHHELD_SHARE = 0.02

extracts_app = typer.Typer()
extract_app = typer.Typer(help="Traceable record-level extracts (sign in first with "
                          "`strongroom login --as EMAIL`).", no_args_is_help=True)
extracts_app.add_typer(extract_app, name="extract")


@extract_app.command("create")
def extract_create(
    project: Annotated[str, typer.Argument(help="The project's id (it must hold the export "
                                           "permission).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write (never "
                                      "overwritten).")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    allow_field: Annotated[list[int] | None, typer.Option(
        "--allow-field", help="A non-measurement field id that may still carry marks "
        "(repeat); for a date field, day-level dates with ±1-day marks.")] = None,
    withhold: Annotated[float, typer.Option(
        "--withhold", help="Share of eligible participants withheld under the extract's key "
        "(0 to 0.1): the carrier that survives any column deletion.")] = WITHHELD_SHARE,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Make a project's fingerprinted extract with decoys; prints its manifest as JSON."""
    with admin(data_dir, key_file) as (p, who):
        result = service.create_extract(p.access, who, project, fmt, out, store=p.store,
                                        watch=p.watch, allow=allow_field or [],
                                        withhold=withhold)
    print(json.dumps(result.to_json(), indent=2))


@extracts_app.command("attribute")
def attribute(
    suspect: Annotated[Path, typer.Argument(
        help="The leaked file: CSV, TSV, Parquet, Excel or JSON lines.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")
                       ] = False,
    evidence: Annotated[Path | None, typer.Option(
        help="Where to write the evidence pack (default: beside the suspect file, "
        "SUSPECT.evidence.md).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Name the recipient a leaked file came from, or say it is inconclusive."""
    with admin(data_dir, key_file) as (p, who):
        report = service.attribute(p.access, who, suspect, store=p.store, evidence=evidence)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return
    console.print(report.summary(), highlight=False, markup=False)
    console.print(f"rows read {report.rows_read:,}, linked {report.rows_linked:,}; "
                  f"decoys found: {len(report.decoys_found)}; evidence pack: {report.evidence}",
                  highlight=False, markup=False)


@extract_app.command("indicators")
def extract_indicators(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the STIX 2.1 "
                                      "bundle (JSON).")],
    key_out: Annotated[Path, typer.Option(
        "--key-out", help="Where to write the HMAC key partners need to match the "
        "indicators (share it apart from the bundle).")],
    extract: Annotated[list[str] | None, typer.Option(
        "--extract", help="Only this extract's decoys (repeat; default: all).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
) -> None:
    """Decoy search patterns as STIX 2.1 indicators marked TLP:RED, for MISP or OpenCTI."""
    with admin(data_dir, key_file, changes_state=False) as (p, who):
        bundle, key, key_id = service.indicators(p.access, who, extract or [])
    out.write_text(json.dumps(bundle, indent=2))
    key_out.touch(mode=0o600)
    key_out.write_text(key.hex() + "\n")
    count = sum(o["type"] == "indicator" for o in bundle["objects"])
    console.print(f"wrote {count} indicators to {out}; key {key_id} to {key_out} (TLP:RED: "
                  f"share only with the partners who must match them)")
