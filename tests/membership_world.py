"""A world for membership-attack tests: 3,000 participants genotyped at 3,000 independent
variants drawn from known population frequencies (the attacker's reference is those frequencies
exactly, the strongest there is), the first project granted the genotypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strongroom.access import projects
from strongroom.access.roles import Role
from strongroom.genomics.formats import open_genotypes
from tests.access_world import World, build_world
from tests.genotype_files import write_bed
from tests.gwas_world import FIELDS

M = 3_000


def build_membership_world(root: Path) -> tuple[World, np.ndarray, np.ndarray, np.ndarray]:
    """The world; every participant's genotypes (eid order), their eids, the population's ALT
    frequencies. Close it with ``world.platform.close()``."""
    found = build_world(root, cohort=3000, fields=FIELDS)
    eids = found.platform.store.load().participants["eid"].to_numpy()
    rng = np.random.default_rng(2009)
    maf = np.exp(rng.uniform(np.log(0.02), np.log(0.5), M))
    truth = np.where(rng.random(M) < 0.5, maf, 1 - maf)
    g = (rng.random((eids.size, M)) < truth).astype(np.float32) \
        + (rng.random((eids.size, M)) < truth)
    with open_genotypes(write_bed(root / "genotypes" / "array", g,
                                  [str(e) for e in eids])) as source:
        found.platform.genotypes.ingest(source)
    admin = found.sign_in(found.staff[Role.CUSTODIAN_ADMIN])
    projects.set_genotypes(found.ctx, admin, found.project_id, True)
    return found, g, eids, truth
