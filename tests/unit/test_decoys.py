"""Decoy participants: plausible, ordinary, unique to a recipient, and found again by value."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.synth.generator import synthesise
from strongroom.errors import Invalid
from strongroom.extracts import decoys as decoy_module
from strongroom.extracts.decoys import (
    MIN_DECOYS,
    RARE_SHARE,
    DecoyRegistry,
    Decoys,
    DecoySet,
    distinguishability,
    find_decoys,
    make_decoys,
)
from strongroom.extracts.linkage import column_specs, link
from strongroom.extracts.tables import read_suspect
from tests.unit.test_linkage import COLUMNS, MEASURES, TRUTH, disguise, released, units

WIDE = [*COLUMNS, "p21000_i0", "p20116_i0", "p2443_i0", "p6150_i0_a0", "p189", "p53_i0",
        "p3062_i0_a0", "p4080_i0_a0", "p20002_i0_a0"]


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return shipped_dictionary()


@pytest.fixture(scope="module")
def master() -> pl.DataFrame:
    return synthesise(3000, 21).participants.select(["eid", *COLUMNS])


@pytest.fixture(scope="module")
def registry(master, dictionary) -> DecoyRegistry:
    made = DecoyRegistry()
    taken = master["eid"].to_numpy()
    for i in range(3):
        decoys = make_decoys(master, dictionary, seed=100 + i, taken=taken)
        taken = np.concatenate([taken, decoys.rows["eid"].to_numpy()])
        made.add(f"ext-{i}", decoys)
    return made


def with_decoys(copy: pl.DataFrame, registry: DecoyRegistry, extract_id: str) -> pl.DataFrame:
    """A released file: the recipient's copy and its decoys (truth −2 marks a decoy)."""
    rows = registry.rows(extract_id).rename({"eid": "pid"})
    rows = rows.with_columns(pl.lit(-2, pl.Int64).alias(TRUTH)).select(copy.columns)
    return pl.concat([copy, rows.cast(copy.schema)])


