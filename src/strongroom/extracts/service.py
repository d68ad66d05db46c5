"""Making a traceable extract, and attributing a leaked file: the services the CLI calls.

``create_extract``: a custodian admin makes a record-level extract for a project holding the
export permission — its granted participant-table fields, the project's pseudonymous IDs,
fingerprints in the carrier columns, decoy participants — written as CSV or Parquet, with a
manifest and an audit event naming the file's SHA-256.

``attribute``: a security analyst (or custodian admin) gives a suspect file; it is read with
any column names and order, linked to the cohort by IDs or by values, every registered extract
is scored, and an extract is named only when the system-wide false-accusation bound is at most
10⁻⁹ (``accuse.py``). The report and a human-readable evidence pack say what was found; the
evidence never holds participant values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pyroaring import BitMap
from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.access import pseudonyms
from strongroom.access.authorize import authorize, grant_reasons
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import FieldGrant, Institution, Person, Project
from strongroom.access.permissions import Action, Grant
from strongroom.access.policies import read_control_state, recipient_reasons
from strongroom.access.states import ProjectStatus
from strongroom.access.tokens import new_id
from strongroom.audit import AuditError, EventType
from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.model import EID, PARTICIPANTS, parse_column_name
from strongroom.cohort.store import Store
from strongroom.errors import Conflict, Invalid, NotFound, Refused
from strongroom.extracts import (
    accuse,
    band_evidence,
    bands,
    carriers,
    codes,
    decoy_evidence,
    decoys,
    evidence,
    labels,
    linkage,
    manifest,
    membership,
    multiset,
    orders,
    residual,
    stix,
    tables,
)
from strongroom.extracts.models import ExtractManifest
from strongroom.privacy import budget, gate
from strongroom.privacy import fields as privacy_fields
from strongroom.privacy.risk import assess
from strongroom.watch.limits import Planned
from strongroom.watch.service import Watch

FORMATS = ("csv", "parquet")
SUFFIXES = {"csv": ".csv", "parquet": ".parquet"}


# -- making an extract ---------------------------------------------------------------------

@dataclass(frozen=True)
class ExtractResult:
    """What was made (no participant values)."""

    extract_id: str
    project_id: str
    institution_id: str
    path: Path
    format: str
    sha256: str
    rows: int
    participants: int
    decoys: int
    columns: list[str]
    carriers: list[str]
    skipped: dict[str, str]  # column -> why it carries no marks
    omitted_fields: list[int]  # granted fields with no participant-table column
    key_id: str
    seconds: float
    risk: dict[str, Any] = field(default_factory=dict)  # the risk gate's summary (counts)

    def to_json(self) -> dict[str, Any]:
        return {"extract": self.extract_id, "project": self.project_id,
                "institution": self.institution_id, "path": str(self.path),
                "format": self.format, "sha256": self.sha256, "rows": self.rows,
                "participants": self.participants, "decoys": self.decoys,
                "columns": self.columns, "carriers": self.carriers,
                "not_carriers": self.skipped, "omitted_fields": self.omitted_fields,
                "key_id": self.key_id, "seconds": round(self.seconds, 3),
                "risk": self.risk}


@dataclass(frozen=True)
class _Recipient:
    project: Project
    fields: list[int]
    person_id: str
    institution_id: str


def _project_for_extract(ctx: AccessContext, principal: Principal | None,
                         project_id: str, action: Action = Action.EXTRACT_CREATE
                         ) -> _Recipient:
    with ctx.transaction() as db:
        if principal is not None:
            project = authorize(ctx, db, principal, action, project_id)
        else:  # the console operator: the grant still decides
            project = db.get(Project, project_id)
            if project is None:
                raise NotFound(f"there is no project {project_id}")
            reasons = grant_reasons(project, Grant.EXPORT)
            if reasons:
                raise Refused(reasons)
        assert project is not None
        if project.status != ProjectStatus.ACTIVE:
            raise Refused(f"project {project_id} is {project.status}; extracts are made only "
                          f"for active projects")
        fields = list(db.scalars(select(FieldGrant.field_id)
                                 .where(FieldGrant.project_id == project_id)
                                 .order_by(FieldGrant.field_id)))
        # a custodian makes extracts for the project's lead; a researcher takes one for self
        recipient_id = (principal.person_id if principal is not None
                        and action is Action.DATA_EXPORT else project.lead_id)
        lead = db.get(Person, recipient_id)
        if lead is None:
            raise NotFound(f"project {project_id}'s recipient {recipient_id} is not on record")
        held = _held(ctx, db, project, lead)
        if held:
            ctx.record(EventType.EXTRACT_REFUSED, principal or "operator", project_id,
                       {"reasons": held, "recipient": lead.id})
            raise Refused(held)
        return _Recipient(project, fields, lead.id, lead.institution_id)


def _held(ctx: AccessContext, db: Session, project: Project, recipient: Person) -> list[str]:
    """What holds every extract of ``project`` for ``recipient``, whoever asks: pauses and
    suspensions of the platform, the recipient, their institution and the project, and
    differential-privacy mode (its promise is that no exact value leaves)."""
    reasons = recipient_reasons(db, read_control_state(db), project, recipient,
                                ctx.clock().date())
    if budget.read(db, project.id).dp_mode:
        reasons.append(f"project {project.id} is in differential-privacy mode: record-level "
                       f"extracts are never made for it, whatever its export approval (its "
                       f"answers are differentially private; an extract would not be)")
    return reasons


def _extract_columns(names: Sequence[str], ctx: AccessContext,
                     fields: Sequence[int]) -> tuple[list[str], list[int]]:
    wanted = set(fields)
    columns = [c for c in names if c != EID
               and parse_column_name(c, ctx.dictionary).field_id in wanted]
    present = {parse_column_name(c, ctx.dictionary).field_id for c in columns}
    return columns, sorted(wanted - present)


def _pseudonyms(ctx: AccessContext, principal: Principal | None, project: Project,
                eids: np.ndarray) -> pl.DataFrame:
    """The project's pseudonym map, issuing pseudonyms to participants who have none yet."""
    current = pseudonyms.load(ctx, project)
    if not pl.Series(eids).is_in(current["eid"].implode()).all():
        issued = pseudonyms.issue(ctx, project, eids)
        ctx.record(EventType.PROJECT_PSEUDONYMS_ISSUED, principal or "operator", project.id,
                   {"count": issued, "for": "extract"})
        current = pseudonyms.load(ctx, project)
    return current


