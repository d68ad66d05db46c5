"""The file formats custodians hold, named.

A module of its own, beside ``strongroom.cohort.formats`` (which reads and writes them, with
Polars and PyArrow), so that naming a style loads no reader: `strongroom cohort --help` lists
``--style`` without them (issue 55). ``strongroom.cohort.formats.Style`` is this class.
"""

from __future__ import annotations

from enum import StrEnum


class Style(StrEnum):
    """A file format as custodians hold it."""

    UKBCONV = "ukbconv"  # ukbconv csv/txt: "31-0.0", comma- or tab-separated, "" missing
    RTAB = "rtab"  # ukbconv r (.tab): "f.31.0.0", tab-separated, NA missing
    RAP = "rap"  # RAP table export: "p31", "p21001_i0", comma-separated, "" missing
    PARQUET = "parquet"  # wide Parquet, any of the three header styles; written with RAP names
