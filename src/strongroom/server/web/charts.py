"""Charts drawn on the server as inline SVG: no script, nothing fetched, readable without CSS.

Each function returns SVG markup (``Markup``: its text is escaped here) with a ``<title>`` and
a ``<desc>`` that say in words what the chart shows, for screen readers and for tests. Colours
come from classes styled in ``static/app.css`` (the page's CSP allows no inline styles).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 34


@dataclass(frozen=True)
class Band:
    """A shaded range behind a series (e.g. a baseline's median ± spread)."""

    low: Sequence[float]
    high: Sequence[float]
    label: str


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if value == int(value) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def _frame(title: str, desc: str, body: list[str], label: str) -> Markup:
    svg = (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
           f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>{''.join(body)}</svg>")
    return Markup(svg)  # noqa: S704 — every text inside went through escape()


def _axis(top: float, x1: float = WIDTH - RIGHT) -> list[str]:
    """The axes (the x axis ending at ``x1``) and three ticks on the y axis, 0 to ``top``."""
    y0, x0 = HEIGHT - BOTTOM, LEFT
    parts = [f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>',
             f'<line class="axis" x1="{x0}" y1="{TOP}" x2="{x0}" y2="{y0}"/>']
    for share in (0.0, 0.5, 1.0):
        y = y0 - share * (y0 - TOP)
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(_fmt(top * share))}</text>")
    return parts


def _scale(values: Sequence[float], *extra: float | None) -> float:
    """The axis top: a round number (1, 1.2, 1.5, 2 … 8 × 10^k) a little above the largest."""
    top = max([*values, *(e for e in extra if e is not None), 0.0]) * 1.05
    if top <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(top))
    return next(step * power for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
                if step * power >= top)


def whole_top(top: float) -> float:
    """An axis top for counts: an even whole number, so that its three ticks are whole too
    (a count of 0.5 people is no count)."""
    return float(max(2, math.ceil(top / 2) * 2))


