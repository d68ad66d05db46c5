"""`strongroom genotypes …`: a custodian's ingest of genotype files, and what is held."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

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

if TYPE_CHECKING:
    from strongroom.cohort import store as cohort_store
else:  # imported when a command first uses it (cli/common.py on_use)
    cohort_store = on_use("strongroom.cohort.store")  # `store`: a local name below

genotypes_app = typer.Typer(help="Genotypes: ingest PLINK 1, PLINK 2 or BGEN files; describe "
                                 "what is held.", no_args_is_help=True)


@genotypes_app.command("ingest")
def genotypes_ingest(
    path: Annotated[Path, typer.Argument(
        help="A .bed (PLINK 1), .pgen (PLINK 2) or .bgen file, or their common stem; the "
             "files that go with it (.bim/.fam, .pvar/.psam, .sample) beside it.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
    operator: OperatorName = None,
    reason: Reason = None,
) -> None:
    """Check genotype files against the cohort and seal them into the store as its current
    genotypes (in chunks; no genotype is written in the clear). Who ingests them and why are
    kept in the audit event."""
    from strongroom.genomics.formats import open_genotypes
    from strongroom.genomics.store import Genotypes
    from strongroom.platform import open_audit

    with refusals():
        by = named(operator, reason, "genotypes ingest")
    with (refusals(), cohort_store.Store.open(data_dir, key_file) as store,
          open_genotypes(path) as source, progress_bar(100, "sealing genotypes") as progress):
        held = Genotypes(store).ingest(source, progress=progress, by=by)
        with open_audit(store):
            pass  # the ingest's event, committed with it, goes into the signed log
    console.print(f"stored genotype set {held.id}: {held.samples:,} samples × "
                  f"{held.variants:,} variants in {len(held.chunks)} sealed chunks")


@genotypes_app.command("info")
def genotypes_info(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    key_file: KeyFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe the current genotype set (counts, sources and digests only)."""
    from strongroom.genomics.store import Genotypes

    with refusals(), cohort_store.Store.open(data_dir, key_file) as store:
        held = Genotypes(store).require_current()
    about = {"id": held.id, "created_at": held.created_at.isoformat(), "samples": held.samples,
             "variants": held.variants, "chunks": len(held.chunks),
             "sealed_bytes": sum(c["bytes"] for c in held.chunks), "source": held.source}
    if as_json:
        print(json.dumps(about, indent=2))
        return
    console.print(f"genotype set {held.id} ({about['created_at']}): {held.samples:,} samples × "
                  f"{held.variants:,} variants, {about['chunks']} chunks, "
                  f"{about['sealed_bytes']:,} sealed bytes, from {held.source['kind']} files:")
    for source in held.source["files"]:  # as the custodian can check against their files
        console.print(f"  {source['name']}  {source['bytes']:,} bytes  sha256 "
                      f"{source['sha256']}", soft_wrap=True)
