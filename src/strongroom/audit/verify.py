"""Verify the whole audit log in one streaming pass, and check proofs.

Every entry is read once, in seq order, in batches: its sequence must follow the previous one
(else an entry was deleted), its leaf hash must match its content (else it was edited), and
its content must name its own seq and agree with its indexed columns (else rows were reordered,
or a column edited). The leaves feed a Merkle frontier; whenever the tree reaches the size of a
checkpoint (from the database, the witness file or an external anchor), the checkpoint's
signature and root are checked against the recomputed tree. Checkpoints beyond the end of the
log mean it was truncated (the database's own) or rolled back (the witness's or an anchor's).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import ColumnElement, Connection, Engine, String, func, select, type_coerce

from strongroom.audit.checkpoints import Checkpoint, read_witness
from strongroom.audit.events import format_at, leaf_head
from strongroom.audit.merkle import Frontier
from strongroom.audit.merkle import verify_consistency as verify_consistency
from strongroom.audit.merkle import verify_inclusion as verify_inclusion
from strongroom.audit.tables import CHECKPOINTS, ENTRIES

FETCH = 20_000
_SEQ_PREFIX = re.compile(r'\{"seq":(-?\d+),')


class Tampering(StrEnum):
    """The kinds of problem :func:`verify` names (``VerifyReport.kind``)."""

    EDITED = "edited"
    DELETED = "deleted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    ROLLED_BACK = "rolled-back"
    FORKED = "forked"
    BAD_SIGNATURE = "bad-signature"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify`: ``ok``, or the first problem found and what it means."""

    ok: bool
    entries: int  # entries checked
    checkpoints: int  # checkpoints checked (database, witness and anchors)
    first_bad_seq: int | None
    problem: str | None
    kind: str | None
    seconds: float
    signed_size: int = 0  # entries covered by the largest checkpoint that checked out
    # witness or anchor checkpoints of a lost history, acknowledged in the log (accept_loss)
    acknowledged: int = 0
    acceptances: tuple[Acceptance, ...] = ()

    def summary(self) -> str:
        if self.ok:
            tail = self.entries - self.signed_size
            unsigned = f"; the last {tail} not yet signed" if tail else ""
            lost = "".join(
                f"; {len(a.checkpoints)} checkpoint(s) of a lost history acknowledged at "
                f"entry {a.seq} by {a.operator} ({a.reason})" for a in self.acceptances
            ) if self.acknowledged else ""
            return (f"audit log OK: {self.entries} entries and {self.checkpoints} checkpoints "
                    f"verified in {self.seconds:.2f} s{unsigned}{lost}")
        return f"audit log FAILED ({self.kind}): {self.problem}"


@dataclass(frozen=True)
class Acceptance:
    """An ``audit.loss_accepted`` entry: the witness or anchor checkpoints (size, root) of a
    history the database no longer holds, acknowledged by an operator with a reason."""

    seq: int
    operator: str
    reason: str
    checkpoints: frozenset[tuple[int, bytes]]


LOSS_ACCEPTED = "audit.loss_accepted"  # EventType.AUDIT_LOSS_ACCEPTED's value
LOSSES = (Tampering.ROLLED_BACK.value, Tampering.FORKED.value)  # what an operator may accept


