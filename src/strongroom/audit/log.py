"""The append-only audit log: group-committed appends, a Merkle tree, signed checkpoints.

Callers on any thread enqueue events and wait; one writer thread takes everything queued,
assigns consecutive sequence numbers, commits the batch in one transaction and only then wakes
its callers. A durable commit (an fsync) is thus shared by every event that arrived while the
previous one was on its way to disk: throughput grows with concurrency while latency stays at
about two commits.

The writer keeps the tree's frontier in memory, so it signs what it wrote, not what the
database says now: a row edited while the server runs disagrees with the next checkpoint.
Each checkpoint row stores the frontier too, so a restart reads the leaves after the latest
checkpoint only, after checking that the frontier folds to the signed root.

Another process appending to the same database (a CLI command next to the server) is
tolerated: a clash on a sequence number makes the writer read the other's entries and retry.

An event that records a change is not queued here but written into ``audit_outbox`` in the
change's own transaction (:func:`strongroom.audit.outbox.stage`); the writer drains the outbox
into the log, deleting the rows it appends in the transaction that appends them, so a crash
at any point leaves each event exactly once: in the outbox or in the log. It drains when asked
(:meth:`AuditLog.drain`, after each such transaction), when it starts (what a crash or another
process left) and every ``checkpoint_seconds`` while idle.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strongroom.audit import merkle, outbox
from strongroom.audit.checkpoints import Checkpoint, append_witness
from strongroom.audit.events import AuditEvent, format_at, hash_sensitive, leaf_head, leaf_tail
from strongroom.audit.tables import CHECKPOINTS, ENTRIES, OUTBOX

log = logging.getLogger(__name__)

MAX_BATCH = 4096  # events per transaction
FETCH = 10_000  # rows per query when reading the log back
_RETRIES = 5  # sequence clashes with another process before giving up
_IDLE = 1.0  # at least this long between looks at the outbox while idle (seconds)


class AuditError(Exception):
    """The audit log cannot record or answer; the message says why."""


@dataclass(frozen=True)
class AuditReceipt:
    """Proof of a durable append: the entry's position and leaf hash."""

    seq: int
    leaf_hash: bytes


@dataclass(frozen=True)
class StoredEntry:
    """One entry as stored. ``payload`` is the canonical leaf the hash covers."""

    seq: int
    at: dt.datetime
    type: str
    actor: str | None
    subject: str | None
    payload: str
    leaf_hash: bytes

    @property
    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = json.loads(self.payload)["details"]
        return details

    @property
    def sensitive(self) -> dict[str, str]:
        """Field name -> salted hash (compare with :meth:`AuditLog.hash_sensitive`)."""
        hashed: dict[str, str] = json.loads(self.payload)["sensitive"]
        return hashed


class _Request:
    """An event waiting for the writer (``tail`` is None for a checkpoint or drain request)."""

    __slots__ = ("actor", "at", "drain", "future", "subject", "tail", "type")

    def __init__(self, event: AuditEvent | None, tail: str | None, *,
                 drain: bool = False) -> None:
        self.tail = tail
        self.drain = drain
        self.type = str(event.type) if event else ""
        self.actor = event.actor if event else None
        self.subject = event.subject if event else None
        self.at = event.at if event else None
        self.future: Future[Any] = Future()


