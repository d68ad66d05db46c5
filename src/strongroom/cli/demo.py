"""`strongroom demo`: the main job on the embedded defaults, and what it prints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from strongroom.cli.cohort import print_summary
from strongroom.cli.common import console, open_platform, refusals, stage_report
from strongroom.server.defaults import DEFAULT_HOST, DEFAULT_PORT

if TYPE_CHECKING:  # the demo's package is imported when it runs
    from strongroom.demo import DemoResult
    from strongroom.progress import Stages

# strongroom.demo.DEMO_VARIANTS, written here: reading it would import the whole platform to
# list the options (tests/unit/test_cli_start.py holds the two equal)
DEMO_VARIANTS = 1_000


def run_demo(directory: Path, participants: int, seed: int, stages: Stages,
             variants: int) -> DemoResult:
    """The demo's main job (``strongroom.demo.run_demo``; the tests put their own here)."""
    from strongroom.demo import run_demo as run

    return run(directory, participants, seed, stages, variants)


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Demo data directory.")] = Path(
        "strongroom-demo"),
    participants: Annotated[int, typer.Option(min=1)] = 500_000,
    seed: Annotated[int, typer.Option()] = 2026,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve",
                                            help="Serve the API on localhost afterwards.")
                         ] = True,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = DEFAULT_PORT,
    variants: Annotated[int, typer.Option(
        min=0, help="Markers to simulate in linked regions, each with seven unlinked "
             "markers beside it (three under 200,000 participants; 0: no genotypes).")
                        ] = DEMO_VARIANTS,
) -> None:
    """The main job: a synthetic cohort and its genotypes ingested encrypted, demo people and
    projects, a tour of the enclave and a GWAS, served."""
    with refusals(), stage_report("demo") as stages:
        result = run_demo(directory, participants, seed, stages, variants)
    print_summary(result.summary)
    console.print(f"master key: {result.key_file} (outside the data directory)")
    table = Table(title="Participants by sex and smoking status (DuckDB over the decrypted store)")
    for column in ("sex", "smoking status", "participants"):
        table.add_column(column, justify="right" if column == "participants" else "left")
    for sex, smoking, count in result.smoking_by_sex:
        table.add_row(sex, smoking, f"{count:,}")
    console.print(table)
    console.print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    _print_tour(result)
    _print_gwas(result)
    _print_story(result, directory)
    _print_logins(result)
    _print_console(result, directory, port, serve_api)
    if serve_api:
        console.print(f"serving the web console and the API on http://{DEFAULT_HOST}:{port} "
                      f"(spec at /openapi.json; Ctrl-C stops it). At the command line: "
                      f"`strongroom login -d {directory} --as EMAIL`", highlight=False)
        from strongroom.server.run import serve as run_server

        sys.stdout.flush()  # plain print()s sit in a pipe's buffer while the server runs

        with refusals(), open_platform(directory, result.key_file) as platform:
            run_server(platform, DEFAULT_HOST, port)


def _print_tour(result: DemoResult) -> None:
    table = Table(title="The enclave, as a researcher sees it: verdicts and reasons, no values "
                        "(the attacks are the custodian's red team's, in a project of its own)")
    for column in ("by", "analysis", "verdict", "after asking for release", "first reason"):
        table.add_column(column)
    for stop in result.tour:
        table.add_row(stop.by, stop.what, stop.verdict, stop.status, stop.reason[:160])
    console.print(table)


def _print_gwas(result: DemoResult) -> None:
    if result.gwas is None:
        return
    inflation = result.gwas.inflation
    stated = f" (λ_GC {inflation:.2f})" if inflation is not None else ""
    table = Table(title=f"The released GWAS of BMI{stated}: its strongest variants, and the loci "
                        "the custodian planted (known only to them)")
    for column in ("variant", "beta", "p", "planted locus"):
        table.add_column(column, justify="right" if column in ("beta", "p") else "left")
    for hit in result.gwas.hits:
        table.add_row(hit.variant, f"{hit.beta:.3f}", _p(hit.neg_log10_p), hit.planted or "—")
    console.print(table)


def _print_story(result: DemoResult, directory: Path) -> None:
    story = result.story
    table = Table(title="What the demo left for each role to find (all through the services)")
    for column in ("what", "where it stands"):
        table.add_column(column)
    for held in story.held:
        table.add_row(f"output {held.output_id}: {held.what}", held.status.replace("_", " "))
    if story.extract is not None:
        made = story.extract
        table.add_row(f"extract {made.extract_id} (project {made.project_id})",
                      f"{made.participants:,} participants and {made.decoys} decoys, "
                      f"fingerprinted in {len(made.carriers)} columns; manifest kept")
    if story.alert_id is not None:
        table.add_row(f"alert {story.alert_id}", "open: a bulk extract over the limit was "
                      "refused; suspended: " + ", ".join(story.suspended) + "; appealed")
    if story.dp_project is not None:
        table.add_row(f"project {story.dp_project}", f"differential-privacy mode, "
                      f"ε {story.dp_spent} of {story.dp_total} spent")
    for note in story.notes:
        table.add_row("note", note)
    console.print(table)
    if story.leaked is not None:
        console.print(f"a leaked file: {story.leaked} (some of the extract's rows, ID column "
                      f"dropped). Name its source as the security analyst:", highlight=False)
        print(f"  strongroom login -d {directory} --as security@custodian.example\n"
              f"  strongroom attribute {story.leaked} -d {directory}")


def _print_console(result: DemoResult, directory: Path, port: int, serving: bool) -> None:
    from strongroom.demo import signposts
    from strongroom.server.web.pages import PREFIX  # the web stack only when it is needed

    address = f"http://{DEFAULT_HOST}:{port}{PREFIX}/"
    later = f"strongroom serve -d {directory}" + (f" --port {port}" if port != DEFAULT_PORT
                                                  else "")
    verb = "Open" if serving else f"After `{later}`, open"
    console.print(f"[bold]The web console[/]: {verb} {address} and sign in with an email, its "
                  f"password and a current code. Who to sign in as:", highlight=False)
    for post in signposts(result.world, result.story):
        print(f"  {post.role}: {post.email} ({post.name}) — {post.finds}")


def _print_logins(result: DemoResult) -> None:
    """Plain lines, never truncated: a secret cut short by a narrow terminal is useless."""
    console.print("[bold]Demo sign-ins, shown once[/] (email, roles, institution, password, "
                  "TOTP secret):", highlight=False)
    for person in result.world.logins:
        print(f"  {person.email}  [{', '.join(person.roles)}]  {person.institution}  "
              f"password: {person.password}  totp: {person.totp_secret}")
    for pid, title in result.world.projects:
        print(f"  project {pid}: {title}")
    console.print("A current code for a TOTP secret: python -c \"import pyotp; "
                  "print(pyotp.TOTP('SECRET').now())\" (or add it to an authenticator app)",
                  highlight=False)


def _p(neg_log10_p: float) -> str:
    """p as a geneticist writes it, from −log10 p: 3.4e-21, or 1e-412 past a float's reach."""
    if neg_log10_p < 300:
        return f"{10 ** -neg_log10_p:.2g}"
    exponent = int(neg_log10_p // 1) + 1
    return f"{10 ** (exponent - neg_log10_p):.2g}e-{exponent}"
