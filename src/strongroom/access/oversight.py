"""Reading the audit log under access control: entries, verification, proofs, checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import Action
from strongroom.audit import EventType, StoredEntry, VerifyReport
from strongroom.audit.tables import ENTRIES
from strongroom.audit.verify import verify
from strongroom.errors import Invalid

MAX_PAGE = 1000


def _allowed(ctx: AccessContext, principal: Principal) -> None:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.AUDIT_READ)


def entries(ctx: AccessContext, principal: Principal, start: int = 0,
            limit: int = 100) -> list[StoredEntry]:
    if start < 0 or not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"start must be ≥ 0 and limit 1 to {MAX_PAGE}")
    _allowed(ctx, principal)
    return list(ctx.audit.entries(start, start + limit))


def entries_about(ctx: AccessContext, principal: Principal, subjects: Sequence[str],
                  limit: int = MAX_PAGE) -> list[StoredEntry]:
    """The latest ``limit`` entries about any of ``subjects`` (e.g. an alert and the pauses it
    set), oldest first: the story of one thing, from the indexed subject column."""
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be 1 to {MAX_PAGE}")
    _allowed(ctx, principal)
    if not subjects:
        return []
    query = (select(ENTRIES).where(ENTRIES.c.subject.in_(list(subjects)))
             .order_by(ENTRIES.c.seq.desc()).limit(limit))
    return [_stored(r) for r in reversed(_rows(ctx, query))]


def last_of(ctx: AccessContext, principal: Principal, kind: EventType) -> StoredEntry | None:
    """The latest entry of one type (e.g. the last verification's outcome), or None."""
    _allowed(ctx, principal)
    query = (select(ENTRIES).where(ENTRIES.c.type == kind.value)
             .order_by(ENTRIES.c.seq.desc()).limit(1))
    rows = _rows(ctx, query)
    return _stored(rows[0]) if rows else None


def _rows(ctx: AccessContext, query: Any) -> list[Any]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(query).all())


def _stored(r: Any) -> StoredEntry:
    return StoredEntry(int(r.seq), r.at, r.type, r.actor, r.subject, r.payload,
                       bytes(r.leaf_hash))


def verify_log(ctx: AccessContext, principal: Principal | None, witness: Path | None,
               anchors: Sequence[dict[str, Any]] = ()) -> VerifyReport:
    """Verify the whole log (``principal`` None: the operator at the console)."""
    if principal is not None:
        _allowed(ctx, principal)
    report = verify(ctx.engine, public_key=ctx.audit.public_key, witness=witness,
                    anchors=anchors)
    ctx.record(EventType.AUDIT_VERIFIED, principal or "operator", None,
               {"ok": report.ok, "entries": report.entries, "kind": report.kind,
                "first_bad_seq": report.first_bad_seq})
    return report


def export_checkpoint(ctx: AccessContext, principal: Principal | None) -> dict[str, Any]:
    """Sign the current tree and return it for anchoring outside Strongroom."""
    if principal is not None:
        _allowed(ctx, principal)
    ctx.audit.checkpoint()
    exported = ctx.audit.export_checkpoint()
    ctx.record(EventType.AUDIT_CHECKPOINT_EXPORTED, principal or "operator", None,
               {"tree_size": exported.get("tree_size")})
    return exported


def _check_sizes(ctx: AccessContext, *sizes: int) -> None:
    size = ctx.audit.size()
    for n in sizes:
        if not 0 <= n <= size:
            raise Invalid(f"tree sizes run from 0 to {size}, not {n}")


def inclusion_proof(ctx: AccessContext, principal: Principal, seq: int,
                    tree_size: int) -> list[bytes]:
    _allowed(ctx, principal)
    _check_sizes(ctx, tree_size)
    if not 0 <= seq < tree_size:
        raise Invalid(f"entry {seq} is not in a tree of {tree_size} entries")
    return ctx.audit.inclusion_proof(seq, tree_size)


def consistency_proof(ctx: AccessContext, principal: Principal, old_size: int,
                      new_size: int) -> list[bytes]:
    _allowed(ctx, principal)
    _check_sizes(ctx, old_size, new_size)
    if not 0 < old_size <= new_size:
        raise Invalid("a consistency proof needs 0 < old_size ≤ new_size")
    return ctx.audit.consistency_proof(old_size, new_size)