class _FoundError(Exception):
    """The first problem: ends the pass."""

    def __init__(self, kind: Tampering, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.kind, self.seq, self.problem = kind, seq, problem


@dataclass(frozen=True)
class _Claim:
    checkpoint: Checkpoint
    external: bool  # from the witness file or an anchor, not the database
    where: str


class _Pass:
    def __init__(self, public_key: Ed25519PublicKey, claims: list[_Claim],
                 accepted: frozenset[tuple[int, bytes]] = frozenset(),
                 lost: list[Checkpoint] | None = None) -> None:
        self.public_key = public_key
        self.accepted = accepted  # external checkpoints of a lost history, acknowledged
        self.acknowledged = 0
        self.lost = lost  # when a list: collect external disagreements instead of failing
        self.claims = sorted(claims, key=lambda c: (c.checkpoint.tree_size, c.external))
        self.next_claim = 0
        self.checked = 0
        self.frontier = Frontier()
        self.verified = 0  # largest size vouched for by a checkpoint that checked out
        self.verified_before = 0  # the largest such size before it
        self.agreed = 0  # largest size at which an external checkpoint agreed

    def grow(self, leaves: Sequence[bytes]) -> None:
        """Add leaves, checking each checkpoint whose size the tree passes through."""
        start = self.frontier.size
        end = start + len(leaves)
        claims = self.claims
        while self.next_claim < len(claims) and claims[self.next_claim].checkpoint.tree_size <= end:
            claim = claims[self.next_claim]
            size = claim.checkpoint.tree_size
            self.frontier.extend(leaves[self.frontier.size - start:size - start])
            self.check(claim)
            self.next_claim += 1
        self.frontier.extend(leaves[self.frontier.size - start:])

    def check(self, claim: _Claim) -> None:
        cp = claim.checkpoint
        size = cp.tree_size
        self.checked += 1
        # the entries this checkpoint vouches for beyond those a smaller one already did
        a = self.verified if self.verified < size else self.verified_before
        if not cp.verify(self.public_key):
            raise _FoundError(
                Tampering.BAD_SIGNATURE, a,
                f"the {claim.where} (size {size}) has a signature that does not verify "
                "with this log's public key: it was forged or altered")
        if self.frontier.root() == cp.root_hash:
            if size > self.verified:
                self.verified_before, self.verified = self.verified, size
            if claim.external:
                self.agreed = max(self.agreed, size)
            return
        if claim.external:
            if self._lost(cp):
                return
            a = self.agreed
            raise _FoundError(
                Tampering.FORKED, a,
                f"the {claim.where} signed a different history of the first {size} "
                f"entries than this database holds; the histories part within entries "
                f"{a}..{size - 1}. Either the log was forked (rewritten and re-signed), or "
                f"the database was restored to an earlier state or rebuilt (`store "
                f"recover`) and has grown past this checkpoint since: a rollback. If that "
                f"is what happened, acknowledge it with `strongroom audit verify "
                f"--accept-loss --operator NAME --reason TEXT`")
        raise _FoundError(
            Tampering.EDITED, a,
            f"entries {a}..{size - 1} no longer match the {claim.where}: an entry in "
            "that range was altered with its hash rewritten, or entries were moved")

    def finish(self, n: int) -> None:
        """Checkpoints past the end: the log lost entries it had when they were signed."""
        rest = self.claims[self.next_claim:]
        for claim in sorted(rest, key=lambda c: c.external):  # the database's own first
            size = claim.checkpoint.tree_size
            self.checked += 1
            if not claim.checkpoint.verify(self.public_key):
                raise _FoundError(
                    Tampering.BAD_SIGNATURE, n,
                    f"the {claim.where} (size {size}) has a signature that does not "
                    "verify with this log's public key: it was forged or altered")
            if not claim.external:
                raise _FoundError(
                    Tampering.TRUNCATED, n,
                    f"the log ends after {n} entries but the {claim.where} covers "
                    f"{size}: entries {n}..{size - 1} were removed from its end")
            if self._lost(claim.checkpoint):
                continue
            raise _FoundError(
                Tampering.ROLLED_BACK, n,
                f"the {claim.where} covers {size} entries but the database holds {n}: "
                f"the database was restored to an earlier state (or rebuilt), losing "
                f"entries {n}..{size - 1}. If that is what happened, acknowledge it with "
                f"`strongroom audit verify --accept-loss --operator NAME --reason TEXT`")

    def _lost(self, cp: Checkpoint) -> bool:
        """An external checkpoint this database disagrees with that is acknowledged as a
        lost history's (or, collecting, noted as one): not a failure."""
        if (cp.tree_size, cp.root_hash) in self.accepted:
            self.acknowledged += 1
            return True
        if self.lost is not None:
            self.lost.append(cp)
            return True
        return False


def verify(
    engine: Engine,
    *,
    public_key: Ed25519PublicKey,
    witness: Path | None = None,
    anchors: Sequence[dict[str, Any]] = (),
    lost: list[Checkpoint] | None = None,
) -> VerifyReport:
    """Check the whole log against its checkpoints, the witness file and any anchors.

    A witness or anchor checkpoint that an ``audit.loss_accepted`` entry acknowledges (a
    history lost when the database was restored or rebuilt) is not a failure, provided that
    entry is itself covered by a signed checkpoint of this log. With ``lost`` (a list), every
    external checkpoint this database disagrees with is appended to it instead of failing:
    what an operator would be acknowledging (:func:`LOSSES` kinds only)."""
    start = time.perf_counter()
    n = 0
    run: _Pass | None = None
    acceptances: list[Acceptance] = []
    try:
        with engine.connect() as conn:
            acceptances = _acceptances(conn)
            accepted = frozenset().union(*(a.checkpoints for a in acceptances))
            run = _Pass(public_key, _claims(conn, witness, anchors), accepted, lost)
            for leaves, problem in _batches(conn):
                run.grow(leaves)
                n += len(leaves)
                if problem is not None:
                    raise problem
            run.finish(n)
        unsigned = [a.seq for a in acceptances if a.seq >= run.verified]
        if run.acknowledged and unsigned:
            raise _FoundError(
                Tampering.ROLLED_BACK, unsigned[0],
                f"entry {unsigned[0]} acknowledges a lost history but no signed checkpoint "
                f"covers it yet: an acknowledgement counts once signed. Run `strongroom "
                f"audit checkpoint`, then verify again")
    except _FoundError as found:
        return VerifyReport(False, n, run.checked if run else 0, found.seq, found.problem,
                            found.kind.value, time.perf_counter() - start,
                            run.verified if run else 0)
    return VerifyReport(True, n, run.checked, None, None, None, time.perf_counter() - start,
                        run.verified, run.acknowledged, tuple(acceptances))


def _acceptances(conn: Connection) -> list[Acceptance]:
    """Every ``audit.loss_accepted`` entry, as the log holds it (checked by the pass)."""
    found = []
    for seq, payload in conn.execute(select(ENTRIES.c.seq, ENTRIES.c.payload)
                                     .where(ENTRIES.c.type == LOSS_ACCEPTED)
                                     .order_by(ENTRIES.c.seq)):
        try:
            details = json.loads(payload)["details"]
            pairs = frozenset((int(c["tree_size"]), bytes.fromhex(c["root_hash"]))
                              for c in details["checkpoints"])
            found.append(Acceptance(int(seq), str(details.get("operator")),
                                    str(details.get("reason")), pairs))
        except (ValueError, KeyError, TypeError):
            continue  # not an acceptance this release wrote: it acknowledges nothing
    return found


def _claims(conn: Connection, witness: Path | None,
            anchors: Sequence[dict[str, Any]]) -> list[_Claim]:
    found = [
        _Claim(Checkpoint(int(r.tree_size), bytes(r.root_hash), r.at, bytes(r.signature),
                          r.key_id), False, "database's checkpoint")
        for r in conn.execute(select(CHECKPOINTS.c.tree_size, CHECKPOINTS.c.root_hash,
                                     CHECKPOINTS.c.at, CHECKPOINTS.c.signature,
                                     CHECKPOINTS.c.key_id))
    ]
    exported = [(data, f"witness file's checkpoint on line {i}")
                for i, data in enumerate(read_witness(witness) if witness else [], start=1)]
    exported += [(data, f"anchored checkpoint #{i}") for i, data in enumerate(anchors, start=1)]
    for data, where in exported:
        try:
            found.append(_Claim(Checkpoint.from_export(data), True, where))
        except ValueError as exc:
            raise _FoundError(
                Tampering.BAD_SIGNATURE, None,
                f"the {where} is not a readable checkpoint ({exc}): it was altered") from exc
    return found


def _batches(conn: Connection) -> Iterator[tuple[list[bytes], _FoundError | None]]:
    """(leaf hashes, None) per batch of rows checked; (good leaves, problem) at a problem."""
    at_text = _at_text(conn.dialect.name)
    query = select(ENTRIES.c.seq, ENTRIES.c.at if at_text is None else at_text, ENTRIES.c.type,
                   ENTRIES.c.actor, ENTRIES.c.subject, ENTRIES.c.payload, ENTRIES.c.leaf_hash)
    expected = 0
    while True:
        rows = conn.execute(query.where(ENTRIES.c.seq >= expected)
                            .order_by(ENTRIES.c.seq).limit(FETCH)).all()
        if not rows:
            return
        seqs, ats, types, actors, subjects, payloads, stored = zip(*rows, strict=True)
        leaves = [sha256(b"\x00" + p.encode()).digest() for p in payloads]
        try:
            texts = ats if at_text is not None else map(_at, ats)
            heads = list(map(str.startswith, payloads,
                             map(leaf_head, seqs, texts, types, actors, subjects)))
        except (TypeError, ValueError, AttributeError):  # a column no append could write
            heads = [_head_ok(*row) for row in zip(seqs, ats, types, actors, subjects, payloads,
                                                   strict=True)]
        if (seqs[0] == expected and seqs[-1] == expected + len(rows) - 1
                and leaves == list(stored) and all(heads)):
            expected += len(rows)
            yield leaves, None
            continue
        i, problem = _first_problem(expected, seqs, leaves, stored, payloads, heads)
        yield leaves[:i], problem
        return


def _at_text(dialect: str) -> ColumnElement[str] | None:
    """The canonical text of ``at``, made by the database (parsing a million is slow)."""
    if dialect == "sqlite":  # stored as UTC 'YYYY-MM-DD HH:MM:SS.ffffff' by SQLAlchemy
        raw = type_coerce(ENTRIES.c.at, String)
        return func.replace(raw, " ", "T", type_=String) + "+00:00"
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", ENTRIES.c.at),
                            'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"', type_=String)
    raise AssertionError("no problem found in a batch that failed its checks")


