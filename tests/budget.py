"""A time budget per test, seen: ``--budget SECONDS`` fails the run when any one test took
longer, naming it; ``--world-budget SECONDS`` does the same for a shared world (a fixture of
module, class, package or session scope), whose building is charged to the world and not to
the test that happened to build it first. `make test` sets both, so a slow test shows up on the
day it lands instead of CI growing by a minute a week (issue 59). Without the options nothing
is checked. Under xdist the controller sees every test's reports (the workers send what their
worlds took in the setup report's ``user_properties``), so the checks run there. Both are in
seconds of a reference day too, like the CPU budget below: multiplied by how much slower the
yardstick ran (a demo world of 283 s on a day 1.87 times slower than the reference, with the
same code, failed a run whose tests all passed).

A test's own time is its setup, call and teardown, less the shared worlds built during its
setup: a world a module builds is judged once, by the world budget, however it is reached.
``--cpu-budget SECONDS`` judges each test's own CPU seconds the same way, those of its worker's
whole process tree (a server, a sandboxed job, a cluster the test keeps busy): on a shared CI
machine wall seconds move with the load (two to three times between runs), CPU seconds less.
They still move with the machine's day: the same code's suite took 890-1,008 CPU-s one day,
1,509 the next and 2,697 the day after (an EPYC slice of a shared host). So the budget is in
seconds of a reference day's CPU: the controller times a fixed piece of work (``yardstick``:
Python, NumPy over memory) before the run and after it, and a test's CPU seconds are divided
by how much slower than the reference day the slower of the two was (never multiplied: a
faster machine is judged by the plain seconds). ``--cpu-speed FACTOR`` gives the factor
instead of measuring it. `make test` sets 30, the issue's figure.

Wall seconds on a worker say little of what a test costs when the workers share two cores, so
CPU seconds are kept too: each test's in its worker (threads included), and each module's in
its worker's whole process tree, from the module's first setup to its last teardown (the worker,
every live descendant, and what they reaped: a demo run, plink2, a job's sandbox, a server or
a Spark cluster that a world started). ``--timings`` writes both, and `make test` prints the
modules that took most: what a run's CPU went on, the figure CI's time follows."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

WORLDS = "budget:worlds"  # the setup report's property: ((fixture, seconds), ...)
CPU = "budget:cpu"  # the teardown report's: the test's CPU seconds in its worker, all phases
OWN_CPU = "budget:own-cpu"  # the teardown report's: its process tree's, less its worlds'
TREE = "budget:tree"  # a module's last teardown report's: its process tree's CPU seconds
_CPU: dict[str, float] = {}  # node id -> CPU seconds in its worker, worlds included
_TREE: defaultdict[str, float] = defaultdict(float)  # module -> its process trees' CPU seconds
_OWN_CPU: dict[str, float] = {}  # node id -> its process tree's CPU seconds, less its worlds'
_cpu_at: list[float] = []  # on a worker: the CPU clock when the current test's setup began
_tree_at: list[float] = []  # on a worker: the tree's CPU clock when this module began
_test_tree_at: list[float] = []  # on a worker: the tree's CPU clock when this test began
_worlds_cpu: list[float] = [0.0]  # on a worker: the tree's CPU seconds of this test's worlds
_SEEN: defaultdict[str, float] = defaultdict(float)  # node id -> its own seconds, all phases
# node id -> (worker, first start, last stop): when each test ran, and where (the timings file's
# "timeline": idle stretches and a worker left alone at the end show up there)
_SPANS: dict[str, tuple[str, float, float]] = {}
# "module::fixture" -> seconds of each build of that world (each xdist worker builds its own)
_BUILT: defaultdict[str, list[float]] = defaultdict(list)
_building: list[float] = []  # on a worker: worlds being built now (a world inside a world)
_built_now: list[tuple[str, float]] = []  # on a worker: the worlds the current setup built


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--budget", type=float, default=None, metavar="SECONDS",
                     help="fail the run if a single test (setup + call + teardown, less the "
                          "shared worlds it built) takes longer than this, naming it")
    parser.addoption("--cpu-budget", type=float, default=None, metavar="SECONDS",
                     help="fail the run if a single test's own CPU seconds (its worker's "
                          "process tree, all phases, less the shared worlds it built) are "
                          "more than this, naming it")
    parser.addoption("--cpu-speed", type=float, default=None, metavar="FACTOR",
                     help="how many times slower than the reference day this machine is "
                          "(measured with the yardstick when not given)")
    parser.addoption("--world-budget", type=float, default=None, metavar="SECONDS",
                     help="fail the run if building a shared world (a fixture of wider than "
                          "function scope) takes longer than this, naming it")
    parser.addoption("--timings", default=None, metavar="PATH",
                     help="write every test's own seconds, every world's builds and every "
                          "module's total to PATH (JSON), to see where a run's time went")


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object],
                         request: pytest.FixtureRequest) -> Generator[None, None, None]:
    if fixturedef.scope == "function":
        yield
        return
    outermost = not _building
    counting = outermost and _counting(request.config)
    _building.append(time.perf_counter())
    cpu_at = _tree_cpu() if counting else 0.0
    try:
        yield
    finally:
        took = time.perf_counter() - _building.pop()
        if counting:
            _worlds_cpu[0] += _tree_cpu() - cpu_at
        if outermost:  # a world built inside another is part of that one's time
            where = request.node.nodeid.split("::", 1)[0] or "(the run)"  # session-wide
            _built_now.append((f"{where}::{fixturedef.argname}", took))


_TICKS = os.sysconf("SC_CLK_TCK")
# The yardstick's CPU seconds on the reference day: session 50's (2026-11-29), when the budget
# was set at 30 and the most any test spent was 17.8-20.7 CPU-s. Estimated from a day 1.58
# times slower (FastAPI's first request: 0.46-0.60 CPU-s that day, 0.70-0.98 on the slower;
# the yardstick 0.36 there, its least of five).
YARDSTICK_REFERENCE = 0.23
_speeds: list[float] = []  # the controller's: the yardstick's CPU seconds, before and after


def yardstick() -> float:
    """CPU seconds of a fixed piece of work like the suite's (the interpreter, and NumPy over
    arrays larger than the caches), one thread: the least of three tries."""
    import numpy as np
    tries = []
    for _ in range(3):
        start = time.process_time()
        counts: dict[str, int] = {}
        for i in range(300_000):
            key = f"k{i % 5000}"
            counts[key] = counts.get(key, 0) + len(key)
        values = np.arange(4_000_000, dtype=np.float64)
        for _ in range(10):
            values = np.sqrt(values * 1.0001 + 1.0)
        np.sort(np.random.default_rng(7).random(2_000_000))
        tries.append(time.process_time() - start)
    return min(tries)


def speed(config: pytest.Config) -> float:
    """How many times slower than the reference day this machine ran the yardstick (the
    slower of before and after the run; at least 1)."""
    given = config.getoption("cpu_speed")
    if given is not None:
        return float(given)
    return max(1.0, max(_speeds, default=YARDSTICK_REFERENCE) / YARDSTICK_REFERENCE)


def pytest_configure(config: pytest.Config) -> None:
    if (config.getoption("cpu_budget") is not None and config.getoption("cpu_speed") is None
            and not hasattr(config, "workerinput")):
        _speeds.append(yardstick())  # before any worker starts


def _tree_cpu() -> float:
    """CPU seconds of this process and every live descendant, with what each has reaped
    (/proc: a child alive at one reading and reaped by the next is counted once either way)."""
    ticks, pids = 0, [os.getpid()]
    while pids:
        pid = pids.pop()
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += sum(int(field) for field in stat[11:15])  # utime stime cutime cstime
            for task in os.listdir(f"/proc/{pid}/task"):
                pids.extend(int(child) for child in
                            Path(f"/proc/{pid}/task/{task}/children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile: its parent's cutime has it, or will
    return ticks / _TICKS


def _module(item: pytest.Item | None) -> str | None:
    return item.nodeid.split("::", 1)[0] if item is not None else None


def _counting(config: pytest.Config) -> bool:
    """Whether CPU is counted: for a budget, the timings file or the summary (the quick loop,
    none of them, skips the two scans of /proc per test, a millisecond each)."""
    return any(config.getoption(name) is not None
               for name in ("budget", "cpu_budget", "world_budget", "timings"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, None, None]:
    try:
        yield
    finally:  # read by the teardown report, which is made after this returns
        if _counting(item.config):
            _count_teardown(item, nextitem)


def _count_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The test's CPU, its own process tree's less its worlds', and its module's tree's
    once its last test is done."""
    if _cpu_at:
        item.user_properties.append((CPU, time.process_time() - _cpu_at.pop()))
    tree = _tree_cpu()
    if _test_tree_at:
        item.user_properties.append((OWN_CPU, tree - _test_tree_at.pop() - _worlds_cpu[0]))
    if _tree_at and _module(nextitem) != _module(item):  # its worlds torn down too
        item.user_properties.append((TREE, tree - _tree_at.pop()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    _built_now.clear()
    if _counting(item.config):
        _cpu_at[:] = [time.process_time()]
        _worlds_cpu[0] = 0.0
        tree = _tree_cpu()
        _test_tree_at[:] = [tree]
        if not _tree_at:  # the first test of a module on this worker
            _tree_at.append(tree)
    try:
        yield
    finally:  # read by the setup report, which is made after this returns
        item.user_properties.append((WORLDS, tuple(_built_now)))
        _built_now.clear()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _SEEN[report.nodeid] += report.duration
    node = getattr(report, "node", None)  # xdist's controller: the worker that ran it
    worker = str(node.gateway.id) if node is not None else "main"
    _, start, stop = _SPANS.get(report.nodeid, (worker, report.start, report.stop))
    _SPANS[report.nodeid] = (worker, min(start, report.start), max(stop, report.stop))
    if report.when == "teardown":
        for name, value in report.user_properties:
            if name == CPU:
                _CPU[report.nodeid] = float(value)  # type: ignore[arg-type]
            elif name == OWN_CPU:
                _OWN_CPU[report.nodeid] = float(value)  # type: ignore[arg-type]
            elif name == TREE:
                _TREE[report.nodeid.split("::", 1)[0]] += float(value)  # type: ignore[arg-type]
    if report.when != "setup":
        return
    for name, value in report.user_properties:
        if name == WORLDS:
            for world, took in value:  # type: ignore[attr-defined]
                _BUILT[world].append(took)
                _SEEN[report.nodeid] -= took


def over(budget: float) -> list[tuple[str, float]]:
    """The tests whose own time was longer than ``budget`` seconds, slowest first."""
    return sorted(((node, took) for node, took in _SEEN.items() if took > budget),
                  key=lambda item: -item[1])


def cpu_over(budget: float, slower: float = 1.0) -> list[tuple[str, float]]:
    """The tests whose own CPU seconds, divided by ``slower``, were more than ``budget``
    (reference seconds), most first."""
    return sorted(((node, took) for node, took in _OWN_CPU.items()
                   if took / slower > budget), key=lambda item: -item[1])


def worlds_over(budget: float) -> list[tuple[str, float]]:
    """The shared worlds whose longest build took more than ``budget`` seconds, slowest
    first."""
    return [(world, took) for world, took in _slowest_worlds() if took > budget]


def _slowest_worlds() -> list[tuple[str, float]]:
    return sorted(((world, max(builds)) for world, builds in _BUILT.items()),
                  key=lambda item: -item[1])


def _limits(config: pytest.Config) -> tuple[float | None, float | None, float | None]:
    return (config.getoption("budget"), config.getoption("world_budget"),
            config.getoption("cpu_budget"))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    budget, world_budget, cpu_budget = _limits(session.config)
    if hasattr(session.config, "workerinput"):  # a worker: the controller checks
        return
    if cpu_budget is not None and session.config.getoption("cpu_speed") is None:
        _speeds.append(yardstick())  # the workers have ended
    slower = speed(session.config)
    failed = (budget is not None and over(budget * slower)) or \
        (world_budget is not None and worlds_over(world_budget * slower)) or \
        (cpu_budget is not None and cpu_over(cpu_budget, slower))
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def by_module(most: int = 10) -> list[tuple[str, float, int]]:
    """The modules that took longest, all their tests' phases and worlds summed: (module,
    seconds, tests), slowest first. Seconds on a worker, so a module's share of the run's
    CPU."""
    totals: defaultdict[str, float] = defaultdict(float)
    counts: defaultdict[str, int] = defaultdict(int)
    for node, took in _SEEN.items():
        module = node.split("::", 1)[0]
        totals[module] += took
        counts[module] += 1
    for world, builds in _BUILT.items():  # a session's world is no module's
        totals[world.split("::", 1)[0]] += sum(builds)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:most]
    return [(module, took, counts[module]) for module, took in ranked]


def cpu_by_module() -> list[tuple[str, float]]:
    """Each module's CPU seconds (its process trees', its worlds' included), most first."""
    return sorted(_TREE.items(), key=lambda item: -item[1])


def timings() -> dict[str, object]:
    """Every test's own seconds, every shared world's builds and every module's total, wall
    and CPU."""
    cpu = dict(cpu_by_module())
    return {"tests": dict(sorted(_SEEN.items(), key=lambda item: -item[1])),
            "cpu": {node: round(took, 2)
                    for node, took in sorted(_CPU.items(), key=lambda item: -item[1])},
            "yardstick": {"cpu_seconds": [round(took, 3) for took in _speeds],
                          "reference": YARDSTICK_REFERENCE},
            "own_cpu": {node: round(took, 2)
                        for node, took in sorted(_OWN_CPU.items(), key=lambda item: -item[1])},
            "worlds": {world: builds for world, builds in _BUILT.items()},
            "timeline": [[node, worker, round(start, 2), round(stop, 2)]
                         for node, (worker, start, stop)
                         in sorted(_SPANS.items(), key=lambda item: item[1][1])],
            "modules": [{"module": module, "seconds": round(took, 2),
                         "cpu_seconds": round(cpu.get(module, 0.0), 2), "tests": tests}
                        for module, took, tests in by_module(len(_SEEN) + len(_BUILT))]}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    path = config.getoption("timings")
    if path and not hasattr(config, "workerinput"):
        with open(path, "w") as out:
            json.dump(timings(), out, indent=1)
    budget, world_budget, cpu_budget = _limits(config)
    if budget is None and world_budget is None and cpu_budget is None:
        return
    terminalreporter.section("the slowest modules (seconds on a worker, all phases)", sep="-")
    for module, took, tests in by_module():
        terminalreporter.write_line(f"{took:7.1f} s  {tests:4d} tests  {module}")
    cpu = cpu_by_module()
    terminalreporter.section(f"the most CPU (worker and reaped children; "
                             f"{sum(c for _, c in cpu):,.0f} CPU-s in all)", sep="-")
    for module, took in cpu[:10]:
        terminalreporter.write_line(f"{took:7.1f} CPU-s  {module}")
    terminalreporter.section("the tests with most CPU of their own (process tree, worlds "
                             "apart)", sep="-")
    for node, took in sorted(_OWN_CPU.items(), key=lambda item: -item[1])[:5]:
        terminalreporter.write_line(f"{took:7.1f} CPU-s  {node}")
    terminalreporter.section("the slowest shared worlds (seconds to build)", sep="-")
    for world, took in _slowest_worlds()[:5]:
        terminalreporter.write_line(f"{took:7.1f} s  {world}")
    slower = speed(config)
    if cpu_budget is not None:
        measured = (f"the yardstick took {', then '.join(f'{s:.3f}' for s in _speeds)} CPU-s "
                    f"against the reference day's {YARDSTICK_REFERENCE:g}: "
                    if _speeds else "given: ")
        terminalreporter.write_line(
            f"this machine's speed: {measured}{slower:.2f} times slower, so a test may "
            f"spend {cpu_budget * slower:.1f} CPU-s here (the budget of {cpu_budget:g} "
            f"reference CPU-s), and each wall budget is as many times longer")
    for limit, slow, what, unit in (
            (None if budget is None else budget * slower, over, "per test", "s"),
            (cpu_budget, lambda limit: cpu_over(limit, slower), "per test", "CPU-s"),
            (None if world_budget is None else world_budget * slower, worlds_over,
             "per shared world", "s")):
        if limit is None:
            continue
        found = slow(limit)
        if not found:
            terminalreporter.write_line(f"every {what.split()[-1]} took under the budget of "
                                        f"{limit:g} {unit} {what}")
            continue
        terminalreporter.section(f"over the budget of {limit:g} {unit} {what}", sep="=",
                                 red=True)
        for node, took in found:
            terminalreporter.write_line(f"{took:7.1f} {unit}  {node}")
        terminalreporter.write_line("make it faster (share its world, move the long run to "
                                    "benchmarks/ with a smoke test here), or split it")
