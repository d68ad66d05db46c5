"""Attacks on what a researcher observes around an output (issue 50): the channels, not the
content. Shared by the tests (tests/integration/test_timing_channel.py,
test_job_shape_channel.py, test_ration_multiplication.py) and by
``benchmarks/disclosure.py --observables``, which runs them now and at a baseline commit (this
package is copied into the baseline's worktree, so everything here guards what an older
platform lacks).

Ground truth is read custodian-side (the cohort's values, the database's answers); what the
attacker decodes is read only from what the researcher is shown.

- **Time** (:func:`timing`): an aggregate query whose released output is the same every time
  evaluates an expensive allowed expression only on the target's row, only when their BMI is
  over m; the attacker calibrates on m far under and far over, then bisects m on the response
  time (now: the time the service answers at, its schedule's step; a platform without a
  schedule: the wall time).
- **Which outputs a job wrote** (:func:`bit_per_output`): a job writes ``b{i}`` only when bit i
  of the target's BMI × 10 is 1; the attacker reads the bits off the job the researcher sees.
- **Why a job failed** (:func:`chosen_walls`): the real run meets one wall (or exit, signal,
  unreadable output) when the target's value is over a line and another under it; one bit per
  pair of jobs if the researcher's views of the two differ.
- **The ration multiplies** (:func:`ration`): members of one project, projects of one person,
  people of one institution, each asking for answers the check always acts on; the answers the
  group drew against one person's day.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import statistics
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.models import Person, Project
from strongroom.attacks import runner
from strongroom.attacks.catalogue import BASE, TOLERANCE, Target
from strongroom.attacks.world import AttackWorld
from strongroom.errors import Invalid
from strongroom.outputs.models import OutputRow
from strongroom.outputs.render import Format
from strongroom.outputs.requests import OutputView
from strongroom.platform import Platform


@dataclass
class Channel:
    """One channel's figures: what the benchmark prints."""

    channel: str
    tried: int = 0  # attacks tried
    recovered: int = 0  # exact values recovered (to catalogue.TOLERANCE for BMI)
    bits: float = 0  # bits the researcher observed through the channel
    answers: int | None = 0  # answers spent, custodian-side (None: no ration here)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, other: Channel) -> None:
        self.tried += other.tried
        self.recovered += other.recovered
        self.bits += other.bits
        if self.answers is not None:
            self.answers = None if other.answers is None else self.answers + other.answers
        self.notes += other.notes


# -- ground truth, custodian-side ------------------------------------------------------------


def charged(world: AttackWorld, *, person: str | None = None, project: str | None = None,
            institution: str | None = None) -> int:
    """Answers in the database charged to a person, a project or an institution (asked by
    its people or in projects its people lead), counted here independently of the service:
    outputs the check acted on, and answers spent for time, definitions and jobs."""
    try:
        from strongroom.outputs.models import AnswerRow
        tables: list[tuple[Any, Any]] = [(AnswerRow, AnswerRow.spent)]
    except ImportError:  # a platform before answers were kept
        tables = []
    tables.insert(0, (OutputRow, OutputRow.acted))
    total = 0
    with world.platform.access.transaction() as db:
        for table, spent in tables:
            asker, lead = aliased(Person), aliased(Person)
            query: Any = (select(func.count()).select_from(table)
                          .join(asker, asker.id == table.requester)
                          .join(Project, Project.id == table.project_id)
                          .join(lead, lead.id == Project.lead_id).where(spent.is_(True)))
            if person is not None:
                query = query.where(table.requester == person)
            if project is not None:
                query = query.where(table.project_id == project)
            if institution is not None:
                query = query.where(or_(asker.institution_id == institution,
                                        lead.institution_id == institution))
            total += int(db.scalar(query) or 0)
    return total


def attacker(world: AttackWorld, institution_id: str | None = None) -> tuple[Principal, str]:
    """A new researcher and project, with the catalogue's ``base`` definition."""
    who, project = world.researcher(institution_id)
    world.platform.outputs.define(who, project, "base", BASE)
    return who, project


# -- time ---------------------------------------------------------------------------------------

# what the attacker's query releases: counts by sex over everyone, the same every time
PROBE = ("SELECT sex, count(*) AS n FROM base WHERE CASE WHEN {T} AND bmi > {M} THEN {X} "
         "ELSE true END GROUP BY sex")
