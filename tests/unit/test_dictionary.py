"""The shipped dictionary is built from the real Showcase files, with roles and precision."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from strongroom.cohort.dictionary import Coding, Dictionary, Role, ValueType
from strongroom.cohort.showcase import build_dictionary, load_curation, read_encodings
from tests.conftest import SHARED

SCHEMA = SHARED / "ukb-schema"


def test_every_value_type_and_role_is_present(dictionary: Dictionary) -> None:
    types = {f.value_type for f in dictionary}
    assert types >= {ValueType.INTEGER, ValueType.CONTINUOUS, ValueType.CATEGORICAL_SINGLE,
                     ValueType.CATEGORICAL_MULTIPLE, ValueType.DATE, ValueType.TEXT}
    roles = {f.role for f in dictionary}
    assert roles >= {Role.QUASI_IDENTIFIER, Role.SENSITIVE, Role.MEASUREMENT, Role.EVENT_DATE}
    assert len(dictionary) >= 40


def test_facts_carry_over_from_the_showcase(dictionary: Dictionary) -> None:
    bmi = dictionary.field(21001)
    assert bmi.name == "Body mass index (BMI)"
    assert bmi.value_type == ValueType.CONTINUOUS
    assert bmi.unit == "Kg/m2"
    assert bmi.mean == pytest.approx(26.1954)
    assert bmi.sd == pytest.approx(4.20645)
    assert bmi.precision == 4
    sbp = dictionary.field(4080)
    assert (sbp.instances, sbp.arrays) == (4, 2)
    sex = dictionary.field(31)
    assert dictionary.codings[sex.coding_id or 0].codes == {"0": "Female", "1": "Male"}
    assert dictionary.codings[19].codes["I10"] == "I10 Essential (primary) hypertension"


def test_missing_value_codes(dictionary: Dictionary) -> None:
    assert set(dictionary.missing_codes(dictionary.field(6138))) == {"-7", "-3"}
    assert set(dictionary.missing_codes(dictionary.field(1160))) == {"-1", "-3"}
    assert dictionary.missing_codes(dictionary.field(21001)) == ()


def test_every_curated_field_has_role_and_numeric_precision(dictionary: Dictionary) -> None:
    curation = load_curation()
    assert set(curation) == {f.field_id for f in dictionary}
    for fld in dictionary:
        if fld.value_type == ValueType.CONTINUOUS:
            assert fld.precision is not None, f"{fld.field_id} {fld.name} needs a precision"


def test_shipped_dictionary_matches_a_fresh_build(dictionary: Dictionary) -> None:
    """The shipped file is exactly what scripts/build_dictionary.py makes from ../shared."""
    curation = load_curation()
    fresh = build_dictionary(
        SCHEMA / "Data_Dictionary_Showcase.tsv", SCHEMA / "tofu_df_lkp_encodings.csv.gz",
        curation.keys(), stats=SCHEMA / "tofu_df_showcase_desc_stats.csv.gz", curation=curation,
    )
    assert fresh.digest == dictionary.digest


def test_save_load_round_trip(dictionary: Dictionary, tmp_path: Path) -> None:
    path = tmp_path / "d.json.gz"
    dictionary.save(path)
    assert Dictionary.load(path).digest == dictionary.digest
    assert Dictionary.load(path).field(48).precision == 0


def test_codings_file_layout_is_also_read() -> None:
    codings = read_encodings(SHARED / "ukb-fake-examples" / "ukbwranglr_dummy_Codings.tsv")
    assert codings[9].codes == {"0": "Female", "1": "Male"}
    assert "-1" in codings[13].codes  # "-1.000" canonicalised


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the Showcase"):
        build_dictionary(SCHEMA / "Data_Dictionary_Showcase.tsv",
                         SCHEMA / "tofu_df_lkp_encodings.csv.gz", [999_999_999])


def test_field_naming_an_absent_coding_is_refused(dictionary: Dictionary) -> None:
    sex = replace(dictionary.field(31), coding_id=5)
    with pytest.raises(ValueError, match="names coding 5"):
        Dictionary({31: sex}, {9: Coding(9, {"0": "Female"})})


def test_bad_dictionary_file(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a Strongroom dictionary"):
        Dictionary.load(path)


def test_reference_page_lists_the_shipped_dictionary(dictionary: Dictionary) -> None:
    """docs/reference/data-dictionary.md is generated; a stale page fails here."""
    from scripts.build_dictionary import DOC, render_doc

    assert DOC.read_text() == render_doc(dictionary), "run `make dictionary`"
