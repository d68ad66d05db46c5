"""The keyed Tardos code and the carriers: exact Bernoulli symbols, arcsine biases, typed marks."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from strongroom.cohort.crypto import MasterKey
from strongroom.cohort.dictionary import Dictionary
from strongroom.extracts import carriers, codes

MASTER = MasterKey(bytes(range(32)))
N = 200_000


@pytest.fixture(scope="module")
def positions() -> tuple[np.ndarray, np.ndarray]:
    eids = np.arange(1_000_000, 1_000_000 + N, dtype=np.int64)
    return eids, np.full(N, codes.column_tag("p30690_i0"), dtype=np.uint64)


def test_biases_follow_the_arcsine_law_with_cutoff(positions: tuple[np.ndarray, np.ndarray]
                                                   ) -> None:
    p = codes.bias(codes.thresholds(codes.bias_key(MASTER), *positions))
    assert p.min() >= codes.CUTOFF - 1e-9 and p.max() <= 1 - codes.CUTOFF + 1e-9
    low = math.asin(math.sqrt(codes.CUTOFF))

    def cdf(x: np.ndarray) -> np.ndarray:
        return (np.arcsin(np.sqrt(x)) - low) / (math.pi / 2 - 2 * low)

    assert stats.kstest(p, cdf).pvalue > 1e-3
    assert abs(p.mean() - 0.5) < 0.01  # symmetric: marks up and down balance


def test_symbols_are_bernoulli_of_their_bias(positions: tuple[np.ndarray, np.ndarray]) -> None:
    eids, tags = positions
    threshold = codes.thresholds(codes.bias_key(MASTER), eids, tags)
    p = codes.bias(threshold)
    x = codes.symbols(codes.recipient_key(MASTER, "ext_a"), eids, tags, threshold)
    for lo in np.arange(0, 1, 0.1):
        band = (p >= lo) & (p < lo + 0.1)
        expected, n = p[band].mean(), band.sum()
        assert abs(x[band].mean() - expected) < 5 * math.sqrt(expected * (1 - expected) / n)


def test_recipients_get_independent_symbols_and_the_same_ones_again(
        positions: tuple[np.ndarray, np.ndarray]) -> None:
    eids, tags = positions
    threshold = codes.thresholds(codes.bias_key(MASTER), eids, tags)
    p = codes.bias(threshold)
    a = codes.symbols(codes.recipient_key(MASTER, "ext_a"), eids, tags, threshold)
    b = codes.symbols(codes.recipient_key(MASTER, "ext_b"), eids, tags, threshold)
    again = codes.symbols(codes.recipient_key(MASTER, "ext_a"), eids, tags, threshold)
    assert np.array_equal(a, again)
    agree = float(np.mean(a == b))
    expected = float(np.mean(p * p + (1 - p) ** 2))  # independent Bernoulli(p) draws
    assert abs(agree - expected) < 0.005
    other = MasterKey(bytes(range(1, 33)))
    c = codes.symbols(codes.recipient_key(other, "ext_a"), eids, tags, threshold)
    assert abs(float(np.mean(a == c)) - expected) < 0.005


def test_no_short_repeated_string_across_rows_or_columns(
        positions: tuple[np.ndarray, np.ndarray]) -> None:
    eids, tags = positions
    key = codes.recipient_key(MASTER, "ext_a")
    half = np.full(N, codes.SCALE // 2, dtype=np.uint32)  # p = 1/2 isolates the key stream
    x = codes.symbols(key, eids, tags, half)
    for period in (1, 2, 7, 8, 64, 128, 1000):
        assert abs(float(np.mean(x[period:] == x[:-period])) - 0.5) < 0.01
    y = codes.symbols(key, eids, np.full(N, codes.column_tag("p30870_i0"), np.uint64), half)
    assert abs(float(np.mean(x == y)) - 0.5) < 0.01


def test_chunked_encryption_matches_one_pass(monkeypatch: pytest.MonkeyPatch,
                                             positions: tuple[np.ndarray, np.ndarray]) -> None:
    eids, tags = positions[0][:5000], positions[1][:5000]
    whole = codes.prf_u32(b"k" * 32, eids, tags)
    monkeypatch.setattr(codes, "_CHUNK", 777)
    assert np.array_equal(whole, codes.prf_u32(b"k" * 32, eids, tags))


def test_keys_are_distinct_and_named_without_revealing_them() -> None:
    bias, one, two = (codes.bias_key(MASTER), codes.recipient_key(MASTER, "ext_1"),
                      codes.recipient_key(MASTER, "ext_2"))
    assert len({bias, one, two}) == 3
    assert codes.key_id(one) == codes.key_id(codes.recipient_key(MASTER, "ext_1"))
    assert codes.key_id(one).encode() not in one.hex().encode()
    with pytest.raises(ValueError):
        codes.recipient_key(MASTER, "")


# -- carriers ---------------------------------------------------------------------------------

def _frame(n: int = 5000) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    return pl.DataFrame({
        "eid": np.arange(n, dtype=np.int64) + 1_000_000,
        "p31": rng.integers(0, 2, n),
        "p21001_i0": np.round(rng.normal(26, 4, n), 4),
        "p30690_i0": np.round(rng.normal(5.7, 1.2, n), 3),
        "p50_i0": np.round(rng.normal(169, 9.5, n), 1),
        "p189": np.round(rng.normal(-1.3, 3.1, n), 2),
        "p20023_i0": rng.integers(300, 900, n),
    })


def test_only_fine_measurements_carry_marks(dictionary: Dictionary) -> None:
    frame = _frame()
    choice = carriers.choose(frame, dictionary, [c for c in frame.columns if c != "eid"])
    chosen = {c.column: c for c in choice.carriers}
    assert list(chosen) == ["p21001_i0", "p30690_i0", "p50_i0", "p20023_i0"]
    assert chosen["p21001_i0"].density == chosen["p30690_i0"].density == 1.0
    # coarse ones carry sparse marks: f·δ² ≤ 2.5e-6 of the variance, f ≤ 10%
    assert carriers.MIN_DENSITY < chosen["p50_i0"].density < carriers.MAX_DENSITY
    for coarse in (chosen["p50_i0"], chosen["p20023_i0"]):
        assert coarse.density * coarse.amplitude**2 <= carriers.VAR_SHARE * coarse.sd**2 + 1e-12
    assert "quasi_identifier" in choice.skipped["p31"]
    assert "not measurement" in choice.skipped["p189"]
    narrow = frame.with_columns(pl.Series("p20023_i0", np.arange(5000) % 3 + 500))  # SD 0.8
    assert "of its SD" in carriers.choose(narrow, dictionary, ["p20023_i0"]).skipped["p20023_i0"]
    allowed = carriers.choose(frame, dictionary, ["p189"], allow=[189])
    assert [c.column for c in allowed.carriers] == ["p189"]
    coarse = frame.with_columns(pl.col("p30690_i0") + 0.0004)  # off its 3-decimal grid
    assert "grid" in carriers.choose(coarse, dictionary, ["p30690_i0"]).skipped["p30690_i0"]


def test_sparse_marks_move_a_keyed_share_of_cells_and_keep_correlations(
        dictionary: Dictionary) -> None:
    frame = _frame(50_000)
    frame = frame.with_columns((pl.col("p50_i0") * 10 + pl.Series(
        np.random.default_rng(2).integers(-40, 40, 50_000))).cast(pl.Int64).alias("p20023_i0"))
    choice = carriers.choose(frame, dictionary, ["p50_i0", "p20023_i0"])
    assert all(c.density < 1 for c in choice.carriers) and len(choice.carriers) == 2
    bias = codes.bias_key(MASTER)
    out = carriers.fingerprint(frame, choice.carriers, bias, codes.recipient_key(MASTER, "e1"))
    other = carriers.fingerprint(frame, choice.carriers, bias, codes.recipient_key(MASTER, "e2"))
    for carrier in choice.carriers:
        moved = (out[carrier.column] - frame[carrier.column]).cast(pl.Float64).to_numpy()
        assert set(np.round(np.abs(moved) / carrier.amplitude, 6)) <= {0.0, 1.0}
        share = float(np.mean(moved != 0))
        assert abs(share - carrier.density) < 0.01  # a keyed share, all but the range's ends
        differs = (out[carrier.column] != other[carrier.column]).to_numpy()
        assert not (differs & (moved == 0) & ~carrier.chosen(bias, frame["eid"].to_numpy())).any()
        assert abs(float(np.mean(moved))) / carrier.sd < 1e-3
    before = np.corrcoef(frame["p50_i0"].to_numpy(), frame["p20023_i0"].to_numpy())[0, 1]
    after = np.corrcoef(out["p50_i0"].to_numpy(), out["p20023_i0"].cast(pl.Float64).to_numpy())
    assert abs(after[0, 1] - before) < 1e-3 and out["p20023_i0"].dtype == pl.Int64
    restored = carriers.Carrier.from_json(choice.carriers[0].to_json())
    assert restored == choice.carriers[0]
    assert "density" not in carriers.choose(frame, dictionary, ["p30690_i0"]).carriers[0].to_json()


def test_embedding_moves_one_unit_on_the_grid_and_keeps_the_type(dictionary: Dictionary) -> None:
    frame = _frame().with_columns(pl.col("p30690_i0").cast(pl.Float32).alias("f32"))
    carrier = carriers.choose(frame, dictionary, ["p30690_i0"]).carriers[0]
    master = frame["p30690_i0"].to_numpy()
    marked = carrier.markable(master)
    assert not marked[master == master.max()].any() and not marked[master == master.min()].any()
    ones = np.random.default_rng(1).random(int(marked.sum())) < 0.5
    out = carriers.embed(frame["p30690_i0"], carrier, marked, ones)
    assert out.dtype == pl.Float64
    moved = out.to_numpy() - master
    assert np.allclose(moved[marked], np.where(ones, 0.001, -0.001), atol=1e-9)
    assert np.all(moved[~marked] == 0)
    scaled = out.to_numpy() * 1000
    assert np.allclose(scaled, np.rint(scaled), atol=1e-6)  # still on the 3-decimal grid
    assert out.min() >= master.min() and out.max() <= master.max()
    assert carriers.embed(frame["f32"], carrier, marked, ones).dtype == pl.Float32
    with_nulls = frame["p30690_i0"].scatter([0, 1], None)
    kept = carriers.embed(with_nulls, carrier, carrier.markable(
        with_nulls.fill_null(np.nan).to_numpy()), ones[: int(marked.sum()) - 2])
    assert kept.null_count() == 2


def test_integer_carriers_stay_integers(dictionary: Dictionary) -> None:
    frame = pl.DataFrame({"p20023_i0": np.random.default_rng(2).integers(0, 100_000, 2000)})
    choice = carriers.choose(frame, dictionary, ["p20023_i0"])
    (carrier,) = choice.carriers
    marked = carrier.markable(frame["p20023_i0"].cast(pl.Float64).to_numpy())
    out = carriers.embed(frame["p20023_i0"], carrier, marked, np.ones(int(marked.sum()), bool))
    assert out.dtype == pl.Int64
    assert np.all((out.to_numpy() - frame["p20023_i0"].to_numpy())[marked] == 1)


def test_carrier_round_trips_through_json(dictionary: Dictionary) -> None:
    carrier = carriers.choose(_frame(), dictionary, ["p21001_i0"]).carriers[0]
    assert carriers.Carrier.from_json(carrier.to_json()) == carrier
