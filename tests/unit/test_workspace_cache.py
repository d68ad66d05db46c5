"""The enclave's caches (issue 56): decrypted definitions are held up to a number and a size
in bytes, so that a study's definitions of a cohort's size of rows each do not add up on the
host; the newest is kept whatever it weighs."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import polars as pl
import pytest

from strongroom.enclave.engines import DuckDBEngine
from strongroom.enclave.spark.cluster import SparkSettings
from strongroom.enclave.spark.engine import SparkEngine
from strongroom.enclave.workspace import (
    DEFINITIONS_HELD,
    Enclave,
    LruCache,
    ProjectCaches,
    _frame_bytes,
)


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


def test_one_keys_build_holds_up_nobody_but_who_asks_for_that_key() -> None:
    """The caches are shared by every project: a project's slow build (its view, a definition
    whose size is its answer's) must not hold up another project's request, which could
    otherwise time it. Who asks for the same key waits for the one build."""
    cache = LruCache(8)
    release, started = threading.Event(), threading.Event()
    builds: list[str] = []

    def slow() -> str:
        builds.append("a")
        started.set()
        assert release.wait(10)
        return "A"

    results: dict[str, str] = {}
    first = threading.Thread(target=lambda: results.update(first=cache.get("a", slow)))
    second = threading.Thread(target=lambda: results.update(second=cache.get("a", slow)))
    first.start()
    assert started.wait(10)
    second.start()
    # while "a" is being built, another key is built and answered at once
    assert cache.get("b", lambda: "B") == "B"
    assert "first" not in results and "second" not in results
    release.set()
    first.join(10)
    second.join(10)
    assert results == {"first": "A", "second": "A"}
    assert builds == ["a"]  # built once, the second asker waited for it


def test_a_failed_build_is_not_kept_and_whoever_waited_builds_again() -> None:
    cache = LruCache(8)
    release, started = threading.Event(), threading.Event()
    tries: list[int] = []

    def failing() -> str:
        tries.append(1)
        started.set()
        assert release.wait(10)
        raise ValueError("the build failed")

    errors: list[BaseException] = []

    def first() -> None:
        try:
            cache.get("a", failing)
        except ValueError as error:
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(10)
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(cache.get("a", lambda: "again")))
    waiter.start()
    release.set()
    thread.join(10)
    waiter.join(10)
    assert len(errors) == 1 and got == ["again"] and tries == [1]
    assert cache.get("a", lambda: "not built") == "again"


def test_a_build_begun_before_clear_is_answered_but_not_kept() -> None:
    cache = LruCache(8)
    release, started = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        assert release.wait(10)
        return "old"

    got: list[str] = []
    thread = threading.Thread(target=lambda: got.append(cache.get("a", slow)))
    thread.start()
    assert started.wait(10)
    cache.clear()
    release.set()
    thread.join(10)
    assert got == ["old"]
    assert cache.get("a", lambda: "new") == "new"


def test_who_asks_after_clear_while_a_build_is_under_way_builds_afresh() -> None:
    cache = LruCache(8)
    release, started = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        assert release.wait(10)
        return "old"

    thread = threading.Thread(target=lambda: cache.get("a", slow))
    thread.start()
    assert started.wait(10)
    cache.clear()
    assert cache.get("a", lambda: "new") == "new"  # not the build begun before the clear
    release.set()
    thread.join(10)
    assert cache.get("a", lambda: "not built") == "new"


def test_a_build_that_asks_for_its_own_entry_is_refused_not_hung() -> None:
    cache = LruCache(8)

    def itself() -> str:
        return cache.get("a", itself)

    with pytest.raises(RuntimeError, match="asked for itself"):
        cache.get("a", itself)
    assert cache.get("a", lambda: "fine") == "fine"


def test_no_projects_entries_make_room_for_anothers() -> None:
    """A project's entries are its own: however many other projects fill theirs, its next
    request finds what it left (in one cache for all, four projects' first requests evicted
    a project's view, and its slower next request told that they had run)."""
    now = [0.0]
    caches = ProjectCaches(lambda: LruCache(2), idle=60.0, clock=lambda: now[0])
    built: list[str] = []

    def get(project: str, key: str) -> str:
        return caches.get(project, key, lambda: built.append(f"{project}:{key}") or key)  # type: ignore[func-returns-value]

    get("mine", "view")
    for other in range(20):
        get(f"other{other}", "view")
        get(f"other{other}", "definition")
    built.clear()
    get("mine", "view")
    assert built == []  # still there


@pytest.mark.parametrize("others_ask", [False, True])
def test_a_projects_cache_goes_after_its_own_idle_time_whoever_else_asks(
        others_ask: bool) -> None:
    """Dropped once the project itself has not used it for ``idle``: whether it finds its
    entries depends on its own last use, never on whether others asked meanwhile."""
    now = [0.0]
    caches = ProjectCaches(lambda: LruCache(4), idle=60.0, clock=lambda: now[0])
    built: list[str] = []

    def mine() -> None:
        caches.get("mine", "view", lambda: built.append("view") or "v")  # type: ignore[func-returns-value]

    mine()
    now[0] = 59.0
    if others_ask:
        caches.get("other", "view", lambda: "o")
    mine()
    assert built == ["view"]  # used within its idle time: kept
    now[0] = 59.0 + 61.0
    if others_ask:
        caches.get("other", "view", lambda: "o")
    mine()
    assert built == ["view", "view"]  # idle past it: built again either way


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