def bars(items: Sequence[tuple[str, float]], title: str, *, unit: str = "",
         limit: float | None = None, hot: float | None = None,
         counts: bool = False) -> Markup:
    """Vertical bars with their labels; a dashed line at ``limit``; bars above ``hot`` red;
    ``counts``: the values are counts, so the axis shows whole numbers only."""
    values = [float(v) for _, v in items]
    top = _scale(values, limit)
    if counts:
        top = whole_top(top)
    y0 = HEIGHT - BOTTOM
    span = (WIDTH - LEFT - RIGHT) / max(len(items), 1)
    body = _axis(top)
    every = max(1, len(items) // 12)  # at most about twelve labels
    for i, (label, value) in enumerate(items):
        h = (value / top) * (y0 - TOP)
        x = LEFT + i * span + span * 0.15
        cls = "bar hot" if hot is not None and value > hot else "bar"
        body.append(f'<rect class="{cls}" x="{x:.1f}" y="{y0 - h:.1f}" '
                    f'width="{span * 0.7:.1f}" height="{h:.1f}">'
                    f"<title>{escape(label)}: {escape(_fmt(value))}{escape(unit)}</title></rect>")
        if i % every == 0:
            body.append(f'<text x="{x + span * 0.35:.1f}" y="{y0 + 14}" text-anchor="middle">'
                        f"{escape(label[:12])}</text>")
    if limit is not None:
        y = y0 - (limit / top) * (y0 - TOP)
        body.append(f'<line class="limit" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" '
                    f'y2="{y:.1f}"><title>limit {escape(_fmt(limit))}</title></line>')
    largest = max(items, key=lambda kv: kv[1]) if items else ("none", 0.0)
    desc = (f"{len(items)} bars; largest {largest[0]} at {_fmt(largest[1])}{unit}"
            + (f"; limit {_fmt(limit)}{unit}" if limit is not None else ""))
    return _frame(title, desc, body, title)


def series(labels: Sequence[str], values: Sequence[float], title: str, *,
           band: Band | None = None, limit: float | None = None, unit: str = "") -> Markup:
    """A line over time, optionally over a shaded band (a baseline) and under a limit."""
    points = [float(v) for v in values]
    tops = [*points, *(band.high if band else [])]
    top = _scale(tops, limit)
    y0 = HEIGHT - BOTTOM
    n = max(len(points) - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{LEFT + i * (WIDTH - LEFT - RIGHT) / n:.1f},{y0 - (v / top) * (y0 - TOP):.1f}"

    body = _axis(top)
    if band is not None and len(band.low) == len(points) == len(band.high):
        ring = [xy(i, v) for i, v in enumerate(band.high)]
        ring += [xy(i, v) for i, v in reversed(list(enumerate(band.low)))]
        body.append(f'<polygon class="band" points="{" ".join(ring)}">'
                    f"<title>{escape(band.label)}</title></polygon>")
    if points:
        line = " ".join(xy(i, v) for i, v in enumerate(points))
        body.append(f'<polyline class="line" points="{line}"/>')
    if limit is not None:
        y = y0 - (limit / top) * (y0 - TOP)
        body.append(f'<line class="limit" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" '
                    f'y2="{y:.1f}"><title>limit {escape(_fmt(limit))}</title></line>')
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + i * (WIDTH - LEFT - RIGHT) / n
            # the last label ends at its point, so that it stays inside the chart
            anchor = "end" if i == len(labels) - 1 and i > 0 else "middle"
            body.append(f'<text x="{x:.1f}" y="{y0 + 14}" text-anchor="{anchor}">'
                        f"{escape(label[:10])}</text>")
    desc = (f"{len(points)} points; last {_fmt(points[-1]) if points else 'none'}{unit}; "
            f"highest {_fmt(max(points)) if points else 'none'}{unit}"
            + (f"; shaded: {band.label}" if band else "")
            + (f"; limit {_fmt(limit)}{unit}" if limit is not None else ""))
    return _frame(title, desc, body, title)


def meter(used: float, total: float, title: str, *, unit: str = "") -> Markup:
    """One horizontal bar: how much of ``total`` is used (a budget, an allowance)."""
    share = 0.0 if total <= 0 else min(max(used / total, 0.0), 1.0)
    width = WIDTH - LEFT - RIGHT
    cls = "bar hot" if share >= 0.8 else "bar"
    body = [f'<rect class="axis" fill="none" x="{LEFT}" y="40" width="{width}" height="28"/>',
            f'<rect class="{cls}" x="{LEFT}" y="40" width="{width * share:.1f}" height="28"/>',
            f'<text x="{LEFT}" y="90">{escape(_fmt(used))}{escape(unit)} of '
            f"{escape(_fmt(total))}{escape(unit)} used ({share:.0%})</text>"]
    return Markup(  # noqa: S704 — escaped above
        f'<svg class="chart meter" viewBox="0 0 {WIDTH} 100" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title><desc>{escape(_fmt(used))} of {escape(_fmt(total))}"
        f"{escape(unit)} used</desc>{''.join(body)}</svg>")


SERIES = 6  # line colours (static/app.css .s0 … .s5); further lines reuse them, dashed


def steps(lines: Mapping[str, Sequence[tuple[float, float | None]]], title: str, *,
          start: float, unit: str = "") -> Markup:
    """Step curves on a 0–1 scale (a survival or cumulative incidence per interval): each
    line starts at ``start`` at time 0 and steps to each (end, value); a hidden value (None)
    ends the line there. A legend names every line."""
    ends = [end for points in lines.values() for end, _ in points]
    right = max(ends, default=1.0) or 1.0
    y0 = HEIGHT - BOTTOM
    legend_width = 150
    plot = WIDTH - RIGHT - legend_width

    def xy(t: float, v: float) -> str:
        return f"{LEFT + t / right * (plot - LEFT):.1f},{y0 - v * (y0 - TOP):.1f}"

    body = _axis(1.0, plot)  # the x axis ends where the legend starts
    for share in (0.0, 0.5, 1.0):
        x = LEFT + share * (plot - LEFT)
        body.append(f'<text x="{x:.1f}" y="{y0 + 14}" text-anchor="middle">'
                    f"{escape(_fmt(right * share))}</text>")
    if unit:
        body.append(f'<text x="{(LEFT + plot) / 2:.1f}" y="{y0 + 28}" text-anchor="middle">'
                    f"{escape(unit)}</text>")
    described = []
    for n, (name, points) in enumerate(lines.items()):
        path, at, last = [xy(0.0, start)], 0.0, start
        for end, value in points:
            if value is None:
                break
            path += [xy(end, last), xy(end, value)]
            at, last = end, value
        cls = f"step s{n % SERIES}" + (" dashed" if n >= SERIES else "")
        body.append(f'<polyline class="{cls}" points="{" ".join(path)}">'
                    f"<title>{escape(name)}</title></polyline>")
        y = TOP + 14 * n + 6
        body.append(f'<line class="{cls}" x1="{plot + 10}" y1="{y}" x2="{plot + 28}" '
                    f'y2="{y}"/><text x="{plot + 32}" y="{y + 4}">{escape(name[:20])}</text>')
        described.append(f"{name}: {_fmt(last)} at {_fmt(at)}")
    desc = f"{len(lines)} lines; " + "; ".join(described)
    return _frame(title, desc, body, title)
