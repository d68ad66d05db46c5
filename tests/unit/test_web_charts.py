"""Server-drawn SVG charts: well-formed, described in words, and escaping what they show."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from strongroom.server.web import charts

NS = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def test_bars_describe_their_largest_value_and_limit_and_mark_hot_bars() -> None:
    svg = parse(charts.bars([("Mon", 10), ("Tue", 40), ("Wed", 5)], "Rows a day",
                            limit=30, hot=30))
    assert svg.find(f"{NS}desc").text == "3 bars; largest Tue at 40; limit 30"  # type: ignore[union-attr]
    rects = svg.findall(f"{NS}rect")
    assert [r.get("class") for r in rects] == ["bar", "bar hot", "bar"]
    assert svg.find(f"{NS}line[@class='limit']") is not None


def test_labels_are_escaped_never_markup() -> None:
    svg = charts.bars([("<script>alert(1)</script>", 1)], 'a "title" & more')
    assert "<script>" not in str(svg)
    tree = parse(svg)
    assert tree.find(f"{NS}title").text == 'a "title" & more'  # type: ignore[union-attr]


def test_series_with_a_band_and_an_empty_series() -> None:
    svg = parse(charts.series(["d1", "d2", "d3"], [1, 5, 2], "Cells",
                              band=charts.Band([0, 0, 0], [2, 2, 2], "usual range")))
    assert svg.find(f"{NS}polygon[@class='band']") is not None
    assert "highest 5" in svg.find(f"{NS}desc").text  # type: ignore[operator,union-attr]
    empty = parse(charts.series([], [], "Nothing yet"))
    assert empty.find(f"{NS}polyline") is None


def test_meter_caps_at_full_and_says_the_share() -> None:
    svg = parse(charts.meter(1.5, 1.0, "Budget", unit=" ε"))
    assert "150%" not in ET.tostring(svg, encoding="unicode")
    assert "100%" in ET.tostring(svg, encoding="unicode")


def test_counts_have_whole_ticks_however_small() -> None:
    for values in ([0, 0], [1], [3, 1], [7], [1234, 17]):
        svg = parse(charts.bars([(str(i), v) for i, v in enumerate(values)], "People",
                                counts=True))
        ticks = [t.text or "" for t in svg.findall(f"{NS}text") if t.get("text-anchor") == "end"]
        assert len(ticks) == 3 and all("." not in t for t in ticks), (values, ticks)
    fractions = parse(charts.bars([("a", 0.0)], "Share"))  # not counts: halves may show
    assert any("." in (t.text or "") for t in fractions.findall(f"{NS}text"))


def test_step_curves_have_a_legend_and_end_where_a_value_is_hidden() -> None:
    svg = parse(charts.steps({"Never": [(1.0, 0.98), (2.0, 0.95), (3.0, None)],
                              "<b>Current</b>": [(1.0, 0.96), (2.0, 0.9), (3.0, 0.85)]},
                             "Survival by interval", start=1.0))
    lines = svg.findall(f"{NS}polyline")
    assert [line.find(f"{NS}title").text for line in lines] == ["Never", "<b>Current</b>"]  # type: ignore[union-attr]
    assert len(lines[0].get("points", "").split()) == 5  # start, then two steps: hidden ends it
    assert len(lines[1].get("points", "").split()) == 7
    legend = [t.text for t in svg.findall(f"{NS}text")]
    assert "Never" in legend and "<b>Current</b>" in legend  # escaped text, not markup
    assert svg.find(f"{NS}desc").text == (  # type: ignore[union-attr]
        "2 lines; Never: 0.95 at 2; <b>Current</b>: 0.85 at 3")
    assert lines[0].get("class") == "step s0" and lines[1].get("class") == "step s1"
