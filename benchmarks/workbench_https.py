"""The researcher how-to's study over HTTPS, as a researcher runs it: the real server in its
own process, each output from the request to its labelled table, timed (issue [workbench]:
under 2 s each at 500,000), by each way a researcher works:

- ``client``: the Python client, with a project token (analyse, release, the table as CSV);
- ``cli``: the command line, as the how-to runs it: one command per output at a terminal
  (``strongroom enclave analyse P @spec.json --table out.csv``: analysed, released and
  written as a labelled table; its whole run is in "analyse + check");
- ``console``: the web console in Debian's Chromium, driven by Playwright (the analysis form,
  *Run and check*, *Request release*, *Show the table and chart*, until the labelled table
  is drawn).

The same study, in the same order, as benchmarks/workbench.py (which calls the output service
in process); here every request also crosses TLS, the server's authentication, authorisation,
watch and audit. Each way is a researcher of a new institution in a new project (an empty
ledger, as a new team starts), on one server.

    python benchmarks/workbench_https.py [--participants 500000] [--via client cli console]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

import workbench  # benchmarks/workbench.py: the study, its definition and its fields
from strongroom.client import Client, StrongroomError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the functional tests' server
from tests.functional.test_server import Person, Server, code, register, running_server

SOURCE = "127.0.0.60"
WARM_SECONDS = 15  # what a server pays once, before its first researcher (about 4 s)
PERMISSIONS = ["data.analyse", "output.read", "output.request", "output.download"]
RELEASED = ("release", "release_with_suppression")
WAYS = ("client", "cli", "console")
# (title, verdict → status, analyse + check, release, table, rows × columns), or a refusal
Timed = tuple[str, str, float | None, float | None, float | None, str]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--via", nargs="+", choices=WAYS, default=list(WAYS),
                        help="the ways to run the study (default: all three)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strongroom-workbench-https-") as tmp:
        started = time.perf_counter()
        with running_server(Path(tmp), None, cohort=args.participants, warm=True) as server:
            print(f"server over {args.participants:,} participants: "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            # the server loads its model libraries and builds the raw-row scanner's index as
            # it starts (server/run.py, warm); the study starts when it is warm
            time.sleep(WARM_SECONDS)
            worst: dict[str, float] = {}
            for n, way in enumerate(args.via):
                who, project = _researcher(server, n)
                print(f"\n### {way}\n", flush=True)
                run = {"client": _by_client, "cli": _by_cli, "console": _by_console}[way]
                worst[way] = _table(run(server, who, project, Path(tmp)))
            print("\nslowest output, request to labelled table (target < 2 s): "
                  + ", ".join(f"{way} {s:.2f} s" for way, s in worst.items()))
            print(json.dumps({f"slowest_{way}_s": round(s, 3) for way, s in worst.items()}))


def _researcher(server: Server, n: int) -> tuple[Person, str]:
    """A vetted researcher of a new institution, and their new project for the study."""
    admin = server.admin
    uni = admin.institutions.create(f"Benchmark University {n + 1}", "GB", "UK GDPR",
                                    ["127.0.0.0/8"])
    who = register(server, f"rae{n + 1}@bench{n + 1}.ac.uk", ["researcher"], uni["id"],
                   vetted=True)
    today = dt.date.today()
    project = admin.projects.create(
        "Smoking, adiposity and survival", "The researcher how-to's study, timed", who.id,
        today, today + dt.timedelta(days=90), fields=workbench.FIELDS)["id"]
    return who, project


def _token(server: Server, who: Person, project: str) -> str:
    with server.client(SOURCE) as session:
        session.login(who.email, who.password, code(who.totp_secret))
        return str(session.tokens.issue(project, PERMISSIONS, 7)["secret"])


def _table(rows: Iterator[Timed]) -> float:
    """Print each output's timings as a row; the slowest total."""
    print("| output | verdict → status | analyse + check | release | labelled table | total "
          "| rows × columns |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for title, verdict, analysed, released, tabled, shape in rows:
        steps = [s for s in (analysed, released, tabled) if s is not None]
        total = sum(steps) if len(steps) == 3 else None
        worst = max(worst, total or 0.0)
        print(f"| {title} | {verdict} | " + " | ".join(
            "" if s is None else f"{s:.2f} s" for s in (analysed, released, tabled, total))
            + f" | {shape} |", flush=True)
    return worst


def _by_client(server: Server, who: Person, project: str, tmp: Path) -> Iterator[Timed]:
    with Client(server.url, token=_token(server, who, project), verify=server.ca,
                local_address=SOURCE, timeout=600) as sr:
        sr.enclave.define(project, "study", workbench.STUDY_SQL)
        for title, spec in workbench.STUDY:
            t0 = time.perf_counter()
            out = sr.enclave.analyse(project, {**spec, "definition": "study"})
            t1 = time.perf_counter()
            if out["verdict"] not in RELEASED:
                reasons = [f["reason"] for f in out.get("findings", [])]
                yield title, f"{out['verdict']}: {reasons}", t1 - t0, None, None, ""
                continue
            try:
                status = sr.outputs.request_release(out["id"])["status"]
            except StrongroomError as refused:
                yield title, f"refused at release: {refused}", t1 - t0, None, None, ""
                continue
            t2 = time.perf_counter()
            frame = pl.read_csv(io.BytesIO(sr.outputs.table(out["id"])),
                                infer_schema_length=None)
            t3 = time.perf_counter()
            yield (title, f"{out['verdict']} → {status}", t1 - t0, t2 - t1, t3 - t2,
                   f"{frame.height} × {frame.width}")


def _by_cli(server: Server, who: Person, project: str, tmp: Path) -> Iterator[Timed]:
    """Each output as the how-to asks for it: one command at a terminal (a new process),
    ``strongroom enclave analyse P @spec.json --table out.csv``, which analyses, releases
    and writes the labelled table; timed whole, from the command to its exit."""
    env = {**os.environ, "STRONGROOM_URL": server.url, "STRONGROOM_CA": str(server.ca),
           "STRONGROOM_TOKEN": _token(server, who, project)}
    command = [str(Path(sys.executable).with_name("strongroom")), "enclave"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], env=env, capture_output=True, text=True)

    run("define", project, "study", workbench.STUDY_SQL).check_returncode()
    for n, (title, spec) in enumerate(workbench.STUDY):
        asked = tmp / f"spec{n}.json"
        asked.write_text(json.dumps({**spec, "definition": "study"}))
        table = tmp / f"output{n}.csv"
        t0 = time.perf_counter()
        done = run("analyse", project, f"@{asked}", "--table", str(table))
        t1 = time.perf_counter()
        out = json.loads(done.stdout)
        if done.returncode != 0:
            yield title, f"{out['verdict']} → {out['status']}", t1 - t0, None, None, ""
            continue
        frame = pl.read_csv(table, infer_schema_length=None)
        yield (title, f"{out['verdict']} → {out['status']}", t1 - t0, 0.0, 0.0,
               f"{frame.height} × {frame.width}")


