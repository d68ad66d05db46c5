"""The per-test time budget (tests/budget.py) fails a run that has a slow test, naming it, with
and without xdist; a run within the budget passes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FUZZ_MARK = re.compile(r"^\s*(pytestmark = .*|@)pytest\.mark\.fuzz", re.MULTILINE)
SLOW = """
import time

def test_quick():
    pass

def test_slow():
    time.sleep(0.6)
"""


WORLD = """
import time

import pytest

@pytest.fixture(scope="module")
def world():
    time.sleep(0.6)
    return 1

def test_reads_the_world(world):
    assert world == 1

def test_reads_it_too(world):
    assert world == 1
"""


def _run(tmp_path: Path, *args: str, module: str = SLOW) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_some.py").write_text(module)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist",
         "-p", "tests.budget",
         "--rootdir", str(tmp_path), "-c", "/dev/null", str(tmp_path), *args],
        cwd=REPO, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
             "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})  # only what is named: quick to start


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_a_test_over_the_budget_fails_the_run_and_is_named(tmp_path: Path,
                                                            workers: list[str]) -> None:
    done = _run(tmp_path, "--budget", "0.3", *workers)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 passed" in done.stdout  # every test passed: the budget is what failed
    assert "over the budget of 0.3 s per test" in done.stdout
    named = [line for line in done.stdout.splitlines() if "test_some.py::" in line
             and " s  " in line]
    assert len(named) == 1 and named[0].endswith("test_some.py::test_slow"), done.stdout


def test_within_the_budget_or_without_one_nothing_fails(tmp_path: Path) -> None:
    done = _run(tmp_path, "--budget", "30")
    assert done.returncode == 0 and "under the budget of 30 s" in done.stdout, done.stdout
    # the modules that took longest, with their tests counted: where a run's time went
    assert re.search(r"^\s+\d+\.\d s +2 tests  \S*test_some\.py$", done.stdout, re.M), \
        done.stdout
    done = _run(tmp_path)
    assert done.returncode == 0 and "budget" not in done.stdout, done.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_a_shared_world_is_judged_by_its_own_budget_not_charged_to_a_test(
        tmp_path: Path, workers: list[str]) -> None:
    """A module's world is built in the setup of whichever test reaches it first: that test
    is not over the per-test budget for it, and the world is judged, and named, on its own."""
    done = _run(tmp_path, "--budget", "0.3", *workers, module=WORLD)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every test took under the budget of 0.3 s per test" in done.stdout
    assert re.search(r"^\s+0\.\d s  \S*test_some\.py::world$", done.stdout, re.M), done.stdout
    done = _run(tmp_path, "--budget", "0.3", "--world-budget", "0.3", *workers, module=WORLD)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "over the budget of 0.3 s per shared world" in done.stdout
    named = [line for line in done.stdout.splitlines() if "test_some.py::" in line
             and " s  " in line]
    assert len(named) == 2 and all(line.endswith("test_some.py::world") for line in named), \
        done.stdout  # in the slowest worlds' list, and in the over-budget list


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_the_timings_file_holds_every_test_world_and_module(tmp_path: Path,
                                                            workers: list[str]) -> None:
    """``--timings``: where all of a run's time went, not only the slowest ten."""
    written = tmp_path / "timings.json"
    done = _run(tmp_path, "--timings", str(written), *workers, module=WORLD + SLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(written.read_text())
    assert len(found["tests"]) == 4 and found["tests"][next(iter(found["tests"]))] >= 0.6
    assert next(iter(found["tests"])).endswith("::test_slow")  # slowest first
    [(world, builds)] = found["worlds"].items()
    assert world.endswith("test_some.py::world") and len(builds) in (1, 2)
    [module] = found["modules"]
    assert module["tests"] == 4 and module["seconds"] >= 1.2  # the world and the slow test
    # when each ran and on which worker, in the order they began
    spans = found["timeline"]
    assert sorted(node for node, *_ in spans) == sorted(found["tests"])
    assert [start for _, _, start, _ in spans] == sorted(start for _, _, start, _ in spans)
    assert all(stop >= start for _, _, start, stop in spans)
    slow = next(span for span in spans if span[0].endswith("::test_slow"))
    assert slow[3] - slow[2] >= 0.59  # 0.6 s, each end rounded to the hundredth
    assert {worker for _, worker, *_ in spans} <= ({"gw0", "gw1"} if workers else {"main"})


BUSY = """
import subprocess
import sys
import time

import pytest

SPIN = "import time\\nend = time.process_time() + 0.4\\nwhile time.process_time() < end: pass"


def _spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.fixture(scope="module")
def server():  # a child that a world starts, works while tests run, and ends at teardown
    child = subprocess.Popen([sys.executable, "-c", SPIN + "\\ntime.sleep(30)"])
    yield child
    child.kill()
    child.wait()


def test_idle(server):
    time.sleep(0.6)  # wall time, no CPU here (the server spins meanwhile)


def test_busy_here():
    _spin(0.4)


def test_busy_in_a_child():
    subprocess.run([sys.executable, "-c", SPIN], check=True)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_the_timings_file_holds_each_tests_and_modules_cpu(tmp_path: Path,
                                                            workers: list[str]) -> None:
    """Wall seconds on a worker sharing two cores say little of a test's cost: each test's CPU
    seconds in its worker are written, and each module's in its whole process tree, children
    that a world started and a test ran included."""
    written = tmp_path / "timings.json"
    done = _run(tmp_path, "--timings", str(written), "--budget", "30", *workers, module=BUSY)
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(written.read_text())
    cpu = {node.split("::")[-1]: took for node, took in found["cpu"].items()}
    assert cpu["test_busy_here"] >= 0.4, cpu
    assert cpu["test_idle"] < 0.2 and cpu["test_busy_in_a_child"] < 0.2, cpu  # waited only
    [module] = found["modules"]
    assert module["cpu_seconds"] >= 1.2, module  # the server's, the child's and the test's
    assert re.search(r"^\s+\d+\.\d CPU-s  \S*test_some\.py$", done.stdout, re.M), done.stdout


SPENDING = """
import subprocess
import sys
import time

import pytest

SPIN = "import time\\nend = time.process_time() + 0.5\\nwhile time.process_time() < end: pass"


@pytest.fixture(scope="module")
def world():  # a costly world: judged on its own, charged to no test
    subprocess.run([sys.executable, "-c", SPIN], check=True)
    return 1


def test_reads_the_world(world):
    assert world == 1


def test_spends_in_a_child():
    subprocess.run([sys.executable, "-c", SPIN], check=True)


def test_waits():
    time.sleep(0.6)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_a_test_over_the_cpu_budget_fails_the_run_and_is_named(tmp_path: Path,
                                                                workers: list[str]) -> None:
    """``--cpu-budget``: a test's own CPU seconds, its children's included and its worlds'
    not, judged apart from its wall time (a test that waits spends none)."""
    written = tmp_path / "timings.json"
    done = _run(tmp_path, "--cpu-budget", "0.4", "--cpu-speed", "1", "--timings", str(written),
                *workers, module=SPENDING)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 passed" in done.stdout and "over the budget of 0.4 CPU-s per test" in done.stdout
    over = done.stdout.split("over the budget of 0.4 CPU-s per test", 1)[1]
    assert "test_spends_in_a_child" in over, done.stdout
    assert "test_reads_the_world" not in over and "test_waits" not in over, done.stdout
    own = {node.split("::")[-1]: took for node, took in
           json.loads(written.read_text())["own_cpu"].items()}
    assert own["test_spends_in_a_child"] >= 0.5 and own["test_waits"] < 0.2, own
    assert own["test_reads_the_world"] < 0.3, own  # the world's 0.5 CPU-s are its own
    done = _run(tmp_path, "--cpu-budget", "5", *workers, module=SPENDING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every test took under the budget of 5 CPU-s per test" in done.stdout


def test_the_cpu_budget_is_in_reference_seconds_on_a_slower_machine(tmp_path: Path) -> None:
    """On a machine slower than the reference day a test's CPU seconds are divided by how
    much slower it is (its 0.5 CPU-s here are 0.05 on a day ten times faster); measured with
    the yardstick before and after the run when not given, and never below the plain
    seconds."""
    done = _run(tmp_path, "--cpu-budget", "0.4", "--cpu-speed", "10", "-n", "2",
                module=SPENDING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "given: 10.00 times slower, so a test may spend 4.0 CPU-s here" in done.stdout
    written = tmp_path / "timings.json"
    done = _run(tmp_path, "--cpu-budget", "30", "--timings", str(written), "-n", "2",
                module=SPENDING)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"the yardstick took (\d\.\d+), then (\d\.\d+) CPU-s against the "
                      r"reference day's ([\d.]+): (\d+\.\d\d) times slower", done.stdout)
    assert found, done.stdout
    before, after, reference, slower = (float(group) for group in found.groups())
    assert slower == pytest.approx(max(1.0, max(before, after) / reference), abs=0.01)
    assert json.loads(written.read_text())["yardstick"]["cpu_seconds"] == [before, after]


def test_the_fuzz_module_make_test_names_is_the_only_one() -> None:
    """`make test` runs the fuzz tests from one module (collecting the whole suite for them
    costs half a minute); a fuzz test anywhere else would run in neither of its two runs."""
    named = {line.split(":=", 1)[1].strip() for line in (REPO / "Makefile").read_text()
             .splitlines() if line.startswith("FUZZ :=")}
    marked = {str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py")
              if FUZZ_MARK.search(path.read_text())}
    assert marked == named == {"tests/integration/test_api_fuzz.py"}, (marked, named)