def _decoy_ids(ctx: AccessContext, project_id: str) -> np.ndarray:
    """Pseudonyms already given to the project's earlier decoys: never given again."""
    with ctx.transaction() as db:
        earlier = [m for m in manifest.list_all(db) if m.project_id == project_id]
    ids = [decoys.DecoySet.from_bytes(manifest.open_decoys(ctx.key, m)).rows[EID].to_numpy()
           for m in earlier]
    return np.concatenate(ids) if ids else np.empty(0, dtype=np.int64)


def _write(frame: pl.DataFrame, path: Path, fmt: str) -> str:
    """Write atomically, readable by the owner only; the file's SHA-256."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == "csv":
            frame.write_csv(staging)
        else:
            frame.write_parquet(staging, compression="zstd")
        os.chmod(staging, 0o600)
        digest = _sha256(staging)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return digest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_allowed(ctx: AccessContext, allow: Iterable[int], fields: Sequence[int]) -> list[int]:
    """Allow-listed fields must exist and be part of the extract: anything else is a mistake."""
    wanted = sorted(set(allow))
    unknown = [f for f in wanted if f not in ctx.dictionary.fields]
    if unknown:
        raise Invalid(f"allow-listed field(s) {', '.join(map(str, unknown))} are not in the "
                      f"data dictionary")
    outside = [f for f in wanted if f not in fields]
    if outside:
        raise Invalid(f"allow-listed field(s) {', '.join(map(str, outside))} are not granted "
                      f"to the project, so they are not in the extract")
    return wanted


def _check_output(fmt: str, out_path: Path) -> None:
    if fmt not in FORMATS:
        raise Invalid(f"format {fmt!r} is not offered; choose one of {', '.join(FORMATS)}")
    if out_path.exists():
        raise Conflict(f"{out_path} already exists; an extract never overwrites a file")
    if not out_path.parent.is_dir():
        raise Invalid(f"the folder {out_path.parent} does not exist; create it first")


def create_extract(ctx: AccessContext, principal: Principal | None, project_id: str,
                   fmt: str, out_path: Path, *, store: Store, watch: Watch,
                   allow: Iterable[int] = (),
                   decoy_count: int = decoys.MIN_DECOYS,
                   action: Action = Action.EXTRACT_CREATE,
                   rows: slice | None = None,
                   risk_policy: gate.GatePolicy | None = None,
                   withhold: float = membership.SHARE
                   ) -> ExtractResult:
    """Make, fingerprint, record and write one project's record-level extract.

    Held here, for every caller (API, console, CLI, Python): pauses and suspensions of the
    platform, the project, the recipient and their institution; differential-privacy mode;
    and ``watch``'s transfer limits, first from the count alone (before any participant is
    read) and then from the exact set, reserved before anything is written.

    ``rows``: a page of the cohort (by master ID order) instead of all of it.
    ``risk_policy``: what the risk gate demands (default k = 5, at most 2% suppressed); the
    gate anonymises quasi-identifiers that miss it, or refuses (``privacy/gate.py``).
    ``withhold``: the share of participants withheld under the extract's key, the carrier
    that survives any column deletion (``membership.py``; 0 to ``membership.MAX_SHARE``).
    """
    started = time.perf_counter()
    fmt = fmt.lower()
    _check_output(fmt, out_path)
    if not 0.0 <= withhold <= membership.MAX_SHARE:
        raise Invalid(f"the withheld share must be between 0 and {membership.MAX_SHARE} (a "
                      f"share of participants, not a percentage); {withhold} was given")
    who = _project_for_extract(ctx, principal, project_id, action)
    allowed = _check_allowed(ctx, allow, who.fields)
    version = store.current()
    if version is None:
        raise Invalid("the store holds no cohort yet; ingest one before making extracts")
    count = len(range(*(rows or slice(None)).indices(version.participants)))
    watch.guard(principal, project_id, action.value, Planned(record_count=count),
                charged=who.person_id)
    participants = store.load_participants(  # decodes only the granted columns
        lambda names: [EID, *_extract_columns(names, ctx, who.fields)[0]])
    columns, omitted = _extract_columns(participants.columns, ctx, who.fields)
    if not columns:
        raise Invalid(f"project {project_id} is granted no participant-table fields; grant "
                      f"fields before making an extract")
    frame = participants.select([EID, *columns]).with_columns(pl.col(EID).cast(pl.Int64))
    if rows is not None:
        frame = frame.sort(EID)[rows]
        if frame.is_empty():
            raise Invalid("that page of the cohort holds no participants; start lower")
    # carriers from every eligible participant, before any is withheld: extracts of the same
    # columns and cohort then share their carriers, so attribution reads each cell once
    choice = carriers.choose(frame, ctx.dictionary, columns, allowed)
    # multi-answer categories carry marks in the order of their codes (``orders.py``)
    ordered, unordered = orders.choose(frame, ctx.dictionary, columns)
    choice = carriers.Choice([*choice.carriers, *ordered], {**choice.skipped, **unordered})
    extract_id = new_id("ext")
    key = codes.recipient_key(ctx.key, extract_id)
    frame = membership.withhold(frame, key, withhold)
    # marked before the gate measures k: an allow-listed date is a quasi-identifier, so the
    # file, marks included, is what must meet k (marks added after would break it, and
    # ``enforce`` would blank them); the gate keeps carriers as they are (marks stay sharp)
    bias = codes.bias_key(ctx.key)
    marked = orders.embed(carriers.fingerprint(frame, choice.carriers, bias, key), ordered,
                          bias, key)
    try:
        risk = gate.check(marked, ctx.dictionary, columns, risk_policy, id_column=EID,
                          fixed=[c.column for c in choice.carriers],
                          # bands start where the project's key says (its extracts alike)
                          origins=bands.chooser(codes.project_band_key(ctx.key,
                                                                       who.project.id)))
    except Refused as exc:
        ctx.record(EventType.EXTRACT_REFUSED, principal or "operator", project_id,
                   {"reasons": exc.reasons, "rows": frame.height})
        raise
    reservation = watch.guard(principal, project_id, action.value,
                              Planned(record_members=BitMap(frame[EID].to_numpy()), requests=0),
                              charged=who.person_id)
    try:
        return _make(ctx, principal, who, fmt, out_path, version.id, (frame, marked), columns,
                     omitted, choice, risk, allowed, decoy_count, started,
                     (extract_id, withhold))
    except BaseException:
        watch.cancel(reservation)
        raise


def _make(ctx: AccessContext, principal: Principal | None, who: _Recipient, fmt: str,
          out_path: Path, version_id: str, rows: tuple[pl.DataFrame, pl.DataFrame],
          columns: list[str], omitted: list[int], choice: carriers.Choice,
          risk: gate.GateDecision, allowed: list[int], decoy_count: int, started: float,
          identity: tuple[str, float]) -> ExtractResult:
    """Anonymise, add decoys, write and record an extract the limits have let through.

    ``rows``: the participants' rows as read and as marked (the gate has seen the marked
    ones). ``identity``: the extract's id and the share withheld under its key."""
    project_id = who.project.id
    extract_id, withheld = identity
    frame, marked = rows
    ids = _pseudonyms(ctx, principal, who.project, frame[EID].to_numpy())
    key = codes.recipient_key(ctx.key, extract_id)
    released = (risk.release(marked).join(ids, on=EID, how="inner").drop(EID)
                .rename({"pid": EID}).select([EID, *columns]))
    taken = np.concatenate([ids["pid"].to_numpy(), _decoy_ids(ctx, project_id)])
    made = decoys.make_decoys(frame, ctx.dictionary, count=decoy_count, taken=taken)
    # decoys' multi-answer codes in the copy's order, as every real row's (``orders.py``)
    ordered = [c for c in choice.carriers if c.kind == carriers.ORDER]
    decoy_rows = risk.generalise(orders.embed(made.rows, ordered, codes.bias_key(ctx.key),
                                              key).select(released.columns))
    released = risk.enforce(pl.concat([released, decoy_rows.cast(released.schema)]))
    released = released.sort(EID)  # pseudonyms are random: this order reveals nothing
    sha256 = _write(released, out_path, fmt)
    record = ExtractManifest(
        id=extract_id, project_id=project_id, institution_id=who.institution_id,
        recipient_id=who.person_id, key_id=codes.key_id(key), fields=list(who.fields),
        columns=columns, carriers=[c.to_json() for c in choice.carriers],
        decoys_sealed=manifest.seal_decoys(ctx.key, extract_id, made.registry),
        decoy_count=made.rows.height, rows=released.height, cohort_version=version_id,
        file_sha256=sha256, format=fmt, created_at=ctx.clock(),
        created_by=principal.person_id if principal else "operator", withheld_share=withheld,
        bands=risk.banded())
    try:
        with ctx.transaction() as db:  # the manifest and its event commit together
            db.add(record)
            ctx.record(EventType.EXTRACT_CREATED, principal or "operator", project_id, {
                "extract": extract_id, "format": fmt, "sha256": sha256,
                "rows": released.height, "decoys": made.rows.height,
                "fields": list(who.fields), "columns": len(columns),
                "carriers": [c.column for c in choice.carriers], "key_id": record.key_id,
                "cohort_version": version_id, "recipient": who.person_id,
                "institution": who.institution_id, "allow_listed": allowed,
                "risk": risk.summary(), "withheld_share": withheld})
    except AuditError:  # committed, its event kept in the outbox: the file goes with its record
        raise
    except BaseException:
        out_path.unlink(missing_ok=True)  # no unrecorded extract is left behind
        raise
    return ExtractResult(extract_id, project_id, who.institution_id, out_path, fmt, sha256,
                         released.height, frame.height, made.rows.height, columns,
                         [c.column for c in choice.carriers], choice.skipped, omitted,
                         record.key_id, time.perf_counter() - started, risk.summary())


