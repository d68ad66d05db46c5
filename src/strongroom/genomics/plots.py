"""Manhattan and QQ plots of GWAS results, as PNG bytes.

Drawn with matplotlib's Agg canvas on a Figure of their own (no pyplot, so no global state
and no display), with PNG metadata that carries no version or date: the same results give
the same bytes. Points that would land on the same pixel are drawn once, so a plot of
millions of variants stays quick to draw and to read.
"""

from __future__ import annotations

import io
from typing import Final

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray

from strongroom.genomics.gwas import F64, GENOME_WIDE, GwasInputError, genomic_inflation

COLOURS: Final = ("#1f4e79", "#8fb3d9")  # alternate chromosomes
LINE: Final = "#c0392b"
_MIN_P: Final = np.finfo(np.float64).tiny  # p-values of 0 (underflow) are drawn at its -log10
_PIXELS: Final = 2000  # resolution at which overlapping points are merged


def _trait_rows(results: pl.DataFrame, trait: str | None) -> pl.DataFrame:
    traits = results["trait"].unique(maintain_order=True).to_list()
    if trait is None:
        if len(traits) > 1:
            raise GwasInputError(f"the results hold {len(traits)} traits ({traits}); "
                                 "say which to plot with trait=")
        return results
    if trait not in traits:
        raise GwasInputError(f"no results for trait {trait!r}; the results hold {traits}")
    return results.filter(pl.col("trait") == trait)


def _neglog10(p: NDArray[np.float64]) -> F64:
    return np.asarray(-np.log10(np.maximum(p, _MIN_P)))


def _distinct_points(x: F64, y: F64) -> NDArray[np.intp]:
    """Indices of the points to draw: one per pixel (at ``_PIXELS`` across each axis)."""
    if x.size == 0:
        return np.zeros(0, dtype=np.intp)
    span_x = float(np.ptp(x)) or 1.0
    span_y = float(np.ptp(y)) or 1.0
    cells = np.round((x - x.min()) / span_x * _PIXELS) * (_PIXELS + 1) + np.round(
        (y - y.min()) / span_y * _PIXELS)
    keep = np.unique(cells, return_index=True)[1]
    return np.sort(keep)


def _png(fig: Figure, dpi: int) -> bytes:
    FigureCanvasAgg(fig)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out.getvalue()


def manhattan_png(results: pl.DataFrame, variants: pl.DataFrame, *, trait: str | None = None,
                  title: str | None = None, width: float = 12.0, height: float = 4.5,
                  dpi: int = 100) -> bytes:
    """−log10 p along the genome, chromosomes in the variant table's order in alternating
    colours, with the genome-wide line at 5e-8. ``results['variant']`` indexes ``variants``."""
    rows = _trait_rows(results, trait).filter(pl.col("p").is_not_null())
    index = rows["variant"].to_numpy()
    if index.size and (index.min() < 0 or index.max() >= variants.height):
        raise GwasInputError("the results name variants the variant table does not have: "
                             "plot them with the table they were computed from")
    chrom_all = variants["chrom"].cast(pl.String).to_numpy()
    pos_all = variants["pos"].cast(pl.Int64).to_numpy().astype(np.float64)
    order = list(dict.fromkeys(chrom_all.tolist()))
    chrom = chrom_all[index]
    pos = pos_all[index]
    x = np.zeros(index.size)
    colour = np.zeros(index.size, dtype=np.int64)
    ticks, labels = [], []
    offset = 0.0
    for i, name in enumerate(order):
        on = chrom_all == name
        lo, hi = pos_all[on].min(), pos_all[on].max()
        here = chrom == name
        x[here] = offset + pos[here] - lo
        colour[here] = i % 2
        ticks.append(offset + (hi - lo) / 2)
        labels.append(name)
        offset += (hi - lo) + max(1.0, 0.01 * (pos_all.max() - pos_all.min()))
    y = _neglog10(rows["p"].to_numpy())
    keep = _distinct_points(x, y)
    x, y, colour = x[keep], y[keep], colour[keep]
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    for c in (0, 1):
        sel = colour == c
        ax.plot(x[sel], y[sel], linestyle="none", marker=".", markersize=3, color=COLOURS[c])
    ax.axhline(-np.log10(GENOME_WIDE), color=LINE, linestyle="--", linewidth=1)
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_xlim(-0.005 * offset, offset * 1.005 if offset else 1.0)
    ax.set_ylim(0, max(float(y.max()) if y.size else 0.0, -np.log10(GENOME_WIDE)) * 1.08)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("−log₁₀ p")
    ax.set_title(title or f"Manhattan plot — {rows['trait'][0] if rows.height else ''}")
    fig.tight_layout()
    return _png(fig, dpi)


def qq_png(results: pl.DataFrame, *, trait: str | None = None, title: str | None = None,
           size: float = 5.0, dpi: int = 100) -> bytes:
    """Observed against expected −log10 p under the null, with λ_GC in the title."""
    rows = _trait_rows(results, trait).filter(pl.col("p").is_not_null())
    p = np.sort(rows["p"].to_numpy())
    lam = genomic_inflation(p)
    expected = _neglog10((np.arange(1, p.size + 1) - 0.5) / p.size)
    observed = _neglog10(p)
    keep = _distinct_points(expected, observed)
    expected, observed = expected[keep], observed[keep]
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    top = float(max(expected.max(), observed.max())) * 1.05
    ax.plot([0, top], [0, top], color=LINE, linewidth=1)
    ax.plot(expected, observed, linestyle="none", marker=".", markersize=3, color=COLOURS[0])
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("expected −log₁₀ p")
    ax.set_ylabel("observed −log₁₀ p")
    ax.set_title(f"{title or 'QQ plot — ' + str(rows['trait'][0])}  (λGC = {lam:.3f})")
    fig.tight_layout()
    return _png(fig, dpi)
