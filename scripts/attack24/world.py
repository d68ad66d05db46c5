"""A small Strongroom world with real extracts, for the attack scripts (custodian-side truth)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from tests.access_world import World, build_world

from strongroom.access import projects, pseudonyms
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.access.states import ExportStatus
from strongroom.cohort.synth import synthesise
from strongroom.extracts import bands, codes, manifest, service
from strongroom.privacy.gate import GatePolicy


@dataclass
class Made:
    world: World
    root: Path
    project: str
    results: list[service.ExtractResult]

    def copy(self, i: int) -> pl.DataFrame:
        return pl.read_csv(self.results[i].path, infer_schema_length=None)

    def key(self, i: int) -> bytes:
        return codes.recipient_key(self.world.ctx.key, self.results[i].extract_id)

    def banded(self, i: int) -> tuple[bands.Banded, ...]:
        with self.world.ctx.transaction() as db:
            return bands.banded_of(manifest.get(db, self.results[i].extract_id).bands)

    def pseudonyms(self) -> pl.DataFrame:
        with self.world.ctx.transaction() as db:
            project = db.get(Project, self.project)
            assert project is not None
            return pseudonyms.load(self.world.ctx, project)

    def master(self) -> pl.DataFrame:
        return self.world.platform.store.load(["participants"]).participants

    def attribute(self, frame: pl.DataFrame, name: str) -> service.AttributionReport:
        path = self.root / name
        frame.write_csv(path)
        analyst = self.world.sign_in(self.world.member(Role.SECURITY_ANALYST))
        return service.attribute(self.world.ctx, analyst, path, store=self.world.platform.store)


def make(n: int, seed: int, fields: list[int], count: int, *, allow: list[int] | None = None,
         policy: GatePolicy | None = None, withhold: float = 0.02) -> Made:
    root = Path(tempfile.mkdtemp(prefix="attack24-"))
    world = build_world(root)
    world.platform.store.write_version(synthesise(n, seed))
    assert world.researcher is not None
    ctx = world.ctx
    project = projects.create(ctx, None, title="Attack", purpose="Blood lipids by birth cohort and centre",
                              lead_id=world.researcher.person_id,
                              starts_on=world.clock().date(),
                              expires_on=world.clock().date().replace(year=2027),
                              fields=fields).project.id
    with ctx.transaction() as db:
        row = db.get(Project, project)
        assert row is not None
        row.export = ExportStatus.APPROVED
    admin = world.sign_in(world.member(Role.CUSTODIAN_ADMIN))
    results = [service.create_extract(ctx, admin, project, "csv", root / f"x{i}.csv",
                                      store=world.platform.store, watch=world.platform.watch,
                                      allow=allow or [], risk_policy=policy, withhold=withhold)
               for i in range(count)]
    return Made(world, root, project, results)
