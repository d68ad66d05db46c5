"""``project.yaml``: a project's actions, what each reads and what it may let out.

    version: 1
    actions:
      study:
        run: python analysis/study.py        # or: notebook analysis/study.ipynb,
                                             # or: Rscript analysis/study.R,
                                             # or: rmarkdown analysis/report.Rmd
        inputs: [cohort]                     # project tables and dataset definitions
        needs: [prepare]                     # actions whose outputs this one reads
        outputs:
          table1: {path: output/table1.csv, kind: table}
          km: {path: output/km.png, kind: figure}
          frame: {path: output/frame.parquet, kind: internal}

Every problem is found before anything runs and named at once: unknown keys, a script the
code does not hold, a need that is not an action or that closes a cycle, an output outside
``output/`` or declared twice. Which inputs exist is the project's business
(:func:`Pipeline.check_inputs` takes the names it holds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from strongroom.errors import Invalid

FILE = "project.yaml"
OUTPUT_DIR = "output"
MAX_ACTIONS = 50
MAX_TEXT = 64 * 1024
MAX_DEPTH = 8
MAX_OUTPUTS = 50  # per action: many small outputs are a channel, and no study needs more
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,62}$")]
_RUN = re.compile(r"(python|notebook|Rscript|rmarkdown) (\S+)")
# the file each way of running takes, by suffix (nothing else is run: no options, no -e); an
# R Markdown document is rendered to Markdown in output/ (jobs/r/knit.R)
RUNS: dict[str, str] = {"python": ".py", "notebook": ".ipynb", "Rscript": ".R",
                        "rmarkdown": ".Rmd"}


class OutputKind(StrEnum):
    """What a declared output is; ``internal`` never leaves (it feeds later actions)."""

    TABLE = "table"  # aggregate rows (CSV or JSON)
    MODEL = "model"  # coefficients (CSV or JSON)
    FIGURE = "figure"  # PNG or SVG
    TEXT = "text"  # plain text or Markdown
    INTERNAL = "internal"  # anything; stays in the enclave


# the file types each kind may be, by suffix: what the check and the checkers can read
SUFFIXES: dict[OutputKind, frozenset[str]] = {
    OutputKind.TABLE: frozenset({".csv", ".json"}),
    OutputKind.MODEL: frozenset({".csv", ".json"}),
    OutputKind.FIGURE: frozenset({".png", ".svg"}),
    OutputKind.TEXT: frozenset({".txt", ".md"}),
    OutputKind.INTERNAL: frozenset({".parquet", ".csv", ".json", ".pkl", ".npy", ".feather",
                                    ".txt", ".rds"}),
}


MAX_EXPECTED_SECONDS = 3600  # the sandbox's wall time (sandbox.Limits)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(_Strict):
    path: str
    kind: OutputKind


class Action(_Strict):
    run: str
    inputs: list[Name] = Field(default_factory=list, max_length=50)
    needs: list[Name] = Field(default_factory=list, max_length=MAX_ACTIONS)
    outputs: dict[Name, Output] = Field(min_length=1, max_length=MAX_OUTPUTS)
    # when the job (this action and those it needs) is to be seen ending, in seconds from its
    # start: a job that is done by then ends then, whatever it took; one past it ends at the
    # next step of the ladder and its answer is spent (service.Jobs._pad)
    expected_seconds: int | None = Field(default=None, ge=1, le=MAX_EXPECTED_SECONDS)

    @property
    def runner(self) -> str:
        """``python``, ``notebook``, ``Rscript`` or ``rmarkdown``."""
        return self.run.split(" ", 1)[0]

    @property
    def script(self) -> str:
        return self.run.split(" ", 1)[1]

    def released(self) -> dict[str, Output]:
        """The outputs that may leave (through the check): all but internal ones."""
        return {name: o for name, o in self.outputs.items() if o.kind is not OutputKind.INTERNAL}


class Pipeline(_Strict):
    version: int = Field(ge=1, le=1)
    actions: dict[Name, Action] = Field(min_length=1, max_length=MAX_ACTIONS)

    def action(self, name: str) -> Action:
        if name not in self.actions:
            raise Invalid(f"project.yaml has no action {name!r}; its actions are "
                          f"{', '.join(sorted(self.actions))}")
        return self.actions[name]

    def order(self, name: str) -> list[str]:
        """``name`` and every action it needs, each after what it needs."""
        done: list[str] = []

        def visit(at: str) -> None:
            if at in done:
                return
            for need in self.actions[at].needs:
                visit(need)
            done.append(at)

        self.action(name)  # refused, naming the actions, if absent
        visit(name)
        return done

    def check_inputs(self, held: Collection[str]) -> None:
        """Refuse inputs the project does not hold (its tables and definitions)."""
        missing = [f"action {name!r} reads input {i!r}, which the project does not hold "
                   f"(its tables and definitions: {', '.join(sorted(held)) or 'none'})"
                   for name, a in self.actions.items() for i in a.inputs if i not in held]
        if missing:
            raise Invalid(missing)


def parse(text: str, files: Collection[str] = ()) -> Pipeline:
    """The pipeline in ``text``, with every problem named (``files``: the paths the code
    holds, to find scripts that are missing)."""
    if len(text) > MAX_TEXT:
        raise Invalid(f"{FILE} is longer than {MAX_TEXT:,} characters; a pipeline is short")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise Invalid(f"{FILE} uses YAML anchors and aliases (& and *); write each "
                              "action out in full")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise Invalid(f"{FILE} nests deeper than {MAX_DEPTH} levels; a pipeline "
                                  "is four")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as error:
        raise Invalid(f"{FILE} is not YAML: {type(error).__name__}") from None
    if not isinstance(data, dict):
        raise Invalid(f"{FILE} must be a mapping with 'version: 1' and 'actions:'")
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as error:
        raise Invalid([_reason(e) for e in error.errors()]) from None
    problems = [*_runs(pipeline, set(files)), *_needs(pipeline), *_outputs(pipeline)]
    if problems:
        raise Invalid(problems)
    return pipeline


def _reason(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{FILE}: {where} is not a key it knows (remove it)"
    if error["type"] == "string_pattern_mismatch":
        return (f"{FILE}: {where} is not a name: letters, digits and '_', starting with a "
                "letter")
    return f"{FILE}: {where}: {error['msg']}"


def _runs(pipeline: Pipeline, files: set[str]) -> Iterable[str]:
    for name, action in pipeline.actions.items():
        match = _RUN.fullmatch(action.run)
        if match is None:
            yield (f"action {name!r}: run must be 'python <script>.py', 'notebook "
                   f"<notebook>.ipynb', 'Rscript <script>.R' or 'rmarkdown <document>.Rmd' "
                   f"(the script alone: no options, no -e), not {action.run!r}")
            continue
        runner, script = match.groups()
        suffix = RUNS[runner]
        problem = _relative(script)
        if problem:
            yield f"action {name!r}: the script {script!r} {problem}"
        elif not script.endswith(suffix):
            yield f"action {name!r}: a {runner} action runs a {suffix} file, not {script!r}"
        elif files and script not in files:
            yield f"action {name!r}: the script {script!r} is not in the code submitted"


def _needs(pipeline: Pipeline) -> Iterable[str]:
    for name, action in pipeline.actions.items():
        for need in action.needs:
            if need not in pipeline.actions:
                yield f"action {name!r} needs {need!r}, which is not an action"
            elif need == name:
                yield f"action {name!r} needs itself"
    cycle = _cycle(pipeline)
    if cycle:
        yield "actions need each other in a cycle: " + " → ".join(cycle)


def _cycle(pipeline: Pipeline) -> list[str]:
    """A cycle of needs (the first found), or none."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(at: str) -> list[str]:
        state[at] = 1
        path.append(at)
        for need in pipeline.actions[at].needs:
            if need not in pipeline.actions or need == at:
                continue
            if state.get(need) == 1:
                return [*path[path.index(need):], need]
            if need not in state:
                found = visit(need)
                if found:
                    return found
        path.pop()
        state[at] = 2
        return []

    for name in pipeline.actions:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return []


