"""The enclave's services: define a dataset, list and drop definitions, dummy data, analyse.

Each takes an :class:`~strongroom.enclave.workspace.Enclave` and the principal asking, and is
authorised as ``data.analyse`` on the project. None returns participant-level rows: a
definition answers with its schema and size; an analysis answers with a
:class:`~strongroom.enclave.results.Result` that only the output check may turn into bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import polars as pl
from sqlglot import exp

from strongroom.access.authorize import authorize
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.access.permissions import Action
from strongroom.access.projects import granted_fields
from strongroom.audit import EventType
from strongroom.enclave import codings, definitions, sqlguard
from strongroom.enclave.aggregate import aggregate_sql, key_names
from strongroom.enclave.analyses.run import run
from strongroom.enclave.analyses.spec import parse_spec
from strongroom.enclave.dummy import dummy_tables, dummy_zip
from strongroom.enclave.results import AnalysisKind, Result
from strongroom.enclave.sizes import Size
from strongroom.enclave.sources import Table
from strongroom.enclave.steps import Rounding
from strongroom.enclave.view import schema_of
from strongroom.enclave.workspace import Enclave, definition_context
from strongroom.errors import DataRefusal, Invalid, NotFound


@dataclass(frozen=True)
class Scope:
    """The project an enclave call acts on, and its granted fields, read under authorisation."""

    project: Project
    fields: list[int]


def scope(enclave: Enclave, principal: Principal, project_id: str) -> Scope:
    with enclave.ctx.transaction() as db:
        project = authorize(enclave.ctx, db, principal, Action.DATA_ANALYSE, project_id)
        assert project is not None
        fields = granted_fields(db, project_id)
    return Scope(project, fields)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PendingDefinition:
    """A definition built and sealed but not yet there for anyone (definitions.Staged): the
    output service publishes it at its answer's moment, which is when it begins to exist."""

    enclave: Enclave
    principal: Principal
    project_id: str
    definition: definitions.Definition
    staged: definitions.Staged
    sql: str

    def publish(self) -> definitions.Definition:
        self.staged.publish()
        d = self.definition
        self.enclave.ctx.record(EventType.ENCLAVE_DEFINITION_CREATED, self.principal,
                                self.project_id,
                                {"name": d.name, "sql_sha256": _digest(self.sql),
                                 "rows": d.rows, "participants": d.participants,
                                 "size_ok": d.size_ok})
        return d

    def discard(self) -> None:
        self.staged.discard()


def stage_definition(enclave: Enclave, principal: Principal, project_id: str, name: str,
                     sql: str) -> PendingDefinition:
    """Build a participant-level table inside the enclave and seal it, unpublished."""
    asked = enclave.ctx.clock()
    where = scope(enclave, principal, project_id)
    tables = enclave.sources(where.project, where.fields)
    made = _earlier(enclave, where.project, sql)
    earlier = {other: frame for other, (_, frame) in made.items()}
    try:
        definition, frame = definitions.build(
            tables, schema_of({**tables, **earlier}), name, sql, enclave.limits,
            earlier=earlier, verdict_key=_verdict_key(enclave, where.project, sql),
            bounds=_bounds(enclave, made), engine=enclave.engine)
    except Invalid as refusal:
        _refused(enclave, principal, project_id, "definition", sql, refusal)
        raise
    # the platform's clock, as outputs' times are: what an output read is told by the times.
    # The moment it was asked for, not made: how long it took to build is the data's answer
    # (Outputs.define answers it at its floor; its time must not tell it either)
    definition = replace(definition, created_at=asked)
    staged = definitions.stage(enclave.definitions_dir(project_id), enclave.key(where.project),
                               definition_context(project_id), definition, frame)
    del frame, earlier, made
    enclave.release()
    return PendingDefinition(enclave, principal, project_id, definition, staged, sql)


def define(enclave: Enclave, principal: Principal, project_id: str, name: str,
           sql: str) -> definitions.Definition:
    """Build a participant-level table inside the enclave; answer with its schema and size.
    At once, with no floor: the output service's ``Outputs.define`` is the researcher's door
    (this is the attack campaigns' and the custodian's own)."""
    return stage_definition(enclave, principal, project_id, name, sql).publish()


def _verdict_key(enclave: Enclave, project: Project, sql: str) -> bytes:
    """The secret of a definition's size verdict (never leaves the enclave): the project's,
    and the definition's text, so that a calibrating definition (the accomplices and the
    target, unconditionally) draws a margin of its own, not the conditional one's
    (enclave/margin.py says why)."""
    return hmac.new(_secret(enclave, project, "size verdict"), sql.encode(),
                    hashlib.sha256).digest()


