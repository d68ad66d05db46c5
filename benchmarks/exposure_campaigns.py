"""Patient leakers against the lifetime allowances: participants out before each is stopped.

    python benchmarks/exposure_campaigns.py [--scale 1.0]

Four record-level campaigns (strongroom.attacks.leakers) that each stay under every 30-day
window, run day by day through the extract service (what the API, the console and
`strongroom extract create` all call) on a synthetic cohort large enough that none runs out of
participants: a re-taking drip (600 new and 300 repeats a day), one person over two projects,
three people of one institution, and a drip at exactly the 30-day allowance. Anchor, in the same
run: the same campaigns with the lifetime limits and their forecast switched off (the window
limits and the detectors as they were), each for as many days. ``--scale`` shrinks pages and
limits alike (the test suite runs 0.05).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from strongroom.attacks import leakers
from strongroom.attacks.world import AttackWorld
from strongroom.watch.detectors.policy import LifetimePolicy

UNLIMITED = 10**9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    need = max(c.rows(args.scale) for c in leakers.CAMPAIGNS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="strongroom-campaigns-") as tmp:
        world = AttackWorld.build(Path(tmp), cohort=need)
        try:
            for campaign in leakers.CAMPAIGNS:
                started = time.perf_counter()
                now = leakers.run(world, campaign, args.scale)
                seconds = time.perf_counter() - started
                before = _without_lifetime(world, campaign, args.scale)
                rows.append((campaign, now, before, seconds))
                print(f"  {campaign.name}: {now.out:,} out (stopped day {now.stopped_day}); "
                      f"without: {before.out:,}", flush=True)
        finally:
            world.close()
    print(f"\ncohort {need:,}; scale {args.scale:g}\n")
    print("| campaign | out before the stop | stopped on day | lifetime allowance (scope) "
          "| held | without lifetime limits (anchor) | ratio | run |")
    print("|---|---|---|---|---|---|---|---|")
    for campaign, now, before, seconds in rows:
        ratio = before.out / now.out if now.out else float("inf")
        anchor = ("never stopped" if before.stopped_day is None
                  else f"stopped day {before.stopped_day}")
        print(f"| {campaign.name} | {now.out:,} | {now.stopped_day} | {now.allowance:,} "
              f"({campaign.held_by}) | {'yes' if now.held else 'NO'} | {before.out:,} "
              f"({anchor}, {campaign.days} days) | {ratio:.1f}× | {seconds:.0f} s |")


def _without_lifetime(world: AttackWorld, campaign: leakers.Campaign,
                      scale: float) -> leakers.Outcome:
    """The same campaign with the lifetime limits (and a person's) out of reach, no forecast."""
    watch = world.platform.watch
    saved = watch.policy
    watch.policy = dataclasses.replace(saved, lifetime=LifetimePolicy(enabled=False))
    limits = {scope: {**values, "lifetime_participants": UNLIMITED,
                      **({"record_participants": UNLIMITED} if scope == "person" else {})}
              for scope, values in leakers.scaled_limits(scale).items()}
    try:
        return leakers.run(world, campaign, scale, limits)
    finally:
        watch.policy = saved


if __name__ == "__main__":
    main()