def candidate_risk(ctx: AccessContext, principal: Principal, project_id: str, *,
                   store: Store, k: int = 5) -> dict[str, Any]:
    """The risk report of a project's extract candidate (its granted participant fields).

    Counts only: class sizes, uniques, l, t, population risk — for the access committee's
    decision on an export permission, before any extract is made.
    """
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.RISK_READ, project_id)
        fields = list(db.scalars(select(FieldGrant.field_id)
                                 .where(FieldGrant.project_id == project_id)))
    if store.current() is None:
        raise Invalid("the store holds no cohort yet; ingest one first")
    participants = store.load(tables=[PARTICIPANTS]).participants
    columns, _ = _extract_columns(participants.columns, ctx, fields)
    qis = privacy_fields.quasi_identifiers(columns, ctx.dictionary)
    if not qis:
        raise Invalid(f"project {project_id}'s granted fields hold no quasi-identifier; "
                      f"there is no re-identification risk to report")
    report = assess(participants.select(qis), qis, threshold_k=k)
    ctx.record(EventType.DATA_ACCESSED, principal, project_id,
               {"what": "risk-report", "quasi_identifiers": qis, "k_anonymity": report.k})
    return report.to_json()


def manifests(ctx: AccessContext, principal: Principal) -> list[ExtractManifest]:
    """Every extract's manifest, oldest first, for overseers (the console's extracts list)."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.EXTRACT_READ)
        return manifest.list_all(db)


# -- attribution ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Accused:
    extract_id: str
    project: str
    institution: str
    bound: float
    log_bound: float
    tardos: float
    flat: float
    positions: int


@dataclass(frozen=True)
class DecoyHit:
    extract_id: str
    project: str
    institution: str
    decoy: str


@dataclass
class AttributionReport:
    """The verdict and its evidence. ``to_json`` is the CLI's ``--json`` answer."""

    verdict: str  # "attributed" | "inconclusive"
    accused: list[Accused]
    rows_read: int
    rows_linked: int
    decoys_found: list[DecoyHit]
    suspect: Path
    suspect_sha256: str
    recipients: int
    scores: list[accuse.Score]
    marks: accuse.Marks | None
    linked_columns: dict[str, str]
    manifests: dict[str, tuple[str, str, str]]  # extract -> (project, institution, digest)
    notes: list[str] = field(default_factory=list)
    subsets: dict[str, membership.Evidence] = field(default_factory=dict)
    # the projects' titles and institutions' names beside their IDs, for people to read
    names: dict[str, str] = field(default_factory=dict)
    decoys_weighed: dict[str, decoy_evidence.DecoyEvidence] = field(default_factory=dict)
    bands: dict[str, band_evidence.BandEvidence] = field(default_factory=dict)
    values: multiset.ValueEvidence | None = None  # the marks read with no row linked
    evidence: Path | None = None
    seconds: float = 0.0
    run_at: dt.datetime | None = None
    run_by: str = "operator"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "accused": [{"project": a.project, "project_title": self.names.get(a.project),
                         "institution": a.institution,
                         "institution_name": self.names.get(a.institution),
                         "false_accusation_bound": a.bound} for a in self.accused],
            "rows_read": self.rows_read,
            "rows_linked": self.rows_linked,
            "decoys_found": [{"project": d.project, "institution": d.institution,
                              "extract": d.extract_id, "decoy": d.decoy}
                             for d in self.decoys_found],
        }

    def summary(self) -> str:
        if self.accused:
            named = "; ".join(f"project {self._named(a.project)} of "
                              f"{self._named(a.institution)}, extract {a.extract_id}, "
                              f"false-accusation bound {_fmt_bound(a.log_bound)}"
                              for a in self.accused)
            return f"attributed: {named}"
        best = f"{self.scores[0].bound:.1e}" if self.scores else "—"
        return (f"inconclusive: no recipient's false-accusation bound reaches "
                f"{accuse.THRESHOLD:.0e} (best {best})")

    def _named(self, id_: str) -> str:
        name = self.names.get(id_)
        return f"“{name}” ({id_})" if name else id_

    def evidence_text(self) -> str:
        return _evidence(self)


