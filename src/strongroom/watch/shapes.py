"""Query fingerprints: the exact query, and its shape with constants taken out.

Many queries with one shape and different constants are rewordings (``bmi > 30.1``,
``bmi > 30.2`` …); detectors count them without ever keeping the query's text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

PLACEHOLDER = "?"


def _sql_shape(sql: str) -> str:
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except SqlglotError:
        return "unparsed"
    tree = tree.transform(lambda node: exp.Placeholder() if isinstance(node, exp.Literal)
                          else node)
    return tree.sql(dialect="duckdb")


def _shape(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _shape(v, str(k)) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(v, key) for v in value]
    if isinstance(value, str) and key == "sql":
        return _sql_shape(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return PLACEHOLDER  # thresholds, cut points, bounds
    return value  # names of columns, analysis kinds: part of the shape


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(request: Mapping[str, Any]) -> tuple[str, str]:
    """(digest of the exact request, digest of its shape)."""
    return _digest(request), _digest(_shape(request))
