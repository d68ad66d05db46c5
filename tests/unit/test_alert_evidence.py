"""An alert's evidence as a person reads it on the console: words, not raw JSON (issue 55)."""

from __future__ import annotations

from strongroom.server.web.security import _evidence


def test_evidence_reads_as_words_pairs_and_tables() -> None:
    shown = dict((name, (shape, value)) for name, shape, value in _evidence({
        "breaches": [{"scope": "project", "meter": "record_participants", "limit": 20000,
                      "used": 19500, "asked": 900}],
        "baseline": {"median_requests": 12.0, "spread": 2.5, "days": 30},
        "networks_seen": ["10.1.0.0/16", "10.2.0.0/16"],
        "new_network": True,
        "requests_today": 1234}))
    assert shown["Breaches"] == ("table", (["Scope", "Meter", "Limit", "Used", "Asked"],
                                           [["project", "record participants", "20,000",
                                             "19,500", "900"]]))
    assert shown["Baseline"] == ("pairs", [("Median requests", "12"), ("Spread", "2.5"),
                                           ("Days", "30")])
    assert shown["Networks seen"] == ("text", "10.1.0.0/16, 10.2.0.0/16")
    assert shown["New network"] == ("text", "yes")
    assert shown["Requests today"] == ("text", "1,234")
    assert _evidence({}) == []


def test_ids_are_written_with_their_names_where_one_is_known() -> None:
    from strongroom.server.web.names import beside

    known = {"per_0a1b": "Priya Shah", "prj_99ff": "Blood pressure"}
    assert beside("Suspended person per_0a1b, project prj_99ff", known) == (
        "Suspended person Priya Shah (per_0a1b), project Blood pressure (prj_99ff)")
    assert beside("Suspended person per_dead (unknown)", known) == \
        "Suspended person per_dead (unknown)"  # one the reader may not read stays an ID
    assert beside("sper_0a1b", known) == "sper_0a1b"  # only whole IDs