def _projects(db: Session, records: Sequence[ExtractManifest]) -> list[Project]:
    """The registered extracts' projects, by ID (none when no extract is registered)."""
    wanted = sorted({m.project_id for m in records})
    if not wanted:
        return []
    return list(db.scalars(select(Project).where(Project.id.in_(wanted)).order_by(Project.id)))


def _load_maps(ctx: AccessContext, projects: Sequence[Project]
               ) -> list[tuple[str, pl.DataFrame | None]]:
    """Each project's pseudonym map (None where its key is destroyed), read from disk while
    the suspect file is read (``attribute``)."""
    out: list[tuple[str, pl.DataFrame | None]] = []
    for project in projects:
        try:
            out.append((project.id, pseudonyms.load(ctx, project)))
        except Refused:
            out.append((project.id, None))
    return out


def _id_maps(loaded: Sequence[tuple[str, pl.DataFrame | None]],
             notes: list[str]) -> dict[str, pl.DataFrame]:
    maps: dict[str, pl.DataFrame] = {}
    for project_id, frame in loaded:
        if frame is None:
            notes.append(f"project {project_id}'s pseudonyms are destroyed with its key; its "
                         f"rows can be linked by value only")
        else:
            maps[project_id] = frame
    return maps


def _digests(records: Sequence[ExtractManifest]) -> dict[str, tuple[str, str, str]]:
    """Each manifest's project, institution and digest (the evidence pack lists them)."""
    return {m.id: (m.project_id, m.institution_id, manifest.digest(m)) for m in records}