def _outputs(pipeline: Pipeline) -> Iterable[str]:
    seen: dict[str, str] = {}
    for name, action in pipeline.actions.items():
        for out, declared in action.outputs.items():
            where = f"action {name!r}, output {out!r}"
            problem = _relative(declared.path)
            path = PurePosixPath(declared.path)
            if problem:
                yield f"{where}: the path {declared.path!r} {problem}"
                continue
            if len(path.parts) < 2 or path.parts[0] != OUTPUT_DIR:
                yield (f"{where}: {declared.path!r} is outside the output folder; declare "
                       f"outputs under {OUTPUT_DIR}/")
            if path.suffix.lower() not in SUFFIXES[declared.kind]:
                yield (f"{where}: a {declared.kind.value} output is one of "
                       f"{', '.join(sorted(SUFFIXES[declared.kind]))}, not {path.name!r}")
            if declared.path in seen:
                yield f"{where}: {declared.path!r} is also declared by {seen[declared.path]}"
            # one output inside another's path: carrying both into an action that needs
            # them cannot write both (a file where a folder goes)
            for other, by in seen.items():
                inner, outer = sorted((declared.path, other), key=len)
                if outer.startswith(inner + "/"):
                    yield (f"{where}: {declared.path!r} and {other!r} (declared by {by}) "
                           "cannot both be files, one inside the other; choose other names")
            seen[declared.path] = where


def _relative(path: str) -> str | None:
    """Why ``path`` is not a plain relative path inside the code (None: it is)."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or "\\" in path:
        return "must be relative to the repository, with '/'"
    if str(pure) != path:
        return "must be written plainly (no '//', no '/' at the end)"
    if any(part in ("..", ".") for part in pure.parts) or not pure.parts:
        return "may not hold '.' or '..'"
    if any(not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", part) for part in pure.parts):
        return "may hold only letters, digits, '_', '-' and '.' in each part"
    return None


PLANS = "plans"  # the repository's folder of plans, one per action, made on dummy data


def submitted_plan(files: dict[str, bytes], action: str) -> list[dict[str, Any]]:
    """The plan submitted with the code (``plans/ACTION.json``, written by ``strongroom jobs
    run ACTION --dummy`` on the researcher's machine). The platform carries out this plan,
    fixed before the job came near the data, and only if both of its own runs make it: what
    a run in the enclave plans (or prints) could carry something of another job's run
    through the machine they share, so nothing of the dummy run here reaches the researcher
    but whether it matched."""
    path = f"{PLANS}/{action}.json"
    if path not in files:
        raise Invalid(f"the code holds no {path}: run the action on the dummy data first "
                      f"('strongroom jobs run {action} --dummy' writes it) and submit it "
                      "with the code")
    try:
        plan = json.loads(files[path])
    except (UnicodeDecodeError, ValueError):
        raise Invalid(f"{path} is not JSON; write it with 'strongroom jobs run {action} "
                      "--dummy'") from None
    if not (isinstance(plan, list) and all(
            isinstance(i, dict) and set(i) == {"output", "analysis"}
            and isinstance(i["output"], str) and isinstance(i["analysis"], dict)
            for i in plan)):
        raise Invalid(f"{path} is not a plan (a list of outputs and their analyses); write "
                      f"it with 'strongroom jobs run {action} --dummy'")
    return plan
