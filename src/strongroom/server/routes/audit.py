"""The audit log: read entries, verify, export checkpoints, inclusion and consistency proofs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from strongroom.access import oversight
from strongroom.access.permissions import Action
from strongroom.server.schemas import AuditEntryOut, ProofOut, VerifyOut
from strongroom.server.security import Caller, Ctx, acts

router = APIRouter(tags=["audit"])


@router.get("/audit/entries", response_model=list[AuditEntryOut],
            openapi_extra=acts(Action.AUDIT_READ))
def audit_entries(who: Caller, ctx: Ctx, start: int = Query(0, ge=0, le=2**62),
                  limit: int = Query(100, ge=1, le=oversight.MAX_PAGE)) -> list[AuditEntryOut]:
    """Entries in order; sensitive values appear only as salted hashes."""
    return [AuditEntryOut(seq=e.seq, at=e.at, type=e.type, actor=e.actor, subject=e.subject,
                          details=e.details, leaf_hash=e.leaf_hash.hex())
            for e in oversight.entries(ctx, who, start, limit)]


@router.post("/audit/verify", response_model=VerifyOut, openapi_extra=acts(Action.AUDIT_READ))
def audit_verify(who: Caller, ctx: Ctx, request: Request) -> VerifyOut:
    """Check the whole log against its signed checkpoints and the witness file."""
    report = oversight.verify_log(ctx, who, request.app.state.platform.witness)
    return VerifyOut(ok=report.ok, entries=report.entries, checkpoints=report.checkpoints,
                     first_bad_seq=report.first_bad_seq, kind=report.kind,
                     problem=report.problem, seconds=report.seconds)


@router.post("/audit/checkpoint", openapi_extra=acts(Action.AUDIT_READ))
def audit_checkpoint(who: Caller, ctx: Ctx) -> dict[str, Any]:
    """A freshly signed checkpoint to keep outside Strongroom (anchoring)."""
    return oversight.export_checkpoint(ctx, who)


@router.get("/audit/proofs/inclusion", response_model=ProofOut,
            openapi_extra=acts(Action.AUDIT_READ))
def inclusion(who: Caller, ctx: Ctx, seq: int = Query(ge=0),
              tree_size: int = Query(ge=1)) -> ProofOut:
    proof = oversight.inclusion_proof(ctx, who, seq, tree_size)
    return ProofOut(tree_size=tree_size, hashes=[h.hex() for h in proof])


@router.get("/audit/proofs/consistency", response_model=ProofOut,
            openapi_extra=acts(Action.AUDIT_READ))
def consistency(who: Caller, ctx: Ctx, old_size: int = Query(ge=1),
                new_size: int = Query(ge=1)) -> ProofOut:
    proof = oversight.consistency_proof(ctx, who, old_size, new_size)
    return ProofOut(tree_size=new_size, hashes=[h.hex() for h in proof])