def attribute(ctx: AccessContext, principal: Principal | None, suspect_path: Path, *,
              store: Store, evidence: Path | None = None,
              cap: int = accuse.MAX_POSITIONS) -> AttributionReport:
    """Name the source of a suspect file, or say it is inconclusive, with the evidence."""
    started = time.perf_counter()
    with ctx.transaction() as db:
        if principal is not None:
            authorize(ctx, db, principal, Action.ATTRIBUTE)
        records = manifest.list_all(db)
        projects = _projects(db, records)
    if not suspect_path.is_file():
        raise NotFound(f"there is no file {suspect_path}")
    tables.check_suspect(suspect_path)  # size, type and width before any parsing or hashing
    # the cohort is decrypted and decoded on another thread while the file is hashed and read,
    # then the projects' pseudonym maps and the manifests' digests
    loader = ThreadPoolExecutor(max_workers=1) if records else None
    cohort = loader.submit(_master, store, records) if loader is not None else None
    maps = loader.submit(_load_maps, ctx, projects) if loader is not None else None
    digests = loader.submit(_digests, records) if loader is not None else None
    try:
        digest = _sha256(suspect_path)
        suspect = tables.read_suspect(suspect_path)
        notes: list[str] = []
        report = AttributionReport("inconclusive", [], suspect.height, 0, [], suspect_path,
                                   digest, len(records), [], None, {}, {}, notes,
                                   run_at=ctx.clock(),
                                   run_by=principal.person_id if principal else "operator")
        if cohort is None or maps is None:
            notes.append("no extracts are registered, so no recipient can be scored")
        else:
            _score(ctx, cohort.result(), suspect, records, report, cap, maps.result())
        report.manifests = digests.result() if digests is not None else {}
    finally:
        if loader is not None:  # a file refused leaves the cohort's loading to end alone
            loader.shutdown(wait=False, cancel_futures=True)
    report.seconds = time.perf_counter() - started
    report.evidence = evidence or suspect_path.with_name(suspect_path.name + ".evidence.md")
    _write_evidence(report)
    ctx.record(EventType.ATTRIBUTION_RUN, principal or "operator", None, {
        "suspect_sha256": digest, "verdict": report.verdict,
        "accused": [a.extract_id for a in report.accused],
        "bounds": [a.bound for a in report.accused],
        "rows_read": report.rows_read, "rows_linked": report.rows_linked,
        "recipients": report.recipients,
        "decoys_found": sorted({d.extract_id for d in report.decoys_found}),
        "evidence_sha256": _sha256(report.evidence)})
    return report


def _master(store: Store, records: Sequence[ExtractManifest]
            ) -> tuple[str, pl.DataFrame] | None:
    """The current cohort version's id and its participants (``eid`` and every column some
    extract released), or None when the store holds no cohort."""
    version = store.current()
    if version is None:
        return None
    granted = {c for m in records for c in m.columns}
    # only the columns some extract released are decoded (the whole table is decrypted)
    participants = store.load_participants(
        lambda names: [EID, *sorted(granted & set(names) - {EID})])
    wanted = sorted(granted & set(participants.columns) - {EID})
    return version.id, participants.select([EID, *wanted]).with_columns(
        pl.col(EID).cast(pl.Int64))


