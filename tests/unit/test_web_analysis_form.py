"""The workspace's analysis form: every kind the API takes has its fields (a complete table),
and a formula is taken as typed."""

from __future__ import annotations

import pytest

from strongroom.enclave.analyses.spec import KINDS, parse_spec
from strongroom.errors import Invalid
from strongroom.server.web.workspace import FILLS, spec_from_form


def test_every_kind_has_its_fields() -> None:
    assert set(FILLS) == set(KINDS)  # one missing was a server error on choosing it


@pytest.mark.parametrize("kind", sorted(FILLS))
def test_a_form_with_nothing_typed_is_refused_with_what_the_kind_takes(kind: str) -> None:
    with pytest.raises(Invalid) as refused:
        spec_from_form(kind, "study", "", "", "")
    assert refused.value.reasons


def test_a_formula_keeps_its_commas_and_its_options() -> None:
    spec = spec_from_form("glm", "study", "diabetes ~ cr(age, df=4) + bmi * C(sex)", "",
                          '{"family": "binomial", "errors": "robust"}')
    assert spec == {"kind": "glm", "definition": "study", "family": "binomial",
                    "errors": "robust", "formula": "diabetes ~ cr(age, df=4) + bmi * C(sex)"}
    parse_spec({k: v for k, v in spec.items() if k != "definition"})
