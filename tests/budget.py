"""A time budget per test, seen: ``--budget SECONDS`` fails the run when any one test (its
setup, call and teardown together, so a world a module builds counts against the test that
built it) took longer, naming each. `make test` sets it, so a slow test shows up on the day
it lands instead of CI growing by a minute a week (issue 59). Without the option nothing is
checked. Under xdist the controller sees every test's reports, so the check runs there."""

from __future__ import annotations

from collections import defaultdict

import pytest

_SEEN: defaultdict[str, float] = defaultdict(float)  # node id -> seconds, all phases


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--budget", type=float, default=None, metavar="SECONDS",
                     help="fail the run if a single test (setup + call + teardown) takes "
                          "longer than this, naming it")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _SEEN[report.nodeid] += report.duration


def over(budget: float) -> list[tuple[str, float]]:
    """The tests that took longer than ``budget`` seconds, slowest first."""
    return sorted(((node, took) for node, took in _SEEN.items() if took > budget),
                  key=lambda item: -item[1])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    budget = session.config.getoption("budget")
    if budget is None or hasattr(session.config, "workerinput"):  # a worker: the controller checks
        return
    if over(budget) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def by_module(most: int = 10) -> list[tuple[str, float, int]]:
    """The modules that took longest, all their tests' phases summed: (module, seconds,
    tests), slowest first. Seconds on a worker, so a module's share of the run's CPU."""
    totals: defaultdict[str, float] = defaultdict(float)
    counts: defaultdict[str, int] = defaultdict(int)
    for node, took in _SEEN.items():
        module = node.split("::", 1)[0]
        totals[module] += took
        counts[module] += 1
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:most]
    return [(module, took, counts[module]) for module, took in ranked]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    budget = config.getoption("budget")
    if budget is None:
        return
    terminalreporter.section("the slowest modules (seconds on a worker, all phases)", sep="-")
    for module, took, tests in by_module():
        terminalreporter.write_line(f"{took:7.1f} s  {tests:4d} tests  {module}")
    slow = over(budget)
    if not slow:
        terminalreporter.write_line(f"every test took under the budget of {budget:g} s")
        return
    terminalreporter.section(f"over the budget of {budget:g} s per test", sep="=", red=True)
    for node, took in slow:
        terminalreporter.write_line(f"{took:7.1f} s  {node}")
    terminalreporter.write_line("make it faster (share its world, move the long run to "
                                "benchmarks/ with a smoke test here), or split it")
