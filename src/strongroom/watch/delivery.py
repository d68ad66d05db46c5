"""Deliver alerts to the destinations in ``watch.yaml``, reliably and out of the request's way.

:meth:`Delivery.deliver` (the responder calls it after each new or escalated alert) only writes
one row per destination into an outbox table and wakes a background thread; it never raises.
The thread sends what is due, marks it delivered, or schedules a retry with exponential backoff;
after the last attempt the row is marked failed and ``watch.delivery.failed`` is audited. Rows
are claimed with a conditional update, so a server and a console draining one database never
send an alert twice. The payload is rendered when the alert is queued (the alert as it was
then); secrets are read only when sending and are never stored or logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import BigInteger, Engine, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from strongroom.audit import EventType
from strongroom.db import Base, UTCDateTime
from strongroom.errors import ServiceError
from strongroom.watch.destinations import (
    Destination,
    Destinations,
    SyslogDestination,
    WebhookDestination,
    load_destinations,
)
from strongroom.watch.exports import Format, render
from strongroom.watch.exports.syslog import SyslogTarget
from strongroom.watch.exports.webhooks import WebhookError, post
from strongroom.watch.models import AlertRow
from strongroom.watch.states import Severity

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
LEASE = dt.timedelta(minutes=2)  # a claimed row is retried if its sender died meanwhile
BATCH = 100  # rows claimed, sent and settled together
MAX_BACKOFF = dt.timedelta(hours=1)

Record = Callable[[EventType, str, dict[str, Any]], None]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DeliveryRow(Base):
    """One alert, rendered for one destination, until it is delivered or given up."""

    __tablename__ = "watch_deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(32), index=True)
    destination: Mapped[str] = mapped_column(String(64))  # its name in watch.yaml
    severity: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)  # the alert's export only: no secret
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)


@dataclass(frozen=True)
class Drained:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


class _PermanentError(Exception):
    """Retrying cannot help (the receiver refused it, or the configuration is wrong)."""


class Delivery:
    """The outbox and its sender. ``close()`` stops the thread (the platform closes it)."""

    def __init__(self, engine: Engine, destinations: Destinations, *,
                 record: Record | None = None, clock: Callable[[], dt.datetime] = utcnow,
                 max_attempts: int = 8, backoff: dt.timedelta = dt.timedelta(seconds=5),
                 webhook_attempts: int = 3, background: bool = True,
                 poll_seconds: float = 1.0):
        self.engine = engine
        self.destinations = destinations
        self.record = record
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.webhook_attempts = webhook_attempts
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._background = background and bool(destinations.all)
        DeliveryRow.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]

    @classmethod
    def open(cls, root: Path, engine: Engine, **options: Any) -> Delivery:
        """Destinations from ``root/watch.yaml``; a bad file is refused with every problem."""
        return cls(engine, load_destinations(root), **options)

    # -- queueing: called on the request's path, never raises -------------------------------

    def deliver(self, alert: AlertRow) -> None:
        """Queue ``alert`` for every destination that wants its severity, and wake the
        sender. Failures are logged (without secrets), never raised into the request."""
        try:
            chosen = self.destinations.for_severity(Severity(alert.severity))
            if not chosen:
                return
            now = self.clock()
            with Session(self.engine) as db, db.begin():
                for destination in chosen:
                    db.add(DeliveryRow(alert_id=alert.id, destination=destination.name,
                                       severity=alert.severity,
                                       payload=_payload(alert, destination),
                                       status=PENDING, attempts=0, next_at=now,
                                       created_at=now))
            self._start()
            self._wake.set()
        except Exception:
            log.exception("alert %s could not be queued for delivery; it stays in the list",
                          alert.id)

    # -- sending -----------------------------------------------------------------------------

    def drain(self) -> Drained:
        """Send everything due now (the thread calls this; tests and the console may too).

        Rows are claimed a batch at a time in one conditional update (a claimed row's next
        attempt moves a lease ahead, so no other sender takes it), sent, and settled together.
        """
        with self._drain_lock:
            counts = {DELIVERED: 0, PENDING: 0, FAILED: 0}
            clients: dict[str, httpx.Client] = {}
            try:
                while batch := self._claim_due():
                    outcomes = [(row, *self._attempt(row, clients)) for row in batch]
                    for status in self._settle(outcomes):
                        counts[status] += 1
            finally:
                for client in clients.values():
                    client.close()
            return Drained(counts[DELIVERED], counts[PENDING], counts[FAILED])

    def _claim_due(self) -> list[DeliveryRow]:
        now = self.clock()
        due = (select(DeliveryRow.id).where(DeliveryRow.status == PENDING,
                                            DeliveryRow.next_at <= now)
               .order_by(DeliveryRow.next_at, DeliveryRow.id).limit(BATCH))
        with Session(self.engine, expire_on_commit=False) as db, db.begin():
            # the status and time are checked again by the UPDATE itself: of two senders
            # racing for a row, the second finds it leased and leaves it
            claimed = db.scalars(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(list(db.scalars(due))),
                       DeliveryRow.status == PENDING, DeliveryRow.next_at <= now)
                .values(attempts=DeliveryRow.attempts + 1, next_at=now + LEASE)
                .returning(DeliveryRow).execution_options(synchronize_session=False))
            return sorted(claimed, key=lambda r: r.id)

    def _attempt(self, row: DeliveryRow,
                 clients: dict[str, httpx.Client]) -> tuple[str | None, bool]:
        """(what went wrong, whether retrying cannot help); (None, False) when sent."""
        destination = next((d for d in self.destinations.all if d.name == row.destination),
                           None)
        try:
            if destination is None:
                raise _PermanentError(f"no destination named {row.destination!r} in "
                                      f"watch.yaml any more")
            self._send(destination, row, clients)
        except _PermanentError as exc:
            return str(exc), True
        except (OSError, WebhookError, ServiceError) as exc:
            # a missing secret may be provided later: only a receiver's refusal is final
            return _describe(exc), isinstance(exc, WebhookError) and not exc.retry
        return None, False

    def _send(self, destination: Destination, row: DeliveryRow,
              clients: dict[str, httpx.Client]) -> None:
        if isinstance(destination, SyslogDestination):
            SyslogTarget(destination.host, destination.port, destination.protocol,
                         destination.framing, destination.facility, destination.app_name,
                         destination.hostname, destination.ca_file
                         ).send(row.payload, Severity(row.severity))
            return
        secret = destination.secret.read()  # read now: rotation needs no restart
        client = clients.get(destination.name)
        if client is None:
            client = clients[destination.name] = httpx.Client(
                timeout=destination.timeout, verify=destination.ca_file or True,
                follow_redirects=False)
        post(destination.url, secret, row.payload.encode(), attempts=self.webhook_attempts,
             event="alert", client=client)

    def _settle(self, outcomes: list[tuple[DeliveryRow, str | None, bool]]) -> list[str]:
        now = self.clock()
        statuses = []
        with Session(self.engine) as db, db.begin():
            for row, error, permanent in outcomes:
                if error is None:
                    status, values = DELIVERED, {"status": DELIVERED, "delivered_at": now,
                                                 "last_error": None}
                elif permanent or row.attempts >= self.max_attempts:
                    status, values = FAILED, {"status": FAILED, "last_error": error[:300]}
                else:
                    wait = min(self.backoff * 2 ** (row.attempts - 1), MAX_BACKOFF)
                    status, values = PENDING, {"next_at": now + wait,
                                               "last_error": error[:300]}
                db.execute(update(DeliveryRow).where(DeliveryRow.id == row.id)
                           .values(**values).execution_options(synchronize_session=False))
                statuses.append(status)
        for (row, error, _), status in zip(outcomes, statuses, strict=True):
            if error is not None:
                log.warning("alert %s to %s: attempt %d failed: %s", row.alert_id,
                            row.destination, row.attempts, error)
            if status == FAILED:
                self._record_failure(row, error)
        return statuses

    def _record_failure(self, row: DeliveryRow, error: str | None) -> None:
        if self.record is None:
            return
        try:
            self.record(EventType.WATCH_DELIVERY_FAILED, row.alert_id, {
                "destination": row.destination, "attempts": row.attempts, "error": error})
        except Exception:
            log.exception("the failed delivery of alert %s could not be audited",
                          row.alert_id)

    # -- the background sender ---------------------------------------------------------------

    def _start(self) -> None:
        if not self._background or self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="watch-delivery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.drain()
            except Exception:  # keep sending later; the rows stay pending
                log.exception("alert delivery failed; retrying later")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def status(self) -> list[DeliveryRow]:
        """The outbox, newest first (for the console's `watch deliveries`)."""
        with Session(self.engine, expire_on_commit=False) as db:
            return list(db.scalars(select(DeliveryRow).order_by(DeliveryRow.id.desc())
                                   .limit(200)))


def _payload(alert: AlertRow, destination: Destination) -> str:
    if isinstance(destination, WebhookDestination):
        return render(alert, destination.format)
    return render(alert, Format.CEF)


def _describe(exc: BaseException) -> str:
    """What went wrong, without a URL, a secret or a payload."""
    if isinstance(exc, WebhookError | ServiceError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}" + (f" ({exc.strerror})" if exc.strerror else "")
    return type(exc).__name__


def payload_json(row: DeliveryRow) -> Any:
    """A queued webhook payload, parsed (tests and the console read it)."""
    return json.loads(row.payload)
