"""DP answers through the real OpenDP engine: the noise has the scale reported, the intervals
cover, quantiles are as accurate in ranks as stated, and participants are bounded, not rows.

OpenDP draws its noise from the operating system's CSPRNG and takes no seed, so every
statistical check here uses enough draws, and bounds loose enough, that a correct engine fails
it less than once in a million runs, and tight enough that a wrong scale (even by a factor of
1.5) or missing noise fails it.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.cohort.dictionary import Dictionary
from strongroom.errors import Invalid, Unavailable
from strongroom.privacy import dp
from strongroom.privacy.dp_runtime import EnginePool, engine, missing_reason
from strongroom.privacy.service import below

RNG = np.random.default_rng(20261121)


@pytest.fixture(scope="module")
def pool() -> EnginePool:
    found = engine()
    if not found.available():
        pytest.fail(missing_reason(found.python))
    return found


def release(pool: EnginePool, dictionary: Dictionary, request: Mapping[str, Any],
            tables: Mapping[str, pl.DataFrame]) -> dp.Released:
    """One query through plan → frame → engine → answer, as the service runs it."""
    query = dp.parse_query(request)
    planned = dp.plan(query, {n: dict(f.schema) for n, f in tables.items()}, dictionary)
    rows = dp.frame(planned, tables, RNG)
    header = {**planned.engine, "op": "release", "epsilon": below(Fraction(query.epsilon))}
    return dp.answer(planned, pool.call(header, rows))


def participants(n: int, **columns: Any) -> dict[str, pl.DataFrame]:
    return {"participants": pl.DataFrame({"pid": np.arange(1_000_000, 1_000_000 + n),
                                          **columns})}


def discrete_laplace_mean_absolute(scale: float) -> float:
    """E|X| for OpenDP's integer (discrete) Laplace noise of this scale."""
    t = math.exp(-1 / scale)
    return 2 * t / (1 - t * t)


def test_count_noise_has_the_reported_scale_and_its_interval_covers(
        pool: EnginePool, dictionary: Dictionary) -> None:
    tables = participants(1000, x=np.ones(1000))
    draws = [release(pool, dictionary, {"kind": "count", "epsilon": "0.5"}, tables)
             for _ in range(500)]
    scale = draws[0].noise[0].scale
    assert scale == pytest.approx(2.0)  # sensitivity 1 at ε 0.5
    values = np.array([d.estimates[0].value for d in draws], dtype=float)
    # mean |noise| has relative sd 1/√500 = 4.5 %: these bounds are five of those away
    ratio = np.abs(values - 1000).mean() / discrete_laplace_mean_absolute(scale)
    assert 0.77 < ratio < 1.25, ratio  # the spread is the scale's: not none, not 1.5×
    assert abs(values.mean() - 1000) < 6 * scale * math.sqrt(2 / 500)  # unbiased
    covered = np.mean([d.estimates[0].ci_lower <= 1000 <= d.estimates[0].ci_upper  # type: ignore[operator]
                       for d in draws])
    assert 0.9 <= covered < 1.0, covered  # 95 % intervals: not too short, not everything


def test_mean_spread_matches_its_two_scales_and_its_interval_covers(
        pool: EnginePool, dictionary: Dictionary) -> None:
    n = 2000
    x = RNG.uniform(0, 10, n)
    tables = participants(n, x=x)
    request = {"kind": "mean", "column": "x", "bounds": [0, 10], "epsilon": "0.2"}
    draws = [release(pool, dictionary, request, tables) for _ in range(300)]
    truth = float(x.mean())
    sum_scale, count_scale = (noise.scale for noise in draws[0].noise)
    predicted = math.sqrt(2 * sum_scale**2 + truth**2 * 2 * count_scale**2) / n
    values = np.array([d.estimates[0].value for d in draws], dtype=float)
    assert 0.7 < values.std(ddof=1) / predicted < 1.4
    covered = np.mean([d.estimates[0].ci_lower <= truth <= d.estimates[0].ci_upper  # type: ignore[operator]
                       for d in draws])
    assert covered >= 0.9, covered  # at least 95 % by construction
    widths = [d.estimates[0].ci_upper - d.estimates[0].ci_lower  # type: ignore[operator]
              for d in draws]
    assert np.mean(widths) < 12 * predicted  # conservative (a union of two), not useless


