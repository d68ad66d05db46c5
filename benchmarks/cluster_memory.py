"""Host memory on the Spark engine as the cohort grows (issue 56: the cluster does the work).

    python benchmarks/cluster_memory.py [--scales 50000,200000,400000] [--engines spark,duckdb]
                                        [--study sql|model|cox|all] [--executor-memory 1g]
                                        [--driver-memory 2g] [--json PATH] [--code DIR]
                                        [--tile N] [--trim] [--census]

For each scale a platform is made in a process of its own (a synthetic cohort ingested, a
project granted participant and event fields, strongroom.yaml naming a loopback cluster of
two workers started once for the run); then, in a fresh process per scale and engine (so
``ru_maxrss`` is that run's alone), a researcher's study runs through the enclave's services
(``service.define``, ``service.analyse``: the guard, the engine, contributor sets): two
definitions and four aggregate queries, the same requests at every scale. ``--study model``
runs a model's study instead: one definition (a 0/1 outcome, sex, birth year, BMI and the
assessment centre) and a logistic model over it (the centre's 20-odd levels as dummies), then
a linear model of BMI on the same covariates; ``--study cox`` a definition of follow-up from
1997 to a first cardiovascular diagnosis and a Cox model on the same covariates; for each
model also what the process held
before it (``VmRSS``) and its own peak above that (``VmHWM`` after the request, reset to
``VmRSS`` before it by ``clear_refs``, which resets ``ru_maxrss`` too: the peaks reported
after a model are since that reset). ``--study all`` runs the whole study in one process per
scale and engine, as a researcher would in turn: the two definitions and four aggregate
queries, the model's definition, the logistic model, OLS and a binomial GLM over it, the
follow-up's definition, the Cox model and a Kaplan–Meier table by sex over it; with
``--engines spark,duckdb`` each request's Spark/DuckDB ratio and the end-to-end total's are
printed after the memory table, with the load average (``/proc/loadavg``) at the start and end.

Reported per scale and engine: the host's peak resident memory (``ru_maxrss`` of the Python
process that serves requests) after opening the platform and starting the engine, after the
project's view is ready (on Spark: the cohort sealed on the cluster's storage and the view
planned there; on DuckDB: the cohort decrypted and the view built here), and after the
requests; on Spark also the driver JVM's and the executors' peaks (``VmHWM``), and each
request's wall time (on Spark with the jobs the driver ran in it, from its status store: how
many, their wall time summed and longest, their tasks' run and CPU time). ``--code DIR``
measures another version of the package (``DIR/src``, e.g. ``git archive COMMIT src | tar -x
-C DIR``), the same requests through the same script.

``--tile N`` makes each scale's cohort from one synthetic cohort of N participants (seed 7, the
cohort every scale of N gets without it) repeated scale / N times, each copy's eids offset by
a multiple of 10,000,000 (as ``benchmarks/engines.py`` tiles a view's pids): synthesising
5,000,000 participants at once holds about 20 GB, the tiles share the base's columns until
the store writes them. A scale must then be a multiple of N.

The host's peaks: ``clear_refs`` (before each model) resets ``ru_maxrss`` as well as
``VmHWM``, so each peak reported is the largest of the readings taken before each reset and
after the request: the process's peak (``requests_mb``: the opening, the view and the
requests), and the requests' own (``requests_only_mb``: since the view was ready, the
high-water mark reset then to what the process held, ``held_after_view_mb``). ``--trim``
gives back what the allocators hold free before each of those readings (a full garbage
collection, Arrow's memory pool, glibc's ``malloc_trim``): the held figures are then what is
live, and the peaks without what earlier requests left free but kept.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

GRANT = [31, 34, 54, 21001, 41270, 41280, 40000]
DEFINITIONS = {
    "obese": "SELECT pid, p31 AS sex, p21001_i0 AS bmi FROM participants "
             "WHERE p21001_i0 > 30",
    "firsts": "SELECT pid, min(date) AS first FROM diagnoses WHERE code LIKE 'I%' "
              "GROUP BY pid",
}
AGGREGATES = [
    "SELECT p31 AS sex, count(*) AS n, avg(p21001_i0) AS bmi FROM participants GROUP BY p31",
    "SELECT p.p31 AS sex, count(DISTINCT d.pid) AS people, count(*) AS n FROM participants p "
    "JOIN diagnoses d ON p.pid = d.pid GROUP BY p.p31",
    "SELECT sex, count(*) AS n, median(bmi) AS med FROM obese GROUP BY sex",
    "SELECT p.p31 AS sex, count(*) AS n FROM participants p JOIN firsts f ON p.pid = f.pid "
    "GROUP BY p.p31",
]
MODEL_DEFINITION = (
    "model", "SELECT pid, CASE WHEN p21001_i0 > 30 THEN 1 ELSE 0 END AS obese, p31 AS sex, "
    "p34 AS birth_year, p21001_i0 AS bmi, p54_i0 AS centre FROM participants "
    "WHERE p21001_i0 IS NOT NULL")
MODELS: list[dict[str, Any]] = [
    {"kind": "logistic", "definition": "model", "outcome": "obese",
     "covariates": ["sex", "birth_year", "centre"], "categorical": ["sex", "centre"]},
    {"kind": "ols", "definition": "model", "outcome": "bmi",
     "covariates": ["sex", "birth_year", "centre"], "categorical": ["sex", "centre"]},
]
# --study cox: follow-up from 1997 (hospital records' start) to a first cardiovascular
# diagnosis, or to 2023; ``flag`` (the event again) is for a refusal's test
COX_DEFINITION = (
    "followed", "SELECT p.pid, p.p31 AS sex, p.p34 AS birth_year, p.p54_i0 AS centre, "
    "date_diff('day', DATE '1997-01-01', coalesce(f.first, DATE '2023-01-01')) / 365.25 "
    "AS years, CASE WHEN f.first IS NULL THEN 0 ELSE 1 END AS cardio, "
    "CASE WHEN f.first IS NULL THEN 0 ELSE 1 END AS flag FROM participants p LEFT JOIN "
    "(SELECT pid, min(date) AS first FROM diagnoses WHERE code LIKE 'I%' GROUP BY pid) f "
    "ON p.pid = f.pid")
COX_MODELS: list[dict[str, Any]] = [
    {"kind": "cox", "definition": "followed", "time": "years", "event": "cardio",
     "unit": "years", "covariates": ["sex", "birth_year", "centre"],
     "categorical": ["sex", "centre"]},
]
# --study all: the whole study, the models' and survival's requests after the SQL's
GLM: dict[str, Any] = {"kind": "glm", "definition": "model", "family": "binomial",
                       "formula": "obese ~ birth_year + C(sex) + C(centre)"}
KAPLAN_MEIER: dict[str, Any] = {"kind": "kaplan_meier", "definition": "followed",
                                "time": "years", "event": "cardio", "group": "sex",
                                "unit": "years", "interval": 5}
ROOT = Path(__file__).resolve().parent.parent
EID_TILE = 10_000_000  # --tile: the eids of copy k are k × EID_TILE + the base's (below it)
_SPANS: dict[str, tuple[float, float]] = {}  # each request's start and end (time.time())
# the host's high-water marks read before each reset (clear_refs resets ru_maxrss too):
# the whole process's, and the requests' (since the view was ready; None before)
_HIGH: dict[str, float | None] = {"process": 0.0, "requests": None}
TRIM = "CLUSTER_MEMORY_TRIM"  # --trim, as the measuring child finds it
CENSUS = "CLUSTER_MEMORY_CENSUS"  # --census, as the measuring child finds it
_CENSUSES: dict[str, list[list[Any]]] = {}  # where -> [[MB, type, holder], ...]


def _census(where: str, most: int = 12, least: int = 1 << 20) -> None:
    """What is live, largest first: each NumPy array that owns its memory (or wraps another
    library's), Polars frame and series, and Arrow table, array and batch of ``least`` bytes
    or more that some tracked object refers to, and what refers to it (the holder's type, and
    the attribute or key where it is one). Shared buffers are counted in each holder: a
    diagnostic of what to look at, not a total."""
    import gc

    import numpy as np
    import polars as pl
    import pyarrow as pa

    gc.collect()
    seen: set[int] = set()
    found: list[tuple[float, Any, Any]] = []
    def reached(holder: Any) -> Iterator[tuple[Any, Any]]:
        # a container the collector does not track (a dict or tuple of arrays and numbers
        # only: an instance's attributes once read as a dict) is in no list of its own
        for obj in gc.get_referents(holder):
            yield obj, holder
            if isinstance(obj, dict | tuple | list) and not gc.is_tracked(obj):
                yield from ((inner, obj) for inner in gc.get_referents(obj))

    for tracked in gc.get_objects():
        for obj, holder in reached(tracked):
            if id(obj) in seen:
                continue
            size: float = 0
            if isinstance(obj, np.ndarray) and not isinstance(obj.base, np.ndarray):
                size = obj.nbytes
            elif isinstance(obj, pl.DataFrame | pl.Series):
                size = obj.estimated_size()
            elif isinstance(obj, pa.Table | pa.Array | pa.ChunkedArray | pa.RecordBatch):
                size = obj.nbytes
            if size >= least:
                seen.add(id(obj))
                found.append((size, obj, holder))
    found.sort(key=lambda item: -item[0])
    rows = []
    for size, obj, holder in found[:most]:
        rows.append([round(size / 2**20, 1), type(obj).__name__, _holder(holder, obj)])
    del found
    rows.append(["rss", _status_mb("VmRSS"), "the process's resident MB"])
    rows.append(["malloc", *_malloc_mb(), "glibc's heap: MB in use, MB free but kept"])
    rows.append(["arrow", round(pa.total_allocated_bytes() / 2**20, 1), "Arrow's pool MB"])
    _CENSUSES[where] = rows
    print(f"census {where}: {rows}", file=sys.stderr, flush=True)


def _malloc_mb() -> list[float]:
    """glibc's ``mallinfo2``: MB allocated and MB free in its arenas (kept, not returned)."""
    import ctypes

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    info = libc.mallinfo2()
    return [round((info.uordblks + info.hblkhd) / 2**20, 1), round(info.fordblks / 2**20, 1)]


def _holder(holder: Any, obj: Any) -> str:
    """The holder's type, and for a dict the object it is the attributes of and the key."""
    import gc

    if isinstance(holder, dict):
        key = next((k for k, v in holder.items() if v is obj), "?")
        owner = next((o for o in gc.get_referrers(holder)
                      if getattr(o, "__dict__", None) is holder), None)
        where = type(owner).__qualname__ if owner is not None else "dict"
        return f"{where}[{key!r}]"
    if isinstance(holder, tuple | list):
        outer = [type(o).__qualname__ for o in gc.get_referrers(holder)
                 if not isinstance(o, type(sys._getframe()))][:2]
        return f"{type(holder).__name__} in {', '.join(outer) or '?'}"
    attributes = getattr(holder, "__dict__", None) or {}
    key = next((k for k, v in attributes.items() if v is obj), None)
    return type(holder).__qualname__ + (f".{key}" if key else "")


def _trim() -> None:
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _peak_mb() -> float:
    """The process's peak so far, across the resets."""
    now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return max(now, _HIGH["process"] or 0.0)


def _requests_peak_mb() -> float:
    """The requests' peak so far (since ``_reset(requests=True)``)."""
    return max(_status_mb("VmHWM"), _HIGH["requests"] or 0.0)


def _reset(requests: bool = False) -> float:
    """Reset the high-water mark to the resident size now, the peak before kept; returns the
    resident size. ``requests``: the requests' peak starts here. With ``--trim`` (TRIM set)
    what the allocators hold free is first given back (a full collection, Arrow's pool,
    glibc's ``malloc_trim``), so that what is held is what is live."""
    high = _status_mb("VmHWM")
    if os.environ.get(TRIM):
        _trim()
    if os.environ.get(CENSUS):
        _census(f"held {len(_CENSUSES) + 1}")
    _HIGH["process"] = max(_HIGH["process"] or 0.0, high, _peak_mb())
    if _HIGH["requests"] is not None:
        _HIGH["requests"] = max(_HIGH["requests"], high)
    Path("/proc/self/clear_refs").write_text("5")
    held = _status_mb("VmRSS")
    if requests:
        _HIGH["requests"] = held
    return held


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _executors(app_id: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"CoarseGrainedExecutorBackend" in b" ".join(command) and app_id.encode() in command:
            found.append(int(entry.name))
    return found


def prepare(root: Path, participants: int, engine: dict[str, Any] | None,
            tile: int | None = None) -> dict[str, Any]:
    """A platform at ``root`` with a cohort of ``participants`` and a granted project;
    ``tile``: the cohort made of copies of one of ``tile`` participants."""
    sys.path.insert(0, str(ROOT))
    from tests import access_world

    if tile is not None:  # build_world synthesises through its module's name
        access_world.synthesise = _tiler(tile)  # type: ignore[attr-defined]
    world = access_world.build_world(root, cohort=participants, fields=GRANT, engine=engine)
    assert world.researcher is not None
    member = world.researcher
    world.platform.close()
    return {"project": world.project_id, "researcher": [member.person_id, member.email,
                                                         member.totp_secret,
                                                         member.institution_id]}


def _tiler(tile: int) -> Any:
    """``synthesise`` for ``--tile``: a cohort of ``tile`` participants repeated, each copy's
    eids offset by a multiple of EID_TILE (its other columns the base's own buffers)."""
    import polars as pl

    from strongroom.cohort.model import Cohort
    from strongroom.cohort.synth.generator import synthesise

    def tiled(n: int, seed: int) -> Cohort:
        if n % tile:
            raise SystemExit(f"--tile {tile}: {n:,} participants is not a multiple of it")
        base = synthesise(tile, seed=seed)
        if int(base.participants["eid"].max() or 0) >= EID_TILE:
            raise SystemExit(f"--tile: the base's eids reach {EID_TILE:,}")

        def copies(frame: pl.DataFrame) -> pl.DataFrame:
            return pl.concat([frame.with_columns(pl.col("eid") + k * EID_TILE)
                              for k in range(n // tile)], rechunk=False)

        return Cohort(copies(base.participants),
                      {name: copies(frame) for name, frame in base.events.items()})

    return tiled


def measure(root: Path, made: dict[str, Any], study: str = "sql") -> dict[str, Any]:
    """The study's requests on the platform at ``root``; the host's peaks along the way."""
    sys.path.insert(0, str(ROOT))
    from tests.access_world import SETTINGS, Clock, Member, World

    from strongroom.enclave import service
    from strongroom.enclave.spark.engine import SparkEngine
    from strongroom.platform import Platform

    figures: dict[str, Any] = {"imported_mb": _peak_mb()}
    clock = Clock()
    platform = Platform.open(root / "data", root / "master.key", clock=clock, settings=SETTINGS)
    world = World(platform, clock, researcher=Member(*made["researcher"]),
                  project_id=made["project"])
    enclave = platform.enclave
    engine = enclave.engine
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    where = service.scope(enclave, who, world.project_id)
    if isinstance(engine, SparkEngine):
        engine.spark  # noqa: B018 (the driver started: its memory is the JVM's, not ours)
    if study in ("model", "cox", "all"):  # as the server does at start (server/run.py), so that the
        from strongroom.enclave.analyses.run import preload  # libraries are not the model's

        preload()
    figures["opened_mb"] = _peak_mb()
    start = time.perf_counter()
    # (code from before issue 56 builds every view here: Enclave.tables)
    getattr(enclave, "sources", enclave.tables)(where.project, where.fields)
    figures["view_s"] = round(time.perf_counter() - start, 3)
    _SPANS["view ready"] = (time.time() - figures["view_s"], time.time())
    figures["view_mb"] = _peak_mb()
    figures["held_after_view_mb"] = round(_reset(requests=True))
    if _CENSUSES:
        _CENSUSES["after the view"] = _CENSUSES.pop(next(iter(_CENSUSES)))
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    if study in ("model", "cox"):
        _models(enclave, who, world.project_id, seconds, peaks,
                *((MODEL_DEFINITION, MODELS) if study == "model"
                  else (COX_DEFINITION, COX_MODELS)))
    for name, sql in DEFINITIONS.items() if study in ("sql", "all") else ():
        start = time.perf_counter()
        service.define(enclave, who, world.project_id, name, sql)
        _done(seconds, f"define {name}", start)
        peaks[f"define {name}"] = round(_peak_mb())
    for i, sql in enumerate(AGGREGATES if study in ("sql", "all") else ()):
        start = time.perf_counter()
        service.analyse(enclave, who, world.project_id, {"kind": "aggregate_sql", "sql": sql},
                        threshold=10)
        _done(seconds, f"aggregate {i + 1}", start)
        peaks[f"aggregate {i + 1}"] = round(_peak_mb())
    if study == "all":
        _models(enclave, who, world.project_id, seconds, peaks, MODEL_DEFINITION,
                [*MODELS, GLM])
        _models(enclave, who, world.project_id, seconds, peaks, COX_DEFINITION,
                [*COX_MODELS, KAPLAN_MEIER])
    if _CENSUSES:
        figures["census"] = _CENSUSES
    figures["requests_s"] = seconds
    figures["peak_after_mb"] = peaks
    figures["requests_mb"] = _peak_mb()
    figures["requests_only_mb"] = round(_requests_peak_mb())
    if isinstance(engine, SparkEngine):
        context = engine.spark.sparkContext
        gateway = getattr(context._gateway, "proc", None)
        figures["driver_mb"] = _hwm_mb(gateway.pid) if gateway is not None else None
        figures["executors_mb"] = [_hwm_mb(p) for p in _executors(context.applicationId)]
        figures["sealed"] = getattr(engine, "seals", None)  # None: code from before
        figures["jobs"] = _jobs(context)
    platform.close()
    return figures


def _done(seconds: dict[str, float], name: str, start: float) -> None:
    """A request's wall time, and its span in epoch seconds for ``_jobs``."""
    seconds[name] = round(time.perf_counter() - start, 3)
    _SPANS[name] = (time.time() - seconds[name], time.time())


def _jobs(context: Any) -> dict[str, list[float]]:
    """Per request, the Spark jobs the driver ran in its span (its status store, kept with the
    UI off): how many, their summed and their longest wall time, and their stages' tasks' run
    and CPU time summed over the executors (s)."""
    found: dict[str, list[float]] = {name: [0, 0.0, 0.0, 0.0, 0.0] for name in _SPANS}
    store = context._jsc.sc().statusStore()
    jobs = store.jobsList(None)
    for i in range(jobs.size()):
        job = jobs.apply(i)
        if not (job.submissionTime().isDefined() and job.completionTime().isDefined()):
            continue
        began = job.submissionTime().get().getTime() / 1000
        took = job.completionTime().get().getTime() / 1000 - began
        for name, (start, end) in _SPANS.items():
            if start <= began <= end:
                found[name][0] += 1
                found[name][1] = round(found[name][1] + took, 3)
                found[name][2] = round(max(found[name][2], took), 3)
                for k in range(job.stageIds().size()):
                    try:  # a skipped stage (its shuffle reused) has no attempt
                        stage = store.lastStageAttempt(job.stageIds().apply(k))
                    except Exception:
                        continue
                    found[name][3] = round(found[name][3] + stage.executorRunTime() / 1e3, 3)
                    found[name][4] = round(found[name][4] + stage.executorCpuTime() / 1e9, 3)
    return found


def _models(enclave: Any, who: Any, project_id: str, seconds: dict[str, float],
            peaks: dict[str, float], definition: tuple[str, str],
            requests: list[dict[str, Any]]) -> None:
    """A model study: its definition, then each model, the host's peak after each."""
    from strongroom.enclave import service

    name, sql = definition
    start = time.perf_counter()
    service.define(enclave, who, project_id, name, sql)
    _done(seconds, f"define {name}", start)
    peaks[f"define {name}"] = round(_peak_mb())
    start = time.perf_counter()  # the definition's rows opened (cached for its analyses)
    service.definition(enclave, service.scope(enclave, who, project_id).project, name)
    _done(seconds, f"open {name}", start)
    for request in requests:
        # the request's own peak above what the process held before it: the kernel's
        # high-water mark reset to the resident size now (clear_refs 5), read after
        kind = str(request["kind"])
        held = _reset()
        if _CENSUSES:
            _CENSUSES[f"before {kind}"] = _CENSUSES.pop(next(reversed(_CENSUSES)))
        start = time.perf_counter()
        service.analyse(enclave, who, project_id, request, threshold=10)
        _done(seconds, kind, start)
        peaks[kind] = round(_peak_mb())
        peaks[f"{kind}: held before"] = round(held)
        peaks[f"{kind}: own peak above held"] = round(_status_mb("VmHWM") - held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="50000,200000,400000")
    parser.add_argument("--engines", default="spark,duckdb")
    parser.add_argument("--study", choices=("sql", "model", "cox", "all"), default="sql",
                        help="sql: definitions and aggregate queries; model: a definition and "
                        "a logistic and a linear model over it; cox: a definition of "
                        "follow-up and a Cox model over it; all: the whole study (sql's, "
                        "model's with a binomial GLM, cox's with a Kaplan-Meier table)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--executor-memory", default="1g")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--code", type=Path, help="measure the strongroom package in CODE/src "
                        "instead (e.g. an earlier commit's, from git archive)")
    parser.add_argument("--tile", type=int, help="make each scale's cohort from copies of "
                        "one of TILE participants (eids offset per copy), not synthesised "
                        "whole: 5,000,000 at once does not fit beside the cluster")
    parser.add_argument("--trim", action="store_true", help="before each model and after the "
                        "view, give back what the allocators hold free (gc, Arrow's pool, "
                        "malloc_trim): the held figures are then what is live")
    parser.add_argument("--census", action="store_true", help="at each of those points, "
                        "list the largest live arrays and frames and what holds each "
                        "(a diagnostic: the collection it runs changes what is held)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trim:
        os.environ[TRIM] = "1"
    if args.census:
        os.environ[CENSUS] = "1"
    if args.child:  # a step run in a process of its own: its arguments as JSON on stdin
        step = json.loads(sys.stdin.read())
        out = (prepare(Path(step["root"]), step["participants"], step["engine"],
                       step.get("tile"))
               if args.child == "prepare"
               else measure(Path(step["root"]), step["made"], step.get("study", "sql")))
        print(json.dumps(out))
        return

    import yaml

    from strongroom.enclave.spark.cluster import LocalCluster, check_cluster

    scales = [int(s) for s in args.scales.split(",")]
    engines = args.engines.split(",")
    results: list[dict[str, Any]] = []
    load = [_load()]
    with tempfile.TemporaryDirectory() as scratch, \
            LocalCluster(Path(scratch) / "cluster", workers=2,
                         memory=args.executor_memory) as cluster:
        spark = yaml.safe_load(cluster.settings(
            executor_memory=args.executor_memory, driver_memory=args.driver_memory,
        ).yaml())["engine"]
        # the walls' check, once with time to spare: a fresh master's web UI can take more
        # than the driver's 5 s to answer its first request on a busy machine
        check_cluster(cluster.settings(), timeout=120.0)
        for scale in scales:
            for kind in engines:
                root = Path(scratch) / f"{kind}-{scale}"
                root.mkdir()
                started = time.perf_counter()
                made = _child("prepare", {"root": str(root), "participants": scale,
                                          "engine": spark if kind == "spark" else None,
                                          "tile": args.tile}, args.code)
                prepared = time.perf_counter() - started
                figures = _child("measure", {"root": str(root), "made": made,
                                             "study": args.study}, args.code)
                row = {"participants": scale, "engine": kind, "prepare_s": round(prepared, 1),
                       **figures}
                results.append(row)
                print(json.dumps(row), flush=True)
    load.append(_load())
    print()
    print("| participants | engine | opened | view ready | the process's peak "
          "| the requests' own peak (held after the view) | driver | executors | view (s) "
          "| requests (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        executors = ", ".join(f"{m:.0f}" for m in row.get("executors_mb") or [] if m)
        print(f"| {row['participants']:,} | {row['engine']} | {row['opened_mb']:.0f} MB "
              f"| {row['view_mb']:.0f} MB | **{row['requests_mb']:.0f} MB** "
              f"| **{row.get('requests_only_mb', 0):.0f} MB** "
              f"({row.get('held_after_view_mb', 0):.0f} MB) "
              f"| {row.get('driver_mb') or 0:.0f} MB | {executors or '–'} MB "
              f"| {row['view_s']} | {sum(row['requests_s'].values()):.1f} |")
    _ratios(results)
    print(f"\nload average (1, 5, 15 min): {load[0]} at the start, {load[1]} at the end")
    if args.json:
        args.json.write_text(json.dumps({"load": load, "results": results}, indent=2))


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _ratios(results: list[dict[str, Any]]) -> None:
    """Each request's wall time on Spark and DuckDB at each scale, and Spark/DuckDB."""
    for scale in sorted({row["participants"] for row in results}):
        by = {row["engine"]: row for row in results if row["participants"] == scale}
        if "spark" not in by or "duckdb" not in by:
            continue
        spark, duck = by["spark"], by["duckdb"]
        steps = [("view ready", spark["view_s"], duck["view_s"]),
                 *((name, spark["requests_s"][name], duck["requests_s"].get(name))
                   for name in spark["requests_s"])]
        jobs = spark.get("jobs") or {}
        print(f"\n| request ({scale:,} participants) | Spark (s) | DuckDB (s) | Spark/DuckDB "
              "| Spark jobs: n, summed (s), longest (s) | executors' task time: run, CPU (s) |")
        print("|---|---|---|---|---|---|")
        for name, a, b in steps:
            ratio = f"{a / b:.1f}×" if b else "–"
            n, summed, longest, run, cpu = [*(jobs.get(name) or []), 0.0, 0.0, 0.0, 0.0, 0.0][:5]
            print(f"| {name} | {a:.2f} | {b if b is not None else 0:.2f} | {ratio} "
                  f"| {n:.0f}, {summed:.2f}, {longest:.2f} | {run:.2f}, {cpu:.2f} |")
        for label, skip in (("requests", 1), ("end to end, view included", 0)):
            a = sum(s[1] for s in steps[skip:])
            b = sum(s[2] or 0 for s in steps[skip:])
            print(f"| **{label}** | **{a:.1f}** | **{b:.1f}** | **{a / b:.1f}×** | | |")


def _child(step: str, arguments: dict[str, Any], code: Path | None = None) -> Any:
    path = f"{code.resolve() / 'src'}{os.pathsep}{ROOT}" if code is not None else str(ROOT)
    done = subprocess.run([sys.executable, __file__, "--child", step], check=False,
                          input=json.dumps(arguments), capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path})
    if done.returncode:
        sys.stderr.write(done.stderr[-5000:])
        raise SystemExit(f"the {step} step failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
