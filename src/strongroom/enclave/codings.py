"""Which coded field each column carries: the value labels of a definition's columns.

A released table shows group labels as the stored codes (``sex`` "0", smoking "-3"). The
dictionary's codings say what they mean, but a column of a definition is named by the
researcher: ``p31 AS sex``. This module follows the names back, from the text of the SQL alone
(never the data), to the granted field each column passes through unchanged:

- ``SELECT p31``, ``p.p31``, ``p31 AS sex``, ``CAST(p31 AS VARCHAR) AS sex``, ``*`` from a
  project table carry the field's coding;
- a column of an earlier definition carries what it carried there (``FROM base``);
- a subquery in FROM or JOIN is followed the same way (``LEFT JOIN (SELECT pid, min(date)
  AS died FROM deaths GROUP BY pid) d``): its columns carry what they carry inside it, so
  the plain table beside it keeps its codings;
- anything computed (``CASE …``, arithmetic, a function) carries none, and its codes are shown
  as they are.

A column it cannot follow simply has no labels: labels are for reading, and a wrong one would
mislead, so the resolver only names what it is sure of.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import EVENT_TABLES, PARTICIPANTS, parse_column_name
from strongroom.enclave.sqlguard import shared
from strongroom.errors import Invalid

# column -> field id, for every column of a table that carries a coded field unchanged
Coded = dict[str, int]
PROJECT_TABLES = frozenset({PARTICIPANTS, *(t.name for t in EVENT_TABLES)})


def coded_columns(sql: str, dictionary: Dictionary,
                  earlier: Mapping[str, Mapping[str, int]]) -> Coded:
    """The output columns of one SELECT that pass a coded field through, as column -> field.

    ``earlier``: the same map for each earlier definition the SQL may name."""
    try:
        query = shared(sql)  # only read
    except Invalid:
        return {}
    if not isinstance(query, exp.Select) or query.args.get("with"):
        return {}
    return _select(query, dictionary, earlier)


def _select(query: exp.Select, dictionary: Dictionary,
            earlier: Mapping[str, Mapping[str, int]]) -> Coded:
    sources = _sources(query, dictionary, earlier)
    if sources is None:
        return {}
    found: Coded = {}
    for projection in query.expressions:
        if isinstance(projection, exp.Star):
            if len(sources) == 1:
                found.update(_table_columns(next(iter(sources.values())), dictionary, earlier))
            continue
        inner = projection.unalias()
        while isinstance(inner, exp.Cast | exp.Paren):
            inner = inner.this
        if not isinstance(inner, exp.Column) or isinstance(inner.this, exp.Star):
            continue
        field_id = _resolve(inner, sources, dictionary, earlier)
        if field_id is not None:
            found[projection.alias_or_name] = field_id
    return found


# a source of FROM or JOIN: a table's name, or what a subquery's columns carry
Source = str | Coded


def _sources(query: exp.Select, dictionary: Dictionary,
             earlier: Mapping[str, Mapping[str, int]]) -> dict[str, Source] | None:
    """alias -> table name of FROM and JOIN, or a subquery's coded columns; None if any
    source is neither a plain table nor an aliased subquery of one SELECT."""
    sources: dict[str, Source] = {}
    from_ = query.args.get("from_")
    tables = [from_.this if from_ is not None else None,
              *(j.this for j in query.args.get("joins") or [])]
    for table in tables:
        if isinstance(table, exp.Table):
            sources[table.alias_or_name] = table.name
        elif (isinstance(table, exp.Subquery) and table.alias
              and isinstance(table.this, exp.Select) and not table.this.args.get("with")):
            sources[table.alias] = _select(table.this, dictionary, earlier)
        else:
            return None
    return sources


def _resolve(column: exp.Column, sources: Mapping[str, Source], dictionary: Dictionary,
             earlier: Mapping[str, Mapping[str, int]]) -> int | None:
    if column.table:
        table = sources.get(column.table)
        return None if table is None else _field(table, column.name, dictionary, earlier)
    hits = {_field(table, column.name, dictionary, earlier) for table in sources.values()}
    hits.discard(None)
    return hits.pop() if len(hits) == 1 else None


def _field(table: Source, column: str, dictionary: Dictionary,
           earlier: Mapping[str, Mapping[str, int]]) -> int | None:
    if not isinstance(table, str):  # a subquery: what its column carries
        return table.get(column)
    if table in earlier:
        return earlier[table].get(column)
    if table not in PROJECT_TABLES:
        return None
    try:
        key = parse_column_name(column, dictionary)
    except (ValueError, KeyError):
        return None
    return key.field_id if dictionary.field(key.field_id).coding_id is not None else None


def _table_columns(table: Source, dictionary: Dictionary,
                   earlier: Mapping[str, Mapping[str, int]]) -> Coded:
    if not isinstance(table, str):
        return dict(table)
    if table in earlier:
        return dict(earlier[table])
    return {}  # a project table's columns are not known from the text: name them instead


def value_labels(coded: Mapping[str, int], dictionary: Dictionary) -> dict[str, dict[str, str]]:
    """column -> (code -> meaning) for the coded columns."""
    labels: dict[str, dict[str, str]] = {}
    for column, field_id in coded.items():
        coding = dictionary.coding_of(dictionary.field(field_id))
        if coding is not None:
            labels[column] = dict(coding.codes)
    return labels