LONG = "lpad(CAST(bmi AS VARCHAR), 10000, 'a')"
# the most expensive allowed expression: two patterns of about 100 steps per character over
# texts of 10,000 characters, within the work per row (amplifiers.MAX_ROW_WORK)
ALLOWED = "a{1,9}[ab]{1,9}a{1,9}[ab]{1,9}a{1,9}[ab]{1,9}a{1,9}[ab]{1,9}a{1,9}c"
# (summed, not OR-ed with true, which DuckDB folds away before evaluating anything)
STRONGEST = (f"(CASE WHEN regexp_matches({LONG}, '{ALLOWED}') THEN 1 ELSE 0 END + "
             f"CASE WHEN regexp_matches(rpad(CAST(bmi AS VARCHAR), 10000, 'a'), '{ALLOWED}x') "
             "THEN 1 ELSE 0 END) >= 0")
# eight sorted lists of 10,000 characters each: about 20 ms of one core for one row, the
# costliest allowed per row that was found (the patterns above compile once and cost little)
SORTS = " + ".join(f"array_length(list_sort(string_split(lpad(CAST(bmi AS VARCHAR), 10000, "
                   f"'{i}'), '')))" for i in range(8)) + " >= 0"

# (name, the expensive expression {X} or a whole query, a word its refusal must hold)
REFUSED = [
    ("regex counted repetition (the issue's)",
     "regexp_matches(lpad('', 100000, 'a'), '(a{1,100}){1,100}b') OR true", "counted"),
    ("regex counted repetition over a row's text",
     f"regexp_matches({LONG}, '(a|aa){{1,1000}}b') OR true", "counted"),
    ("regex a character repeated a thousand times",
     f"regexp_matches({LONG}, '[a-z]{{1,1000}}[a-z]{{1,1000}}b') OR true", "more than 10"),
    ("regex nested quantifiers", f"regexp_matches({LONG}, '(a+)+b') OR true", "nested"),
    ("regex_extract counted repetition",
     f"length(regexp_extract({LONG}, '(a|aa){{1,1000}}b')) >= 0", "counted"),
    ("regex_replace counted repetition",
     f"length(regexp_replace({LONG}, '(a{{1,100}}){{1,100}}', 'b', 'g')) >= 0", "counted"),
    ("the ~ operator with a long pattern", f"{LONG} ~ '{'a?' * 60}b' OR true", "longer than"),
    ("a pattern built from the data",
     "regexp_matches('aaaa', lpad('a', CAST(bmi AS INTEGER), 'a') || '+b') OR true",
     "written in the query"),
    ("lpad to a length computed from the data",
     "length(lpad('', CAST(bmi * 100000 AS INTEGER), 'a')) >= 0", "pads to"),
    ("lpad to a huge length", "length(lpad('', 100000000, 'a')) >= 0", "pads to"),
    ("repeat", "length(repeat('a', 100000000)) >= 0", "repeat"),
    ("SIMILAR TO", f"{LONG} SIMILAR TO '(a|aa)*b' OR true", "SIMILAR"),
    ("regexp_full_match", f"regexp_full_match({LONG}, 'a+b') OR true", "regexp_full_match"),
    ("a LIKE pattern that is a long built text",
     f"{LONG} LIKE rpad('%', 10000, '%a') OR true", "character steps"),
    ("stacked LIKEs", " OR ".join(f"{LONG} LIKE '%a%a%a%a%a%a%a%a%a%a%a%a%a%a%{i}%b'"
                                  for i in range(12)) + " OR true", "character steps"),
    ("nested lists: sorted splits of long texts",
     " OR ".join(f"array_length(list_sort(string_split(lpad(CAST(bmi AS VARCHAR), 10000, "
                 f"'{i}'), ''))) > 0" for i in range(16)), "character steps"),
    ("range() producing a huge list", "array_length(range(100000000)) > 0", "range"),
    ("generate_series", "array_length(generate_series(1, 100000000)) > 0", "generate_series"),
    ("a lambda over a list (a user function's nearest kin)",
     "array_length(list_transform(string_split(bmi::VARCHAR, ''), x -> x || x)) > 0",
     "lambda"),
    ("printf padding", "length(printf('%100000000d', 1)) > 0", "printf"),
]
QUERIES = [
    ("a recursive CTE counting to a million",
     "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 1000000) "
     "SELECT sex, count(*) AS n FROM base WHERE {T} AND bmi > {M} AND "
     "(SELECT max(x) FROM r) > 0 GROUP BY sex", "RECURSIVE"),
    ("a cross join of the view with itself",
     "SELECT sex, count(*) AS n FROM base WHERE pid IN (SELECT a.pid FROM base a CROSS JOIN "
     "base b WHERE a.bmi > {M}) GROUP BY sex", "cross join"),
    ("the view joined with itself on a shared value",
     "SELECT sex, count(*) AS n FROM base WHERE pid IN (SELECT a.pid FROM base a JOIN base b "
     "ON a.sex = b.sex WHERE {T} AND a.bmi > {M}) GROUP BY sex", "mix participants"),
    ("string_agg of a long text", "SELECT sex, string_agg(lpad(CAST(bmi AS VARCHAR), 10000, "
     "'a'), ',') AS s FROM base WHERE {T} AND bmi > {M} GROUP BY sex", "not allowed"),
    ("unnest of a huge list", "SELECT sex, count(*) AS n FROM base, unnest(range(1000000)) "
     "WHERE {T} AND bmi > {M} GROUP BY sex", "UNNEST"),
    ("a macro (a user-defined function)",
     "CREATE MACRO slow(x) AS regexp_matches(x, '(a|aa){1,1000}b')", "CREATE"),
]