def test_quantile_rank_error_is_the_mechanisms(pool: EnginePool,
                                               dictionary: Dictionary) -> None:
    """Released medians of 0…999 deviate by about r = 2·max(α, 1−α)/ε ranks, as stated."""
    tables = participants(1000, x=np.arange(1000, dtype=float))
    request = {"kind": "quantile", "column": "x", "bounds": [0, 999], "candidates": 1000,
               "quantiles": [0.5], "epsilon": "0.05"}
    draws = [release(pool, dictionary, request, tables) for _ in range(400)]
    rows_scale = draws[0].noise[0].scale
    assert rows_scale == pytest.approx(20.0)
    deviation = np.array([abs(d.estimates[0].value - 499.5) for d in draws])  # type: ignore[operator]
    # |deviation| is about exponential with mean r: over 400 draws its mean has sd r / 20
    assert 0.75 * rows_scale < deviation.mean() < 1.3 * rows_scale, deviation.mean()
    bound = draws[0].estimates[0].rank_error
    assert bound is not None and np.mean(deviation <= bound + 1) >= 0.95


def test_histogram_counts_participants_once_per_group_within_max_groups(
        pool: EnginePool, dictionary: Dictionary) -> None:
    """One participant with 500 events in one group, one with events in 10 groups."""
    pids = [7] * 500 + list(range(10)) + [8] * 10
    codes = ["I10"] * 500 + ["I10"] * 10 + [f"{c}00" for c in "ABCDEFGHJK"]
    tables = {**participants(20), "diagnoses": pl.DataFrame({
        "pid": pids, "array_index": range(len(pids)), "code": codes})}
    found = release(pool, dictionary, {
        "kind": "histogram", "table": "diagnoses", "column": "code", "prefix": 1,
        "max_groups": 2, "epsilon": "20"}, tables)
    counts = {e.label: e.value for e in found.estimates}
    assert len(counts) == 26 and found.noise[0].scale < 0.5  # sensitivity max_groups + 1
    assert abs(counts["I"] - 11) <= 3  # eleven participants, not 510 events
    others = sum(v for k, v in counts.items() if k != "I")  # type: ignore[misc]
    assert abs(others - 2) <= 8  # participant 8 counts in at most two of its ten groups


def test_event_counts_bound_rows_per_participant(pool: EnginePool,
                                                 dictionary: Dictionary) -> None:
    pids = [1] * 100 + [2] * 3 + [3]
    tables = {**participants(5), "diagnoses": pl.DataFrame({
        "pid": pids, "array_index": range(len(pids)), "code": ["I10"] * len(pids)})}
    people = release(pool, dictionary, {"kind": "count", "table": "diagnoses",
                                        "epsilon": "20"}, tables)
    rows = release(pool, dictionary, {"kind": "count", "table": "diagnoses", "max_rows": 3,
                                      "epsilon": "20"}, tables)
    assert abs(people.estimates[0].value - 3) <= 2  # type: ignore[operator]
    assert abs(rows.estimates[0].value - 7) <= 3  # type: ignore[operator]  # 3 + 3 + 1
    assert rows.noise[0].scale == pytest.approx(3 / 20)


@given(st.lists(st.integers(0, 30), min_size=0, max_size=300), st.integers(1, 5),
       st.integers(0, 2**32))
@settings(max_examples=60, deadline=None)
def test_keep_at_most_keeps_min_of_count_and_bound_for_every_participant(
        pids: list[int], bound: int, seed: int) -> None:
    ids = np.array(pids, dtype=np.int64)
    kept = ids[dp.keep_at_most(ids, bound, np.random.default_rng(seed))]
    have = dict(zip(*np.unique(ids, return_counts=True), strict=True))
    got = dict(zip(*np.unique(kept, return_counts=True), strict=True))
    assert got == {pid: min(count, bound) for pid, count in have.items()}


def test_keep_at_most_chooses_at_random() -> None:
    ids = np.zeros(100, dtype=np.int64)
    chosen = {tuple(np.flatnonzero(dp.keep_at_most(ids, 3, np.random.default_rng(s))))
              for s in range(20)}
    assert len(chosen) > 15


@pytest.mark.parametrize(("request_", "why"), [
    ({"kind": "count", "table": "adults", "epsilon": "1"}, "never dataset definitions"),
    ({"kind": "mean", "column": "nope", "bounds": [0, 1], "epsilon": "1"}, "no column"),
    ({"kind": "mean", "column": "code", "table": "diagnoses", "bounds": [0, 1],
      "epsilon": "1"}, "not numeric"),
    ({"kind": "sum", "column": "x", "bounds": [0, 1e12], "epsilon": "1"}, "not supported"),
    ({"kind": "histogram", "column": "x", "epsilon": "1"}, "no coding"),
    ({"kind": "histogram", "column": "x", "prefix": 1, "epsilon": "1"}, "groups text"),
    ({"kind": "count", "max_rows": 5, "epsilon": "1"}, "event tables"),
    ({"kind": "count", "where": [{"column": "x", "op": "==", "value": "a"}], "epsilon": "1"},
     "compare it with numbers"),
])
def test_plans_are_refused_with_reasons(request_: dict[str, Any], why: str,
                                        dictionary: Dictionary) -> None:
    tables = {**participants(3, x=[1.0, 2.0, 3.0]),
              "diagnoses": pl.DataFrame({"pid": [1], "array_index": [0], "code": ["I10"]})}
    with pytest.raises(Invalid, match=why):
        dp.plan(dp.parse_query(request_), {n: dict(f.schema) for n, f in tables.items()},
                dictionary)


