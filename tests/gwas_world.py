"""A world for GWAS tests: a platform with a 3,000-participant synthetic cohort whose genotypes
are drawn so that a few variants track BMI (the true hits) and a few are rare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.genomics.formats import open_genotypes
from strongroom.outputs import files, requests
from strongroom.outputs.render import Format
from tests.access_world import World, build_world
from tests.genotype_files import write_bed

FIELDS = [31, 34, 21001, 4080, 2443]
BASE = ("SELECT pid, p31 AS sex, p34 AS birth_year, p21001_i0 AS bmi, p4080_i0_a0 AS sbp, "
        "CASE WHEN p2443_i0 = 1 THEN 1 ELSE 0 END AS diabetes "
        "FROM participants WHERE p21001_i0 IS NOT NULL")
M, HITS, RARE = 300, (10, 50, 120), (200, 201, 202)


def build_gwas_world(root: Path, engine: dict[str, Any] | None = None) -> World:
    """Close it with ``world.platform.close()``; ``engine`` as for :func:`build_world`."""
    found = build_world(root, cohort=3000, fields=FIELDS, engine=engine)
    people = found.platform.store.load().participants
    eid = people["eid"].to_numpy()
    bmi = people["p21001_i0"].fill_null(strategy="mean").to_numpy()
    rng = np.random.default_rng(11)
    freq = rng.uniform(0.1, 0.5, M)
    z = (bmi - bmi.mean()) / bmi.std()
    g = np.empty((eid.size, M), dtype=np.float32)
    for j in range(M):
        p = np.full(eid.size, freq[j])
        if j in HITS:  # the allele is commoner the higher the BMI: a true association
            p = 1 / (1 + np.exp(-(np.log(freq[j] / (1 - freq[j])) + 0.6 * z)))
        g[:, j] = rng.binomial(2, p)
    for j in RARE:  # three carriers each
        g[:, j] = 0
        g[rng.choice(eid.size, 3, replace=False), j] = 1
    bed = write_bed(root / "genotypes" / "array", g, [str(e) for e in eid])
    with open_genotypes(bed) as source:
        found.platform.genotypes.ingest(source)
    return found


def gwas(world: World, who: Principal, fmt: str = "json", **spec: object
         ) -> requests.OutputView:
    request = {"kind": "gwas", "definition": "base", "traits": ["bmi"],
               "covariates": ["sex", "birth_year"], "categorical": ["sex"],
               "principal_components": 0, **spec}
    return world.platform.outputs.analyse(who, world.project_id, request, Format(fmt))


def granted(world: World) -> None:
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    if not projects.read(world.ctx, admin, world.project_id).genotypes:
        projects.set_genotypes(world.ctx, admin, world.project_id, True)


def stored(world: World, view: requests.OutputView) -> bytes:
    """The output's bytes as kept (custodian-side: a blocked output is never downloaded)."""
    with world.ctx.transaction() as db:
        project = db.get(Project, view.output.project_id)
        assert project is not None
        return files.load(world.ctx, project, view.output.sha256)