class AuditLog:
    """A tamper-evident, append-only log of audit events in the metadata database."""

    def __init__(
        self,
        engine: Engine,
        *,
        signing_key: Ed25519PrivateKey,
        salt_key: bytes,
        witness: Path | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 10.0,
    ) -> None:
        if len(salt_key) < 32:
            raise ValueError("the salt key must be at least 32 bytes")
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._engine = engine
        self._key = signing_key
        self.public_key: Ed25519PublicKey = signing_key.public_key()
        self._salt = bytes(salt_key)
        self._witness = witness
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        with engine.connect() as conn:
            self._frontier = self._load_frontier(conn)
            self._cp_size = self._latest_size(conn)
        self._cp_time = time.monotonic()
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._failure: BaseException | None = None
        self._conn: Connection | None = None  # the writer thread's
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()
        try:  # the events a crash, or another process, left committed in the outbox
            self.drain()
        except BaseException:
            self.close()
            raise

    # -- appending ------------------------------------------------------------------------

    def append(self, event: AuditEvent) -> AuditReceipt:
        """Record one event; returns once it is committed durably."""
        receipt: AuditReceipt = self._submit([self._request(event)])[0].result()
        return receipt

    def append_many(self, events: Iterable[AuditEvent]) -> list[AuditReceipt]:
        """Record events with consecutive sequence numbers; returns once all are durable."""
        futures = self._submit([self._request(e) for e in events])
        return [f.result() for f in futures]

    def check(self, event: AuditEvent) -> None:
        """Raise as :meth:`append` would for an event it cannot record (appends nothing)."""
        self._request(event)

    def stage(self, db: Connection | Session, event: AuditEvent) -> None:
        """Write ``event`` into ``db``'s open transaction, to be logged once it commits (then
        call :meth:`drain` to wait until it is)."""
        outbox.stage(db, event, self._salt)

    def drain(self) -> None:
        """Return once every event committed to the outbox before this call is in the log."""
        self._submit([_Request(None, None, drain=True)])[0].result()

    def checkpoint(self) -> Checkpoint:
        """Sign the current tree now (or return the latest checkpoint if nothing is new)."""
        checkpoint: Checkpoint = self._submit([_Request(None, None)])[0].result()
        return checkpoint

    @property
    def writing(self) -> bool:
        """False once the writer has stopped (closed, or its database was lost)."""
        with self._cond:
            return self._failure is None and not self._closing

    @property
    def pending(self) -> int:
        """Events waiting for the writer (the audit log's lag, for monitoring)."""
        with self._cond:
            return len(self._queue)

    def unsigned(self) -> int:
        """Entries written since the latest signed checkpoint."""
        with self._engine.connect() as conn:
            return self._size(conn) - self._latest_size(conn)

    def hash_sensitive(self, name: str, value: str) -> str:
        """The stored form of a sensitive value: lets a key holder ask "is this IP in the log?"."""
        return hash_sensitive(self._salt, name, value)

    def _request(self, event: AuditEvent) -> _Request:
        if event.at is not None and event.at.tzinfo is None:
            raise ValueError("audit timestamps must be timezone-aware")
        return _Request(event, leaf_tail(event, self._salt))  # serialise on the caller's thread

    def _submit(self, requests: Sequence[_Request]) -> list[Future[Any]]:
        with self._cond:
            if self._closing:
                raise AuditError("the audit log is closed")
            if self._failure is not None:
                raise AuditError("the audit log's writer has stopped") from self._failure
            self._queue.extend(requests)
            self._cond.notify()
        return [r.future for r in requests]

    def close(self) -> None:
        """Write what is queued, sign any unsigned tail, and stop the writer."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the writer -----------------------------------------------------------------------

    def _run(self) -> None:
        batch: list[_Request] = []
        try:
            while True:
                with self._cond:
                    if not self._queue and not self._closing:
                        self._cond.wait(max(self._seconds, _IDLE))
                    idle = not self._queue and not self._closing
                    if not self._queue and self._closing:
                        break
                    batch = [self._queue.popleft()
                             for _ in range(min(len(self._queue), MAX_BATCH))]
                if idle:  # drain what another process committed (an ingest, a CLI command)
                    batch = [_Request(None, None, drain=True)] if self._outbox_waiting() else []
                if batch:
                    self._process(batch)
            self._commit([], force=False, drain=True)
            if self._frontier.size > self._cp_size:
                self._commit([], force=True)
            self._disconnect()
        except BaseException as exc:  # a bug or a lost database: fail every waiting caller
            log.exception("the audit writer stopped")
            self._disconnect()
            with self._cond:
                self._failure = exc
                pending = [*batch, *self._queue]
                self._queue.clear()
            for request in pending:
                if not request.future.done():
                    request.future.set_exception(
                        AuditError("the audit log's writer has stopped"))

    def _outbox_waiting(self) -> bool:
        try:
            return bool(self._connection().execute(select(exists().select_from(OUTBOX)))
                        .scalar())
        except Exception:
            self._disconnect()  # the next batch's commit reports a lost database
            return False
        finally:
            if self._conn is not None:
                self._conn.rollback()

    def _process(self, batch: list[_Request]) -> None:
        events = [r for r in batch if r.tail is not None]
        drain = any(r.drain for r in batch)
        force = any(r.tail is None and not r.drain for r in batch)
        try:
            receipts, checkpoint = self._commit(events, force=force, drain=drain)
        except Exception as exc:
            for request in batch:
                request.future.set_exception(exc)
            return
        for request, receipt in zip(events, receipts, strict=True):
            request.future.set_result(receipt)
        if force:
            try:
                result: Checkpoint | BaseException | None = checkpoint or self._latest()
            except Exception as exc:
                result = exc
            for request in batch:
                if request.tail is None and isinstance(result, BaseException):
                    request.future.set_exception(result)
                elif request.tail is None:
                    request.future.set_result(None if request.drain else result)
        else:
            for request in batch:
                if request.drain:
                    request.future.set_result(None)

    def _commit(
        self, events: list[_Request], *, force: bool, drain: bool = False
    ) -> tuple[list[AuditReceipt], Checkpoint | None]:
        """Append ``events`` (and, with ``drain``, the whole outbox, a batch at a time)."""
        receipts, checkpoint, full = self._commit_once(events, force=force, drain=drain)
        while full:  # the outbox held more than one batch
            _, checkpoint, full = self._commit_once([], force=force, drain=True)
        return receipts, checkpoint

    def _commit_once(
        self, events: list[_Request], *, force: bool, drain: bool
    ) -> tuple[list[AuditReceipt], Checkpoint | None, bool]:
        try:
            for attempt in range(_RETRIES):
                try:
                    return self._try_commit(events, force=force, drain=drain)
                except IntegrityError:
                    if attempt == _RETRIES - 1:
                        raise
                conn = self._connection()
                with conn.begin():  # another process appended: catch up
                    self._catch_up(conn)
        except Exception:
            self._disconnect()  # perhaps a lost connection: take a fresh one next time
            raise
        raise AssertionError("unreachable")

    def _connection(self) -> Connection:
        """The writer's own connection, kept open: a pool checkout per batch costs ~1 ms."""
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _try_commit(
        self, events: list[_Request], *, force: bool, drain: bool
    ) -> tuple[list[AuditReceipt], Checkpoint | None, bool]:
        conn = self._connection()
        with conn.begin():
            staged: list[Any] = []
            if drain:  # claimed by deleting them: a concurrent drainer gets the others
                oldest = select(OUTBOX.c.id).order_by(OUTBOX.c.id).limit(MAX_BATCH)
                staged = sorted(conn.execute(
                    delete(OUTBOX).where(OUTBOX.c.id.in_(oldest.scalar_subquery()))
                    .returning(OUTBOX.c.id, OUTBOX.c.at, OUTBOX.c.type, OUTBOX.c.actor,
                               OUTBOX.c.subject, OUTBOX.c.tail)).all())
            receipts, checkpoint, frontier = self._write(conn, events, staged, force=force)
        self._frontier = frontier
        if checkpoint is not None:
            self._cp_size = checkpoint.tree_size
            self._cp_time = time.monotonic()
            if self._witness is not None:
                try:
                    append_witness(self._witness, checkpoint, self.public_key)
                except OSError:  # the entries are committed: say so loudly, do not fail them
                    log.exception("could not write audit checkpoint %d to the witness file %s",
                                  checkpoint.tree_size, self._witness)
        return receipts, checkpoint, len(staged) == MAX_BATCH

    def _write(
        self, conn: Connection, events: list[_Request], staged: list[Any], *, force: bool
    ) -> tuple[list[AuditReceipt], Checkpoint | None, merkle.Frontier]:
        """Insert the entries of ``staged`` outbox rows, then of ``events``, and any
        checkpoint due, in the caller's transaction; the frontier they make."""
        now = dt.datetime.now(dt.UTC)
        now_text = format_at(now)
        frontier = self._frontier.copy()
        rows: list[dict[str, Any]] = []
        for row in staged:
            rows.append(_row(frontier.size, row.at, format_at(row.at), row.type, row.actor,
                             row.subject, row.tail))
            frontier.append(rows[-1]["leaf_hash"])
        receipts: list[AuditReceipt] = []
        for request in events:
            assert request.tail is not None
            row = _row(frontier.size, request.at or now,
                       format_at(request.at) if request.at else now_text,
                       request.type, request.actor, request.subject, request.tail)
            rows.append(row)
            receipts.append(AuditReceipt(row["seq"], row["leaf_hash"]))
            frontier.append(row["leaf_hash"])
        due = frontier.size > self._cp_size and (
            force
            or frontier.size - self._cp_size >= self._every
            or time.monotonic() - self._cp_time >= self._seconds
        )
        if force and frontier.size == 0 and self._latest() is None:
            due = True  # a checkpoint of the empty log: still a signed statement
        checkpoint = Checkpoint.sign(self._key, frontier.size, frontier.root(), now) \
            if due else None
        if rows:
            conn.execute(insert(ENTRIES), rows)
        if checkpoint is not None:
            conn.execute(insert(CHECKPOINTS).values(checkpoint_row(checkpoint, frontier)))
        return receipts, checkpoint, frontier

    def _catch_up(self, conn: Connection) -> None:
        """Fold in entries another process appended after ours."""
        for batch in _leaf_hash_batches(conn, self._frontier.size, None):
            self._frontier.extend(batch)
        self._cp_size = max(self._cp_size, self._latest_size(conn))

    def _load_frontier(self, conn: Connection) -> merkle.Frontier:
        """The frontier at the latest good checkpoint, then the leaves written after it."""
        size = self._size(conn)
        row = conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.tree_size.desc())
                           .limit(1)).first()
        frontier = merkle.Frontier()
        if row is not None and row.tree_size <= size:
            checkpoint = _checkpoint(row)
            chunks = [row.frontier[i:i + 32] for i in range(0, len(row.frontier), 32)]
            try:
                candidate = merkle.Frontier(row.tree_size, chunks)
            except ValueError:
                candidate = None
            if (candidate is not None and checkpoint.verify(self.public_key)
                    and candidate.root() == checkpoint.root_hash):
                frontier = candidate
            else:
                log.warning("the latest audit checkpoint does not check out; rebuilding the "
                            "tree from every leaf (run `strongroom audit verify`)")
        for batch in _leaf_hash_batches(conn, frontier.size, None):
            frontier.extend(batch)
        return frontier

    # -- reading --------------------------------------------------------------------------

    def size(self) -> int:
        """How many entries the log holds."""
        with self._engine.connect() as conn:
            return self._size(conn)

    @staticmethod
    def _size(conn: Connection) -> int:
        top = conn.execute(select(func.max(ENTRIES.c.seq))).scalar()
        return 0 if top is None else int(top) + 1

    @staticmethod
    def _latest_size(conn: Connection) -> int:
        top = conn.execute(select(func.max(CHECKPOINTS.c.tree_size))).scalar()
        return 0 if top is None else int(top)

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint of the largest tree signed so far."""
        return self._latest()

    def _latest(self) -> Checkpoint | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.tree_size.desc())
                               .limit(1)).first()
        return None if row is None else _checkpoint(row)

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint in the database, smallest tree first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.tree_size)).all()
        return [_checkpoint(row) for row in rows]

    def export_checkpoint(self) -> dict[str, Any]:
        """A checkpoint of the whole log as JSON-able data, to anchor outside the system."""
        return self.checkpoint().export(self.public_key)

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[StoredEntry]:
        """Stored entries with ``start <= seq < stop``, in order, fetched in batches."""
        with self._engine.connect() as conn:
            yield from iter_entries(conn, start, stop)

    def inclusion_proof(self, seq: int, tree_size: int) -> list[bytes]:
        """The RFC 9162 audit path of entry ``seq`` in the tree of ``tree_size`` entries.

        Reads the ``tree_size`` leaf hashes: O(n) work, about a second per million entries.
        """
        return merkle.inclusion_proof(self._leaf_hashes(tree_size), seq)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 9162 proof that the tree of ``old_size`` is a prefix of ``new_size``'s."""
        return merkle.consistency_proof(self._leaf_hashes(new_size), old_size)

    def _leaf_hashes(self, tree_size: int) -> list[bytes]:
        with self._engine.connect() as conn:
            hashes = [h for batch in _leaf_hash_batches(conn, 0, tree_size) for h in batch]
        if len(hashes) != tree_size:
            raise AuditError(f"the log holds {len(hashes)} entries, not {tree_size}")
        return hashes