def decision_key(enclave: Enclave, project: Project, request: Mapping[str, Any]) -> bytes:
    """The secret of one request's keyed margins (enclave/margin.py): the project's, and the
    request's lineage, its text and the text and making (its time) of every definition it
    reads. A request that reads the target's value never has a calibrating request's
    lineage; the same request over the same definitions always draws the same."""
    names: frozenset[str] = frozenset()
    if request.get("kind") == AnalysisKind.AGGREGATE_SQL.value:
        sql = request.get("sql")
        names = _named(sql) if isinstance(sql, str) else frozenset()
    elif isinstance(request.get("definition"), str):
        names = frozenset({str(request["definition"])})
    made = {d.name: d for d in definitions.list_(enclave.definitions_dir(project.id))}
    lineage = json.dumps({"request": request, "definitions": {
        name: [made[name].sql, made[name].created_at.isoformat()]
        for name in sorted(names & made.keys())}}, sort_keys=True, default=str)
    return hmac.new(_secret(enclave, project, "threshold margin"), lineage.encode(),
                    hashlib.sha256).digest()


def rounding(enclave: Enclave, project: Project) -> Rounding:
    """The project's rounding of released figures, keyed by a secret of its own."""
    return Rounding(_secret(enclave, project, "release rounding"))


def figure_secret(enclave: Enclave, project: Project) -> bytes:
    """The project's key for rounding draws that must not depend on the request (a GWAS's
    effects: the same figures asked for again, or copied under another name, draw alike)."""
    return _secret(enclave, project, "figure rounding")


def _secret(enclave: Enclave, project: Project, purpose: str) -> bytes:
    return hmac.new(enclave.key(project).secret, f"{purpose}:{project.id}".encode(),
                    hashlib.sha256).digest()


def list_definitions(enclave: Enclave, principal: Principal,
                     project_id: str) -> list[definitions.Definition]:
    scope(enclave, principal, project_id)
    return definitions.list_(enclave.definitions_dir(project_id))


def drop_definition(enclave: Enclave, principal: Principal, project_id: str,
                    name: str) -> None:
    scope(enclave, principal, project_id)
    definitions.drop(enclave.definitions_dir(project_id), name)
    enclave.ctx.record(EventType.ENCLAVE_DEFINITION_DROPPED, principal, project_id,
                       {"name": name})


def dummy_data(enclave: Enclave, principal: Principal, project_id: str,
               n: int = 1000) -> bytes:
    """A zip of synthetic tables with exactly the project's schema, and its dataset
    definitions rebuilt over them, to develop code (and jobs) outside."""
    where = scope(enclave, principal, project_id)
    payload = dummy_zip(dummy_inputs(enclave, where, n))
    enclave.ctx.record(EventType.ENCLAVE_DUMMY_DOWNLOADED, principal, project_id,
                       {"participants": n, "sha256": hashlib.sha256(payload).hexdigest()})
    return payload


def dummy_inputs(enclave: Enclave, where: Scope, n: int) -> dict[str, pl.DataFrame]:
    """The project's tables as ``n`` dummy participants (seeded by the project, so the same
    each time), and each of its dataset definitions whose SQL builds over them, by name."""
    schema = schema_of(enclave.sources(where.project, where.fields))
    seed = int.from_bytes(hashlib.sha256(where.project.id.encode()).digest()[:4], "big")
    tables = dummy_tables(schema, enclave.ctx.dictionary, n, seed=seed)
    # in a database of their own: in the real data's, what a concurrent real-data request
    # held (its memory: a definition's copied rows, whose size is data) decided which
    # definitions the zip left out, for no answer (the red team, test_redteam_metadata.py)
    limits = replace(enclave.limits, pool="dummy")
    made: dict[str, pl.DataFrame] = {}
    for d in definitions.list_(enclave.definitions_dir(where.project.id)):
        with contextlib.suppress(Invalid, DataRefusal):  # one that cannot: left out
            made[d.name] = definitions.build(tables, schema, d.name, d.sql, limits,
                                             min_participants=1, earlier=made)[1]
    return {**tables, **made}


def analyse(enclave: Enclave, principal: Principal, project_id: str,
            request: Mapping[str, Any], *, threshold: int,
            where: Scope | None = None) -> tuple[Scope, Result]:
    """Run one analysis over a definition (or aggregate SQL over the view and definitions),
    its values winsorised and its rare categories merged at ``threshold``, the project's
    (enclave/winsor.py). ``where``: the scope, if the caller has just read it."""
    if where is None or where.project.id != project_id:
        where = scope(enclave, principal, project_id)
    body = dict(request)
    try:
        if body.get("kind") == AnalysisKind.AGGREGATE_SQL.value:
            result = _aggregate(enclave, where, body, threshold)
        else:
            name = body.pop("definition", None)
            if not isinstance(name, str):
                raise Invalid("name the dataset definition to analyse: \"definition\": "
                              "\"<name>\" (see GET /projects/{id}/definitions)")
            _, frame = definition(enclave, where.project, name)
            result = run(parse_spec(body), frame, rounding=rounding(enclave, where.project),
                         k=threshold, place=enclave.engine.model_rows())
    except Invalid as refusal:
        _refused(enclave, principal, project_id, str(body.get("kind")), None, refusal)
        raise
    finally:
        enclave.release()  # what the request's rows took, given back (the result is kept)
    result.spec = dict(request)
    return where, result


