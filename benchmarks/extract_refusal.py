"""A whole-cohort extract over the limit, refused: how long the refusal takes.

    python benchmarks/extract_refusal.py [--participants 500000] [--tries 20]

A fresh store with the synthetic cohort; one project with the export permission and the default
limits (20,000 distinct participants in 30 days). A custodian asks for the whole cohort through
``create_extract``, as `strongroom extract create` does, ``--tries`` times (the suspension it
causes is lifted in between, so every try meets the limit, not the pause). Anchor, in the same
run: what the same refusal cost when the limit was checked from the exact participant set (read
the sealed table, build the set, check it), as it was before the count came first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from pyroaring import BitMap
from sqlalchemy import update

from strongroom.access import institutions, people, projects
from strongroom.access.bootstrap import bootstrap
from strongroom.access.context import Settings
from strongroom.access.models import Pause, Project
from strongroom.access.states import ExportStatus, Vetting
from strongroom.cohort.model import EID, PARTICIPANTS
from strongroom.cohort.store import init_store
from strongroom.cohort.synth import synthesise
from strongroom.errors import Refused
from strongroom.extracts import service
from strongroom.platform import Platform
from strongroom.watch.limits import Planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--tries", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strongroom-refusal-") as tmp:
        root = Path(tmp)
        store = init_store(root / "data", key_file=root / "master.key")
        store.write_version(synthesise(args.participants, 5))
        store.close()
        with Platform.open(root / "data", root / "master.key",
                           settings=Settings(password_profile="CHEAPEST")) as platform:
            project_id = _project(platform)
            now, before = _tries(platform, project_id, root, args.tries)
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    print(f"whole-cohort extract over the limit, {args.participants:,} participants, "
          f"{args.tries} tries")
    print(f"  refused from the count first : p50 {p(now, 50) * 1000:8.1f} ms   "
          f"p99 {p(now, 99) * 1000:8.1f} ms")
    print(f"  from the exact set (anchor)  : p50 {p(before, 50) * 1000:8.1f} ms   "
          f"p99 {p(before, 99) * 1000:8.1f} ms")
    ratio = statistics.median(before) / statistics.median(now)
    print(f"  ratio (anchor / now, p50)    : {ratio:.0f}x   target: p99 <= 1000 ms")


def _project(platform: Platform) -> str:
    ctx = platform.access
    bootstrap(ctx, institution="Custodian", country="GB", jurisdiction="UK GDPR",
              networks=["10.0.0.0/8"], email="admin@custodian.test", name="Admin",
              password="a long benchmark passphrase")
    today = dt.date.today()
    inst = institutions.create(ctx, None, name="University", country="GB",
                               jurisdiction="UK GDPR", networks=["10.0.0.0/8"])
    lead = people.create(ctx, None, institution_id=inst.id, email="lead@uni.test", name="Lead",
                         roles=["researcher"], vetting=Vetting.APPROVED,
                         password="a long benchmark passphrase")
    project = projects.create(ctx, None, title="Study", purpose="Cardiometabolic outcomes",
                              lead_id=lead.person.id, starts_on=today,
                              expires_on=today + dt.timedelta(days=365), fields=[31, 34, 21001])
    with ctx.transaction() as db:
        db.execute(update(Project).where(Project.id == project.project.id)
                   .values(export=ExportStatus.APPROVED))
    return project.project.id


def _lift(platform: Platform) -> None:
    with platform.access.transaction() as db:
        db.execute(update(Pause).where(Pause.lifted_at.is_(None))
                   .values(lifted_at=platform.access.clock(), lifted_by="benchmark"))


def _tries(platform: Platform, project_id: str, root: Path,
           tries: int) -> tuple[list[float], list[float]]:
    now, before = [], []
    for i in range(tries):
        start = time.perf_counter()
        try:
            service.create_extract(platform.access, None, project_id, "csv",
                                   root / f"never-{i}.csv", store=platform.store,
                                   watch=platform.watch)
            raise SystemExit("the whole cohort was let through: the limit did not hold")
        except Refused:
            now.append(time.perf_counter() - start)
        _lift(platform)
        start = time.perf_counter()  # the anchor: the exact set first, then the same check
        eids = platform.store.load(tables=[PARTICIPANTS]).participants[EID].to_numpy()
        try:
            platform.watch.guard(None, project_id, "extract.create",
                                 Planned(record_members=BitMap(eids.astype(np.uint32))))
            raise SystemExit("the anchor let the whole cohort through")
        except Refused:
            before.append(time.perf_counter() - start)
        _lift(platform)
    return now, before


if __name__ == "__main__":
    main()
