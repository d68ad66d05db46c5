"""What a researcher may ask an analysis to do: one typed spec per kind, refused if unclear.

Specs are pydantic models with no extra fields, discriminated by ``kind`` (an
:class:`~strongroom.enclave.results.AnalysisKind` value). :func:`parse_spec` turns a JSON-like
mapping into a spec or raises :class:`~strongroom.errors.Invalid` with one reason per field.
Whether the named variables exist is only known against a dataset definition, so
:func:`strongroom.enclave.analyses.run.run` checks that.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from strongroom.enclave.analyses.formula import MAX_FORMULA, Parsed
from strongroom.enclave.analyses.formula import parse as parse_formula
from strongroom.enclave.results import AnalysisKind
from strongroom.errors import Invalid

PID = "pid"  # the participant pseudonym: never an analysis variable
Column = Annotated[str, StringConstraints(min_length=1, max_length=128)]
RoundTo = Annotated[int, Field(ge=2, le=10_000)]
Statistic = Literal["n", "mean", "sd", "median", "q25", "q75", "min", "max", "mode"]
DEFAULT_STATISTICS: list[Statistic] = ["n", "mean", "sd", "median", "q25", "q75"]
TimeUnit = Literal["days", "weeks", "months", "years"]
YEAR_IN: dict[str, float] = {"days": 365.25, "weeks": 365.25 / 7, "months": 12.0, "years": 1.0}
MAX_COVARIATES = 50
MAX_BINS = 100


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"names {name!r} twice")
        seen.add(name)
    return names


def _categorical_among(categorical: list[str], covariates: list[str]) -> None:
    """Every categorical variable must be one of the covariates too."""
    stray = [c for c in categorical if c not in covariates]
    if stray:
        raise ValueError(f"categorical names {stray[0]!r}, which is not among the "
                         "covariates; list it in covariates too")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AnalysisKind

    def reads(self) -> list[str]:
        """The dataset definition's columns this analysis reads (besides ``pid``)."""
        raise NotImplementedError

    @field_validator("variables", "statistics", "covariates", "categorical",
                     check_fields=False)
    @classmethod
    def _names_once(cls, names: list[str]) -> list[str]:
        """Each list of names (where a spec has it) names every column once."""
        return _unique(names)

    @model_validator(mode="after")
    def _not_pid(self) -> Self:
        if PID in self.reads():
            raise ValueError("pid is the participant pseudonym and cannot be analysed; "
                             "name another column")
        return self


class FrequencySpec(_Spec):
    """Counts of each value of one variable, with a total and (optionally) percentages."""

    kind: Literal[AnalysisKind.FREQUENCY] = AnalysisKind.FREQUENCY
    variable: Column
    percentages: bool = True
    missing: bool = True  # count missing values as a level "(missing)"
    round_to: RoundTo | None = None

    def reads(self) -> list[str]:
        return [self.variable]


class CrosstabSpec(_Spec):
    """Counts for every combination of two variables' values, zero combinations included."""

    kind: Literal[AnalysisKind.CROSSTAB] = AnalysisKind.CROSSTAB
    rows: Column
    columns: Column
    margins: bool = True
    percentages: Literal["none", "row", "column", "total"] = "none"
    missing: bool = True
    round_to: RoundTo | None = None

    def reads(self) -> list[str]:
        return [self.rows, self.columns]

    @model_validator(mode="after")
    def _two_variables(self) -> Self:
        if self.rows == self.columns:
            raise ValueError("rows and columns name the same variable; use a frequency table")
        return self


class SummarySpec(_Spec):
    """Summary statistics of numeric variables (min, max and mode only where the check allows);
    ``n`` counts participants with a value, and quantiles and the mode are of participants
    (each by the median of their own rows)."""

    kind: Literal[AnalysisKind.SUMMARY] = AnalysisKind.SUMMARY
    variables: list[Column] = Field(min_length=1, max_length=MAX_COVARIATES)
    statistics: list[Statistic] = Field(default_factory=lambda: list(DEFAULT_STATISTICS),
                                        max_length=9)
    quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=list,
                                                                  max_length=20)
    round_to: RoundTo | None = None

    def reads(self) -> list[str]:
        return list(self.variables)

    @field_validator("quantiles")
    @classmethod
    def _distinct_quantiles(cls, v: list[float]) -> list[float]:
        if len(set(v)) != len(v):
            raise ValueError("quantiles lists a value twice")
        return v

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.statistics and not self.quantiles:
            raise ValueError("ask for at least one statistic or quantile")
        return self