def _form(spec: dict[str, Any]) -> tuple[str, str]:
    """The analysis form's Variables and More options for a spec (server/web/workspace.py's
    FILLS, in their order; the rest as JSON)."""
    from strongroom.server.web.workspace import FILLS

    rest = {k: v for k, v in spec.items() if k not in ("kind", "definition")}
    names: list[str] = []
    for slot in FILLS[spec["kind"]]:
        field = slot.rstrip("*?")
        if field in rest:
            value = rest.pop(field)
            names += value if isinstance(value, list) else [value]
    return ", ".join(names), json.dumps(rest) if rest else ""


def _by_console(server: Server, who: Person, project: str, tmp: Path) -> Iterator[Timed]:
    """The study in the web console, in Debian's Chromium: each output from *Run and check*
    to its labelled table drawn on the page.

    Each step is timed by the browser itself: a form's, from its submission to the page it
    leads to loaded (Navigation Timing, the server's redirect included); the table's, from
    htmx's request to the table swapped into the page (Resource Timing). Their sum is the
    console's time; the wall time beside it adds Playwright's own work between the steps
    (finding each button and checking it can be clicked, about 0.1 s a click)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{server.url}/ui/login")
        page.get_by_label("Email").fill(who.email)
        page.get_by_label("Password").fill(who.password)
        page.get_by_label("Authenticator code").fill(code(who.totp_secret))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/ui/**")
        home = f"{server.url}/ui/workspace/projects/{project}"
        page.goto(home)
        page.get_by_label("Definition name").fill("study")
        page.get_by_label("SQL", exact=True).fill(workbench.STUDY_SQL)
        page.get_by_role("button", name="Define").click()
        page.wait_for_load_state()
        for title, spec in workbench.STUDY:
            page.goto(home)
            variables, options = _form(spec)
            page.get_by_label("Kind of analysis").select_option(spec["kind"])
            page.get_by_label("Dataset definition").select_option("study")
            page.get_by_label("Variables").fill(variables)
            page.get_by_label("More options").fill(options)
            t0 = time.perf_counter()
            page.get_by_role("button", name="Run and check").click()
            page.wait_for_url("**/ui/workspace/outputs/**")
            analysed = _navigated(page)
            page.get_by_role("button", name="Request release").click()
            page.wait_for_url("**done=**")
            released = _navigated(page)
            status = page.url.rsplit("done=", 1)[-1].split("#")[0]
            if status != "released":
                yield title, f"→ {status}", analysed, released, None, ""
                continue
            page.evaluate("() => document.body.addEventListener('htmx:afterSwap', "
                          "() => { window.swapped = performance.now(); }, {once: true})")
            page.get_by_role("button", name="Show the table and chart").click()
            shown = page.locator("#released-table table").first
            shown.wait_for(state="visible")
            page.wait_for_function("() => window.swapped !== undefined")
            tabled = page.evaluate(
                "() => (window.swapped - performance.getEntriesByType('resource')"
                ".filter(e => e.name.endsWith('/released')).pop().startTime) / 1000")
            wall = time.perf_counter() - t0
            rows = shown.locator("tbody tr").count()
            columns = shown.locator("thead th").count()
            yield (title, f"→ released (wall, with Playwright's clicks: {wall:.2f} s)",
                   analysed, released, float(tabled), f"{rows} × {columns}")
        browser.close()


def _navigated(page: Any) -> float:
    """Seconds from the navigation's start (a form's submission) to its page loaded."""
    page.wait_for_load_state("load")
    return float(page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return ((n.loadEventEnd || performance.now()) - n.startTime) / 1000; }"))


if __name__ == "__main__":
    main()
