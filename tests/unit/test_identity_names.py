"""The keys that tell one human across accounts: names, e-mail domains, ORCID iDs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.access.names import (
    email_domain,
    email_local,
    name_key,
    optional_orcid,
    orcid_check_digit,
    parse_orcid,
)
from strongroom.errors import Invalid

# real iDs from ORCID's own documentation (the last with an X check digit)
KNOWN = ["0000-0002-1825-0097", "0000-0001-5109-3700", "0000-0002-1694-233X"]


@pytest.mark.parametrize(("one", "other"), [
    ("Dr. Ann  O'Neil", "o’neil, ANN"),
    ("Ann O'Neil", "ONeil Ann"),
    ("José Núñez", "jose nunez"),
    ("Prof. Søren Kierkegaard PhD", "soren kierkegaard"),
    ("Łukasz Straße", "lukasz strasse"),
    ("Mary-Jane Smith", "Smith, Mary Jane"),
    ("ＡＮＮ ＬＥＥ", "Ann Lee"),  # full-width letters (NFKD)
])
def test_spellings_of_one_name_share_a_key(one: str, other: str) -> None:
    assert name_key(one) == name_key(other) is not None


@pytest.mark.parametrize(("one", "other"), [
    ("Ann Lee", "Anne Lee"),
    ("John Smith", "John Smith Jr"),  # a generation apart
    ("Ma Li", "Li"),  # Ma is a surname, not a title
    ("Md Rahman", "Rahman"),  # Md is Mohammed
    ("O Neil Ann", "ONeil Ann"),  # apostrophes join, spaces part: a documented limit
])
def test_different_names_keep_different_keys(one: str, other: str) -> None:
    assert name_key(one) != name_key(other)


def test_a_name_of_titles_only_has_no_key() -> None:
    assert name_key("Dr. Prof.") is None and name_key(" - ") is None


words = st.lists(st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=8),
                 min_size=1, max_size=4)


@given(words, st.randoms())
def test_word_order_case_and_spacing_do_not_matter(parts: list[str], rnd: object) -> None:
    shuffled = parts[:]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    spaced = "  ".join(w.upper() for w in shuffled) + " ,"
    assert name_key(" ".join(parts)) == name_key(spaced)


@given(st.text(max_size=60))
def test_a_key_is_its_own_key(name: str) -> None:
    key = name_key(name)
    assert key is None or (name_key(key) == key and len(key) <= 200)


def test_e_mail_parts() -> None:
    assert email_domain("Ann.Lee@Uni.Example.AC.UK") == "uni.example.ac.uk"
    assert email_local("Ann.Lee+strongroom@x.test") == email_local("annlee@y.test") == "annlee"


@pytest.mark.parametrize("orcid", KNOWN)
def test_known_orcids_parse_in_every_usual_form(orcid: str) -> None:
    bare = orcid.replace("-", "")
    for given_as in (orcid, orcid.lower(), f"https://orcid.org/{orcid}",
                     f"http://www.orcid.org/{orcid}", f"orcid.org/{bare}", f" {bare} "):
        assert parse_orcid(given_as) == orcid


@given(st.text(alphabet="0123456789", min_size=15, max_size=15))
def test_the_check_digit_catches_every_single_digit_slip(first15: str) -> None:
    digits = first15 + orcid_check_digit(first15)
    orcid = "-".join(digits[i:i + 4] for i in range(0, 16, 4))
    assert parse_orcid(orcid) == orcid
    for i in range(15):  # ISO 7064 MOD 11-2 detects every single substitution
        wrong = digits[:i] + str((int(digits[i]) + 1) % 10) + digits[i + 1:]
        with pytest.raises(Invalid, match="check digit"):
            parse_orcid(wrong)


@pytest.mark.parametrize("bad", ["", "0000-0002-1825", "0000-0002-1825-009", "X000-0002-1825-0097",
                                 "0000_0002_1825_0097", "https://example.org/0000-0002-1825-0097"])
def test_malformed_orcids_say_what_a_good_one_looks_like(bad: str) -> None:
    with pytest.raises(Invalid, match="0000-0000-0000-000X"):
        parse_orcid(bad)


def test_an_optional_orcid_may_be_blank() -> None:
    assert optional_orcid(None) is None and optional_orcid("  ") is None
    assert optional_orcid(KNOWN[0]) == KNOWN[0]
