"""Safe analyses a researcher would run on the same cohort: the ones in the existing tests and
the demo's tour, and the everyday ones around them. Each should keep its automatic release
(verdict release or suppress); the share that loses it is the cost of the attack defences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Honest:
    name: str
    request: dict[str, Any]
    define: tuple[str, str] | None = None  # a definition made first (name, SQL)
    tags: tuple[str, ...] = field(default_factory=tuple)


# years from a first diagnosis (or 15 years' follow-up without one), and whether there was one
YEARS = ("greatest(0, coalesce(2021 - year(f.first), 15)) AS years, "
         "CASE WHEN f.first IS NULL THEN 0 ELSE 1 END AS diagnosed")
FIRST = "LEFT JOIN (SELECT pid, min(date) AS first FROM diagnoses GROUP BY pid) f ON f.pid = b.pid"


def _agg(name: str, sql: str) -> Honest:
    return Honest(name, {"kind": "aggregate_sql", "sql": sql})


HONEST: list[Honest] = [
    Honest("smoking by sex (crosstab)",
           {"kind": "crosstab", "definition": "base", "rows": "sex", "columns": "smoking"}),
    Honest("smoking (frequency)",
           {"kind": "frequency", "definition": "base", "variable": "smoking"}),
    Honest("assessment centre (frequency)",
           {"kind": "frequency", "definition": "base", "variable": "centre"}),
    Honest("sex (frequency)", {"kind": "frequency", "definition": "base", "variable": "sex"}),
    Honest("BMI and blood pressure (summary)",
           {"kind": "summary", "definition": "base", "variables": ["bmi", "sbp"],
            "statistics": ["n", "mean", "sd", "median", "q25", "q75"]}),
    Honest("BMI (histogram, 20 bins)",
           {"kind": "histogram", "definition": "base", "variable": "bmi", "bins": 20}),
    Honest("blood pressure (histogram, 10-mmHg edges)",
           {"kind": "histogram", "definition": "base", "variable": "sbp",
            "edges": [80 + 10 * i for i in range(15)]}),
    _agg("mean systolic BP by decade of birth",
         "SELECT floor(birth_year / 10) * 10 AS decade, count(sbp) AS n, avg(sbp) AS mean_sbp "
         "FROM base WHERE sbp IS NOT NULL GROUP BY decade"),
    _agg("participants by sex and smoking",
         "SELECT sex, smoking, count(*) AS n FROM base GROUP BY sex, smoking"),
    _agg("mean BMI by sex", "SELECT sex, count(bmi) AS n, avg(bmi) AS mean_bmi FROM base "
                            "GROUP BY sex"),
    _agg("median BMI by smoking", "SELECT smoking, median(bmi) AS median_bmi, count(bmi) AS n "
                                  "FROM base GROUP BY smoking"),
    _agg("SD of blood pressure by sex", "SELECT sex, stddev(sbp) AS sd_sbp, count(sbp) AS n "
                                        "FROM base GROUP BY sex"),
    _agg("people with a diagnosis, by sex",
         "SELECT b.sex, count(DISTINCT b.pid) AS people FROM base b JOIN diagnoses d "
         "ON d.pid = b.pid GROUP BY b.sex"),
    _agg("diagnoses by chapter letter",
         "SELECT substring(d.code, 1, 1) AS chapter, count(DISTINCT d.pid) AS people "
         "FROM diagnoses d GROUP BY chapter"),
    _agg("participants by centre", "SELECT centre, count(*) AS n FROM base GROUP BY centre"),
    _agg("obesity by sex",
         "SELECT sex, CASE WHEN bmi >= 30 THEN 'obese' ELSE 'not obese' END AS obesity, "
         "count(*) AS n FROM base WHERE bmi IS NOT NULL GROUP BY sex, obesity"),
    _agg("mean BMI in those with any diagnosis",
         "SELECT sex, count(bmi) AS n, avg(bmi) AS mean_bmi FROM base WHERE pid IN "
         "(SELECT pid FROM diagnoses) GROUP BY sex"),
    Honest("BMI on sex, birth year and smoking (OLS)",
           {"kind": "ols", "definition": "base", "outcome": "bmi",
            "covariates": ["sex", "birth_year", "smoking"], "categorical": ["smoking"]}),
    Honest("blood pressure on BMI and sex (OLS)",
           {"kind": "ols", "definition": "base", "outcome": "sbp",
            "covariates": ["bmi", "sex"]}),
    Honest("obesity on sex and birth year (logistic)",
           {"kind": "logistic", "definition": "obesity", "outcome": "obese",
            "covariates": ["sex", "birth_year"]},
           define=("obesity", "SELECT pid, sex, birth_year, CASE WHEN bmi >= 30 THEN 1 ELSE 0 "
                              "END AS obese FROM base WHERE bmi IS NOT NULL")),
    Honest("BMI, blood pressure and birth year (correlation)",
           {"kind": "correlation", "definition": "base",
            "variables": ["bmi", "sbp", "birth_year"]}),
    Honest("BMI and blood pressure (Spearman)",
           {"kind": "correlation", "definition": "base", "variables": ["bmi", "sbp"],
            "method": "spearman"}),
    Honest("years to a first diagnosis by sex (Kaplan–Meier)",
           {"kind": "kaplan_meier", "definition": "followed", "time": "years",
            "event": "diagnosed", "group": "sex", "unit": "years", "interval": 5},
           define=("followed", f"SELECT b.pid, b.sex, {YEARS} FROM base b {FIRST}")),
    Honest("a first diagnosis on sex and BMI (Cox)",
           {"kind": "cox", "definition": "followed_bmi", "time": "years",
            "event": "diagnosed", "covariates": ["sex", "bmi"], "unit": "years"},
           define=("followed_bmi", f"SELECT b.pid, b.sex, b.bmi, {YEARS} FROM base b {FIRST} "
                                   "WHERE b.bmi IS NOT NULL")),
    Honest("BMI by decade of birth (summary of a definition)",
           {"kind": "summary", "definition": "decades", "variables": ["bmi"],
            "statistics": ["n", "mean", "sd"]},
           define=("decades", "SELECT pid, bmi, floor(birth_year / 10) * 10 AS decade "
                              "FROM base")),
    Honest("decade of birth by smoking (crosstab of a definition)",
           {"kind": "crosstab", "definition": "decades_smoking", "rows": "decade",
            "columns": "smoking"},
           define=("decades_smoking", "SELECT pid, smoking, floor(birth_year / 10) * 10 AS "
                                      "decade FROM base")),
    _agg("mean systolic BP by sex and obesity",
         "SELECT sex, bmi >= 30 AS obese, count(sbp) AS n, avg(sbp) AS mean_sbp FROM base "
         "WHERE bmi IS NOT NULL GROUP BY sex, obese"),
    _agg("quartiles of BMI by sex",
         "SELECT sex, quantile_cont(bmi, 0.25) AS q1, quantile_cont(bmi, 0.75) AS q3, "
         "count(bmi) AS n FROM base GROUP BY sex"),
    _agg("total diagnoses by sex (rows)",
         "SELECT b.sex, count(*) AS diagnoses FROM base b JOIN diagnoses d ON d.pid = b.pid "
         "GROUP BY b.sex"),
    _agg("people born before 1950 by sex",
         "SELECT sex, count(*) AS n FROM base WHERE birth_year < 1950 GROUP BY sex"),
    _agg("mean BMI of current smokers by sex",
         "SELECT sex, count(bmi) AS n, avg(bmi) AS mean_bmi FROM base WHERE smoking = 2 "
         "GROUP BY sex"),
]