def found_in(hits: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for extract_id, _ in hits:
        counts[extract_id] = counts.get(extract_id, 0) + 1
    return counts


# -- making ------------------------------------------------------------------------------------


def test_decoys_have_the_extracts_shape_and_fresh_pseudonyms(master, registry):
    first, second = registry.rows("ext-0"), registry.rows("ext-1")
    assert first.height == MIN_DECOYS
    assert first.schema == master.schema
    pids = first["eid"].to_numpy()
    assert np.all((pids >= 1_000_000) & (pids < 10_000_000))
    assert np.unique(pids).size == pids.size
    assert not np.isin(pids, master["eid"].to_numpy()).any()
    assert not np.isin(second["eid"].to_numpy(), pids).any()  # other extracts' taken ones
    values = first.drop("eid")
    assert values.join(master.drop("eid"), on=values.columns, how="semi").height == 0
    assert values.join(second.drop("eid"), on=values.columns, how="semi").height == 0


def test_decoys_hold_no_rare_codes_or_extreme_values(dictionary):
    real = synthesise(3000, 22).participants.select(["eid", *WIDE])
    decoys = make_decoys(real, dictionary, count=600, seed=3).rows
    specs = column_specs(WIDE, dictionary)
    numeric = [c for c, s in specs.items() if s.kind == "number"]
    tail = min(decoy_module.TAIL_SHARE, decoy_module.TAIL_BUDGET / len(numeric)) / 2
    for name, spec in specs.items():
        if spec.kind == "code":
            shares = real[name].drop_nulls().value_counts(normalize=True)
            rare = shares.filter(pl.col("proportion") < RARE_SHARE)[name]
            assert not decoys[name].is_in(rare.implode()).any(), name
        elif spec.kind == "number":
            low, high = np.quantile(real[name].drop_nulls().to_numpy(), [tail, 1 - tail])
            v = decoys[name].drop_nulls().to_numpy()
            assert v.min() >= low and v.max() <= high, name


def test_too_few_decoys_are_refused(master, dictionary):
    with pytest.raises(Invalid, match="at least 44"):
        make_decoys(master, dictionary, count=10)


def test_a_seed_is_secret_and_fresh_by_default(master, dictionary):
    a = make_decoys(master, dictionary).rows.drop("eid")
    b = make_decoys(master, dictionary).rows.drop("eid")
    assert not a.equals(b)


# -- plausibility ------------------------------------------------------------------------------


def test_classifiers_cannot_tell_decoys_from_real_rows(dictionary):
    real = synthesise(3000, 23).participants.select(["eid", *WIDE])
    decoys = make_decoys(real, dictionary, count=3000, seed=4).rows
    specs = column_specs(WIDE, dictionary)
    assert distinguishability(real, decoys, specs, seed=1) <= 0.55


def test_the_classifiers_see_a_real_difference(dictionary):
    real = synthesise(3000, 24).participants.select(["eid", *COLUMNS])
    other = synthesise(3000, 25).participants.select(["eid", *COLUMNS])
    shifted = other.with_columns(pl.col("p30690_i0") + 0.35)  # a third of an SD
    specs = column_specs(COLUMNS, dictionary)
    assert distinguishability(real, shifted, specs) > 0.55


def test_decoys_are_refused_when_the_generator_does_not_fit(dictionary):
    real = synthesise(3000, 26).participants.select(["eid", *COLUMNS])
    unlike = real.with_columns(pl.col("p30690_i0") * 1.3, pl.col("p21002_i0") * 1.2)
    with pytest.raises(Invalid, match="too easy to tell"):
        make_decoys(unlike, dictionary, seed=5)


# -- keeping -----------------------------------------------------------------------------------


def test_registry_round_trips_through_bytes(registry):
    again = DecoyRegistry.from_bytes(registry.to_bytes())
    assert again.extract_ids == registry.extract_ids
    for extract_id in registry.extract_ids:
        assert again.rows(extract_id).equals(registry.rows(extract_id))
        assert again.sets[extract_id].specs == registry.sets[extract_id].specs
    one = registry.sets["ext-0"]
    assert DecoySet.from_bytes(one.to_bytes()).rows.equals(one.rows)
    made = Decoys(one.rows, one.specs)
    assert DecoySet.from_bytes(made.registry).rows.equals(one.rows)


@pytest.mark.parametrize("damage", [lambda b: b[:-40], lambda b: b"XX" + b[2:], lambda b: b""])
def test_damaged_registries_are_refused(registry, damage):
    with pytest.raises(Invalid):
        DecoyRegistry.from_bytes(damage(registry.to_bytes()))
    with pytest.raises(Invalid):
        DecoySet.from_bytes(damage(registry.sets["ext-0"].to_bytes()))


# -- finding -----------------------------------------------------------------------------------


def attacked(copy: pl.DataFrame, dictionary: Dictionary, attack: str, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    unit = units(dictionary)
    if attack == "rounded":
        return copy.with_columns(((pl.col(c) / (unit[c] * 10)).round(0) * unit[c] * 10)
                                 for c in MEASURES)
    if attack == "noise":
        return copy.with_columns(pl.col(c) + pl.Series(rng.normal(0, 10 * unit[c], copy.height))
                                 for c in MEASURES)
    if attack == "five columns":
        return copy.select("p31", "p50_i0", "p21001_i0", "p30690_i0", "p30740_i0", TRUTH)
    if attack == "tenth":
        return copy.sample(fraction=0.1, seed=seed)
    return copy


@pytest.mark.parametrize("attack", ["none", "rounded", "noise", "five columns"])
def test_decoys_are_found_by_value(master, dictionary, registry, attack):
    copy = attacked(with_decoys(released(master, dictionary, 70), registry, "ext-1"),
                    dictionary, attack, 71)
    suspect = disguise(copy, 72).drop(TRUTH)
    linked = link(suspect, master, dictionary)
    hits = find_decoys(suspect, registry, linked=linked)
    assert found_in(hits) == {"ext-1": MIN_DECOYS}
    assert {pid for _, pid in hits} == {str(p) for p in registry.rows("ext-1")["eid"]}
    if attack in ("none", "rounded"):  # without the cohort's help: no noise allowance
        assert found_in(find_decoys(suspect, registry)) == {"ext-1": MIN_DECOYS}


def test_mixed_and_padded_files_name_each_sources_decoys(master, dictionary, registry):
    ours = with_decoys(released(master, dictionary, 73), registry, "ext-0")
    theirs = with_decoys(released(master, dictionary, 74), registry, "ext-2")
    strangers = released(synthesise(3000, 75).participants.select(["eid", *COLUMNS]),
                         dictionary, 76).with_columns(pl.lit(-1, pl.Int64).alias(TRUTH))
    mixed = pl.concat([ours.sample(fraction=0.5, seed=1), theirs.sample(fraction=0.5, seed=2),
                       strangers])
    suspect = disguise(mixed, 77).drop(TRUTH)
    hits = find_decoys(suspect, registry, linked=link(suspect, master, dictionary))
    expected = {"ext-0": int((ours.sample(fraction=0.5, seed=1)[TRUTH] == -2).sum()),
                "ext-2": int((theirs.sample(fraction=0.5, seed=2)[TRUTH] == -2).sum())}
    assert found_in(hits) == expected


def test_a_tenth_of_the_file_still_holds_a_decoy(master, dictionary, registry):
    copy = attacked(with_decoys(released(master, dictionary, 78), registry, "ext-1"),
                    dictionary, "tenth", 79)
    suspect = disguise(copy, 80).drop(TRUTH)
    hits = find_decoys(suspect, registry, linked=link(suspect, master, dictionary))
    assert found_in(hits) == {"ext-1": int((copy[TRUTH] == -2).sum())}
    assert (copy[TRUTH] == -2).sum() >= 1  # 1 − 0.9⁴⁴: true for 99% of seeds, and this one


def test_decoys_survive_a_csv_round_trip(master, dictionary, registry, tmp_path):
    copy = with_decoys(released(master, dictionary, 81), registry, "ext-2")
    path = tmp_path / "leak.csv"
    disguise(copy, 82).drop(TRUTH).with_columns(pl.all().cast(pl.String)).write_csv(path)
    suspect = read_suspect(path)
    hits = find_decoys(suspect, registry, linked=link(suspect, master, dictionary))
    assert found_in(hits) == {"ext-2": MIN_DECOYS}


def test_no_decoys_no_hits(master, dictionary, registry):
    suspect = disguise(released(master, dictionary, 83), 84).drop(TRUTH)
    assert find_decoys(suspect, registry, linked=link(suspect, master, dictionary)) == []
    assert find_decoys(suspect, registry) == []
    assert find_decoys(suspect, {}) == []


def test_registry_bytes_by_extract_are_accepted(master, dictionary, registry):
    copy = with_decoys(released(master, dictionary, 85), registry, "ext-0")
    suspect = disguise(copy, 86).drop(TRUTH)
    sealed = {e: registry.sets[e].to_bytes() for e in registry.extract_ids}
    assert found_in(find_decoys(suspect, sealed)) == {"ext-0": MIN_DECOYS}
