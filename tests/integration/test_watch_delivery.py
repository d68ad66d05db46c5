"""Alerts reach real local receivers: syslog over UDP, TCP and TLS, and a signed webhook; the
outbox retries with backoff, gives up loudly, never sends twice and never raises."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from strongroom.audit import EventType
from strongroom.watch.delivery import DELIVERED, FAILED, PENDING, Delivery, DeliveryRow
from strongroom.watch.destinations import Destinations, parse_destinations
from strongroom.watch.exports.syslog import Framing, Protocol, SyslogTarget
from strongroom.watch.exports.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    WebhookError,
    post,
    verify,
)
from strongroom.watch.states import Severity
from tests.access_world import World, build_world
from tests.export_schemas import ocsf_errors
from tests.export_schemas import parse_cef as parse
from tests.watch_alerts import make_alert

SECRET = "a-webhook-secret-of-32-characters"
HOST = "127.0.0.1"


# -- receivers ---------------------------------------------------------------------------------

class UdpReceiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(10)
        self.port: int = self.sock.getsockname()[1]

    def receive(self) -> bytes:
        data, _ = self.sock.recvfrom(65535)
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def udp() -> Iterator[UdpReceiver]:
    receiver = UdpReceiver()
    yield receiver
    receiver.close()


class TcpReceiver:
    """Accepts connections and splits the stream into RFC 6587 octet-counted frames."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.frames: list[bytes] = []
        self.got = threading.Semaphore(0)
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                if context is not None:
                    try:
                        conn = context.wrap_socket(conn, server_side=True)
                    except ssl.SSLError:
                        return  # an untrusting client hung up
                buffer = b""
                with conn:
                    while chunk := conn.recv(65536):
                        buffer += chunk
                while buffer:
                    size, _, rest = buffer.partition(b" ")
                    receiver.frames.append(rest[:int(size)])
                    buffer = rest[int(size):]
                    receiver.got.release()

        self.server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self) -> bytes:
        assert self.got.acquire(timeout=10), "nothing arrived"
        return self.frames.pop(0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Hook:
    """A webhook receiver that checks every signature as a real one would."""

    answers: list[int] = field(default_factory=list)  # statuses to give, then 200
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def start(self) -> str:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    verify(SECRET.encode(), body, self.headers.get(SIGNATURE_HEADER))
                except SignatureError as exc:
                    hook.refused.append(str(exc))
                    self.send_response(401)
                    self.end_headers()
                    return
                status = hook.answers.pop(0) if hook.answers else 200
                if status == 200 and self.headers[DELIVERY_HEADER] not in hook.seen:
                    hook.seen.add(self.headers[DELIVERY_HEADER])
                    hook.received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://{HOST}:{self.server.server_address[1]}/hooks/strongroom?team=soc"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.stop()


def tls_pair(directory: Path) -> tuple[ssl.SSLContext, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "collector.pem", directory / "collector.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


def rfc5424_parts(frame: bytes) -> tuple[int, list[str], str]:
    text = frame.decode()
    assert text.startswith("<")
    pri, _, rest = text[1:].partition(">")
    version, stamp, host, app, procid, msgid, sd, message = rest.split(" ", 7)
    return int(pri), [version, stamp, host, app, procid, msgid, sd], message


# -- syslog ------------------------------------------------------------------------------------

def test_syslog_over_udp_rfc5424(udp: UdpReceiver) -> None:
    receiver = udp
    alert = make_alert(severity="critical")
    target = SyslogTarget(HOST, receiver.port, Protocol.UDP, hostname="tre-1.example.org")
    from strongroom.watch.exports.cef import to_cef
    target.send(to_cef(alert), Severity.CRITICAL, at=alert.last_at)
    pri, header, message = rfc5424_parts(receiver.receive())
    assert pri == 10 * 8 + 2  # authpriv, critical
    assert header[0] == "1" and header[1] == "2026-11-21T09:05:00.000Z"
    assert header[2:4] == ["tre-1.example.org", "strongroom"] and header[5:] == [
        "watch-alert", "-"]
    fields, pairs = parse(message)
    assert fields[3] == alert.detector and pairs["externalId"] == alert.id


@pytest.mark.parametrize("framing", list(Framing))
def test_syslog_over_tcp_with_octet_counting(framing: Framing) -> None:
    receiver = TcpReceiver()
    try:
        target = SyslogTarget(HOST, receiver.port, Protocol.TCP, framing, facility="local4",
                              hostname="tre-1")
        for n in range(3):  # three messages, each on its own connection, framed
            target.send(f"CEF:0|Strongroom|Strongroom Watch|1|d|message {n} with spaces|3|",
                        Severity.LOW, at=dt.datetime(2026, 11, 1, 7, 5, tzinfo=dt.UTC))
        frames = sorted(receiver.next() for _ in range(3))
    finally:
        receiver.close()
    for n, frame in enumerate(frames):
        if framing is Framing.RFC5424:
            pri, _, message = rfc5424_parts(frame)
        else:
            text = frame.decode()
            assert text.startswith("<165>Nov  1 07:05:00 tre-1 strongroom: ")
            pri, message = 165, text.split(": ", 1)[1]
        assert pri == 20 * 8 + 5  # local4, notice
        assert message.endswith(f"message {n} with spaces|3|")


def test_syslog_over_tls(tmp_path: Path) -> None:
    context, ca = tls_pair(tmp_path)
    receiver = TcpReceiver(context)
    try:
        SyslogTarget(HOST, receiver.port, Protocol.TLS, ca_file=str(ca)).send(
            "CEF:0|Strongroom|Strongroom Watch|1|d|over TLS|8|", Severity.HIGH)
        _, _, message = rfc5424_parts(receiver.next())
        assert message.endswith("over TLS|8|")
        with pytest.raises(ssl.SSLError):  # a collector we do not trust is not sent to
            SyslogTarget(HOST, receiver.port, Protocol.TLS).send("x", Severity.HIGH)
    finally:
        receiver.close()


def test_nothing_listening_is_an_oserror() -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError):
        SyslogTarget(HOST, port, Protocol.TCP, timeout=2).send("x", Severity.LOW)


# -- webhooks ----------------------------------------------------------------------------------

def test_a_signed_webhook_is_verified_and_retried(hook: Hook) -> None:
    hook.answers = [503, 502]  # the receiver is briefly down
    url = hook.start()
    body = json.dumps({"finding_info": {"uid": "alr_1"}}).encode()
    sleeps: list[float] = []
    sent = post(url, SECRET.encode(), body, attempts=3, backoff=0.25, sleep=sleeps.append)
    assert (sent.status, sent.attempts) == (200, 3)
    assert sleeps == [0.25, 0.5]  # exponential backoff
    assert hook.received == [{"finding_info": {"uid": "alr_1"}}] and hook.refused == []


def test_a_webhook_with_the_wrong_secret_is_refused_and_not_retried(hook: Hook) -> None:
    url = hook.start()
    with pytest.raises(WebhookError) as caught:
        post(url, b"not the receiver's secret at all", b"{}", sleep=lambda _: None)
    assert not caught.value.retry and "HTTP 401" in str(caught.value)
    assert "team=soc" not in str(caught.value)  # the URL (and any token in it) stays out
    assert hook.refused and "does not match" in hook.refused[0]


# -- the outbox --------------------------------------------------------------------------------

@pytest.fixture
def world(tmp_path: Path, database_url: str | None) -> Iterator[World]:
    built = build_world(tmp_path, database_url, project=False)
    yield built
    built.platform.close()


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def outbox(world: World, destinations: Destinations, clock: Clock, **options: Any) -> Delivery:
    def record(kind: EventType, subject: str, details: dict[str, Any]) -> None:
        world.ctx.record(kind, "watch", subject, details)

    return Delivery(world.ctx.engine, destinations, record=record, clock=clock,
                    background=False, **options)


def rows(world: World) -> list[DeliveryRow]:
    with Session(world.ctx.engine) as db:
        return list(db.scalars(select(DeliveryRow).order_by(DeliveryRow.id)))


def test_deliver_sends_to_every_destination(world: World, hook: Hook, udp: UdpReceiver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    destinations = parse_destinations({
        "syslog": [{"name": "soc", "host": HOST, "port": udp.port}],
        "webhooks": [{"name": "soar", "url": hook.start(), "secret": "env:HOOK_SECRET"},
                     {"name": "only-critical", "url": "http://127.0.0.1:9/",
                      "secret": "env:HOOK_SECRET", "min_severity": "critical"}]})
    delivery = outbox(world, destinations, Clock())
    alert = make_alert(detector="drip.coverage", suspensions=["pau_1"])
    delivery.deliver(alert)
    assert [(r.destination, r.status) for r in rows(world)] == [("soc", PENDING),
                                                                ("soar", PENDING)]
    assert delivery.drain().delivered == 2
    assert all(r.status == DELIVERED and r.attempts == 1 for r in rows(world))
    _, _, message = rfc5424_parts(udp.receive())
    assert parse(message)[1]["externalId"] == alert.id
    (finding,) = hook.received
    assert ocsf_errors(finding, "data_security_finding") == []
    assert delivery.drain().delivered == 0  # nothing is sent twice
    assert SECRET not in json.dumps([r.payload for r in rows(world)])


def test_retries_with_backoff_then_fails_loudly(world: World,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind((HOST, 0))
        dead = probe.getsockname()[1]
    clock = Clock()
    destinations = parse_destinations({"syslog": [
        {"name": "down", "host": HOST, "port": dead, "protocol": "tcp"}]})
    delivery = outbox(world, destinations, clock, max_attempts=3,
                      backoff=dt.timedelta(seconds=10))
    delivery.deliver(make_alert())
    assert delivery.drain().retrying == 1
    (row,) = rows(world)
    assert row.attempts == 1 and row.next_at == clock.now + dt.timedelta(seconds=10)
    assert "ConnectionRefusedError" in (row.last_error or "")
    assert delivery.drain().retrying == 0  # not due yet
    clock.now += dt.timedelta(seconds=10)
    assert delivery.drain().retrying == 1
    assert rows(world)[0].next_at == clock.now + dt.timedelta(seconds=20)  # doubled
    clock.now += dt.timedelta(seconds=20)
    assert delivery.drain().failed == 1
    assert rows(world)[0].status == FAILED and rows(world)[0].attempts == 3
    failed = [e for e in world.platform.audit.entries()
              if e.type == EventType.WATCH_DELIVERY_FAILED.value]
    assert failed[0].subject == "alr_0123abcd" and failed[0].details["destination"] == "down"


def test_a_refusing_receiver_fails_at_once(world: World, hook: Hook,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "not the secret the receiver holds!")
    destinations = parse_destinations({"webhooks": [
        {"name": "soar", "url": hook.start(), "secret": "env:HOOK_SECRET"}]})
    delivery = outbox(world, destinations, Clock())
    delivery.deliver(make_alert())
    assert delivery.drain().failed == 1
    assert rows(world)[0].last_error is not None and "HTTP 401" in rows(world)[0].last_error


def test_deliver_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'broken.db'}")
    destinations = parse_destinations({"syslog": [{"host": HOST, "port": 9}]})
    delivery = Delivery(engine, destinations, background=False)
    DeliveryRow.__table__.drop(engine)  # type: ignore[attr-defined]  # the database fails
    delivery.deliver(make_alert())  # logged, not raised into the request
    delivery.deliver(make_alert(severity="not a severity"))
    assert "could not be queued" in caplog.text
    engine.dispose()


def test_two_senders_never_send_one_row_twice(world: World, udp: UdpReceiver) -> None:
    destinations = parse_destinations({"syslog": [{"host": HOST, "port": udp.port}]})
    clock = Clock()
    first, second = outbox(world, destinations, clock), outbox(world, destinations, clock)
    for n in range(20):
        first.deliver(make_alert(id=f"alr_{n:08d}"))
    done = []
    threads = [threading.Thread(target=lambda d=d: done.append(d.drain()))
               for d in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(d.delivered for d in done) == 20
    ids = sorted(parse(rfc5424_parts(udp.receive())[2])[1]["externalId"] for _ in range(20))
    assert ids == [f"alr_{n:08d}" for n in range(20)]
    udp.sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        udp.receive()  # and no twenty-first


def test_the_background_sender_delivers_without_being_asked(world: World,
                                                           udp: UdpReceiver) -> None:
    destinations = parse_destinations({"syslog": [{"host": HOST, "port": udp.port}]})
    delivery = Delivery(world.ctx.engine, destinations, poll_seconds=0.2)
    try:
        delivery.deliver(make_alert())
        _, _, message = rfc5424_parts(udp.receive())  # waits up to 10 s
        assert parse(message)[1]["externalId"] == "alr_0123abcd"
    finally:
        delivery.close()
