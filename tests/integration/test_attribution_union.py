"""The union of three colluders' copies, deduplicated as a leaker would (issue 57).

Three recipients pool their copies and keep one row per participant: the *union* of their
rows. Every participant withheld from one colluder is then in the file (from another's copy),
so the membership test sees each colluder's withheld 2% at the null rate and gives nothing.
What names each colluder is the marks in the values of the rows that came from its copy.

The world is ``test_attribution_repaired``'s (2,000 synthetic participants, five extracts of
two projects: A holds three, B two). Ground truth is read custodian-side: each copy's
pseudonyms mapped back to the cohort's eids, so the union is deduplicated exactly, as the
best-informed leaker would (within one project the pseudonyms are shared, so any leaker can;
across projects this needs the values). IDs are dropped, columns kept as released, rows
shuffled, 2,000 kept (decoys, each with its own pseudonym, stay as rows: a leaker cannot tell
them). Two ways of keeping one row per participant:

- **random**: the copies are shuffled together before ``unique(keep="first")``: each row
  comes from a colluder chosen at random among those holding it;
- **in order**: ``pl.concat([a, b, c]).unique(keep="first")`` in the colluders' order, as
  ``drop_duplicates`` does: almost every row is the first colluder's, the second's fill its
  withheld 2%, and the third's only those withheld from both (about 1 row in 2,500).

Measured (2026-11-27, one run each; ln of each colluder's own p-value by kind; naming needs
the system-wide bound ≤ ln 10⁻⁹ = −20.7 after the union of about ln 6):

| gang, dedup | rows #0/#1/#2 | linked | values alone | membership | residual | named |
|---|---|---|---|---|---|---|
| A, random | 665/666/669 | −394/−455/−404 | −364/−438/−372 | −1.2/0/−0.8 | — | 3 |
| A+B, random | 692/644/664 | −433/−393/−439 | −389/−358/−434 | −1.4/0/−0.7 | — | 3 |
| A, in order | 1,887/73/40 | −5,034/−1.4/0 | −4,692/−0.1/0 | −1.6/0/−0.7 | —/−103/0 | #0, #1 |
| A+B, in order | 1,887/73/40 | −5,034/−1/−1 | −4,698/0/−0.5 | −1.6/0/−1 | —/−103/−0.4 | #0, #1 |

("linked": the fingerprint read on linked rows; A: three extracts of one project, A+B:
two of A and one of B.)
(#1's and #2's rows include their decoys, about 40 each: a deduplication cannot merge them;
their evidence, −8 … −17, is model-based and weighed at 0.1.) Innocents' least ln P −0.7 …
−2.1 over every kind. In order, #2's copy gave the file about one real row: nothing of it but
its decoys is there to name it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from strongroom.access import pseudonyms
from strongroom.access.models import Project
from strongroom.cohort.model import EID
from strongroom.extracts import accuse, manifest, service
from tests.innocence import INNOCENT
from tests.integration.test_attribution_repaired import N, Repaired, repaired

__all__ = ["repaired"]  # the module's world, built once here too


def _true_eids(world: Repaired, extract_id: str) -> np.ndarray:
    """Custodian-side: the cohort eid of each row of the copy (−1: a decoy)."""
    ctx = world.world.ctx
    with ctx.transaction() as db:
        record = manifest.get(db, extract_id)
        project = db.get(Project, record.project_id)
        assert project is not None
        table = pseudonyms.load(ctx, project)
    pids = world.copies[extract_id][EID].cast(pl.Int64)
    found = pl.DataFrame({"pid": pids}).join(table, on="pid", how="left")
    return found["eid"].fill_null(-1).to_numpy()


def union(world: Repaired, gang: Sequence[str], how: str, seed: int) -> pl.DataFrame:
    """The gang's copies pooled, one row per participant, IDs dropped, shuffled, N kept."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, e in enumerate(gang):
        copy = world.copies[e]
        truth = _true_eids(world, e)
        decoy = truth < 0  # a decoy's row is its own: keyed by its copy and pseudonym
        key = np.where(decoy, -(i + 1) * 10**9 - copy[EID].cast(pl.Int64).to_numpy(), truth)
        parts.append(copy.drop(EID).with_columns(pl.Series("_who", key),
                                                 pl.lit(i).alias("_from")))
    pooled = pl.concat(parts, how="vertical_relaxed")
    if how == "random":
        pooled = pooled[rng.permutation(pooled.height)]
    kept = pooled.unique("_who", keep="first", maintain_order=True)
    kept = kept[rng.permutation(kept.height)[:N]]
    return kept


def _report(world: Repaired, leak: pl.DataFrame, name: str
            ) -> tuple[service.AttributionReport, dict[int, int]]:
    rows = dict(zip(*np.unique(leak["_from"].to_numpy(), return_counts=True), strict=True))
    report = world.attribute(leak.drop("_who", "_from"), name)
    return report, {int(k): int(v) for k, v in rows.items()}


def _show(report: service.AttributionReport, gang: Sequence[str], rows: dict[int, int],
          label: str) -> None:
    by = {s.extract_id: s for s in report.scores}
    innocent = min((s.log_p for e, s in by.items() if e not in gang), default=0.0)
    parts = []
    for i, e in enumerate(gang):
        s = by.get(e)
        kinds = dict(zip(accuse.ALL_KINDS, s.kind_log_p, strict=True)) if s else {}
        parts.append(f"#{i} rows {rows.get(i, 0)} bound {s.log_bound if s else 0:.1f} "
                     + " ".join(f"{k} {v:.1f}" for k, v in kinds.items()))
    named = sorted(str(gang.index(a.extract_id)) if a.extract_id in gang else a.extract_id
                   for a in report.accused)
    print(f"\n{label}: linked {report.rows_linked}, named {named}; "
          f"least innocent ln P {innocent:.1f}\n  " + "\n  ".join(parts))


@pytest.mark.parametrize("how", ["random", "in order"])
@pytest.mark.parametrize("projects", ["one project", "two projects"])
def test_union_of_three_copies(repaired: Repaired, how: str, projects: str) -> None:
    a = [repaired.leaker, repaired.second, repaired.innocents[0]]  # project A's three
    gang = a if projects == "one project" else [a[0], a[1], repaired.innocents[-1]]
    leak = union(repaired, gang, how, 11)
    report, rows = _report(repaired, leak, f"union-{how}-{projects}.csv".replace(" ", "-"))
    _show(report, gang, rows, f"{projects}, {how}")
    named = {a.extract_id for a in report.accused}
    assert named <= set(gang)
    # every colluder whose copy gave the file a share of its rows is named
    assert named == (set(gang) if how == "random" else set(gang[:2]))
    by = {s.extract_id: s for s in report.scores}
    assert min((s.log_p for e, s in by.items() if e not in gang), default=0.0) > INNOCENT
