"""Repeats clash too (docs/explanation/output-check.md, "Repeats clash too"): two figures of
one kind within the pair's line are treated alike at every distance, identical included, so
that whether the check acts never tells "the same people" from "one person apart"; figures of
different kinds over the same people (a summary's n, mean, SD and median) do not clash."""

from __future__ import annotations

import json

import numpy as np
from pyroaring import BitMap

from strongroom.outputs.contributions import Vector, clashes, kind_of
from strongroom.outputs.overlap import COUNT, OTHER, PERCENT, VALUES, acts, close, within_output
from strongroom.outputs.service import Contributors

K = 10
rng = np.random.default_rng(11)
IDS = np.arange(1, 3_001, dtype=np.int64)
SBP = rng.normal(140, 20, IDS.size).round()
EVERYONE = BitMap(IDS.astype(np.uint32))
BUT_ONE = BitMap(IDS[1:].astype(np.uint32))


def test_two_counts_clash_identical_and_one_apart_alike() -> None:
    for other in (EVERYONE, BUT_ONE):
        found = within_output([("u", EVERYONE), ("c", other)], K, [COUNT, COUNT])
        assert [f.cell for f in found] == [1]
        assert "(perhaps none)" in found[0].reason  # the same words either way


def test_a_count_beside_a_statistic_of_values_is_not_compared_by_sets() -> None:
    for other in (EVERYONE, BUT_ONE):
        assert within_output([("n", EVERYONE), ("mean", other)], K, [COUNT, VALUES]) == []
    assert acts(COUNT, COUNT) and acts(PERCENT, PERCENT)
    assert not any(acts(a, b) for a, b in ((COUNT, VALUES), (COUNT, PERCENT), (OTHER, COUNT),
                                           (OTHER, OTHER), (VALUES, VALUES)))


def test_figures_of_two_families_are_not_compared_identical_or_one_apart() -> None:
    # a reference of one family beside a grid of another, shown identical and hidden one
    # apart, gave a BMI in two outputs: every compared pair is judged alike at 0 and 1
    for a, b in ((COUNT, PERCENT), (COUNT, OTHER), (OTHER, OTHER)):
        assert not close(0, K, a, b, "t", EVERYONE, EVERYONE)
        assert not close(1, K, a, b, "t", EVERYONE, BUT_ONE)
    assert close(0, K, PERCENT, PERCENT, "t", EVERYONE, EVERYONE)
    assert close(1, K, PERCENT, PERCENT, "t", EVERYONE, BUT_ONE)
    assert not close(0, K, COUNT, COUNT, "t", BitMap(), BitMap())  # a zero repeats nothing


def test_two_statistics_of_one_kind_clash_identical_and_one_apart_alike() -> None:
    mean = kind_of("mean")
    u = Vector.of("u", IDS, SBP, mean)
    for ids, values in ((IDS, SBP), (IDS[1:], SBP[1:])):
        found = clashes([u, Vector.of("c", ids, values, mean)], [], K, within=True)
        assert [i for i, _, _ in found] == [0]  # the pair is found (the later is hidden)


def test_statistics_of_different_kinds_or_variables_do_not_clash() -> None:
    bmi = rng.normal(27, 5, IDS.size)
    pairs = [(Vector.of("mean", IDS, SBP, kind_of("mean")), Vector.of("sd", IDS, SBP, "sd")),
             (Vector.of("median", IDS, SBP, kind_of("median", 0.5)),
              Vector.of("q75", IDS, SBP, kind_of("quantile", 0.75))),
             (Vector.of("mean sbp", IDS, SBP, kind_of("mean")),
              Vector.of("mean bmi", IDS, bmi, kind_of("mean")))]
    for a, b in pairs:
        assert clashes([a, b], [], K, within=True) == []


def test_quantiles_are_one_kind_by_probability_not_by_name() -> None:
    assert kind_of("median") == kind_of("quantile", 0.5) == kind_of("median", 0.5)
    assert kind_of("quantile", 0.25) != kind_of("quantile", 0.75)
    assert kind_of("sum") == kind_of("mean") == kind_of("count")


def test_a_fit_variable_without_a_kind_clashes_only_when_some_are_left_over() -> None:
    a = Vector.of("ols variable x", IDS, SBP)
    assert clashes([a, Vector.of("ols variable y", IDS, SBP.copy())], [], K, within=True) == []


def test_sealed_groups_keep_which_cells_are_derived_and_older_ones_say_they_do_not_know(
        ) -> None:
    """What release re-checks: the derived cells travel with the sealed groups; groups
    sealed before derived cells were read back as None (the analysis's kind then decides)."""
    held = Contributors(["a", "Total"], [BitMap([1, 2]), BitMap([1, 2, 3])],
                        BitMap([1, 2, 3]), [], b"k", [COUNT, COUNT], [1])
    again = Contributors.from_bytes(held.to_bytes())
    assert again.derived == [1] and again.kinds() == [COUNT, COUNT]
    data = held.to_bytes()
    size = int.from_bytes(data[:4], "big")
    head = json.loads(data[4:4 + size])
    del head["derived"]
    older = json.dumps(head).encode()
    assert Contributors.from_bytes(len(older).to_bytes(4, "big") + older
                                   + data[4 + size:]).derived is None


def test_statistics_with_the_same_contributions_are_kept_once_and_read_back_each() -> None:
    """A variable's mean and SD (and its quantiles) hold the very same contributions: kept
    once, each read back under its own label and kind; groups kept before this was (every
    vector written out) read back as they were."""
    values = SBP.astype(np.float64)
    mean = Vector.of("x mean", IDS, values, "linear")
    sd = Vector(mean.label.replace("mean", "sd"), mean.ids, mean.values, "sd")
    other = Vector.of("y mean", IDS, values + 1.0, "linear")
    held = Contributors(["a"], [BitMap([1, 2])], BitMap([1, 2, 3]), [mean, sd, other], b"k",
                        [COUNT], None)
    data = held.to_bytes()
    head = Contributors.head(data)
    assert head["vector_same"] == [None, 0, None] and head["vector_sizes"][1] == 0
    again = Contributors.from_bytes(data)
    assert [(v.label, v.kind) for v in again.vectors] == [
        ("x mean", "linear"), ("x sd", "sd"), ("y mean", "linear")]
    for read, made in zip(again.vectors, held.vectors, strict=True):
        assert np.array_equal(read.ids, made.ids)
        assert np.array_equal(read.values, made.values)
        assert read.to_bytes() == made.to_bytes()
    # as kept before: each vector written out, no "vector_same"
    packed = [v.to_bytes() for v in held.vectors]
    size = int.from_bytes(data[:4], "big")
    blobs = data[4 + size:4 + size + sum(head["sizes"])]
    del head["vector_same"]
    head["vector_sizes"] = [len(p) for p in packed]
    older = json.dumps(head).encode()
    back = Contributors.from_bytes(len(older).to_bytes(4, "big") + older + blobs
                                   + b"".join(packed))
    assert [np.array_equal(v.values, m.values) for v, m in
            zip(back.vectors, held.vectors, strict=True)] == [True, True, True]