def _at(value: object) -> str:
    return value if isinstance(value, str) else format_at(value)  # type: ignore[arg-type]


def _head_ok(seq: int, at: object, type: str, actor: str | None, subject: str | None,
             payload: str) -> bool:
    try:
        return payload.startswith(leaf_head(seq, _at(at), type, actor, subject))
    except (TypeError, ValueError, AttributeError):
        return False


def _first_problem(expected: int, seqs: Sequence[int], leaves: Sequence[bytes],
                   stored: Sequence[bytes], payloads: Sequence[str],
                   heads: Sequence[bool]) -> tuple[int, _FoundError]:
    for i, seq in enumerate(seqs):
        at = expected + i
        if seq != at:
            return i, _FoundError(
                Tampering.DELETED, at,
                f"entry {at} is missing (the next entry is {seq}): it was deleted")
        if leaves[i] != bytes(stored[i]):
            return i, _FoundError(
                Tampering.EDITED, seq,
                f"entry {seq} was altered: its content no longer matches its "
                "recorded hash")
        if not heads[i]:
            match = _SEQ_PREFIX.match(payloads[i])
            if match and int(match.group(1)) != seq:
                return i, _FoundError(
                    Tampering.REORDERED, seq,
                    f"entry {seq} holds the content recorded as entry "
                    f"{match.group(1)}: entries were reordered or renumbered")
            return i, _FoundError(
                Tampering.EDITED, seq,
                f"entry {seq} was altered: its time, type, actor or subject "
                "columns no longer match its recorded content")
    raise AssertionError("no problem found in a batch that failed its checks")