def _aggregate(enclave: Enclave, where: Scope, body: dict[str, Any], k: int) -> Result:
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise Invalid("aggregate_sql needs \"sql\": \"SELECT … GROUP BY …\"")
    unknown = set(body) - {"kind", "sql"}
    if unknown:
        raise Invalid(f"aggregate_sql takes only \"sql\"; remove {', '.join(sorted(unknown))}")
    made = _earlier(enclave, where.project, sql)
    tables: dict[str, Table] = {**enclave.sources(where.project, where.fields),
                                **{name: frame for name, (_, frame) in made.items()}}
    return aggregate_sql(tables, schema_of(tables), sql, enclave.limits, body, k=k,
                         bounds=_bounds(enclave, made), engine=enclave.engine)


def definition(enclave: Enclave, project: Project,
               name: str) -> tuple[definitions.Definition, pl.DataFrame]:
    """A project's dataset definition and its rows (NotFound, saying what to do, if absent)."""
    if name not in {d.name for d in definitions.list_(enclave.definitions_dir(project.id))}:
        raise NotFound(f"project {project.id} has no dataset definition {name!r}; define it "
                       f"first (POST /projects/{project.id}/definitions)")
    return enclave.definition(project, name)


@dataclass(frozen=True)
class Naming:
    """What a released table's labels mean: the value labels of the coded columns an analysis
    grouped by, and aggregate SQL's key names (enclave/codings.py)."""

    labels: dict[str, dict[str, str]]
    keys: list[str] | None = None


def naming(enclave: Enclave, project_id: str, spec: Mapping[str, Any],
           made_at: datetime) -> Naming:
    """How to label an output made at ``made_at`` from ``spec``, read from the project's
    definitions' text alone (the caller has authorised reading the output). A definition
    made again since the output gives no labels: it may not be what the output read."""
    found: dict[str, dict[str, int]] = {}
    for d in sorted(definitions.list_(enclave.definitions_dir(project_id)),
                    key=lambda d: d.created_at):
        if d.created_at <= made_at:
            found[d.name] = codings.coded_columns(d.sql, enclave.ctx.dictionary, found)
    dictionary = enclave.ctx.dictionary
    sql = spec.get("sql")
    if spec.get("kind") == AnalysisKind.AGGREGATE_SQL.value and isinstance(sql, str):
        coded = codings.coded_columns(sql, dictionary, found)
        return Naming(codings.value_labels(coded, dictionary), key_names(sql))
    read = found.get(str(spec.get("definition")), {})
    return Naming(codings.value_labels(read, dictionary))


def _earlier(enclave: Enclave, project: Project,
             sql: str) -> dict[str, tuple[definitions.Definition, pl.DataFrame]]:
    """The project's definitions that ``sql`` names, so SQL can build on earlier ones."""
    named = _named(sql)
    known = {d.name for d in definitions.list_(enclave.definitions_dir(project.id))}
    return {name: enclave.definition(project, name) for name in sorted(named & known)}


def _bounds(enclave: Enclave,
            made: Mapping[str, tuple[definitions.Definition, pl.DataFrame]]) -> dict[str, Size]:
    """The earlier definitions' size bounds (from their SQL, never their actual sizes)."""
    return {name: definition.bound(enclave.limits.max_rows)
            for name, (definition, _) in made.items()}


def _named(sql: str) -> frozenset[str]:
    """The tables ``sql`` names (none if the guard cannot parse it: it refuses it then), read
    from the guard's own parse of the text, which checking the request reuses (each request
    asks twice: its lineage, its earlier definitions)."""
    try:
        return frozenset(t.name for t in sqlguard.shared(sql).find_all(exp.Table))
    except Invalid:
        return frozenset()


def _refused(enclave: Enclave, principal: Principal, project_id: str, what: str,
             sql: str | None, refusal: Invalid) -> None:
    details: dict[str, Any] = {"what": what, "reasons": refusal.reasons}
    if sql is not None:
        details["sql_sha256"] = _digest(sql)
    enclave.ctx.record(EventType.ENCLAVE_ANALYSIS_REFUSED, principal, project_id, details)