def _unfolded(expression: str) -> str:
    """An amplifier as the bisection needs it: ``… OR true`` (enough to be refused) is folded
    away by DuckDB before anything is evaluated, so it is summed instead."""
    if expression.endswith(" OR true"):
        return f"(CASE WHEN {expression[:-len(' OR true')]} THEN 1 ELSE 0 END) >= 0"
    return expression


# the benchmark's amplifiers: the two strongest allowed, and those refused now whose cost one
# row can still cause on a platform without the guard in seconds (not minutes)
BENCH_AMPLIFIERS: list[tuple[str, str]] = [
    ("strongest allowed: two patterns over long texts", PROBE.replace("{X}", STRONGEST)),
    ("strongest allowed: sorted splits of long texts", PROBE.replace("{X}", SORTS)),
    *((name, PROBE.replace("{X}", _unfolded(x))) for name, x, _ in REFUSED if name in {
        "regex counted repetition over a row's text", "regex nested quantifiers",
        "lpad to a huge length", "SIMILAR TO", "stacked LIKEs",
        "nested lists: sorted splits of long texts"}),
    *((name, q) for name, q, _ in QUERIES if name == "a recursive CTE counting to a million"),
]
LOW, HIGH = 10.0, 80.0  # the BMI range the attacker bisects
CALIBRATION = 5  # runs of each side before bisecting


def sides(target: Target) -> tuple[str, str]:
    """One target's two questions: a line just under their BMI (the expensive branch runs) and
    just over it (it does not); the truth read custodian-side."""
    return f"{target.bmi - 0.05:.2f}", f"{target.bmi + 0.05:.2f}"


def scheduled() -> bool:
    """Whether this platform answers analyses on a schedule (outputs/timing.py)."""
    from strongroom.outputs.service import Outputs
    return "answered" in inspect.signature(Outputs.analyse).parameters


@contextmanager
def shipped_schedule(world: AttackWorld) -> Iterator[list[float]]:
    """The platform with its shipped floor on every analysis (the attack world sets none), the
    waits recorded rather than slept: the researcher would wait them, the attack reads them."""
    ctx, outputs = world.platform.access, world.platform.outputs
    saved = ctx.settings
    waits: list[float] = []
    sleep = getattr(outputs, "sleep", None)
    if hasattr(saved, "analysis_seconds"):
        ctx.settings = dataclasses.replace(
            saved, analysis_seconds=type(saved)().analysis_seconds)
    if sleep is not None:
        outputs.sleep = waits.append
    try:
        yield waits
    finally:
        ctx.settings = saved
        if sleep is not None:
            outputs.sleep = sleep


def observe_time(world: AttackWorld, who: Principal, project: str, sql: str
                 ) -> tuple[float, str]:
    """What the researcher sees of one probe: when it was answered (the schedule's step where
    there is one, else the wall time) and whether and why it was refused."""
    request = {"kind": "aggregate_sql", "sql": sql}
    seen: list[Any] = []
    kw: dict[str, Any] = {"answered": seen.append} if scheduled() else {}
    started = time.perf_counter()
    refused = ""
    try:
        world.platform.outputs.analyse(who, project, request, Format("json"), **kw)
    except Invalid as exc:
        refused = " | ".join(getattr(exc, "reasons", [str(exc)]))
    took = time.perf_counter() - started
    return (float(seen[0].seconds) if seen else took), refused


