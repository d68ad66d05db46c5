"""Disclosure benchmark: the attack catalogue and the honest analyses, now and at a baseline.

    python benchmarks/disclosure.py [--baseline 606ebb9] [--cohort 3000] [--honest-only]
    python benchmarks/disclosure.py --observables [--baseline 1fbd69b] [--cohort 3000]

Runs every attack of ``strongroom.attacks.catalogue`` (each in a fresh institution, researcher
and project; ground truth custodian-side) and prints, per kind, attacks tried and values
recovered; then runs the honest analyses of ``strongroom.attacks.honest`` in one project and
prints how many kept their automatic release. With ``--baseline`` the same catalogue runs on
that commit (a git worktree under benchmarks/.work, the attacks package copied in), in the
same run, so the table shows what the check stopped and what it cost: the honest analyses
auto-released at the baseline that lose it now.

With ``--observables``, the channel attacks of issue 50 instead (strongroom.attacks.observables,
the code the tests run): the amplifier bisection on response time, the bit-per-output job, the
chosen-wall pairs of jobs, and the ration multiplied by members, projects and institutions;
per channel, attacks tried, exact values recovered, bits the researcher observed and answers
spent (custodian-side), now and at the baseline (default 1fbd69b) in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def measure(cohort: int, attacks_too: bool = True) -> dict[str, Any]:
    """Run everything on the strongroom importable here; a JSON-able summary (with
    ``attacks_too`` false, only the honest analyses, in a world no attack has touched)."""
    from strongroom.attacks import runner
    from strongroom.attacks.catalogue import catalogue
    from strongroom.attacks.world import AttackWorld

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        world = AttackWorld.build(Path(tmp), cohort=cohort)
        try:
            cast = runner.cast(world)
            attacks = []
            for attack in (catalogue() if attacks_too else ()):
                try:
                    outcome = runner.attempt(world, attack, cast)
                    attacks.append({"kind": attack.kind, "name": attack.name,
                                    "recovered": outcome.recovered, "detail": outcome.detail})
                except Exception as exc:  # a baseline without an API the attack uses
                    attacks.append({"kind": attack.kind, "name": attack.name,
                                    "recovered": False, "detail": f"error: {exc!r}"[:200]})
            # what still leaks, run again by one person whose ration of answers is spent
            for found in (a for a in attacks if a["recovered"]):
                who = runner.spent(world, cast)  # None on a platform without a ration
                attack = next(a for a in catalogue() if a.name == found["name"])
                found["after_ration"] = (None if who is None else
                                         runner.attempt(world, attack, cast, who).recovered)
            honest = [{"name": h.analysis.name, "automatic": h.automatic, "detail": h.detail}
                      for h in runner.honest(world)]
        finally:
            world.close()
    return {"attacks": attacks, "honest": honest, "seconds": time.perf_counter() - started}


def measure_observables(cohort: int) -> dict[str, Any]:
    """The observables' channel attacks on the strongroom importable here (JSON-able)."""
    from strongroom.attacks import observables
    from strongroom.attacks.world import AttackWorld
    from strongroom.server.job_schemas import job_out
    from strongroom.server.workbench_schemas import output_out

    shows = (lambda job: job_out(job).model_dump(mode="json"),
             lambda view: output_out(view).model_dump(mode="json"))

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        world = AttackWorld.build(Path(tmp), cohort=cohort)
        try:
            rows = observables.run_all(world, shows=shows, log=lambda line: print(
                line, file=sys.stderr, flush=True))
        finally:
            world.close()
    return {"channels": [dataclasses.asdict(r) for r in rows],
            "seconds": time.perf_counter() - started}


