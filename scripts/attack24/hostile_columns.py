"""Attack: a guilty copy plus one hostile column. If attribution raises, the seller has
escaped tracing for the price of one junk column.

Run: PYTHONPATH=$PWD/src:$PWD /work/main/.venv/bin/python scripts/attack24/hostile_columns.py
"""

from __future__ import annotations

import traceback

import polars as pl
from scripts.attack24.world import make

made = make(3000, 43, [31, 34, 52, 54, 30690, 21001, 48], 2)
copy = made.copy(0)
n = copy.height
print("levels:", made.results[0].risk.get("generalisation"), "columns:", copy.columns)


def col(values: list[object]) -> list[object]:
    return (values * (n // len(values) + 1))[:n]


variants: dict[str, pl.DataFrame] = {
    "guilty copy": copy,
    "huge integer band": copy.with_columns(pl.Series("junk", col(["1–99999999999999999999",
                                                                   "100000000000000000000–199999999999999999999"]))),
    "huge integer band 2": copy.with_columns(pl.Series("junk", col(["0–9223372036854775807"]))),
    "tiny interval": copy.with_columns(pl.Series("junk", col(["[0, 1e-300)", "[1e-300, 2e-300)"]))),
    "interval overflow": copy.with_columns(pl.Series("junk", col(["[0, 1e308)", "[1e308, 2e308)"]))),
    "negative bands": copy.with_columns(pl.Series("junk", col(["-10–-6", "-5–-1"]))),
    "all null": copy.with_columns(pl.lit(None, dtype=pl.String).alias("junk")),
    "all null p34": copy.with_columns(pl.lit(None, dtype=pl.String).alias("p34")),
    "p34 numbers": copy.with_columns(pl.Series("p34", col([1950, 1960]))),
    "dates before 1970": copy.with_columns(pl.Series("junk", col(["1901-01-01", "1969-12-31", "1815-06-18"]))),
    "dates far future": copy.with_columns(pl.Series("junk", col(["9999-12-31", "2262-04-12"]))),
    "only p34": copy.select("p34"),
    "only one row": copy.head(1),
    "only p31": copy.select("p31"),
    "empty strings": copy.with_columns(pl.lit("", dtype=pl.String).alias("p34")),
    "band with star": copy.with_columns(pl.Series("junk", col(["*", "1940–1949"]))),
    "width-0 labels": copy.with_columns(pl.Series("junk", col(["1950–1950", "1951–1951"]))),
    "reversed labels": copy.with_columns(pl.Series("junk", col(["1955–1950", "1965–1960"]))),
}
for name, frame in variants.items():
    try:
        report = made.attribute(frame, name.replace(" ", "_") + ".csv")
        print(f"{name:22s} verdict={report.verdict} accused={[a.extract_id[-6:] for a in report.accused]}"
              f" linked={report.rows_linked}")
    except Exception as exc:
        print(f"{name:22s} RAISED {type(exc).__name__}: {str(exc)[:200]}")
        traceback.print_exc(limit=-3)