def timing(world: AttackWorld, cast: runner.Cast, name: str, template: str) -> Channel:
    """The amplifier bisection on one target (custodian-chosen, its BMI the truth)."""
    who, project = attacker(world)
    target = cast.value
    found = Channel("time")
    found.tried = 1

    def ask(m: float) -> tuple[float, str]:
        return observe_time(world, who, project, template.replace("{T}", target.condition)
                            .replace("{M}", f"{m:.4f}"))

    ask(0.0), ask(1000.0)  # warm the engine and the caches: not judged
    slow = [ask(0.0) for _ in range(CALIBRATION)]  # the branch runs on the target's row
    fast = [ask(1000.0) for _ in range(CALIBRATION)]  # it never does
    if {r for _, r in slow} != {r for _, r in fast} or any(r for _, r in slow):
        found.notes.append(f"{name}: refused ({(slow[0][1] or fast[0][1])[:60]}…)")
    elif _median(slow) <= _median(fast) or (
            _median(slow) - _median(fast) < 2 * (_spread(slow) + _spread(fast))):
        found.notes.append(f"{name}: no difference in time ({_span(slow)} vs {_span(fast)})")
    else:
        line = (_median(slow) + _median(fast)) / 2
        lo, hi = LOW, HIGH
        while hi - lo > 0.01:
            mid = (lo + hi) / 2
            # slow: the branch ran, their BMI is over mid (the median of three answers)
            over = _median([ask(mid) for _ in range(3)]) > line
            lo, hi = (mid, hi) if over else (lo, mid)
            found.bits += 1
        estimate = (lo + hi) / 2
        found.recovered = int(abs(estimate - target.bmi) <= TOLERANCE)
        found.notes.append(f"{name}: estimate {estimate:.2f}, truth {target.bmi:.2f} "
                           f"({_span(slow)} vs {_span(fast)})")
    found.answers = charged(world, person=who.person_id)
    return found


def _median(runs: list[tuple[float, str]]) -> float:
    return float(statistics.median(t for t, _ in runs))


def _spread(runs: list[tuple[float, str]]) -> float:
    """The median absolute deviation of the runs' times."""
    middle = _median(runs)
    return float(statistics.median(abs(t - middle) for t, _ in runs))


def _span(runs: list[tuple[float, str]]) -> str:
    times = sorted(t for t, _ in runs)
    return f"{times[0] * 1000:.0f}–{times[-1] * 1000:.0f} ms"


# -- jobs -----------------------------------------------------------------------------------

JOB_COHORT = ("SELECT pid, p31 AS sex, p34 AS birth_year, p21001_i0 AS bmi, "
              "p4080_i0_a0 AS sbp FROM participants WHERE p21001_i0 IS NOT NULL")
NAMES = ("b0", "b1", "b2")
OWN = "\n".join(f"{n}: {{path: output/{n}.txt, kind: text}}" for n in NAMES)