def at_baseline(commit: str, cohort: int, *extra: str) -> dict[str, Any]:
    """The same run on ``commit``: a worktree with today's attacks package copied in."""
    work = ROOT / "benchmarks" / ".work" / f"baseline-{commit}"
    if not work.exists():
        work.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(work),
                        commit], check=True, capture_output=True)
    target = work / "src" / "strongroom" / "attacks"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "src" / "strongroom" / "attacks", target)
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    done = subprocess.run([sys.executable, __file__, "--inner", "--cohort", str(cohort),
                           *extra], env=env, cwd=work, check=True, capture_output=True,
                          text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(now: dict[str, Any], base: dict[str, Any] | None, label: str) -> None:
    kinds = list(dict.fromkeys(a["kind"] for a in now["attacks"]))
    tried = Counter(a["kind"] for a in now["attacks"])
    got = Counter(a["kind"] for a in now["attacks"] if a["recovered"])
    was = Counter(a["kind"] for a in base["attacks"] if a["recovered"]) if base else None
    head = f"{'kind':<14} {'tried':>5} {'recovered':>9}"
    print(head + (f" {'at ' + label:>14}" if base else ""))
    for kind in kinds:
        line = f"{kind:<14} {tried[kind]:>5} {got[kind]:>9}"
        print(line + (f" {was[kind]:>14}" if was is not None else ""))
    line = f"{'all':<14} {sum(tried.values()):>5} {sum(got.values()):>9}"
    print(line + (f" {sum(was.values()):>14}" if was is not None else ""))
    for a in now["attacks"]:
        if a["recovered"]:
            after = {None: "", True: "; still, after the ration",
                     False: "; not after the ration"}[a.get("after_ration")]
            print(f"  recovered now: [{a['kind']}] {a['name']}{after}")
    honest = now["honest"]
    auto = sum(h["automatic"] for h in honest)
    print(f"\nhonest analyses: {len(honest)}; released automatically now: {auto}")
    if base:
        before = {h["name"]: h["automatic"] for h in base["honest"]}
        lost = [h for h in honest if before.get(h["name"]) and not h["automatic"]]
        gained = [h for h in honest if not before.get(h["name"]) and h["automatic"]]
        kept_before = sum(before.values())
        print(f"released automatically at {label}: {kept_before}; lost since: {len(lost)} "
              f"({len(lost) / len(honest):.0%} of the honest analyses); gained: {len(gained)}")
        for h in lost:
            print(f"  lost: {h['name']} — {h['detail'][:150]}")
    print(f"\nseconds: now {now['seconds']:.0f}" + (f", {label} {base['seconds']:.0f}"
                                                    if base else ""))


def report_observables(now: dict[str, Any], base: dict[str, Any] | None, label: str) -> None:
    """Per channel: tried, exact values recovered, bits observed, answers spent; now and at
    the baseline (a channel the baseline could not run says so)."""
    def cells(row: dict[str, Any] | None) -> str:
        if row is None:
            return f"{'(not run)':>30}"
        errors = [n for n in row["notes"] if n.startswith("error") or ": error" in n]
        if row["tried"] == 0 or (row["notes"] and len(errors) == len(row["notes"])):
            return f"{'(cannot run: its API differs)':>30}"
        spent = "—" if row["answers"] is None else str(row["answers"])
        return f"{row['tried']:>5} {row['recovered']:>5} {row['bits']:>8g} {spent:>8}"
    before = {r["channel"]: r for r in base["channels"]} if base else {}
    head = f"{'tried':>5} {'exact':>5} {'bits':>8} {'answers':>8}"
    print(f"{'channel':<28} {head}" + (f"   at {label}: {head}" if base else ""))
    for row in now["channels"]:
        line = f"{row['channel']:<28} {cells(row)}"
        print(line + (f"   {' ' * len(label) + '    '}{cells(before.get(row['channel']))}"
                      if base else ""))
    for name, result in (("now", now), (label, base)):
        if result is None:
            continue
        print(f"\n{name}:")
        for row in result["channels"]:
            for note in row["notes"]:
                print(f"  [{row['channel']}] {note}"[:200])
    print(f"\nseconds: now {now['seconds']:.0f}" + (f", {label} {base['seconds']:.0f}"
                                                    if base else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None,
                        help="a commit to compare with in the same run ('' for none; "
                             "default 606ebb9, with --observables 1fbd69b)")
    parser.add_argument("--cohort", type=int, default=3000)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--honest-only", action="store_true",
                        help="only the honest analyses, in a fresh world (seconds, not minutes)")
    parser.add_argument("--observables", action="store_true",
                        help="the channel attacks of issue 50 (time, jobs, the ration)")
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(measure_observables(args.cohort) if args.observables
                         else measure(args.cohort)))
        return
    if args.observables:
        commit = "1fbd69b" if args.baseline is None else args.baseline
        now = measure_observables(args.cohort)
        base = at_baseline(commit, args.cohort, "--observables") if commit else None
        report_observables(now, base, commit)
        return
    if args.baseline is None:
        args.baseline = "606ebb9"
    if args.honest_only:
        honest = measure(args.cohort, attacks_too=False)["honest"]
        for h in honest:
            print(("kept " if h["automatic"] else "LOST ") + h["name"] + ": " + h["detail"])
        print(f"honest analyses: {len(honest)}; released automatically: "
              f"{sum(h['automatic'] for h in honest)}")
        return
    now = measure(args.cohort)
    base = at_baseline(args.baseline, args.cohort) if args.baseline else None
    report(now, base, args.baseline)


if __name__ == "__main__":
    main()