class HistogramSpec(_Spec):
    """Counts per bin: ``bins`` equal bins on rounded edges drawn from values winsorised at
    about the k-th participant from either end, or the researcher's ``edges`` (with
    open-ended bins below and above, always shown)."""

    kind: Literal[AnalysisKind.HISTOGRAM] = AnalysisKind.HISTOGRAM
    variable: Column
    bins: int | None = Field(default=None, ge=1, le=MAX_BINS)
    edges: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        default=None, min_length=2, max_length=MAX_BINS + 1)
    round_to: RoundTo | None = None

    def reads(self) -> list[str]:
        return [self.variable]

    @field_validator("edges")
    @classmethod
    def _increasing(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(b <= a for a, b in pairwise(v)):
            raise ValueError("edges must be strictly increasing")
        return v

    @model_validator(mode="after")
    def _bins_or_edges(self) -> Self:
        if self.bins is not None and self.edges is not None:
            raise ValueError("give bins or edges, not both")
        return self


class _Model(_Spec):
    covariates: list[Column] = Field(min_length=1, max_length=MAX_COVARIATES)
    categorical: list[Column] = Field(default_factory=list, max_length=MAX_COVARIATES)

    def _responses(self) -> list[str]:
        raise NotImplementedError

    def reads(self) -> list[str]:
        return [*self._responses(), *self.covariates]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _categorical_among(self.categorical, self.covariates)
        for response in self._responses():
            if response in self.covariates:
                raise ValueError(f"{response!r} is both a response and a covariate")
        if len(set(self._responses())) != len(self._responses()):
            raise ValueError("the response columns must be different columns")
        return self


class OlsSpec(_Model):
    """Linear regression of a numeric outcome (statsmodels OLS); a ``categorical``
    level held by fewer than the project's threshold is counted in its reference
    (the most common level)."""

    kind: Literal[AnalysisKind.OLS] = AnalysisKind.OLS
    outcome: Column

    def _responses(self) -> list[str]:
        return [self.outcome]


class LogisticSpec(_Model):
    """Logistic regression of a 0/1 (or true/false) outcome (statsmodels Logit); a
    ``categorical`` level held by fewer than the project's threshold is counted in its reference
    (the most common level)."""

    kind: Literal[AnalysisKind.LOGISTIC] = AnalysisKind.LOGISTIC
    outcome: Column

    def _responses(self) -> list[str]:
        return [self.outcome]


class _Survival(_Spec):
    time: Column  # time from the start of follow-up, in ``unit``
    event: Column  # 1/true: the event happened at ``time``; 0/false: censored there

    unit: TimeUnit = "days"


MAX_CAUSES = 10  # competing causes of a cumulative incidence: 1 … MAX_CAUSES


class LifeTableSpec(_Survival):
    """Survival reported per interval of a grid (never at event times); a participant on
    several rows is followed once, to their first event or last time."""

    group: Column | None = None
    interval: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # in ``unit``
    round_to: RoundTo | None = None

    def reads(self) -> list[str]:
        return [self.time, self.event, *([self.group] if self.group else [])]

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if len(set(self.reads())) != len(self.reads()):
            raise ValueError("time, event and group must be different columns")
        return self

    def width(self) -> float:
        """The grid's interval width in the time column's unit (default: one year)."""
        return self.interval if self.interval is not None else YEAR_IN[self.unit]

    def causes(self) -> int:
        """The highest event code: 1 (0/1 events) unless causes compete."""
        return 1


class KaplanMeierSpec(LifeTableSpec):
    """Kaplan–Meier survival on a grid of intervals."""

    kind: Literal[AnalysisKind.KAPLAN_MEIER] = AnalysisKind.KAPLAN_MEIER


class CumulativeIncidenceSpec(LifeTableSpec):
    """Competing risks: the Aalen–Johansen cumulative incidence of each cause on a grid of
    intervals (as Kaplan–Meier's). ``event`` holds 0 for censored and 1 to 10 for the cause
    of the event (other values are left out); a participant on several rows is followed to
    their first event, and its cause."""

    kind: Literal[AnalysisKind.CUMULATIVE_INCIDENCE] = AnalysisKind.CUMULATIVE_INCIDENCE

    def causes(self) -> int:
        return MAX_CAUSES


class CoxSpec(_Model):
    """Cox proportional hazards, Efron's method for ties (lifelines' estimator,
    vectorised); a ``categorical`` level held by fewer than the project's threshold
    is counted in its reference (the most common level)."""

    kind: Literal[AnalysisKind.COX] = AnalysisKind.COX
    time: Column
    event: Column
    unit: TimeUnit = "days"

    def _responses(self) -> list[str]:
        return [self.time, self.event]


Family = Literal["gaussian", "binomial", "poisson", "negative_binomial"]


class GlmSpec(_Spec):
    """A generalised linear model written as a formula (``diabetes ~ cr(age, df=4) + bmi *
    C(sex)``, see enclave/analyses/formula.py): Gaussian (identity link), binomial (logit),
    Poisson or negative binomial (log) with an ``offset`` (on the log scale) or an
    ``exposure`` (its log is the offset: person-years), prior ``weights``, and model-based,
    robust (HC1) or participant-clustered standard errors."""

    kind: Literal[AnalysisKind.GLM] = AnalysisKind.GLM
    formula: Annotated[str, StringConstraints(min_length=3, max_length=MAX_FORMULA)]
    family: Family = "gaussian"
    offset: Column | None = None
    exposure: Column | None = None
    weights: Column | None = None
    errors: Literal["model", "robust", "cluster"] = "model"

    def parsed(self) -> Parsed:
        return parse_formula(self.formula)

    def reads(self) -> list[str]:
        found = self.parsed()
        extra = [c for c in (self.offset, self.exposure, self.weights) if c is not None]
        return list(dict.fromkeys([found.outcome, *found.variables, *extra]))

    @model_validator(mode="before")
    @classmethod
    def _formula_reads(cls, data: Any) -> Any:
        """The formula is checked before anything else: a refusal names what it may hold."""
        if isinstance(data, Mapping) and isinstance(data.get("formula"), str):
            try:
                parse_formula(data["formula"])
            except Invalid as refusal:
                raise ValueError("; ".join(refusal.reasons)) from None
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.offset is not None and self.exposure is not None:
            raise ValueError("give an offset or an exposure, not both")
        if (self.offset or self.exposure) and self.family in ("gaussian", "binomial"):
            raise ValueError("an offset or exposure is for a poisson or negative_binomial "
                             "rate model")
        if self.weights is not None and self.family == "negative_binomial":
            raise ValueError("weights are not taken by the negative binomial model; use "
                             "poisson with errors \"robust\", or leave the weights out")
        extra = [c for c in (self.offset, self.exposure, self.weights) if c is not None]
        if set(extra) & set(self.parsed().variables) or self.parsed().outcome in extra:
            raise ValueError("the offset, exposure and weights must be columns of their own, "
                             "not in the formula")
        return self


class CorrelationSpec(_Spec):
    """Pairwise correlation matrix of numeric variables (each pair over rows with both)."""

    kind: Literal[AnalysisKind.CORRELATION] = AnalysisKind.CORRELATION
    variables: list[Column] = Field(min_length=2, max_length=MAX_COVARIATES)
    method: Literal["pearson", "spearman"] = "pearson"

    def reads(self) -> list[str]:
        return list(self.variables)


MAX_TRAITS = 10
MAX_PCS = 20


class GwasSpec(_Spec):
    """A genome-wide association study of one or more traits over the genotypes (the project
    needs a genotype grant): per variant, ``trait ~ dosage + covariates + principal
    components`` by least squares (``linear``) or logistic regression of a 0/1 trait with
    Firth's fallback for rare variants (``logistic``, one trait), as ``plink2 --glm`` fits
    them. The top ``principal_components`` of the analysed participants' genotypes are
    computed inside and added as covariates. Variants below ``min_mac`` (minor allele count)
    or ``min_info`` (imputation r²) are not tested; the genetics rules then withhold variants
    whose minor allele is too rare or whose release would reveal who took part. Out come
    per-variant statistics, a Manhattan and a QQ plot, and the genomic inflation factor."""

    kind: Literal[AnalysisKind.GWAS] = AnalysisKind.GWAS
    traits: list[Column] = Field(min_length=1, max_length=MAX_TRAITS)
    model: Literal["linear", "logistic"] = "linear"
    covariates: list[Column] = Field(default_factory=list, max_length=MAX_COVARIATES)
    categorical: list[Column] = Field(default_factory=list, max_length=MAX_COVARIATES)
    principal_components: int = Field(default=10, ge=0, le=MAX_PCS)
    min_mac: int = Field(default=0, ge=0)
    min_info: float = Field(default=0.0, ge=0, le=1)

    def reads(self) -> list[str]:
        return [*self.traits, *self.covariates]

    @field_validator("traits")
    @classmethod
    def _traits_once(cls, names: list[str]) -> list[str]:
        return _unique(names)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _categorical_among(self.categorical, self.covariates)
        both = [t for t in self.traits if t in self.covariates]
        if both:
            raise ValueError(f"{both[0]!r} is both a trait and a covariate")
        if self.model == "logistic" and len(self.traits) != 1:
            raise ValueError("a logistic GWAS takes one 0/1 trait; run one per trait")
        return self


Spec = Annotated[
    FrequencySpec | CrosstabSpec | SummarySpec | HistogramSpec | OlsSpec | LogisticSpec
    | KaplanMeierSpec | CumulativeIncidenceSpec | CoxSpec | GlmSpec | CorrelationSpec
    | GwasSpec,
    Field(discriminator="kind"),
]
AnySpec = (FrequencySpec | CrosstabSpec | SummarySpec | HistogramSpec | OlsSpec | LogisticSpec
           | KaplanMeierSpec | CumulativeIncidenceSpec | CoxSpec | GlmSpec | CorrelationSpec
           | GwasSpec)
_ADAPTER: TypeAdapter[AnySpec] = TypeAdapter(Spec)
KINDS = sorted(k.value for k in AnalysisKind
               if k not in (AnalysisKind.AGGREGATE_SQL, AnalysisKind.JOB_FILE))


def parse_spec(data: Mapping[str, Any]) -> AnySpec:
    """The typed spec for ``data``, or :class:`Invalid` with a reason for every bad field."""
    if not isinstance(data, Mapping):
        raise Invalid("an analysis spec must be an object with a kind and its fields")
    kind = data.get("kind")
    if kind == AnalysisKind.AGGREGATE_SQL:
        raise Invalid("aggregate SQL is run as a query over the dataset definition, not as an "
                      "analysis spec")
    if kind not in KINDS:
        raise Invalid(f"kind must be one of: {', '.join(KINDS)}")
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        raise Invalid([_reason(str(kind), e) for e in exc.errors()]) from None


def _reason(kind: str, error: ErrorDetails) -> str:
    """One plain sentence per pydantic error, naming the field and never echoing the input."""
    loc = [str(p) for p in error["loc"]]
    if loc and loc[0] == kind:  # the discriminated union puts the tag first
        loc = loc[1:]
    where = ".".join(loc) or "spec"
    kind_ = error["type"]
    if kind_ == "extra_forbidden":
        return f"{where}: not a field of a {kind} analysis"
    if kind_ == "missing":
        return f"{where}: required for a {kind} analysis"
    message = error["msg"].removeprefix("Value error, ")
    return message if where == "spec" else f"{where}: {message}"
