"""The main job on the embedded defaults: a demo data directory with a synthetic cohort.

Synthesises the cohort, hands it over as a cohort directory and ingests it through the same
validated, encrypted path a custodian's real files take; then registers demo institutions,
people of every role and projects (see :mod:`strongroom.demo.world`); takes a tour of the
enclave as a researcher, with the custodian's red team's attacks beside it
(:mod:`strongroom.demo.enclave`); and plays a story that leaves something for every role to
find in the console (:mod:`strongroom.demo.story`): outputs held for review, an extract, an
alert with a suspension and an appeal, a leaked file, a DP budget. Each stage is timed and
reported as it goes (:class:`strongroom.progress.Staged`).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from strongroom.access.context import Settings
from strongroom.cohort.ingest import ingest
from strongroom.cohort.modeldir import write_cohort_dir
from strongroom.cohort.store import Store, init_store
from strongroom.cohort.summary import StoreSummary, summarise
from strongroom.cohort.synth import synthesise
from strongroom.demo.enclave import (
    GWAS_STOPS,
    STOPS,
    ReleasedGwas,
    TourStop,
    gwas_hits,
    gwas_tour,
    tour,
)
from strongroom.demo.jobs import job_tour
from strongroom.demo.story import People, Story, tell
from strongroom.demo.world import COMMITTEE, RED_TEAM, RESEARCHERS, DemoWorld, populate
from strongroom.genomics.formats import open_genotypes
from strongroom.genomics.plant import plant
from strongroom.genomics.simulate import simulate
from strongroom.genomics.store import Genotypes
from strongroom.platform import Platform
from strongroom.progress import Staged, Stages

MARKER = ".strongroom-demo"


@dataclass(frozen=True)
class DemoResult:
    summary: StoreSummary
    key_file: Path
    timings: dict[str, float]
    smoking_by_sex: list[tuple[str, str, int]]
    world: DemoWorld
    tour: list[TourStop]
    story: Story
    gwas: ReleasedGwas | None  # the released GWAS: its strongest variants, its λ_GC


def leaked_file(root: Path) -> Path:
    """Where the story's leaked file goes: beside the data directory, as a recipient's would."""
    return root.with_name(root.name + "-leaked.csv")


DEMO_VARIANTS = 1_000  # markers in simulated regions: the planted loci and their LD, quick
# and, for each, unlinked markers (simulate's module docstring): what the principal components
# need to find ancestry. Their noise eigenvalue is about participants / markers, so a large
# cohort needs more of them: at 500,000 with 3 per region marker the GWAS of BMI among White
# women read λ_GC 0.98-1.13 over five seeds, with 7 1.00-1.07 (issue 54; BENCHMARKS.md).
# 8,000 in all: a GWAS's time floor doubles with each doubling of the store's variants
# (outputs/timing.py), and the demo waits it twice. A smaller cohort keeps 3: the stratification
# the components leave grows with the cohort, and its membership budget (about n/8 variants
# a group, genetic-disclosure.md) would be spent on 8,000 variants by the demo's own GWAS, so
# that the how-tos' GWAS over the same people released nothing (measured at 20,000).
UNLINKED_PER_VARIANT = 7
SMALL_COHORT, SMALL_COHORT_UNLINKED_PER_VARIANT = 200_000, 3


def unlinked_per_variant(participants: int) -> int:
    """Unlinked markers simulated beside each region marker for a cohort of this size."""
    return SMALL_COHORT_UNLINKED_PER_VARIANT if participants < SMALL_COHORT \
        else UNLINKED_PER_VARIANT


def run_demo(
    root: Path,
    participants: int = 500_000,
    seed: int = 2026,
    stages: Stages | None = None,
    variants: int = DEMO_VARIANTS,
    jobs: bool = True,
    settings: Settings | None = None,
    workers: int | None = None,
) -> DemoResult:
    """(Re)create the demo data directory at ``root`` with a synthetic cohort and its
    genotypes (``variants`` markers in simulated regions and :func:`unlinked_per_variant` times
    as many unlinked ones; 0 for none); ``stages``: told as each stage begins, gets
    on and ends (the CLI shows them); ``jobs``: run the tour's two jobs (the console's tests,
    which run jobs of their own, leave them out); ``settings``: the platform's while the demo's
    people act (None: the defaults, as a server has them; the console's tests pass cheap
    password hashes and no answer floors, so the tour's dozens of analyses and definitions are
    not each held to their production floor); ``workers``: processes that simulate the
    genotypes' regions (None: the simulation's own choice: two from 20,000 participants,
    as `make demo` has it; the how-to tests' cohort of 20,000 asks for none, since each
    spawned process imports the simulator afresh: at 30,000, 22.6 CPU-s with the pool, 15.7
    without, on a machine whose cores the other tests keep busy)."""
    root = root.resolve()
    key_file = root.with_name(root.name + ".key")
    _clear_previous_demo(root, key_file)
    _clear_leaked(leaked_file(root))
    staged = Staged(stages)
    with staged.stage("synthesise", f"synthesising {participants:,} participants", 100) as tick:
        cohort = synthesise(participants, seed, progress=tick)
    causal = None
    with init_store(root, key_file=key_file) as store, \
            tempfile.TemporaryDirectory(prefix="strongroom-synth-") as tmp:
        (root / MARKER).write_text("created by `strongroom demo`; safe to delete\n")
        simulated = None
        if variants:
            # the custodian's genotype files, simulated for these participants, and the
            # planted loci's effects added to their BMI, blood pressure and diabetes
            unlinked = unlinked_per_variant(participants) * variants
            with staged.stage("simulate genotypes",
                              f"simulating genotypes ({variants:,} markers in linked regions, "
                              f"{unlinked:,} unlinked)", 100) as tick:
                (Path(tmp) / "genotypes").mkdir()
                simulated = simulate(cohort.participants.select("eid", "p21000_i0"), variants,
                                     seed, Path(tmp) / "genotypes" / "array", tick,
                                     unlinked=unlinked, workers=workers)
                cohort = plant(cohort, simulated)
                causal = simulated.causal
        handover = Path(tmp) / "cohort"
        with staged.stage("ingest", "ingesting the cohort (validated, encrypted)") as tick:
            write_cohort_dir(cohort, handover, {"seed": seed, "participants": participants})
            del cohort
            ingest(store, [handover], progress=tick)
        if simulated is not None:
            with staged.stage("ingest genotypes", "sealing the genotypes", 100) as tick, \
                    open_genotypes(simulated.bed) as source:
                Genotypes(store).ingest(source, progress=tick)
    with Store.open(root, key_file) as store:
        with staged.stage("query", "counting participants by sex and smoking (DuckDB)"):
            counts = smoking_by_sex(store)
        summary = summarise(store)
    with Platform.open(root, key_file, settings=settings) as platform:
        with staged.stage("people and projects", "registering people and projects"):
            world = populate(platform.access)
        people = People(platform.access, world)
        researcher, red_team = people(RESEARCHERS[0][0]), people(RED_TEAM[0])
        with staged.stage("enclave tour", "touring the enclave (the red team's attacks too)",
                          len(STOPS)) as tick:
            stops = tour(platform, world, researcher, red_team, tick)
        if jobs:
            with staged.stage("jobs", "running two jobs in their sandboxes"):
                stops += job_tour(platform, world, researcher, red_team)
        hits: ReleasedGwas | None = None
        if causal is not None:
            with staged.stage("GWAS", "a GWAS of BMI, and one aimed at a participant",
                              len(GWAS_STOPS) + 1) as tick:
                stops += gwas_tour(platform, world, people(COMMITTEE), researcher, red_team,
                                   tick)
                hits = gwas_hits(platform, world, researcher, causal)
                tick("the strongest hits", 1)
        story = tell(platform, world, people, leaked_file(root), participants, staged)
    return DemoResult(summary, key_file, staged.timings, counts, world, stops, story, hits)


def smoking_by_sex(store: Store) -> list[tuple[str, str, int]]:
    """Participants by sex and smoking status, labelled from the dictionary's codings."""
    con = store.connect(["participants"])
    rows = con.execute(
        "SELECT p31, p20116_i0, count(*) FROM participants GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    sex = store.dictionary.codings[9].codes
    smoking = store.dictionary.codings[90].codes
    return [
        (sex.get(str(s), "missing"), smoking.get(str(k), "missing") if k is not None else "missing",
         int(n))
        for s, k, n in rows
    ]


def _clear_leaked(leaked: Path) -> None:
    """The previous demo's leaked file and the evidence pack attribution wrote beside it."""
    leaked.unlink(missing_ok=True)
    leaked.with_name(leaked.name + ".evidence.md").unlink(missing_ok=True)


def _clear_previous_demo(root: Path, key_file: Path) -> None:
    if not root.exists():
        key_file.unlink(missing_ok=True)
        return
    if not (root / MARKER).exists():
        raise FileExistsError(
            f"{root} exists and was not made by `strongroom demo`; choose another --dir"
        )
    shutil.rmtree(root)
    key_file.unlink(missing_ok=True)
