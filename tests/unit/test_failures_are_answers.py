"""errors.failures_are_answers: what the platform's own code or libraries raise once the data
are read is a DataRefusal, a Rust library's panic included; an interrupt or an exit is not."""

from __future__ import annotations

import logging

import polars as pl
import pytest

from strongroom.errors import (
    DataRefusal,
    Invalid,
    failures_are_answers,
    is_failure,
    log_failure,
)


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


def test_a_failure_on_the_data_is_logged_by_its_kind_and_place_never_its_message(
        caplog: pytest.LogCaptureFixture) -> None:
    """A library's message can quote the value it could not read (Polars names the text it
    could not parse): what reaches the server's log is the kind and the frames alone."""
    log = logging.getLogger("strongroom.test")
    try:
        pl.Series(["31.7", "obese:37.2"]).cast(pl.Float64)
    except Exception as error:  # a real library error whose message quotes the value
        assert "37.2" in str(error)
        with caplog.at_level(logging.ERROR):
            log_failure(log, error, "job %s: output %s could not be read", "job_1", "table")
    text = caplog.text
    assert "job job_1: output table could not be read" in text
    assert "InvalidOperationError" in text and "test_failures_are_answers.py" in text
    assert "37.2" not in text and "obese" not in text
    with caplog.at_level(logging.ERROR), pytest.raises(DataRefusal), failures_are_answers():
        raise ValueError("a participant's value: 41.3")
    assert "41.3" not in caplog.text and "ValueError" in caplog.text
