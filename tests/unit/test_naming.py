"""Column names in the three UKB styles: parsing, detection, formatting, header resolution."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.cohort.formats.naming import (
    Naming,
    detect_naming,
    fits_layout,
    format_key,
    is_eid,
    naming_of,
    parse_name,
    resolve_header,
)
from strongroom.cohort.model import FieldKey
from tests.unit.test_formats import small_dictionary

D = small_dictionary()


@pytest.mark.parametrize(
    ("name", "naming", "key"),
    [
        ("31-0.0", Naming.UKBCONV, FieldKey(31, 0, 0)),
        ("41270-0.3", Naming.UKBCONV, FieldKey(41270, 0, 3)),
        ("4080-2.1", Naming.UKBCONV, FieldKey(4080, 2, 1)),
        ("20002-0.10", Naming.UKBCONV, FieldKey(20002, 0, 10)),
        ("f.31.0.0", Naming.RTAB, FieldKey(31, 0, 0)),
        ("f.41270.0.212", Naming.RTAB, FieldKey(41270, 0, 212)),
        ("f.4080.3.1", Naming.RTAB, FieldKey(4080, 3, 1)),
        ("p31", Naming.RAP, FieldKey(31, 0, 0)),
        ("p21001_i0", Naming.RAP, FieldKey(21001, 0, 0)),
        ("p21001_i3", Naming.RAP, FieldKey(21001, 3, 0)),
        ("p4080_i0_a1", Naming.RAP, FieldKey(4080, 0, 1)),
        ("p41270_a3", Naming.RAP, FieldKey(41270, 0, 3)),
        ("participant.p41270_a3", Naming.RAP, FieldKey(41270, 0, 3)),
    ],
)
def test_parse_every_style(name: str, naming: Naming, key: FieldKey) -> None:
    assert parse_name(name, naming) == key
    assert naming_of(name) == naming


@pytest.mark.parametrize(
    ("name", "naming"),
    [
        ("31-0", Naming.UKBCONV),
        ("31.0.0", Naming.UKBCONV),
        ("31-0.0.0", Naming.UKBCONV),
        ("31-00.0", Naming.UKBCONV),  # leading zeros would not survive a round trip
        ("031-0.0", Naming.UKBCONV),
        ("0-0.0", Naming.UKBCONV),
        ("-31-0.0", Naming.UKBCONV),
        (" 31-0.0", Naming.UKBCONV),
        ("f.31.0.0", Naming.UKBCONV),
        ("f.31.0", Naming.RTAB),
        ("f.31-0.0", Naming.RTAB),
        ("F.31.0.0", Naming.RTAB),
        ("31-0.0", Naming.RTAB),
        ("p", Naming.RAP),
        ("p31_a", Naming.RAP),
        ("p31_a1_i0", Naming.RAP),  # instance before array, always
        ("p031", Naming.RAP),
        ("P31", Naming.RAP),
        ("31", Naming.RAP),
        ("sex", Naming.RAP),
        ("", Naming.RAP),
    ],
)
def test_bad_names_are_refused(name: str, naming: Naming) -> None:
    with pytest.raises(ValueError, match=f"not a {naming} column name"):
        parse_name(name, naming)


def test_eid_names() -> None:
    assert is_eid("eid", Naming.UKBCONV) and not is_eid("f.eid", Naming.UKBCONV)
    assert is_eid("f.eid", Naming.RTAB) and not is_eid("eid", Naming.RTAB)
    assert is_eid("eid", Naming.RAP) and is_eid("participant.eid", Naming.RAP)
    assert not is_eid("EID", Naming.UKBCONV)


@pytest.mark.parametrize(
    ("header", "naming"),
    [
        (["eid", "31-0.0", "34-0.0"], Naming.UKBCONV),
        (["f.eid", "f.31.0.0"], Naming.RTAB),
        (["f.eid"], Naming.RTAB),
        (["eid", "p31", "p21001_i0"], Naming.RAP),
        (["participant.eid"], Naming.RAP),
        (["eid", "p31", "p34", "31-0.0"], Naming.RAP),  # the majority decides
        (["eid"], Naming.UKBCONV),  # undecidable: the commonest style
        ([], Naming.UKBCONV),
        (["x", "y"], Naming.UKBCONV),
    ],
)
def test_detect(header: list[str], naming: Naming) -> None:
    assert detect_naming(header) == naming


@pytest.mark.parametrize(
    ("field", "instance", "array", "ukbconv", "rtab", "rap"),
    [
        (31, 0, 0, "31-0.0", "f.31.0.0", "p31"),
        (21001, 2, 0, "21001-2.0", "f.21001.2.0", "p21001_i2"),
        (4080, 0, 1, "4080-0.1", "f.4080.0.1", "p4080_i0_a1"),
        (41270, 0, 3, "41270-0.3", "f.41270.0.3", "p41270_a3"),
    ],
)
def test_format_every_style(
    field: int, instance: int, array: int, ukbconv: str, rtab: str, rap: str
) -> None:
    key, fld = FieldKey(field, instance, array), D.field(field)
    assert format_key(key, fld, Naming.UKBCONV) == ukbconv
    assert format_key(key, fld, Naming.RTAB) == rtab
    assert format_key(key, fld, Naming.RAP) == rap


@given(st.sampled_from(sorted(D.fields)), st.data())
def test_parse_inverts_format(field_id: int, data: st.DataObject) -> None:
    fld = D.field(field_id)
    key = FieldKey(field_id, data.draw(st.integers(0, fld.instances - 1)),
                   data.draw(st.integers(0, fld.arrays - 1)))
    for naming in Naming:
        name = format_key(key, fld, naming)
        assert parse_name(name, naming) == key
        assert fits_layout(name, key, fld, naming)
        assert detect_naming([name]) == naming


def test_rap_layout_needs_the_dictionary() -> None:
    # p21001 parses (instance 0) but 21001 has four instances: RAP would write p21001_i0
    assert not fits_layout("p21001", FieldKey(21001), D.field(21001), Naming.RAP)
    assert not fits_layout("p31_i0", FieldKey(31), D.field(31), Naming.RAP)
    assert fits_layout("participant.p31", FieldKey(31), D.field(31), Naming.RAP)


def test_resolve_header_sorts_columns_and_problems() -> None:
    header = ["31-0.0", "eid", "34-0.0", "p53_i0", "bogus", "34-0.0", "eid", "99999-0.0",
              "4080-9.9"]
    resolved = resolve_header(header, D, "ukb.csv")
    assert resolved.naming == Naming.UKBCONV
    assert resolved.eid == 1
    # unknown fields and out-of-range indices are to_model's to report, once
    assert [(c.position, c.name, c.key) for c in resolved.columns] == [
        (0, "31-0.0", FieldKey(31)),
        (2, "34-0.0", FieldKey(34)),
        (7, "99999-0.0", FieldKey(99999)),
        (8, "4080-9.9", FieldKey(4080, 9, 9)),
    ]
    assert [(p.field, p.message.split(";")[0]) for p in resolved.problems] == [
        ("p53_i0", "column 'p53_i0' is not a ukbconv column name (expected e.g. '31-0.0') "
                   "(column 4)"),
        ("bogus", "column 'bogus' is not a ukbconv column name (expected e.g. '31-0.0') "
                  "(column 5)"),
        ("34-0.0", "duplicate column: column 6 holds the same field, instance and array as "
                   "column 3 ('34-0.0')"),
        ("eid", "second participant ID column (column 7)"),
    ]
    assert "it is in rap style" in resolved.problems[0].message


def test_rap_duplicates_by_key_not_by_name() -> None:
    resolved = resolve_header(["eid", "p31", "participant.p31"], D, "rap.csv")
    assert [c.name for c in resolved.columns] == ["p31"]
    assert [p.field for p in resolved.problems] == ["participant.p31"]