# what the real run does, on the target's row only (the dummy data has no such row: there
# every run writes every declared output and ends well)
BRANCHES: dict[str, str] = {
    "plain": "write_all()",
    "memory": "blocks = []\nwhile True:\n    blocks.append(bytearray(32 << 20))",
    "time": "time.sleep(60)",
    "cpu": "while True:\n    pass",
    "processes": ("children = []\nwhile len(children) < 500:\n"
                  "    pid = os.fork()\n    if pid == 0:\n        time.sleep(30)\n"
                  "        os._exit(0)\n    children.append(pid)"),
    "file_size": "open('output/b0.txt', 'wb').write(b'0' * (3 << 20))",
    "output_size": ("for n in range(4):\n"
                    "    open(f'output/part{n}.bin', 'wb').write(b'0' * (1900 << 10))\n"
                    "write_all()"),
    "exit3": "write_all()\nsys.exit(3)",
    "exit7": "os._exit(7)",
    "segv": "write_all()\nos.kill(os.getpid(), signal.SIGSEGV)",
    "kill": "os.kill(os.getpid(), signal.SIGKILL)",
    "symlink": ("write_all()\nos.remove('output/b1.txt')\n"
                "os.symlink('/etc/hostname', 'output/b1.txt')"),
    "fifo": "write_all()\nos.remove('output/b2.txt')\nos.mkfifo('output/b2.txt')",
    "folder": "write_all()\nos.remove('output/b0.txt')\nos.mkdir('output/b0.txt')",
    "missing": "write_all(skip='b1')",
    "plan": "write_all()\nsdc.frequency('b0', 'cohort', 'sex')",
    "error": "write_all()\nraise RuntimeError('BMI was ' + str(value))",
    # the shapes a finished job could take: order and sizes of its own files, one too large
    # for its kind (kept as a placeholder), a try at the network
    "order_size": ("for n in reversed(NAMES):\n"
                   "    open(f'output/{n}.txt', 'w').write('x' * int(value * 10))"),
    "too_large": "write_all()\nopen('output/b2.txt', 'w').write('x' * (1536 << 10))",
    "network": ("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), "
                "timeout=1)\nexcept OSError:\n    pass\nwrite_all()"),
    "slow": "time.sleep(2)\nwrite_all()",  # the real run's time, and nothing else
    # a large file first or last: keeping a file takes its size's time (hashing, sealing)
    "big_first": "write_all()\nopen('output/b0.txt', 'w').write('x' * (1000 << 10))",
    "big_last": "write_all()\nopen('output/b2.txt', 'w').write('x' * (1000 << 10))",
}

SCRIPT = """\
import os, signal, sys, time
import polars as pl
from strongroom import sdc

NAMES = {names!r}
frame = pl.read_parquet(sdc.input_path("cohort"))
hit = frame.filter(pl.col("pid").cast(pl.String) == {target!r})
real = frame.height > 1500 and hit.height == 1
value = float(hit["bmi"][0]) if real else 0.0


def write_all(skip=None):
    for n in NAMES:
        if n != skip:
            open(f"output/{{n}}.txt", "w").write("fine")


if not real:
    write_all()
elif value > {line!r}:
{above}
else:
{below}
"""

# the pairs of walls a real run can choose between (each job of a pair on one side of a line)
FAILING_PAIRS = [
    ("memory", "time"), ("cpu", "processes"), ("file_size", "output_size"),
    ("exit3", "segv"), ("exit7", "kill"), ("symlink", "fifo"), ("folder", "missing"),
    ("plan", "error"), ("memory", "exit3"),
]
FINISHED_PAIRS = [("order_size", "plain"), ("too_large", "plain"), ("network", "plain"),
                  ("big_first", "big_last")]
# finished on one side, failed on the other: the one answer a job's status is
ONE_ANSWER = [("memory", "plain")]

# The same attacks written in R (an action `run: Rscript analysis/study.R`): what the
# researcher sees of an R job's real run is held by the same service as a Python job's
R_BRANCHES: dict[str, str] = {
    "plain": "write_all()",
    "memory": "blocks <- list()\nrepeat blocks[[length(blocks) + 1L]] <- numeric(4e6) + 1",
    "time": "Sys.sleep(60)",
    "exit3": "write_all()\nquit(save = 'no', status = 3)",
    "segv": "write_all()\ntools::pskill(Sys.getpid(), tools::SIGSEGV)\nSys.sleep(5)",
    "symlink": ("write_all()\nfile.remove('output/b1.txt')\n"
                "file.symlink('/etc/hostname', 'output/b1.txt')"),
    "folder": "write_all()\nfile.remove('output/b0.txt')\ndir.create('output/b0.txt')",
    "plan": "write_all()\nsdc$frequency('b0', 'cohort', 'sex')",
    "error": "write_all()\nstop(paste('BMI was', value))",
    "order_size": ("for (n in rev(NAMES)) writeLines(strrep('x', as.integer(value * 10)), "
                   "sprintf('output/%s.txt', n))"),
}

R_SCRIPT = """\
NAMES <- c({names})
frame <- sdc$read("cohort")
hit <- frame[as.character(frame$pid) == "{target}", ]
real <- nrow(frame) > 1500 && nrow(hit) == 1
value <- if (real) as.numeric(hit$bmi[1]) else 0

write_all <- function(skip = NULL) {{
  for (n in NAMES) if (!identical(n, skip)) writeLines("fine", sprintf("output/%s.txt", n))
}}

if (!real) {{
  write_all()
}} else if (value > {line!r}) {{
{above}
}} else {{
{below}
}}
"""

