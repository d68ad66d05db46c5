"""Strongroom's in-job library: outputs that the platform itself computes and checks.

A job's script calls these functions to *ask* for an analysis of one of its inputs; nothing is
computed here. Each call adds one line to the job's plan. When the job has run, the platform
runs every planned analysis in the enclave with the same engine, rules, differencing ledger
and suppression as an analysis asked for through the API, so these outputs can be released
automatically. Files a script writes by itself go to two output checkers instead.

The plan the platform carries out is the one the script makes on the project's *dummy* data,
and the script must make the same plan on the real data: which analyses a job asks for must
not depend on the participants' values (a plan that does is refused, with both plans shown).

    from strongroom import sdc

    sdc.frequency("smokers", "cohort", "smoking")
    sdc.logistic("diabetes_model", "cohort", outcome="diabetes",
                 covariates=["bmi", "age", "sex", "deprivation"], categorical=["sex"])
    frame = sdc.read("cohort")  # pandas, for the script's own work

This module uses the standard library only (pandas for :func:`read`), so that it runs in the
sandbox beside any script, and on a researcher's machine.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

PLAN_ENV = "STRONGROOM_PLAN"  # the file the plan is written to (set by the job runner)
INPUTS_ENV = "STRONGROOM_INPUTS"  # the folder holding the job's inputs as Parquet
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


class PlanError(ValueError):
    """A planned output was asked for wrongly (raised in the script, before anything runs)."""


def read(name: str) -> Any:
    """The input ``name`` (a project table or dataset definition the action lists under
    ``inputs``) as a pandas DataFrame."""
    import pandas as pd

    return pd.read_parquet(input_path(name))


def input_path(name: str) -> Path:
    """Where the input ``name`` is, as a Parquet file (for polars, DuckDB or pyarrow)."""
    if not _NAME.fullmatch(name):
        raise PlanError(f"{name!r} is not an input name")
    path = Path(os.environ.get(INPUTS_ENV, "inputs")) / f"{name}.parquet"
    if not path.exists():
        raise PlanError(f"there is no input {name!r}: list it under the action's inputs in "
                        "project.yaml")
    return path


def analysis(output: str, kind: str, **spec: Any) -> None:
    """Plan the analysis ``kind`` (any kind the platform runs: frequency, crosstab, summary,
    histogram, ols, logistic, kaplan_meier, cumulative_incidence, cox, glm, correlation,
    aggregate_sql) as the declared output ``output``; ``spec`` is the analysis's
    specification as the API takes it."""
    if not isinstance(output, str) or not _NAME.fullmatch(output):
        raise PlanError(f"{output!r} is not an output name: letters, digits and '_', "
                        "starting with a letter")
    try:
        line = json.dumps({"output": output, "analysis": {"kind": kind, **spec}},
                          sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PlanError(f"the specification of {output!r} is not plain JSON: {error}") from None
    with open(os.environ.get(PLAN_ENV, "plan.jsonl"), "a", encoding="utf-8") as plan:
        plan.write(line + "\n")


def frequency(output: str, definition: str, variable: str, **options: Any) -> None:
    """Participants per value of ``variable``."""
    analysis(output, "frequency", definition=definition, variable=variable, **options)


def crosstab(output: str, definition: str, rows: str, columns: str, **options: Any) -> None:
    """Participants per pair of values (rows by columns), with margins."""
    analysis(output, "crosstab", definition=definition, rows=rows, columns=columns, **options)


def summary(output: str, definition: str, variables: list[str], **options: Any) -> None:
    """n, mean, SD, quantiles… of numeric variables (``statistics=``, ``quantiles=``)."""
    analysis(output, "summary", definition=definition, variables=list(variables), **options)


def histogram(output: str, definition: str, variable: str, **options: Any) -> None:
    """Counts in bins of a numeric variable (``bins=`` or ``edges=``)."""
    analysis(output, "histogram", definition=definition, variable=variable, **options)


def ols(output: str, definition: str, outcome: str, covariates: list[str],
        **options: Any) -> None:
    """Linear regression (``categorical=`` the covariates that are categories)."""
    analysis(output, "ols", definition=definition, outcome=outcome,
             covariates=list(covariates), **options)


def logistic(output: str, definition: str, outcome: str, covariates: list[str],
             **options: Any) -> None:
    """Logistic regression of a 0/1 outcome (``categorical=`` as for :func:`ols`)."""
    analysis(output, "logistic", definition=definition, outcome=outcome,
             covariates=list(covariates), **options)


def kaplan_meier(output: str, definition: str, time: str, event: str,
                 **options: Any) -> None:
    """Kaplan–Meier survival per interval of a grid (``group=``, ``interval=``)."""
    analysis(output, "kaplan_meier", definition=definition, time=time, event=event, **options)


def cumulative_incidence(output: str, definition: str, time: str, event: str,
                         **options: Any) -> None:
    """Competing risks: each cause's Aalen–Johansen cumulative incidence per interval of a
    grid (``event``: 0 censored, 1, 2 … the cause; ``group=``, ``interval=``)."""
    analysis(output, "cumulative_incidence", definition=definition, time=time, event=event,
             **options)


def cox(output: str, definition: str, time: str, event: str, covariates: list[str],
        **options: Any) -> None:
    """A Cox proportional-hazards model."""
    analysis(output, "cox", definition=definition, time=time, event=event,
             covariates=list(covariates), **options)


def correlation(output: str, definition: str, variables: list[str], **options: Any) -> None:
    """Pairwise correlations of numeric variables."""
    analysis(output, "correlation", definition=definition, variables=list(variables),
             **options)


def sql(output: str, query: str) -> None:
    """Aggregate SQL over the project's tables and definitions (``GROUP BY`` with counts)."""
    analysis(output, "aggregate_sql", sql=query)