def _score(ctx: AccessContext, cohort: tuple[str, pl.DataFrame] | None, suspect: pl.DataFrame,
           records: Sequence[ExtractManifest], report: AttributionReport, cap: int,
           maps: Sequence[tuple[str, pl.DataFrame | None]]) -> None:
    if cohort is None:
        raise Invalid("the store holds no cohort, so no marks can be read; ingest it first")
    version_id, master = cohort
    older = [m.id for m in records if m.cohort_version != version_id]
    if older:
        report.notes.append(f"{len(older)} extract(s) were made from an earlier cohort "
                            f"version; their marks are read against the current values, "
                            f"which can only weaken (never falsely strengthen) the evidence")
    all_carriers = sorted({c for m in records for c in manifest.carriers_of(m)},
                          key=lambda c: (c.column, c.amplitude, c.low, c.high))
    # columns whose values (or, for multi-answer fields, order) differ between copies never
    # block
    marked = {c.column for c in all_carriers} | {
        column for c in all_carriers if c.kind == carriers.ORDER
        for column in orders.columns_of(c, master.columns)}
    # text labels read as the codes they stand for (``labels.py``): marks in codes survive
    suspect, decoded = labels.as_codes(suspect, ctx.dictionary,
                                       {f for m in records for f in m.fields})
    if decoded:
        report.notes.append(f"{len(decoded)} column(s) of text labels read as their codes "
                            f"({', '.join(decoded[:5])}{' …' if len(decoded) > 5 else ''})")
    bias = codes.bias_key(ctx.key)
    # three independent readings of the same file, on both cores: the marks on linked rows
    # and from values alone beside the membership, decoys and bands (NumPy, Polars and
    # ``cryptography``'s AES release the GIL in their loops: two threads of AES under 400
    # keys took half the time of one); what needs only the manifests and the master is made
    # while the file is linked
    with ThreadPoolExecutor(max_workers=3) as pool:
        keyed = pool.submit(_keyed, ctx, records)
        cells = pool.submit(multiset.master_cells, master, all_carriers, bias)
        # the band origins need no link either (a third worker, so that the master's columns,
        # which linkage asks for next, wait behind nothing longer than the manifests' keys)
        origins = pool.submit(lambda: evidence.band_origins(
            band_evidence.readings(suspect, master, ctx.dictionary), keyed.result()[0]))
        # the columns matched first; the linkage-free readings need nothing more, so they
        # run while the rows are linked
        planned = linkage.plan(suspect, master, ctx.dictionary,
                               _id_maps(maps, report.notes), marked=marked, pool=pool)
        report.linked_columns = dict(planned.columns)
        recipients, sets = keyed.result()
        seed = int(report.suspect_sha256[:16], 16)
        exact, categories = value_blocks(planned, master, ctx.dictionary, marked)
        by_name = multiset.by_name(suspect, planned.values, all_carriers)
        values = pool.submit(lambda: multiset.gather(
            by_name, master, all_carriers, recipients, bias, seed=seed,
            cap=min(cap, multiset.MAX_POSITIONS), keys=exact, categories=categories,
            cells=cells.result()))
        linked = planned.finish()
        report.rows_linked = linked.rows_linked
        read = pool.submit(accuse.read_linked, linked.eids, dict(linked.values), master,
                           all_carriers, bias, seed=seed, cap=cap, pool=pool)
        found = evidence.gather(suspect, linked, recipients, sets, master, ctx.dictionary,
                                origins.result(), pool)
        marks = read.result()
        # the fingerprint's AES and tilts (no other evidence needed), its groups of
        # recipients on this thread and the pool's; ``accuse.score`` finishes them below
        raw = accuse.raw_scores(marks, recipients, pool=pool)
        report.values = values.result()
    for column, days in report.values.shifts.items():
        report.notes.append(f"{column}: every date of the file stands {days:+d} day(s) from "
                            f"the cohort's (within blocks of its categories); its marks were "
                            f"read shifted back")
    report.subsets, report.decoys_weighed = found.subsets, found.decoys
    report.bands = found.bands
    report.decoys_found = _decoys_listed(found, records, report.notes)
    # the residual kind's share is counted in the union before any pass (``residual.py``)
    scores = accuse.score(marks, recipients, other=found.other() | {
        multiset.KIND: report.values.other(),
        residual.KIND: accuse.Other({}, len(recipients))}, raw=raw)
    rest = residual.gather(linked.eids, dict(linked.values), master, all_carriers, recipients,
                           [s.extract_id for s in accuse.accused(scores)], bias, seed=seed,
                           cap=cap)
    if rest.rows:
        scores = residual.amend(scores, rest.log_p)
        report.notes.append(
            f"{rest.rows} linked row(s) belong to participants withheld from every recipient "
            f"named first ({', '.join(rest.named)}), so came from another copy: the other "
            f"recipients' marks were read again on those rows alone ({rest.positions} "
            f"positions; the 'residual' evidence)")
    report.marks = marks
    report.scores = scores
    by_id = {m.id: m for m in records}
    report.accused = [Accused(s.extract_id, by_id[s.extract_id].project_id,
                              by_id[s.extract_id].institution_id, s.bound, s.log_bound,
                              s.tardos, s.flat, s.positions) for s in accuse.accused(scores)]
    report.verdict = "attributed" if report.accused else "inconclusive"
    report.names = _names(ctx, {a.project for a in report.accused},
                          {a.institution for a in report.accused})


def _keyed(ctx: AccessContext, records: Sequence[ExtractManifest]
           ) -> tuple[list[accuse.Recipient], dict[str, decoys.DecoySet]]:
    """Every recipient's keys and carriers, and the decoy registries (the manifests alone)."""
    recipients = manifest.recipients(ctx.key, records)
    sets = {m.id: decoys.DecoySet.from_bytes(manifest.open_decoys(ctx.key, m))
            for m in records if m.decoy_count}
    return recipients, sets


