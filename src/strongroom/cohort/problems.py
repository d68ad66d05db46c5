"""Problems found in input data, each precise enough for a custodian to fix the file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ROW = "_row"  # provenance column readers add: 1-based data row in the source (header not counted)
MAX_SHOWN = 50  # problems printed in a refusal; the count of all is always given


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (source, field, row), the value, and why."""

    source: str  # file name, or table name for in-memory data
    message: str  # what is wrong and, where it helps, what to do
    field: str = ""  # UKB field ID and name, or a column name
    row: int | None = None  # 1-based data row in the source (header not counted)
    value: str | None = None  # the offending value as read (shown to the custodian only)

    def __str__(self) -> str:
        where = self.source
        if self.field:
            where += f", field {self.field}"
        if self.row is not None:
            where += f", row {self.row}"
        shown = "" if self.value is None else f" (value {self.value!r})"
        return f"{where}: {self.message}{shown}"


class IngestError(Exception):
    """Input refused: nothing was written. Carries every problem found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__(self.summary())

    def summary(self, limit: int = MAX_SHOWN) -> str:
        lines = [f"input refused, nothing was changed: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  … and {len(self.problems) - limit} more")
        return "\n".join(lines)
