"""The enclave's caches (issue 56): decrypted definitions are held up to a number and a size
in bytes, so that a study's definitions of a cohort's size of rows each do not add up on the
host; the newest is kept whatever it weighs."""

from __future__ import annotations

import secrets
from pathlib import Path

import polars as pl
import pytest

from strongroom.enclave.engines import DuckDBEngine
from strongroom.enclave.spark.cluster import SparkSettings
from strongroom.enclave.spark.engine import SparkEngine
from strongroom.enclave.workspace import DEFINITIONS_HELD, Enclave, LruCache, _frame_bytes


def test_a_cache_keeps_its_number_of_entries() -> None:
    cache = LruCache(2)
    built: list[str] = []
    for key in ["a", "b", "a", "c", "b"]:
        cache.get(key, lambda key=key: built.append(key) or key)  # type: ignore[func-returns-value]
    assert built == ["a", "b", "c", "b"]  # "a" was used again, so "b" left first


def test_a_cache_with_a_budget_lets_the_oldest_go_and_keeps_the_newest_whatever_it_weighs(
) -> None:
    cache = LruCache(32, budget=250, weigh=lambda value: int(str(value)))
    built: list[str] = []

    def get(key: str, weight: int) -> None:
        cache.get(key, lambda: built.append(key) or weight)  # type: ignore[func-returns-value]

    get("a", 100)
    get("b", 100)
    get("a", 100)  # held: a and b (200)
    get("c", 100)  # 300: b, the least recently used, goes
    get("a", 100)
    get("b", 100)
    assert built == ["a", "b", "c", "b"]
    get("big", 1000)  # alone over the budget: kept, everything else goes
    get("big", 1000)
    get("a", 100)
    assert built == ["a", "b", "c", "b", "big", "a"]


def test_the_definitions_cache_weighs_the_rows() -> None:
    frame = pl.DataFrame({"pid": range(1000), "x": [0.5] * 1000})
    assert _frame_bytes((object(), frame)) == frame.estimated_size() == 16_000
    assert _frame_bytes("no rows") == 0
    assert DEFINITIONS_HELD >= 10 * 500_000 * 6 * 8 // 2  # a study's at 500,000


def test_after_a_request_the_spark_engine_gives_back_what_it_left_free_without_a_cluster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Enclave.release`` (called when a definition is made and after every analysis) asks
    the engine: the Spark engine collects, releases Arrow's pool and trims glibc's heap,
    starting nothing; DuckDB's engine has nothing to do."""
    engine = SparkEngine(SparkSettings(master="spark://127.0.0.1:7077", store=tmp_path),
                         secrets.token_bytes(32))
    engine.release()
    assert engine._spark is None  # no driver started for it
    asked: list[str] = []
    monkeypatch.setattr(engine, "release", lambda: asked.append("released"))
    enclave = Enclave.__new__(Enclave)  # its engine alone is read
    enclave.engine = engine
    enclave.release()
    assert asked == ["released"]
    enclave.engine = DuckDBEngine()
    enclave.release()  # nothing to ask
    assert asked == ["released"]
