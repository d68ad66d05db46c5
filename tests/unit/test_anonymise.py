"""Anonymisation: the search finds the brute-force optimum, the output meets its targets,
only quasi-identifiers change, and the extract gate lets through, anonymises or refuses."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.synth import synthesise
from strongroom.errors import Invalid, Refused
from strongroom.privacy import anonymise as anon
from strongroom.privacy import gate
from strongroom.privacy import hierarchies as h
from strongroom.privacy.risk import assess


def _table(seed: int, rows: int = 60) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "age": rng.integers(20, 60, rows),
        "sex": rng.choice(["F", "M"], rows),
        "job": rng.choice(["a", "b", "c", "d"], rows, p=[0.5, 0.3, 0.15, 0.05]),
        "pay": rng.integers(0, 5, rows),
        "disease": rng.choice(["x", "y", "z"], rows),
    })


def _tree(frame: pl.DataFrame) -> h.Hierarchies:
    jobs = h.Hierarchy.from_table("job", [["a", "ab", "*"], ["b", "ab", "*"],
                                          ["c", "cd", "*"], ["d", "cd", "*"]])
    by_column = {"age": h.numeric_bands("age", frame["age"], integer=True),
                 "sex": h.categories("sex"), "job": jobs}
    return h.Hierarchies(by_column, {c: [c] for c in by_column})


def _reference(frame: pl.DataFrame, tree: h.Hierarchies, levels: Sequence[int], k: int,
               limit: float) -> float | None:
    """Loss of one transformation computed the slow, obvious way; None if not acceptable."""
    columns = tree.attributes()
    generalised = [tree.by_column[c].apply(frame[c], lv).cast(pl.String).to_list()
                   for c, lv in zip(columns, levels, strict=True)]
    keys = list(zip(*generalised, strict=True))
    sizes = Counter(keys)
    suppressed = {key for key, n in sizes.items() if n < k}
    count = sum(sizes[key] for key in suppressed)
    if count > int(limit * frame.height + 1e-12):
        return None
    if 0 < count < k:  # the suppressed records are a class too: take the smallest others
        for key, n in sorted(((key, n) for key, n in sizes.items() if key not in suppressed),
                             key=lambda kv: kv[1]):
            suppressed.add(key)
            count += n
            if count >= k:
                break
        if count > int(limit * frame.height + 1e-12):
            return None
    total = 0.0
    for c, labels in zip(columns, generalised, strict=True):
        raw = frame[c].cast(pl.String).to_list()
        distinct = len(set(raw))
        merged: dict[str, set[str]] = {}
        for value, label in zip(raw, labels, strict=True):
            merged.setdefault(label, set()).add(value)
        for key, label in zip(keys, labels, strict=True):
            if key in suppressed:
                total += 1
            elif distinct > 1:
                total += (len(merged[label]) - 1) / (distinct - 1)
    return total / (frame.height * len(columns))


@pytest.mark.parametrize(("seed", "k", "limit"), [(1, 2, 0.0), (2, 3, 0.05), (3, 2, 0.1),
                                                  (4, 4, 0.02), (5, 3, 0.0), (6, 5, 0.2)])
def test_the_search_finds_the_brute_force_optimum(seed: int, k: int, limit: float) -> None:
    frame = _table(seed)
    tree = _tree(frame)
    solution, _ = anon.search(frame, tree, anon.Targets(k=k, suppression_limit=limit))
    heights = [tree.by_column[c].height for c in tree.attributes()]
    losses = [loss for levels in itertools.product(*map(range, heights))
              if (loss := _reference(frame, tree, levels, k, limit)) is not None]
    assert solution.optimal
    assert solution.loss == pytest.approx(min(losses), abs=1e-12)
    chosen = [solution.levels[c] for c in tree.attributes()]
    assert _reference(frame, tree, chosen, k, limit) == pytest.approx(solution.loss, abs=1e-12)
    assert solution.evaluated <= solution.lattice


def test_the_output_meets_k_and_only_quasi_identifiers_change() -> None:
    frame = _table(7, rows=200)
    done = anon.anonymise(frame, _tree(frame), anon.Targets(k=5, suppression_limit=0.05))
    after = assess(done.frame, ["age", "sex", "job"])
    assert after.k >= 5
    assert done.frame["pay"].equals(frame["pay"]) and done.frame["disease"].equals(
        frame["disease"])
    assert done.solution.suppressed == int(done.suppressed_rows.sum()) <= 10
    blank = done.frame.filter(pl.Series(done.suppressed_rows))
    assert blank.select(["age", "sex", "job"]).null_count().row(0) == (blank.height,) * 3
    assert json.loads(json.dumps(done.solution.to_json()))["search"] == "exact"


def test_l_diversity_and_t_closeness_targets_are_met() -> None:
    frame = _table(8, rows=300)
    targets = anon.Targets(k=3, l=2, t=0.3, suppression_limit=0.05, sensitive=("disease",))
    done = anon.anonymise(frame, _tree(frame), targets)
    after = assess(done.frame, ["age", "sex", "job"], ["disease"])
    assert after.k >= 3
    assert after.diversity[0].l_distinct >= 2
    assert after.diversity[0].t_closeness <= 0.3 + 1e-12
    ordered = anon.Targets(k=3, t=0.2, sensitive=("pay",), ordered=frozenset({"pay"}))
    done = anon.anonymise(frame, _tree(frame), ordered)
    assert assess(done.frame, ["age", "sex", "job"], ["pay"],
                  ordered={"pay"}).diversity[0].t_closeness <= 0.2 + 1e-12


def test_suppressed_records_are_padded_to_k() -> None:
    frame = pl.DataFrame({"q": ["a"] * 5 + ["b"] * 3 + ["c"], "s": list(range(9))})
    tree = h.Hierarchies({"q": h.categories("q")}, {"q": ["q"]})
    solution, rows = anon.search(frame, tree, anon.Targets(k=3, suppression_limit=0.5))
    assert solution.levels == {"q": 0}
    assert rows.tolist() == [False] * 5 + [True] * 4  # "c" alone is 1 < 3: "b" joins it
    assert assess(anon.suppress(frame, ["q"], rows), ["q"]).k == 4


def test_impossible_targets_are_refused_with_reasons() -> None:
    frame = _table(9, rows=4)
    with pytest.raises(Refused) as refused:
        anon.search(frame, _tree(frame), anon.Targets(k=5))
    assert any("fewer than k=5" in r for r in refused.value.reasons)
    assert any("to go on" in r for r in refused.value.reasons)
    frame = _table(9, rows=100)
    with pytest.raises(Refused, match="l=4"):
        anon.search(frame, _tree(frame), anon.Targets(k=2, l=4, sensitive=("disease",)))
    with pytest.raises(Invalid, match="sensitive attribute"):
        anon.search(frame, _tree(frame), anon.Targets(k=2, l=2))
    with pytest.raises(Invalid, match="between 0 and 1"):
        anon.search(frame, _tree(frame), anon.Targets(k=2, suppression_limit=2))


def test_a_lattice_too_large_for_the_exact_search_is_searched_greedily(
        monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _table(10, rows=300)
    monkeypatch.setattr(anon, "EXACT_LIMIT", 1)
    done = anon.anonymise(frame, _tree(frame), anon.Targets(k=5, suppression_limit=0.02))
    assert not done.solution.optimal and done.solution.to_json()["search"] == "greedy"
    assert assess(done.frame, ["age", "sex", "job"]).k >= 5
    assert done.solution.suppressed_share <= 0.02


def test_row_order_does_not_change_the_solution() -> None:
    frame = _table(11, rows=250)
    first, rows = anon.search(frame, _tree(frame), anon.Targets(k=4, suppression_limit=0.03))
    order = np.random.default_rng(0).permutation(frame.height)
    second, shuffled_rows = anon.search(frame[order], _tree(frame[order]),
                                        anon.Targets(k=4, suppression_limit=0.03))
    assert (first.levels, first.suppressed, first.loss) == (second.levels, second.suppressed,
                                                            second.loss)
    assert shuffled_rows.tolist() == rows[order].tolist()


# -- the extract gate --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def candidate() -> pl.DataFrame:
    people = synthesise(2000, 31).participants
    return people.select(["eid", "p31", "p34", "p52", "p54_i0", "p21001_i0", "p30690_i0"]
                         ).with_columns(pl.col("eid").cast(pl.Int64))


def test_the_gate_lets_through_what_meets_k(candidate: pl.DataFrame,
                                            dictionary: Dictionary) -> None:
    decision = gate.check(candidate, dictionary, ["p31", "p21001_i0"], gate.GatePolicy(k=5))
    assert decision.quasi_identifiers == ["p31"]
    assert decision.before is not None and decision.before.k > 500
    assert decision.action == "none: the targets are met" and decision.solution is None
    assert decision.release(candidate).equals(candidate)
    assert decision.generalise(candidate).equals(candidate)
    none = gate.check(candidate, dictionary, ["p21001_i0"])
    assert none.action == "none: no quasi-identifier columns"
    assert none.enforce(candidate).equals(candidate)


def test_the_gate_anonymises_quasi_identifiers_only(candidate: pl.DataFrame,
                                                   dictionary: Dictionary) -> None:
    columns = ["p31", "p34", "p52", "p54_i0", "p21001_i0", "p30690_i0"]
    decision = gate.check(candidate, dictionary, columns, gate.GatePolicy(k=5))
    assert decision.before is not None and decision.before.k < 5
    assert decision.action == "anonymised" and decision.solution is not None
    released = decision.release(candidate)
    assert assess(released, decision.quasi_identifiers).k >= 5
    for measurement in ("eid", "p21001_i0", "p30690_i0"):
        assert released[measurement].equals(candidate[measurement])
    summary = json.dumps(decision.summary())
    assert '"action": "anonymised"' in summary and "generalisation" in summary
    assert "11010" not in summary and "Leeds" not in summary  # no values, only levels
    decoys = candidate.head(30).with_columns(pl.col("eid") + 10**9)
    finished = decision.enforce(pl.concat([released, decision.generalise(decoys).cast(
        released.schema)]))
    assert finished.height == candidate.height + 30
    assert assess(finished, decision.quasi_identifiers).k >= 5
    assert decision.final is not None and decision.final.k >= 5
    assert decision.summary()["file"]["k"] == decision.final.k


def test_fingerprint_carriers_are_never_generalised(candidate: pl.DataFrame,
                                                    dictionary: Dictionary) -> None:
    columns = ["p31", "p34", "p52", "p54_i0"]
    decision = gate.check(candidate, dictionary, columns, gate.GatePolicy(k=5),
                          fixed=["p34"])
    assert decision.solution is not None
    assert decision.solution.level_names["p34"] == "value"
    released = decision.release(candidate)
    kept = ~pl.Series(np.isin(candidate["eid"].to_numpy(), decision.suppressed_ids))
    assert released["p34"].filter(kept).equals(candidate["p34"].filter(kept))


def test_the_gate_refuses_what_cannot_be_met(candidate: pl.DataFrame,
                                            dictionary: Dictionary) -> None:
    few = candidate.head(3)
    with pytest.raises(Refused) as refused:
        gate.check(few, dictionary, ["p31", "p34"], gate.GatePolicy(k=5))
    assert "quasi-identifiers (p31, p34)" in refused.value.reasons[0]
    assert any("to go on" in r for r in refused.value.reasons)


def test_enforce_k_pads_a_small_blank_class() -> None:
    frame = pl.DataFrame({"q": ["a"] * 6 + ["b"] * 5 + ["c"], "v": list(range(12))})
    out, blanked = gate.enforce_k(frame, ["q"], 3)
    assert blanked.sum() == 6 and assess(out, ["q"]).k >= 3  # "c" and all of "b"