def _row(seq: int, at: dt.datetime, at_text: str, type: str, actor: str | None,
         subject: str | None, tail: str) -> dict[str, Any]:
    payload = leaf_head(seq, at_text, type, actor, subject) + tail
    leaf = sha256(b"\x00" + payload.encode()).digest()
    return {"seq": seq, "at": at, "type": type, "actor": actor, "subject": subject,
            "payload": payload, "leaf_hash": leaf}


def entry_row(seq: int, event: AuditEvent, salt_key: bytes,
              recorded_at: dt.datetime) -> dict[str, Any]:
    """The ``audit_entries`` row :meth:`AuditLog.append` writes (for bulk loads and tests)."""
    at = event.at or recorded_at
    return _row(seq, at, format_at(at), str(event.type), event.actor, event.subject,
                leaf_tail(event, salt_key))


def checkpoint_row(checkpoint: Checkpoint, frontier: merkle.Frontier) -> dict[str, Any]:
    """The ``audit_checkpoints`` row for a checkpoint of the tree ``frontier`` describes."""
    if frontier.size != checkpoint.tree_size:
        raise ValueError("the frontier is not of the checkpoint's tree")
    return {"tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash,
            "at": checkpoint.at, "signature": checkpoint.signature,
            "key_id": checkpoint.key_id, "frontier": b"".join(frontier.hashes)}


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(int(row.tree_size), bytes(row.root_hash), row.at, bytes(row.signature),
                      row.key_id)