@pytest.mark.parametrize(("request_", "why"), [
    ({"kind": "count"}, "epsilon: required"),
    ({"kind": "count", "epsilon": "0"}, "above 0"),
    ({"kind": "count", "epsilon": "lots"}, "decimal"),
    ({"kind": "median", "epsilon": "1"}, "kind must be one of"),
    ({"kind": "mean", "column": "x", "bounds": [5, 1], "epsilon": "1"}, "lower first"),
    ({"kind": "count", "epsilon": "1", "sql": "SELECT 1"}, "not a field"),
    ({"kind": "histogram", "column": "x", "bins": [3, 2], "epsilon": "1"}, "increasing"),
])
def test_queries_are_parsed_strictly(request_: dict[str, Any], why: str) -> None:
    with pytest.raises(Invalid, match=why):
        dp.parse_query(request_)


def _loaded_opendp(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as maps:
        return "opendp" in maps.read()


def test_warming_starts_the_plan_engine_and_a_projects_own_and_replaces_a_dead_one(
        pool: EnginePool) -> None:
    """A release's step counts from its charge, so no release may start its engine:
    warming starts the plan engine and (named) a project's release engine, each importing
    OpenDP (seconds) before any query; warming again starts none, except in place of one
    that died. Another project's releases run on engines of their own."""
    fresh = EnginePool(pool.python)
    try:
        fresh.warm("prj_a")
        workers = [*fresh._releases["prj_a"]._all, *fresh._plans._all]
        assert len(workers) == 2 and fresh._releases["prj_a"].idle()
        assert all(w.alive() and _loaded_opendp(w.pid) for w in workers)
        fresh.warm("prj_a")
        assert [*fresh._releases["prj_a"]._all, *fresh._plans._all] == workers
        dead = fresh._releases["prj_a"]._all[0]
        dead.kill()
        dead.wait(30)
        fresh.warm("prj_a")
        now = [*fresh._releases["prj_a"]._all, *fresh._plans._all]
        assert dead not in now and len(now) == 2 and all(w.alive() for w in now)
        fresh.warm("prj_b")
        assert set(fresh._releases) == {"prj_a", "prj_b"}
        assert not set(fresh._releases["prj_b"]._all) & set(now)
    finally:
        fresh.close()


def test_a_projects_idle_engines_are_stopped_by_the_reaper_not_by_another_request(
        pool: EnginePool) -> None:
    """A project's release engines stop once idle (its own reaper thread), and a project
    that asks again gets fresh ones."""
    fresh = EnginePool(pool.python, idle=0.5)
    try:
        fresh.warm("prj_a")
        worker, = fresh._releases["prj_a"]._all
        deadline = time.monotonic() + 60
        while "prj_a" in fresh._releases and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "prj_a" not in fresh._releases
        worker.wait(30)
        assert not worker.alive()
    finally:
        fresh.close()


def test_a_worker_that_fails_a_release_is_replaced_at_once_not_by_the_next_query(
        pool: EnginePool) -> None:
    """A release that fails (a worker killed mid-answer: its time or memory limit) failed on
    its data; the project's next query must find a warm worker, not start one inside its own
    timed step."""
    fresh = EnginePool(pool.python, size=1)
    try:
        fresh.warm("prj_a")
        slots = fresh._releases["prj_a"]
        failing, = slots._all
        os.kill(failing.pid, signal.SIGSTOP)  # it cannot answer: hung
        fresh.timeout = 0.5  # its watchdog kills it mid-answer, as a release past its limit
        with pytest.raises(Unavailable, match="stopped while answering"):
            fresh.call({"op": "release"}, pl.DataFrame({"pid": [1]}), owner="prj_a")
        replaced = slots._free.get(timeout=60)  # the slot comes back, warm
        assert replaced is not None and replaced is not failing and replaced.alive()
        assert _loaded_opendp(replaced.pid)
        slots._free.put(replaced)
    finally:
        fresh.close()


def test_a_start_the_system_refuses_loses_no_slot(pool: EnginePool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A process the system will not start (EAGAIN, ENOMEM) while warming leaves its slot
    empty, not lost: a lost slot would hang every later query of the project (a review,
    session 61). The next warm starts it; after close, nothing starts."""
    from strongroom.privacy import dp_runtime

    fresh = EnginePool(pool.python, size=2)
    real = dp_runtime._ForkServer.start_worker

    def refused(self: Any) -> Any:
        raise BlockingIOError(11, "Resource temporarily unavailable")
    try:
        monkeypatch.setattr(dp_runtime._ForkServer, "start_worker", refused)
        fresh.warm("prj_a")
        slots = fresh._releases["prj_a"]
        assert slots._free.qsize() == 2 and slots._all == [] and slots.idle()
        monkeypatch.setattr(dp_runtime._ForkServer, "start_worker", real)
        fresh.warm("prj_a")
        assert len(slots._all) == 2 and slots._free.qsize() == 2
    finally:
        fresh.close()
    assert all(not w.alive() for w in slots._all) or slots._all == []
    with pytest.raises(OSError, match="closed"):
        slots._start()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("PPid:")).split()[1])


def test_workers_are_forked_by_one_server_and_draw_noise_of_their_own(
        pool: EnginePool) -> None:
    """Every worker of a pool is forked by its one fork server, which imported OpenDP once,
    and each draws its own noise: OpenDP's generator is seeded per thread on first use, so a
    server that had drawn before forking would hand every worker the same stream (two
    workers' 60 noisy counts alike at every key: about once in 10^60 with their own)."""
    fresh = EnginePool(pool.python, size=2)
    header = {"op": "release", "kind": "histogram", "unit": "pid", "keys": 60,
              "max_groups": 1, "epsilon": 0.05, "alpha": 0.05}
    frame = pl.DataFrame({"pid": np.arange(6_000), "g": (np.arange(6_000) % 60)}).with_columns(
        pl.col("g").cast(pl.Int32))
    try:
        fresh.warm("prj_a")
        fresh.warm("prj_b")
        workers = [*fresh._releases["prj_a"]._all, *fresh._releases["prj_b"]._all,
                   *fresh._plans._all]
        server = fresh._forks._process
        assert server is not None and len(workers) == 5
        assert {_parent(w.pid) for w in workers} == {server.pid}
        assert all(_loaded_opendp(w.pid) for w in workers)
        drawn = [fresh._releases[o]._all[i].call(header, dp_runtime_ipc(frame), 60)
                 for o in ("prj_a", "prj_b") for i in range(2)]
        counts = [tuple(d["columns"]["len"]) for d in drawn]
        assert len(set(counts)) == 4, "two workers drew the same noise"
    finally:
        fresh.close()
    assert all(not w.alive() for w in workers) and server.poll() is not None


def dp_runtime_ipc(frame: pl.DataFrame) -> bytes:
    from strongroom.privacy.dp_runtime import _ipc

    return _ipc(frame)


def test_a_fork_server_that_died_is_started_again(pool: EnginePool) -> None:
    """A fork server killed (the system's OOM killer, an operator) costs the next start one
    import, not the pool: workers forked before it still answer, and new ones are forked by
    a fresh server."""
    fresh = EnginePool(pool.python)
    try:
        fresh.warm("prj_a")
        first = fresh._forks._process
        assert first is not None
        first.kill()
        first.wait()
        old, = fresh._releases["prj_a"]._all
        assert old.alive() and old.call({"op": "ping"}, b"", 60)["ok"]
        fresh.warm("prj_b")
        second = fresh._forks._process
        assert second is not None and second.pid != first.pid and second.poll() is None
        new, = fresh._releases["prj_b"]._all
        assert _parent(new.pid) == second.pid and new.call({"op": "ping"}, b"", 60)["ok"]
    finally:
        fresh.close()


def test_an_engine_outlives_no_process_that_started_it(pool: EnginePool,
                                                       tmp_path: Any) -> None:
    """A server that ends without closing its pool (killed) leaves no engine behind: the
    fork server ends when its socket does, and each worker when its input does."""
    import subprocess
    import sys

    script = tmp_path / "starts.py"
    script.write_text(
        "import os, sys\n"
        "from pathlib import Path\n"
        "from strongroom.privacy.dp_runtime import EnginePool\n"
        "pool = EnginePool(Path(sys.argv[1]))\n"
        "pool.warm('prj_a')\n"
        "pids = [w.pid for w in pool._releases['prj_a']._all] + [pool._forks._process.pid]\n"
        "print(*pids, flush=True)\n"
        "os.kill(os.getpid(), 9)\n")
    done = subprocess.run([sys.executable, str(script), str(pool.python)],
                          capture_output=True, text=True, timeout=120)
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2, done.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(p) for p in pids):
        time.sleep(0.1)
    assert not any(_running(p) for p in pids)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie's parent has gone too, or will reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