def value_blocks(linked: linkage.Linked | linkage.Planned, master: pl.DataFrame,
                 dictionary: Dictionary, marked: set[str]
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The exact columns the linkage-free reading blocks on (``multiset.gather``'s ``keys``
    and ``categories``): the quasi-identifiers the file holds exactly (what a re-pairer keeps
    together to keep rows plausible), and every exact categorical column (a copy kept whole is
    then read almost row by row; re-paired, the first two readings still hold). Never a
    marked column; each as linkage compares the master's values."""
    unmarked = [c for c in linked.values if c in master.columns and c not in marked]
    out = []
    for chosen in (privacy_fields.quasi_identifiers(unmarked, dictionary),
                   _categorical(unmarked, dictionary)):
        out.append(multiset.exact_columns(
            {c: linked.values[c] for c in chosen},
            linkage.master_columns(master, linkage.column_specs(chosen, dictionary), linked)
        ) if chosen else {})
    return out[0], out[1]


def _categorical(columns: Sequence[str], dictionary: Dictionary) -> list[str]:
    """The columns of categorical fields (by the dictionary; unknown names left out)."""
    out = []
    for column in columns:
        try:
            fld = dictionary.field(parse_column_name(column, dictionary).field_id)
        except (KeyError, ValueError):
            continue
        if fld.is_categorical:
            out.append(column)
    return out


def _names(ctx: AccessContext, project_ids: set[str], institution_ids: set[str]
           ) -> dict[str, str]:
    """Each project's title and each institution's name, by ID."""
    with ctx.transaction() as db:
        rows = [*db.execute(select(Project.id, Project.title)
                            .where(Project.id.in_(sorted(project_ids)))),
                *db.execute(select(Institution.id, Institution.name)
                            .where(Institution.id.in_(sorted(institution_ids))))]
    return {str(id_): str(name) for id_, name in rows}


def _decoys_listed(found: evidence.Gathered, records: Sequence[ExtractManifest],
                   notes: list[str]) -> list[DecoyHit]:
    """Decoys matched strongly enough to be evidence; the others only counted in a note."""
    by_id = {m.id: m for m in records}
    weighed = sorted(found.decoys.values(), key=lambda e: e.extract_id)
    unlisted = [e for e in weighed if e.found and not e.listed]
    if unlisted:
        notes.append(f"{sum(len(e.found) for e in unlisted)} suspect row(s) matched decoys of "
                     f"{len(unlisted)} extract(s) on the columns present, but rows like them "
                     f"are common enough in the cohort that the matches are no evidence; "
                     f"they are not listed")
    return [DecoyHit(e.extract_id, by_id[e.extract_id].project_id,
                     by_id[e.extract_id].institution_id, decoy)
            for e in weighed if e.listed for decoy in e.found]


def indicators(ctx: AccessContext, principal: Principal | None,
               extract_ids: Sequence[str] = ()) -> tuple[dict[str, Any], bytes, str]:
    """STIX 2.1 indicators (TLP:RED) of extracts' decoys, never plaintext rows.

    Returns the bundle, the HMAC key a partner needs to match it (share it apart from the
    bundle) and the key's id.
    """
    with ctx.transaction() as db:
        if principal is not None:
            authorize(ctx, db, principal, Action.EXTRACT_READ)
        records = [m for m in manifest.list_all(db) if m.decoy_count
                   and (not extract_ids or m.id in extract_ids)]
    missing = sorted(set(extract_ids) - {m.id for m in records})
    if missing:
        raise NotFound(f"no extract with decoys: {', '.join(missing)}")
    sets = {m.id: decoys.DecoySet.from_bytes(manifest.open_decoys(ctx.key, m))
            for m in records}
    key = codes.indicator_key(ctx.key)
    key_id = hashlib.sha256(key).hexdigest()[:16]
    bundle = stix.decoy_indicators(sets, [m.id for m in records], key, key_id=key_id,
                                   created=ctx.clock())
    ctx.record(EventType.DATA_ACCESSED, principal or "operator", None,
               {"what": "decoy-indicators", "extracts": [m.id for m in records],
                "indicators": sum(o["type"] == "indicator" for o in bundle["objects"]),
                "key_id": key_id})
    return bundle, key, key_id


# -- the evidence pack ---------------------------------------------------------------------

def _write_evidence(report: AttributionReport) -> None:
    assert report.evidence is not None
    staging = report.evidence.with_name(f".{report.evidence.name}.tmp")
    staging.write_text(report.evidence_text())
    os.chmod(staging, 0o600)
    os.replace(staging, report.evidence)


def _fmt_bound(log_bound: float) -> str:
    """A bound for people: 10^x past what a float holds, else in scientific notation."""
    if log_bound < -690:
        return f"10^{log_bound / math.log(10):.0f}"
    return f"{math.exp(min(log_bound, 0.0)):.2e}"


def _scorable(r: AttributionReport) -> int:
    return sum(s.positions > 0 for s in r.scores)


def _values_section(r: AttributionReport) -> list[str]:
    """The marks read from each column's values with no row linked (``multiset.py``)."""
    lines = ["", "## Marks read from values alone (no row linkage)", ""]
    found = r.values
    if found is None or not any(len(x.marks) for x in found.readings):
        return [*lines, "No carrier column held values that point to a marked cell (none "
                        "matched, or the columns were rounded or truncated)."]
    lines += ["Each marked cell is read from whether the column holds its value moved up or "
              "down by one mark, shared among every master cell that value could have come "
              "from (within the rows' blocks of exact columns, in the second reading); rows "
              "are never linked, so re-paired, shuffled or cut rows still count; a multi-answer "
              "field (`…_a*`) is read from the order of each row's codes, one position per "
              "set of codes. Scored with "
              "the same bound; the p-value is the smallest score bound times the number of "
              "scores, and it takes its own share of the 10⁻⁹.", ""]
    for reading in found.readings:
        capped = (f" (the strongest of {reading.marks.capped_from:,})"
                  if reading.marks.capped_from else "")
        lines += [f"Reading `{reading.name}`: {len(reading.marks):,} positions{capped}.", "",
                  "| column | suspect values | Σw² |", "|---|---|---|"]
        lines += [f"| `{column}` | {m.cells:,} | {m.informative:,.0f} |"
                  for column, m in sorted(reading.marks.models.items())]
        lines.append("")
    lines += ["| extract | ln P (values) |", "|---|---|"]
    best = sorted(found.held(), key=found.log_p)[:10]
    lines += [f"| {e} | {found.log_p(e):.1f} |" for e in best]
    return lines


def _evidence(r: AttributionReport) -> str:
    lines = [
        "# Attribution evidence",
        "",
        f"- suspect file: `{r.suspect.name}`, SHA-256 `{r.suspect_sha256}`",
        f"- run at {r.run_at.isoformat() if r.run_at else '—'} by {r.run_by}, "
        f"{r.seconds:.1f} s",
        f"- **verdict: {r.verdict}** — {r.summary()}",
        f"- rows read {r.rows_read:,}; rows linked to the cohort {r.rows_linked:,}",
        f"- recipients scored: {r.recipients:,}, {_scorable(r):,} of them holding any "
        f"position of this file (two scores each; the union bound covers "
        f"{2 * _scorable(r):,} hypotheses: the others can never be named); naming threshold: "
        f"system-wide false-accusation probability ≤ {accuse.THRESHOLD:.0e}",
        f"- code: Tardos, arcsine biases with cutoff t = {codes.CUTOFF}; symmetric Tardos "
        f"score and flat correlation score; Chernoff bound with the exact moment-generating "
        f"function of an innocent recipient's score, sharpened by Berry–Esseen on the "
        f"tilted sum",
        "",
        "## Columns linked (suspect → cohort)",
        "",
    ]
    lines += [f"- `{s}` → `{m}`" for s, m in sorted(r.linked_columns.items())] or ["- none"]
    lines += ["", "## Marks read", ""]
    if r.marks is not None and r.marks.models:
        amplitude = {c.column: c.amplitude for c in r.marks.carriers}
        lines += ["| column | cells | suspect grid | noise (× mark) | outliers | Σw² |",
                  "|---|---|---|---|---|---|"]
        for column, m in sorted(r.marks.models.items()):
            lines.append(f"| `{column}` | {m.cells:,} | {m.calendar or f'{m.grid:g}'} | "
                         f"{m.sigma / amplitude[column]:.1f} | {m.outlier:.4f} | "
                         f"{m.informative:,.0f} |")
        capped = (f" (the strongest of {r.marks.capped_from:,})" if r.marks.capped_from
                  else "")
        lines += ["", f"Positions used: {len(r.marks):,}{capped}."]
    else:
        lines.append("No carrier column could be read (none linked, or none in the file).")
    lines += _values_section(r)
    lines += ["", "## Scores (best first)", "",
              "| extract | project | institution | positions | Tardos | flat | bound |",
              "|---|---|---|---|---|---|---|"]
    for s in r.scores[:10]:
        project, institution, _ = r.manifests.get(s.extract_id, ("?", "?", ""))
        lines.append(f"| {s.extract_id} | {project} | {institution} | {s.positions:,} | "
                     f"{s.tardos:.1f} | {s.flat:.1f} | {_fmt_bound(s.log_bound)} |")
    lines += ["", "## Participants held (membership)", ""]
    held = sorted((e for e in r.subsets.items() if e[1].positions), key=lambda e: e[1].log_p)
    if held:
        lines += [f"Linked participants: {held[0][1].positions:,}. Each extract withholds a "
                  f"keyed share of its participants; an innocent extract's withheld count is "
                  f"Binomial (exact tail below).", "",
                  "| extract | withheld among linked | ln P(W ≤ w) |", "|---|---|---|"]
        lines += [f"| {e} | {v.withheld:,} | {v.log_p:.1f} |" for e, v in held[:10]]
    else:
        lines.append("No linked participant, or no extract withholds any.")
    lines += ["", "## Band origins", ""]
    shown = sorted((e for e in r.bands.items() if e[1].considered), key=lambda e: e[1].log_p)
    if shown:
        lines += [f"Each extract starts its bands of a quasi-identifier at one of "
                  f"{bands.CHOICES} keyed origins; an innocent extract matches a field's bands "
                  f"by chance with probability 1/{bands.CHOICES}.", "",
                  "| extract | fields in bands | in its own bands | ln P |", "|---|---|---|---|"]
        lines += [f"| {e} | {v.considered} | {v.matched} | {v.log_p:.2f} |"
                  for e, v in shown[:10]]
        mismatched = sum(1 for _, v in shown if v.not_theirs)
        if mismatched:
            lines += ["", f"{mismatched} extract(s) were granted fields the file shows in bands "
                          f"that are not theirs (another width or origin): no evidence against "
                          f"them from those fields."]
    else:
        lines.append("No column of band labels with a single origin, or none of a field an "
                     "extract released in keyed bands.")
    lines += ["", "## Decoys found", ""]
    weighed = sorted(r.decoys_weighed.values(), key=lambda e: e.log_p)
    if weighed:
        lines += ["| extract | decoys matched | of | columns compared | chance matches "
                  "expected | ln P(K ≥ k) |", "|---|---|---|---|---|---|"]
        lines += [f"| {e.extract_id} | {len(e.found)} | {e.decoys} | {e.columns} | "
                  f"{e.chance:.2g} | {e.log_p:.1f} |" for e in weighed[:10]]
        lines.append("")
    lines += [f"- extract {d.extract_id} (project {d.project}, {d.institution}): decoy "
              f"{d.decoy}" for d in r.decoys_found] or ["- none listed"]
    lines += ["", "## Manifests (SHA-256 of each manifest's canonical JSON)", ""]
    lines += [f"- {e}: project {p}, {i}, `{d}`" for e, (p, i, d) in sorted(r.manifests.items())]
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    lines += ["", "## Answer", "", "```json", json.dumps(r.to_json(), indent=2), "```", ""]
    return "\n".join(lines)