def _leaf_hash_batches(conn: Connection, start: int, stop: int | None) -> Iterator[list[bytes]]:
    seq = start
    while stop is None or seq < stop:
        query = select(ENTRIES.c.seq, ENTRIES.c.leaf_hash).where(ENTRIES.c.seq >= seq)
        if stop is not None:
            query = query.where(ENTRIES.c.seq < stop)
        rows = conn.execute(query.order_by(ENTRIES.c.seq).limit(FETCH)).all()
        if not rows:
            return
        yield [bytes(r[1]) for r in rows]
        seq = int(rows[-1][0]) + 1


def iter_entries(conn: Connection, start: int = 0, stop: int | None = None,
                 batch: int = FETCH) -> Iterator[StoredEntry]:
    """Stored entries in seq order, ``batch`` rows per query (keyset pagination)."""
    seq = start
    while stop is None or seq < stop:
        query = select(ENTRIES).where(ENTRIES.c.seq >= seq)
        if stop is not None:
            query = query.where(ENTRIES.c.seq < stop)
        rows = conn.execute(query.order_by(ENTRIES.c.seq).limit(batch)).all()
        if not rows:
            return
        for r in rows:
            yield StoredEntry(int(r.seq), r.at, r.type, r.actor, r.subject, r.payload,
                              bytes(r.leaf_hash))
        seq = int(rows[-1].seq) + 1
