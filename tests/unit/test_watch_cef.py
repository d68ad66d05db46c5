"""CEF lines: header and extension escaping, severity scale, one line whatever the text holds."""

from __future__ import annotations

import pytest

from strongroom.watch.exports.cef import SEVERITY, escape_header, escape_value, line, to_cef
from strongroom.watch.states import Severity
from tests.export_schemas import parse_cef as parse
from tests.watch_alerts import make_alert


@pytest.mark.parametrize(("raw", "header", "value"), [
    ("plain", "plain", "plain"),
    ("a|b", "a\\|b", "a|b"),
    ("back\\slash", "back\\\\slash", "back\\\\slash"),
    ("x=y", "x=y", "x\\=y"),
    ("two\nlines", "two lines", "two\\nlines"),
    ("cr\rhere", "cr here", "cr\\rhere"),
    ("\\|=", "\\\\\\|=", "\\\\|\\="),
])
def test_escaping_in_header_and_extension(raw: str, header: str, value: str) -> None:
    assert escape_header(raw) == header
    assert escape_value(raw) == value


def test_hostile_text_round_trips_and_stays_one_line() -> None:
    nasty = "evil | title \\ with = signs\nand a second line act=forged"
    alert = make_alert(title=nasty, reasons=[nasty], detector="behaviour.x|y")
    text = to_cef(alert)
    assert "\n" not in text and "\r" not in text
    header, pairs = parse(text)
    assert header[:3] == ["Strongroom", "Strongroom Watch", header[2]]
    assert header[3] == "behaviour.x|y"
    assert header[4] == nasty.replace("\n", " ")
    assert pairs["msg"] == nasty  # the newline survives as \n in the value
    assert "act" not in pairs  # the forged "act=" inside the text is not a field
    assert pairs["externalId"] == "alr_0123abcd" and pairs["suid"] == "per_1"
    assert pairs["src"] == "10.1.2.3" and pairs["cs1Label"] == "project"


@pytest.mark.parametrize("level", list(Severity))
def test_severity_is_on_the_0_to_10_scale(level: Severity) -> None:
    header, _ = parse(to_cef(make_alert(severity=level.value)))
    assert header[5] == str(SEVERITY[level]) and 0 <= int(header[5]) <= 10
    assert list(SEVERITY.values()) == sorted(SEVERITY.values())  # more severe, higher


def test_suspension_and_times() -> None:
    _, pairs = parse(to_cef(make_alert(suspensions=["pau_1", "pau_2"], count=4)))
    assert pairs["act"] == "suspended" and pairs["cs4"] == "pau_1,pau_2"
    assert pairs["cnt"] == "4" and int(pairs["end"]) - int(pairs["start"]) == 300_000


def test_extension_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="not a CEF extension key"):
        line(["a"] * 6, [("bad key", "x")])
    with pytest.raises(ValueError, match="six fields"):
        line(["a"] * 5, [])
