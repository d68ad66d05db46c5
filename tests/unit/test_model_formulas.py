"""Model formulas: researchers' text is parsed, never run, until every factor is a listed shape.

The guarantee: formulaic evaluates only a column, C(column) or one of the listed transforms of
a column with whole-number arguments in their bounds; anything else is refused with what is
allowed, before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.enclave.analyses.formula import centred, parse, term_name
from strongroom.enclave.analyses.spec import parse_spec
from strongroom.errors import Invalid


def test_a_study_formula_reads_its_outcome_variables_and_categories() -> None:
    found = parse("diabetes ~ cr(age, df=4) + bmi * C(sex) + C(smoking) + poly(sbp, degree=2)")
    assert found.outcome == "diabetes"
    assert found.variables == ("age", "bmi", "sex", "smoking", "sbp")
    assert found.categorical == ("sex", "smoking")
    assert "bmi:C(sex)" in found.right


@pytest.mark.parametrize(("formula", "says"), [
    ("y ~ np.log(x)", "is not one of"),
    ("y ~ I(x ** 2)", "is not one of"),
    ("y ~ x.real", "is not one of"),
    ("y ~ C(x, Treatment(1))", "is not one of"),
    ("y ~ C(C(x))", "is not one of"),
    ("y ~ cr(x)", "give the spline's df"),
    ("y ~ cr(x, df=99)", "df must be 3 to 10"),
    ("y ~ bs(x, df=4, degree=9)", "degree must be 1 to 3"),
    ("y ~ cr(x, df=4.5)", "takes df=N"),
    ("y ~ cr(x, df=4, df=5)", "names an argument twice"),
    ("y ~ cr(x, knots=[1, 2])", "takes df=N"),
    ("y ~ center(x, y=1)", "takes only a column"),
    ("y ~ x - 1", "intercept is always fitted"),
    ("y ~ x + 0", "intercept is always fitted"),
    ("y ~ C(x) + x", "both as a number and inside C()"),
    ("y ~ y + x", "also on the right"),
    ("y + z ~ x", "the left of ~ must be one column"),
    ("pid ~ x", "pid is the participant pseudonym"),
    ("y ~ pid", "pid is the participant pseudonym"),
    ("y ~ `__class__`", "must be a column"),
    ("y ~ x | z", "no `|` parts"),
    ("y ~ x ~ z", "outcome ~ terms"),
    ("y ~ .", "could not be read"),
    ("y x", "outcome ~ terms"),
    ("y ~ " + " + ".join(f"x{i}" for i in range(60)), "more than 50 terms"),
    ("y ~ " + "x + " * 400 + "x", "longer than 1000"),
    ("y ~ (x + z)**20", "power of 1 to 3"),  # expanded one product at a time: 27 s
    ("y ~ (x + z)^20", "power of 1 to 3"),
    ("y ~ (x + z)**(2)", "power of 1 to 3"),
    ("y ~ a*b*c*d*e*f*g*h*i*j", "at most 8 `*`"),  # 2^10 terms
])
def test_anything_else_is_refused_saying_what_is_allowed(formula: str, says: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse(formula)
    assert says in " ".join(refused.value.reasons)


@pytest.mark.parametrize("payload", [
    "y ~ {__import__('pathlib').Path('MARK').touch()}",
    "y ~ {open('MARK', 'w')}",
    "y ~ C(x, __import__('pathlib').Path('MARK').touch())",
    "y ~ cr(x, df=__import__('pathlib').Path('MARK').touch())",
    "y ~ `x`:{(lambda: __import__('pathlib').Path('MARK').touch())()}",
])
def test_code_in_a_formula_never_runs(payload: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Invalid):
        parse_spec({"kind": "glm", "formula": payload})
    assert not (tmp_path / "MARK").exists()


def test_the_spec_refuses_offsets_where_they_mean_nothing_and_columns_twice() -> None:
    for bad, says in [
        ({"formula": "y ~ x", "offset": "o"}, "poisson or negative_binomial"),
        ({"formula": "y ~ x", "family": "poisson", "offset": "o", "exposure": "e"}, "not both"),
        ({"formula": "y ~ x", "family": "poisson", "exposure": "x"}, "columns of their own"),
        ({"formula": "y ~ x", "family": "negative_binomial", "weights": "w"}, "weights"),
        ({"formula": "y ~ x", "errors": "sandwich"}, "errors"),
    ]:
        with pytest.raises(Invalid) as refused:
            parse_spec({"kind": "glm", **bad})
        assert says in " ".join(refused.value.reasons), refused.value.reasons
    spec = parse_spec({"kind": "glm", "formula": "n ~ C(sex)", "family": "poisson",
                       "exposure": "years", "weights": "w"})
    assert spec.reads() == ["n", "sex", "years", "w"]


def test_terms_are_named_as_the_other_models_name_them() -> None:
    assert term_name("C(sex)[T.1]") == "sex=1"
    assert term_name("bmi:C(sex)[T.1]") == "bmi:sex=1"
    assert term_name("cr(age, df=4, constraints='center')[2]") == "cr(age, df=4)[2]"
    assert centred("1 + cr(age, df=4) + bmi") == "1 + cr(age, df=4, constraints='center') + bmi"


def test_cox_score_residuals_are_the_textbook_ones_in_linear_time() -> None:
    """The delta-beta bounds of a Cox fit read every row's score residual; the vectorised
    sums give exactly the formula's (ties included), and sum to zero at the estimate."""
    import numpy as np

    from strongroom.enclave.analyses.survival import score_residuals

    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 2))
    t = np.round(rng.exponential(5, 120), 0) + 1  # many ties
    e = (rng.random(120) < 0.7).astype(float)
    beta = np.array([0.3, -0.2])
    phi = np.exp(x @ beta)
    brute = np.zeros_like(x)
    for i in range(len(t)):
        if e[i]:
            risk = t >= t[i]
            brute[i] += x[i] - (phi[risk, None] * x[risk]).sum(0) / phi[risk].sum()
        for j in np.flatnonzero((e == 1) & (t <= t[i])):
            risk = t >= t[j]
            mean = (phi[risk, None] * x[risk]).sum(0) / phi[risk].sum()
            brute[i] -= phi[i] * (x[i] - mean) / phi[risk].sum()
    assert np.allclose(score_residuals(x, t, e, beta), brute, atol=1e-12)


def test_the_model_matrix_is_bounded_before_it_is_built() -> None:
    """An interaction of splines of splines would be 30,000 columns (1.9 GiB on 3,000 rows):
    its size is known from the terms before any matrix is made."""
    found = parse("bmi ~ cr(sbp, df=10):bs(sbp, df=10, degree=3):cr(age, df=10)"
                  ":bs(age, df=10, degree=3):poly(sbp, degree=3)")
    assert found.most_columns({}) == 30_000
    study = parse("diabetes ~ cr(age, df=4) + bmi * C(sex) + C(smoking)")
    assert study.most_columns({"sex": 2, "smoking": 3}) == 4 + 1 + 2 + 3 + 2
