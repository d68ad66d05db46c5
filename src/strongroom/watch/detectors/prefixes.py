"""Networks: an address's prefix (/24 for IPv4, /48 for IPv6 by default), computed once per
distinct address so that a frame of thousands of rows costs a handful of parses."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import polars as pl


@lru_cache(maxsize=65_536)
def prefix(address: str | None, v4: int = 24, v6: int = 48) -> str | None:
    """The network an address belongs to; an unparsable source stands for itself."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()
    bits = v4 if ip.version == 4 else v6
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def with_prefix(frame: pl.DataFrame, v4: int = 24, v6: int = 48) -> pl.DataFrame:
    """``frame`` with a ``network`` column (null where the source is)."""
    sources = [s for s in frame["source"].unique().to_list() if s is not None]
    mapping = {s: prefix(s, v4, v6) for s in sources}
    return frame.with_columns(
        pl.col("source").replace_strict(mapping, default=None, return_dtype=pl.String)
        .alias("network"))
