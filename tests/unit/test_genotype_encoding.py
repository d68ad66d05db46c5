"""Genotype chunks as they are sealed: packed losslessly, refused when they are not a chunk,
and the imputation quality worked out at ingest."""

from __future__ import annotations

import numpy as np
import pytest

from strongroom.genomics import encoding
from strongroom.genomics.store import mach_r2


@pytest.mark.parametrize("n", [1, 3, 4, 5, 101])
def test_hard_calls_round_trip_for_any_number_of_samples(n: int) -> None:
    rng = np.random.default_rng(n)
    calls = rng.integers(0, 3, (n, 9)).astype(np.float32)
    calls[rng.random(calls.shape) < 0.1] = np.nan
    packed = encoding.encode(calls)
    assert len(packed) < 16 + 9 * (n // 4 + 1) + 1  # two bits a call
    assert np.array_equal(encoding.decode(packed), calls, equal_nan=True)
    rows = np.arange(n)[::-2].copy()
    assert np.array_equal(encoding.decode(packed, rows), calls[rows], equal_nan=True)


@pytest.mark.parametrize("at_once", [1, 26, 52, 1 << 20])
def test_hard_calls_decode_alike_however_many_variants_at_once(
        at_once: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk is decoded a slice of variants at a time (``_DECODE_BYTES`` packed bytes: the
    lookup's indices are eight times that): one variant, two, some, or all at once."""
    rng = np.random.default_rng(7)
    calls = rng.integers(0, 3, (101, 9)).astype(np.float32)
    calls[rng.random(calls.shape) < 0.1] = np.nan
    monkeypatch.setattr(encoding, "_DECODE_BYTES", at_once)  # 26 packed bytes a variant
    assert np.array_equal(encoding.decode(encoding.encode(calls)), calls, equal_nan=True)


def test_dosages_are_kept_to_sixteen_bits() -> None:
    rng = np.random.default_rng(0)
    dosages = rng.uniform(0, 2, (50, 7)).astype(np.float32)
    back = encoding.decode(encoding.encode(dosages))
    assert np.max(np.abs(back - dosages)) <= 1 / 32767


@pytest.mark.parametrize("bad", [np.full((3, 2), 2.5, np.float32), np.full((3, 2), -1, np.float32),
                                 np.zeros(4, np.float32)])
def test_values_that_are_not_dosages_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(encoding.ChunkError):
        encoding.encode(bad)


def test_a_chunk_that_is_not_whole_is_refused() -> None:
    packed = encoding.encode(np.ones((10, 3), np.float32))
    for broken in (packed[:-1], packed[:5], b"XXXXX" + packed[5:]):
        with pytest.raises(encoding.ChunkError):
            encoding.decode(broken)


def test_imputation_quality_is_the_mach_r2_and_one_for_hard_calls() -> None:
    certain = np.array([0, 1, 2, 1, 0, 2], np.float64)
    vague = np.full(6, 2 * certain.mean() / 2, np.float64)  # everyone at the mean: no information
    columns = np.stack([certain, vague, certain], axis=1)
    called = np.full(3, 6)
    freq = columns.sum(axis=0) / 12
    info = mach_r2(columns.sum(axis=0), np.square(columns).sum(axis=0), called, freq,
                 np.array([True, True, False]))
    expected = certain.var() / (2 * freq[0] * (1 - freq[0]))
    assert info[0] == pytest.approx(min(1.0, expected))
    assert info[1] == pytest.approx(0.0)
    assert info[2] == 1.0


@pytest.mark.parametrize(("n", "imputed", "missing"), [
    (1, 0.0, 0.0), (5, 0.0, 0.2), (101, 0.0, 0.1), (103, 0.3, 0.1), (50, 1.0, 0.0),
    (7, 0.0, 1.0)])
def test_a_chunks_sums_are_its_dosages_sums(n: int, imputed: float, missing: float) -> None:
    """The store keeps each variant's ALT sum, sum of squares, calls and whether it is imputed
    from ``pack``; hard calls are counted from the packed bytes, dosages summed: either way the
    figures of the dosages themselves, missing calls left out."""
    rng = np.random.default_rng(n)
    dosages = rng.integers(0, 3, (n, 6)).astype(np.float32)
    fractional = rng.random(dosages.shape) < imputed
    dosages[fractional] = rng.uniform(0, 2, int(fractional.sum())).astype(np.float32)
    dosages[rng.random(dosages.shape) < missing] = np.nan
    part = encoding.pack(4, np.asfortranarray(dosages))
    called = ~np.isnan(dosages)
    assert (part.first, part.count) == (4, 6)
    values = np.where(called, dosages, 0).astype(np.float64)
    exact = 0 if imputed == 0 else 1e-12  # hard calls are counted: exact
    np.testing.assert_allclose(part.alt_sum, values.sum(axis=0), rtol=exact, atol=0)
    np.testing.assert_allclose(part.alt_sq, np.square(values).sum(axis=0), rtol=exact, atol=0)
    assert np.array_equal(part.called, called.sum(axis=0))
    assert np.array_equal(part.imputed, (called & (dosages != np.round(dosages))).any(axis=0))
    back = encoding.decode(part.chunk)
    assert np.array_equal(np.isnan(back), ~called)
    assert np.nanmax(np.abs(back - dosages), initial=0) <= (1 / 32767 if imputed else 0)
