"""An analysis result as the bytes that may leave: JSON or CSV, suppressed cells left empty.

These bytes are what the raw-row scanner reads, what is stored under its SHA-256, what output
checkers review and what is downloaded: one rendering, made once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from strongroom.enclave import steps
from strongroom.enclave.results import Result
from strongroom.errors import Invalid


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


MEDIA_TYPE = {Format.JSON: "application/json", Format.CSV: "text/csv"}
# digits kept: more would only carry noise, and more noise helps attackers; rounded figures are
# never finer than this (enclave/steps.py), so the display never rounds them again
SIGNIFICANT = steps.SIGNIFICANT


def _shown(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    if value == int(value):
        return value
    return float(f"{value:.{SIGNIFICANT}g}")


def _text(label: str) -> str:
    """A label as CSV may hold it: a NUL (which a label built in SQL may carry) becomes U+FFFD,
    so no label can make the output invalid, which would answer whether its row was shown."""
    return label.replace("\x00", "\ufffd")


def render(result: Result, suppressed: set[int], fmt: Format,
           removed: set[int] | None = None) -> bytes:
    public = result.public(suppressed, removed)
    for cell in public["cells"]:
        cell["value"] = _shown(cell["value"])
    if fmt is Format.JSON:
        return json.dumps(public, sort_keys=True, indent=1, allow_nan=False).encode()
    if fmt is Format.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["row", "column", "kind", "value", "suppressed"])
        for cell in public["cells"]:
            writer.writerow([_text(" | ".join(cell["row"])), _text(cell["column"]), cell["kind"],
                             "" if cell["value"] is None else repr(cell["value"]),
                             "yes" if cell["suppressed"] else "no"])
        return buffer.getvalue().encode()
    raise Invalid(f"format {fmt!r} is not one an output may take; use json or csv")


# the request's fields that say what an output is of, in the order a name reads them
NAMED_BY = ("definition", "variable", "rows", "columns", "variables", "traits", "outcome",
            "time", "event", "group", "strata")
MAX_STEM = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def stem(text: str) -> str:
    """``text`` as a file name's stem: letters, digits and _, words joined by -, at most
    MAX_STEM characters (it goes into a Content-Disposition header as it is)."""
    return _UNSAFE.sub("-", text).strip("-")[:MAX_STEM].strip("-")


def named(name: str, fmt: Format) -> str:
    """The file name a researcher gave an output, made safe; refused if nothing is left."""
    safe = stem(name)
    if not safe:
        raise Invalid(f"an output's name holds letters or digits (and _ or -), not {name!r}")
    return f"{safe}.{fmt.value}"


def filename(kind: str, fmt: Format, spec: Mapping[str, Any] | None = None) -> str:
    """An output's file name from its request: its kind, then what it is of
    ("crosstab-adults-sex-smoking.json"), so that ten outputs of one kind are told apart; an
    SQL aggregate by a short digest of its SQL."""
    parts = [kind]
    for key in NAMED_BY:
        value = (spec or {}).get(key)
        parts += [value] if isinstance(value, str) else \
            [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    sql = (spec or {}).get("sql")
    if isinstance(sql, str):
        parts.append(hashlib.sha256(sql.encode()).hexdigest()[:8])
    return f"{stem('-'.join(parts)) or kind}.{fmt.value}"