# a wall of each kind (time, a plan made otherwise, an exit status against a signal, an
# unreadable output of two kinds, an R error against memory), each pair's sides ending
# differently however loaded the machine (memory against time did not: a loaded machine's
# memory wall can come after the 3 s of time); test_r_jobs meets the rest of the walls
R_FAILING_PAIRS = [("time", "plan"), ("exit3", "segv"), ("symlink", "folder"),
                   ("error", "memory")]
R_FINISHED_PAIRS = [("order_size", "plain")]

R_BIT_JOB = """\
frame <- sdc$read("cohort")
hit <- frame[as.character(frame$pid) == "{target}", ]
real <- nrow(frame) > 1500 && nrow(hit) == 1
value <- if (real) as.integer(round(as.numeric(hit$bmi[1]) * 10)) else 4095L
for (i in 0:11) if (bitwAnd(value, bitwShiftL(1L, i)) > 0) {{
  writeLines("1", sprintf("output/b%d.txt", i))
}}
"""


def r_script(target: str, line: float, above: str, below: str) -> str:
    """The chosen-wall job in R: ``above`` on the target's row when their BMI is over
    ``line``."""
    return R_SCRIPT.format(names=", ".join(f'"{n}"' for n in NAMES), target=target,
                           line=line, above=textwrap.indent(R_BRANCHES[above], "  "),
                           below=textwrap.indent(R_BRANCHES[below], "  "))


BITS = 12  # the bit-per-output job's outputs: BMI × 10 in 12 bits
BIT_JOB = """\
import polars as pl
from strongroom import sdc
frame = pl.read_parquet(sdc.input_path("cohort"))
hit = frame.filter(pl.col("pid").cast(pl.String) == {target!r})
real = frame.height > 1500 and hit.height == 1
value = round(float(hit["bmi"][0]) * 10) if real else (1 << 12) - 1
for i in range(12):
    if value >> i & 1:
        open(f"output/b{{i}}.txt", "w").write("1")
"""
BIT_OUTPUTS = "\n".join(f"b{i}: {{path: output/b{i}.txt, kind: text}}" for i in range(BITS))


JOB_CHANNELS = {"bit_per_output": "jobs: which outputs", "chosen_walls": "jobs: wall and shape"}


def pipeline(outputs: str, *, run: str = "python analysis/study.py",
             inputs: str = "[cohort]") -> str:
    """A project.yaml with one action ``study``; ``outputs``: its outputs block's lines."""
    body = textwrap.indent(textwrap.dedent(outputs).strip(), " " * 6)
    return (f"version: 1\nactions:\n  study:\n    run: {run}\n    inputs: {inputs}\n"
            f"    outputs:\n{body}\n")


