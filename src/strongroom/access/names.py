"""What identifies a human across accounts: a normalised name, an e-mail domain, an ORCID.

Pure functions (no database), so the tables can store the keys they compute and the rules can
be tested on their own. :mod:`strongroom.access.identity` uses them to decide which accounts
share one person allowance.

A name's key is its words, casefolded, accents stripped (Unicode NFKD, combining marks
dropped, and the few letters NFKD keeps whole such as ``ø`` and ``ł`` spelt in ASCII),
apostrophes removed (``O'Neil`` is ``oneil``), every other mark a word break (``Smith-Jones``
is ``smith jones``), titles and degrees dropped (``Dr``, ``Prof``, ``PhD``; generational
suffixes such as ``Jr`` are kept: they tell a parent from a child), and the remaining words
sorted, so word order does not matter (``Ann O'Neil`` and ``O'Neil, Ann`` are one key). A name
of titles only has no key, and matches nothing.
"""

from __future__ import annotations

import re
import unicodedata

from strongroom.errors import Invalid

# words that say what someone is, not who: dropped wherever they stand in a name
# (not "ma" or "md": Ma is a surname, Md a common spelling of Mohammed)
TITLES = frozenset({
    "dr", "doctor", "prof", "professor", "mr", "mrs", "ms", "miss", "mx", "sir", "dame",
    "rev", "revd", "reverend", "phd", "dphil", "mbbs", "frcp", "frcs", "msc", "bsc", "mph",
    "esq", "herr", "frau", "mme", "mlle",
})
# letters NFKD does not decompose, spelt as a person would type them without the keyboard
WHOLE = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae",
                       "œ": "oe", "ı": "i", "ß": "ss"})
APOSTROPHES = re.compile(r"['’ʼ‘`´]")
NOT_WORD = re.compile(r"[\W_]+")
ORCID_PREFIX = re.compile(r"^(?:https?://)?(?:www\.)?orcid\.org/", re.IGNORECASE)
ORCID_SHAPE = re.compile(r"^(\d{4})-?(\d{4})-?(\d{4})-?(\d{3}[\dX])$")


def name_words(name: str) -> list[str]:
    """A name's words after normalisation, in the order given (titles dropped)."""
    # NFKD before casefold (𝐀 is A only once decomposed) and after it (İ folds to i and a
    # combining dot)
    plain = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    plain = "".join(c for c in plain if not unicodedata.combining(c)).translate(WHOLE)
    plain = APOSTROPHES.sub("", plain)
    return [w for w in NOT_WORD.sub(" ", plain).split() if w not in TITLES]


def name_key(name: str) -> str | None:
    """The key two spellings of one name share (see the module's text); None when a name is
    only titles and marks."""
    words = name_words(name)
    return " ".join(sorted(words))[:200] if words else None


def email_domain(email: str) -> str:
    """The domain of an e-mail address, lower case (what follows the last ``@``)."""
    return email.rsplit("@", 1)[-1].strip().lower()


def email_local(email: str) -> str:
    """The part before the ``@``, lower case, dots and a ``+tag`` ignored: a weaker hint."""
    local = email.rsplit("@", 1)[0].strip().lower().split("+", 1)[0]
    return local.replace(".", "").replace("-", "").replace("_", "")


def orcid_check_digit(first15: str) -> str:
    """ISO 7064 MOD 11-2, as ORCID computes it over the first fifteen digits."""
    total = 0
    for digit in first15:
        total = (total + int(digit)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def parse_orcid(value: str) -> str:
    """An ORCID iD in its canonical form ``0000-0002-1825-0097``; the https://orcid.org/
    prefix, missing hyphens and a lower-case ``x`` are accepted. Raises Invalid saying what is
    wrong."""
    raw = ORCID_PREFIX.sub("", value.strip()).upper()
    shape = ORCID_SHAPE.match(raw)
    if shape is None:
        raise Invalid(f"{value!r} is not an ORCID iD: give sixteen characters as "
                      f"0000-0000-0000-000X (digits, the last may be X), with or without "
                      f"https://orcid.org/")
    digits = "".join(shape.groups())
    if orcid_check_digit(digits[:15]) != digits[15]:
        raise Invalid(f"{value!r} is not an ORCID iD: its check digit is wrong (mistyped? "
                      f"copy it from the person's ORCID record)")
    return "-".join(shape.groups())


def optional_orcid(value: str | None) -> str | None:
    """parse_orcid for an optional field: None or blank is no ORCID."""
    if value is None or not value.strip():
        return None
    return parse_orcid(value)
