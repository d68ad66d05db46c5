"""errors.failures_are_answers: what the platform's own code or libraries raise once the data
are read is a DataRefusal, a Rust library's panic included; an interrupt or an exit is not."""

from __future__ import annotations

import polars as pl
import pytest

from strongroom.errors import DataRefusal, Invalid, failures_are_answers, is_failure


def _panic() -> None:
    """Polars panics (PyO3's PanicException, a BaseException) on a date past its range."""
    dates = pl.Series([2**31 - 1], dtype=pl.Int32).cast(pl.Date)
    list(pl.DataFrame({"d": dates}).iter_rows())


def test_a_library_s_panic_is_a_failure_and_an_answer() -> None:
    with pytest.raises(BaseException) as raised:
        _panic()
    assert not isinstance(raised.value, Exception)  # why `except Exception` missed it
    assert is_failure(raised.value)
    refused = pytest.raises(DataRefusal, match="the platform could not complete this")
    with refused, failures_are_answers():
        _panic()


@pytest.mark.parametrize("error", [MemoryError(), ValueError("x"), OSError(28, "full")])
def test_an_error_of_the_platform_s_is_an_answer(error: Exception) -> None:
    with pytest.raises(DataRefusal), failures_are_answers():
        raise error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_an_interrupt_or_an_exit_goes_on_as_it_is(error: BaseException) -> None:
    assert not is_failure(error)
    with pytest.raises(type(error)), failures_are_answers():
        raise error


def test_a_refusal_keeps_its_own_words() -> None:
    with pytest.raises(Invalid, match=r"^the query is wrong$") as raised, \
            failures_are_answers():
        raise Invalid("the query is wrong")
    assert not isinstance(raised.value, DataRefusal)