def archive(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path, text in files.items():
            z.writestr(path, textwrap.dedent(text) if isinstance(text, str) else text)
    return buffer.getvalue()


def script(target: str, line: float, above: str, below: str) -> str:
    """The chosen-wall job: ``above`` on the target's row when their BMI is over ``line``."""
    return SCRIPT.format(names=NAMES, target=target, line=line,
                         above=textwrap.indent(BRANCHES[above], "    "),
                         below=textwrap.indent(BRANCHES[below], "    "))


@dataclass
class JobBench:
    """A researcher and project of the attack world ready for jobs (small walls)."""

    world: AttackWorld
    who: Principal
    project: str
    run: Callable[[dict[str, str | bytes]], Any]
    shows: Shows

    @classmethod
    def build(cls, world: AttackWorld, shows: Shows) -> JobBench:
        from strongroom.jobs.sandbox import Limits
        who, project = world.researcher()
        world.platform.outputs.define(who, project, "cohort", JOB_COHORT)
        jobs = world.platform.jobs
        # walls of seconds, the cores shared evenly (the shape's channels, not the CPU's)
        jobs.limits = Limits(wall_seconds=3, cpu_seconds=2, memory_bytes=512 << 20,
                             processes=32, file_bytes=2 << 20, output_bytes=4 << 20,
                             tmp_bytes=64 << 20, low_priority=False)
        if hasattr(jobs, "end_ladder"):
            jobs.end_ladder = ()  # the end's moment is its own channel, held by the ladder

        def run(files: dict[str, str | bytes]) -> Any:
            files = {"plans/study.json": "[]", **files}
            job = jobs.submit(who, project, archive(files), "study")
            return jobs.run(job.id, who)
        return cls(world, who, project, run, shows)

    def view(self, files: dict[str, str | bytes]) -> dict[str, Any]:
        """Run a job and return the researcher's view of it; a platform that failed on it
        shows the researcher that failure instead (an observable like any other)."""
        try:
            return job_view(self.world.platform, self.who, self.run(files), self.shows)
        except Exception as exc:  # an older platform's error on a hostile job
            return {"error": type(exc).__name__}

    def targets(self) -> list[tuple[str, float]]:
        """The real participants and their BMI, read custodian-side (ground truth)."""
        with self.world.platform.access.transaction() as db:
            project = db.get(Project, self.project)
            assert project is not None
        frame = self.world.platform.enclave.definition(project, "cohort")[1]
        return sorted((str(p), float(b)) for p, b in zip(
            frame["pid"].to_list(), frame["bmi"].to_list(), strict=True) if b is not None)


# what the API shows of a job and of an output (server/job_schemas.job_out and
# server/workbench_schemas.output_out, as JSON): the composing code (a test, the benchmark)
# gives them, for this package imports nothing of the server
Shows = tuple[Callable[[Any], dict[str, Any]], Callable[[Any], dict[str, Any]]]


def job_view(platform: Platform, who: Principal, row: Any, shows: Shows) -> dict[str, Any]:
    """The researcher's view of a job as the API gives it (the console, the command line and
    the client show the same): the job, its outputs' names and each output as its researcher
    reads it; ids, the code's digests (the researcher's own) and moments set aside."""
    from strongroom.outputs import requests
    job_shown, output_shown = shows
    job = platform.jobs.get(who, row.id)
    shown: dict[str, Any] = {
        "job": job_shown(job), "names": list(job.outputs),
        "outputs": [output_shown(requests.read(platform.access, who, oid))
                    for oid in job.outputs.values()]}
    for record in (shown["job"], *shown["outputs"]):
        for moment in {"created_at", "started_at", "ended_at", "requested_at",
                       "decided_at"} & set(record):
            record[moment] = "…"
    text = json.dumps(shown)
    for own in [job.id, *job.outputs.values(), job.code_sha256, job.code_sha256[:12],
                *job.files.values()]:
        text = text.replace(own, "…")
    return dict(json.loads(text))


def bit_per_output(world: AttackWorld, shows: Shows) -> Channel:
    """Two targets of different values; the value decoded from which outputs the researcher
    sees (listed, or not named as unwritten)."""
    bench = JobBench.build(world, shows)
    people = bench.targets()
    first = people[0]
    second = next(p for p in people if round(p[1] * 10) != round(first[1] * 10))
    found = Channel(JOB_CHANNELS["bit_per_output"], answers=None)
    views, reads = [], []
    for target, bmi in (first, second):
        view = bench.view({"project.yaml": pipeline(BIT_OUTPUTS),
                           "analysis/study.py": BIT_JOB.format(target=target)})
        views.append(view)
        present = set(view.get("names", ()))  # the outputs the researcher sees listed
        read = sum(1 << i for i in range(BITS) if f"b{i}" in present)
        reads.append(read)
        found.tried += 1
        found.recovered += int(read == round(bmi * 10))
        status = view.get("job", {}).get("status", view.get("error"))
        found.notes.append(f"read {read / 10:.1f}, truth {bmi:.2f}; {status}")
    if reads[0] != reads[1]:
        found.bits = BITS * len(views)  # each view showed which of the 12 outputs exist
    found.answers = charged(world, person=bench.who.person_id)
    return found


def chosen_walls(world: AttackWorld, shows: Shows,
                 pairs: list[tuple[str, str]] | None = None) -> Channel:
    """Each pair: the target's value over the line in one job, under it in the other; one bit
    if the researcher's views of the two jobs differ."""
    bench = JobBench.build(world, shows)
    target, bmi = bench.targets()[0]
    found = Channel(JOB_CHANNELS["chosen_walls"], answers=None)
    for above, below in (pairs if pairs is not None
                         else FAILING_PAIRS + FINISHED_PAIRS + ONE_ANSWER):
        views = []
        for line in (bmi - 1.0, bmi + 1.0):
            views.append(bench.view({"project.yaml": pipeline(OWN),
                                     "analysis/study.py": script(target, line, above,
                                                                 below)}))
        found.tried += 1
        if views[0] != views[1]:
            found.bits += 1
            errors = [v["error"] for v in views if "error" in v]
            found.notes.append(f"{above}/{below}: told apart"
                               + (f" (the platform failed: {errors[0]})" if errors else ""))
    found.answers = charged(world, person=bench.who.person_id)
    return found


# -- the ration ----------------------------------------------------------------------------


def probe(world: AttackWorld, who: Principal, project_id: str, cast: runner.Cast,
          n: int) -> OutputView:
    """A sum over one participant: the check always acts on it (one answer, while any)."""
    target = cast.obese[n % len(cast.obese)]
    return world.platform.outputs.analyse(who, project_id, {
        "kind": "aggregate_sql",
        "sql": f"SELECT sum(bmi) AS s FROM base WHERE {target.condition} AND {n} = {n}"},
        Format("json"))


def answered(views: list[OutputView]) -> int:
    """Outputs whose verdict the requester saw (not withheld for a spent budget)."""
    return sum(1 for v in views if not v.check_report.withheld)


def member(world: AttackWorld, project_id: str, institution: str | None = None) -> Principal:
    """A new researcher (of a new institution, or of ``institution``) added to a project."""
    who = world._person("researcher", "researcher", institution)
    projects.add_member(world.platform.access, world.staff("access-committee"), project_id,
                        who.person_id)
    return who


def institution_of(world: AttackWorld, who: Principal) -> str:
    with world.platform.access.transaction() as db:
        person = db.get(Person, who.person_id)
        assert person is not None
        return str(person.institution_id)


def ration(world: AttackWorld, cast: runner.Cast, how: str, people: int = 5,
           asks: int = 25) -> Channel:
    """``how``: members (of one project, each of their own institution), projects (of one
    person) or institutions (people of one, each leading a project of their own): each asks
    ``asks`` questions the check acts on, in turn; with the shipped budgets."""
    found = Channel(f"ration: {how}")
    found.tried = 1
    if how == "members":
        lead, project = attacker(world)
        askers = [(lead, project), *((member(world, project), project)
                                     for _ in range(people - 1))]
    elif how == "projects":
        lead, project = attacker(world)
        askers = [(lead, project), *((lead, runner.another_project(world, lead))
                                     for _ in range(people - 1))]
    else:
        lead, project = attacker(world)
        institution = institution_of(world, lead)
        askers = [(lead, project), *(attacker(world, institution)
                                     for _ in range(people - 1))]
    views = [probe(world, who, project, cast, n)
             for n in range(asks) for who, project in askers]
    found.bits = answered(views)  # each answer the check acted on, seen: one question's bits
    persons = {who.person_id for who, _ in askers}
    found.answers = sum(charged(world, person=p) for p in persons)
    found.notes.append(f"{len(askers)} askers × {asks}: {answered(views)} answered, "
                       f"{found.answers} charged")
    return found


def run_all(world: AttackWorld, *, shows: Shows | None = None,
            log: Callable[[str], None] = lambda _: None) -> list[Channel]:
    """Every channel's attacks on ``world``: one row per channel (the jobs' only with the
    API's ``shows`` of a job and an output)."""
    cast = runner.cast(world)
    rows: list[Channel] = []
    time_row = Channel("time (amplifier bisection)")
    with shipped_schedule(world):
        for name, template in BENCH_AMPLIFIERS:
            try:
                time_row.add(timing(world, cast, name, template))
            except Exception as exc:  # an older platform's API
                time_row.tried += 1
                time_row.notes.append(f"{name}: error {exc!r}"[:200])
            log(time_row.notes[-1])
    rows.append(time_row)
    if shows is not None:
        for attack in (bit_per_output, chosen_walls):
            try:
                rows.append(attack(world, shows))
            except Exception as exc:
                rows.append(Channel(JOB_CHANNELS[attack.__name__],
                                    notes=[f"error {exc!r}"[:300]], answers=None))
            log(f"{rows[-1].channel}: {rows[-1].notes[-3:]}")
    for how in ("members", "projects", "institutions"):
        try:
            rows.append(ration(world, cast, how))
        except Exception as exc:
            rows.append(Channel(f"ration: {how}", notes=[f"error {exc!r}"[:300]],
                                answers=None))
        log(f"{rows[-1].channel}: {rows[-1].notes}")
    return rows
