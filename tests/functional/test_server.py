"""The HTTP API end to end: the real server in its own process, over TLS, driven by the client.

The platform is bootstrapped in the test process (then closed, so the server is the only
writer); the server runs ``strongroom.server.run.serve`` in a subprocess with a self-signed
certificate for 127.0.0.1; the tests talk to it with :class:`strongroom.client.Client`.

Sign-in attempts are limited per source address (10 a minute), so each scenario connects from
its own loopback address (127.0.0.0/8 is all loopback, and the institutions register it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from strongroom.access import oversight
from strongroom.access.bootstrap import bootstrap
from strongroom.access.totp import STEP_SECONDS, code_at
from strongroom.client import Client, StrongroomError
from strongroom.cohort.store import init_store
from strongroom.cohort.synth.generator import synthesise
from strongroom.errors import Invalid
from strongroom.platform import Platform
from strongroom.server.run import check_listen
from tests.access_world import SETTINGS

# uvicorn shuts down gracefully on SIGTERM and then re-raises it; with the default handler
# that kills the process before ``Platform.close`` signs the audit log's tail, so the launcher
# turns it into SystemExit (`strongroom serve` has the same gap: see the report on run.py).
SERVER = """
import json
import signal
import sys
from pathlib import Path

from strongroom.access.context import Settings
from strongroom.platform import Platform
from strongroom.server.run import serve

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
data, key, host, port, certificate, private_key, warm, settings = sys.argv[1:]
with Platform.open(Path(data), Path(key), settings=Settings(**json.loads(settings))) as platform:
    platform.jobs.end_ladder = ()  # a job's end is seen when it ends (below)
    serve(platform, host, int(port), Path(certificate), Path(private_key), warm=warm == "warm")
"""
# The server has the settings every world the tests build has (tests/access_world.SETTINGS:
# argon2-cffi's CHEAPEST profile, no timing floors on answers), and no jobs' end ladder (a
# job's end held to 10 s or more; test_job_shape_channel.py holds it). The sign-in limits
# these tests try (ten a minute from an address, a lockout after five failures) are production's.
HOST = "127.0.0.1"
ADMIN_EMAIL, PASSWORD = "admin@custodian.example.org", "correct horse battery staple"
FIELDS = [31, 34, 21001]  # sex, year of birth, body mass index
# One loopback source address per scenario: the per-address sign-in limit stays apart.
ADMIN_SOURCE = "127.0.0.10"
MAIN_SOURCE, TLS_SOURCE, LOCK_SOURCE, REPLAY_SOURCE = (
    "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")
FLOOD_SOURCE, OTHER_SOURCE = "127.0.0.15", "127.0.0.16"
REVOCATION_LIMIT_SECONDS = 5.0  # the issue: revocation holds within 5 seconds


def code(secret: str, ahead: int = 0) -> str:
    """The authenticator's code now, or ``ahead`` steps on (accepted within the drift window).

    A code is accepted once, so one person signs in at most twice per 30-second step: with
    the current code, then with the next one.
    """
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=STEP_SECONDS * ahead)
    return code_at(secret, now)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate (and its key) for 127.0.0.1 that also serves as its own CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    ca: Path  # the self-signed certificate, as the CA file clients trust
    home_id: str  # the custodian's institution (networks 127.0.0.0/8)
    admin: Client  # the bootstrap custodian admin, signed in from ADMIN_SOURCE

    def client(self, source: str, token: str | None = None) -> Client:
        return Client(self.url, verify=self.ca, token=token, local_address=source)


def wait_until_up(url: str, ca: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", verify=context, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not answer /health within 60 s:\n{log.read_text()}")


@contextlib.contextmanager
def running_server(directory: Path, database_url: str | None,
                   cohort: int = 0, *, warm: bool = False) -> Iterator[Server]:
    """Bootstrap a platform, close it, serve it over TLS in a subprocess; stop it after.

    ``cohort``: store that many synthetic participants first (for the enclave's routes);
    ``warm``: as a real server starts, loading what its first output would (the tests' many
    servers skip it).
    """
    directory.mkdir(parents=True, exist_ok=True)
    data, key = directory / "data", directory / "keys" / "master.key"
    env = {k: v for k, v in os.environ.items() if k != "STRONGROOM_MASTER_KEY"}
    saved = os.environ.pop("STRONGROOM_MASTER_KEY", None)
    try:
        store = init_store(data, key_file=key, database_url=database_url)
        if cohort:
            store.write_version(synthesise(cohort, seed=3))
        store.close()
        with Platform.open(data, key, settings=SETTINGS) as platform:
            admin = bootstrap(platform.access, institution="Custodian Trust", country="GB",
                              jurisdiction="UK GDPR", networks=["127.0.0.0/8"],
                              email=ADMIN_EMAIL, name="Ada Admin", password=PASSWORD)
    finally:
        if saved is not None:
            os.environ["STRONGROOM_MASTER_KEY"] = saved
    certificate, private_key = self_signed(directory)
    port = free_port()
    url = f"https://{HOST}:{port}"
    log = directory / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(data), str(key), HOST, str(port),
             str(certificate), str(private_key), "warm" if warm else "cold",
             json.dumps(dataclasses.asdict(SETTINGS))],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(url, certificate, process, log)
        with Client(url, verify=certificate, local_address=ADMIN_SOURCE) as client:
            client.login(ADMIN_EMAIL, PASSWORD, code(admin.totp_secret))
            yield Server(url, certificate, admin.person.institution_id, client)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"the server did not stop cleanly:\n{log.read_text()}"
    with Platform.open(data, key) as platform:  # the operator's check after the server stops
        report = oversight.verify_log(platform.access, None, platform.witness)
    assert report.ok and report.entries > 0, report


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One SQLite-backed server for the module."""
    with running_server(tmp_path_factory.mktemp("server"), None) as started:
        yield started


@pytest.fixture(scope="module")
def enclave_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a 3,000-participant synthetic cohort."""
    with running_server(tmp_path_factory.mktemp("enclave"), None, cohort=3000) as started:
        yield started


@pytest.fixture
def any_server(database_url: str | None, request: pytest.FixtureRequest,
               tmp_path: Path) -> Iterator[Server]:
    """The module's SQLite server, or a server of its own on a fresh PostgreSQL schema."""
    if database_url is None:
        yield request.getfixturevalue("server")
    else:
        with running_server(tmp_path / "pg", database_url) as started:
            yield started


@dataclass
class Person:
    id: str
    email: str
    password: str
    totp_secret: str


def register(server: Server, email: str, roles: list[str],
             institution_id: str | None = None, *, vetted: bool = False) -> Person:
    """A person, registered by the admin; ``vetted``: trained and vetting approved too."""
    admin = server.admin
    new = admin.people.create(institution_id or server.home_id, email, email.split("@")[0],
                              roles, password=PASSWORD)
    person = Person(new["person"]["id"], email, PASSWORD, new["totp_secret"])
    assert new["password"] is None  # we gave one; a generated one would be shown once
    if vetted:
        today = dt.date.today()
        admin.people.record_training(person.id, "Safe researcher training", today,
                                     today + dt.timedelta(days=365))
        assert admin.people.set_vetting(person.id, "approved")["vetting"] == "approved"
    return person


def refused(call: Any, *args: Any) -> StrongroomError:
    with pytest.raises(StrongroomError) as caught:
        call(*args)
    return caught.value


# -- the main flow, on SQLite and PostgreSQL -------------------------------------------------

def test_researcher_flow_and_revocation_within_seconds(any_server: Server) -> None:
    server, admin = any_server, any_server.admin
    assert admin.me()["roles"] == ["custodian-admin"]
    uni = admin.institutions.create("University of Anywhere", "GB", "UK GDPR", ["127.0.0.0/8"])
    assert uni["status"] == "active" and uni["networks"] == ["127.0.0.0/8"]
    rex = register(server, "rex@anywhere.ac.uk", ["researcher"], uni["id"], vetted=True)
    today = dt.date.today()
    project = admin.projects.create(
        "Adiposity and blood pressure", "Association of BMI with blood pressure by sex",
        rex.id, today, today + dt.timedelta(days=365), fields=FIELDS)
    assert project["fields"] == FIELDS and project["members"] == [rex.id]

    with server.client(MAIN_SOURCE) as session:
        signed_in = session.login(rex.email, rex.password, code(rex.totp_secret))
        assert signed_in["roles"] == ["researcher"]
        assert session.me()["via"] == "session"
        issued = session.tokens.issue(project["id"], ["data.analyse", "project.read"], 7,
                                      label="analysis")
        secret = issued["secret"]
        assert secret.startswith("srt_")
        assert sorted(issued["token"]["actions"]) == ["data.analyse", "project.read"]
        assert [t["id"] for t in session.tokens.list()] == [issued["token"]["id"]]

        with server.client(MAIN_SOURCE, token=secret) as token:
            assert [f["field_id"] for f in token.projects.schema(project["id"])] == FIELDS
            assert token.projects.get(project["id"])["title"] == project["title"]
            # a token does only what it names: not issue tokens, not administer
            assert refused(token.tokens.issue, project["id"], ["project.read"], 1).status == 403
            assert refused(token.institutions.list).status == 403

            revoked = admin.institutions.revoke(uni["id"], "data sharing agreement breached")
            started = time.perf_counter()
            by_token = refused(token.projects.schema, project["id"])
            by_session = refused(session.me)
            elapsed = time.perf_counter() - started

        assert revoked["status"] == "revoked"
        assert by_token.status in (401, 403) and "revoked" in str(by_token), by_token.reasons
        assert by_session.status in (401, 403), by_session.reasons
        assert "ended" in str(by_session) or "revoked" in str(by_session), by_session.reasons
        assert elapsed < REVOCATION_LIMIT_SECONDS, f"revocation took {elapsed:.2f} s to hold"

    with server.client(MAIN_SOURCE) as again:  # nor can they sign in again
        refusal = refused(again.login, rex.email, rex.password, code(rex.totp_secret, 1))
        assert refusal.status == 403 and refusal.error == "forbidden"
        assert any("revoked" in reason for reason in refusal.reasons), refusal.reasons

    closed = admin.projects.get(project["id"])
    assert closed["status"] == "revoked" and closed["key_destroyed"] is True
    audit = admin.audit.verify()
    assert audit["ok"] is True, audit
    types = {entry["type"] for entry in admin.audit.entries(limit=1000)}
    assert {"data.accessed", "institution.revoked", "auth.token.refused"} <= types


def test_the_client_raises_the_servers_reasons(server: Server) -> None:
    admin = server.admin
    invalid = refused(admin.institutions.create, "", "GB", "UK GDPR")
    assert (invalid.status, invalid.error) == (422, "invalid")
    assert any(reason.startswith("name:") for reason in invalid.reasons), invalid.reasons
    missing = refused(admin.people.get, "per_0000")
    assert (missing.status, missing.error) == (404, "not-found")
    assert str(missing) == "there is no person per_0000"
    # an id is one path segment: it cannot reach another route
    assert refused(admin.people.get, "../institutions").status == 404
    with server.client(TLS_SOURCE) as anonymous:
        nobody = refused(anonymous.institutions.list)
    assert nobody.status == 401 and "sign in first" in str(nobody)


# -- transport security ------------------------------------------------------------------------

def test_tls_only_and_the_session_cookie_is_locked_down(server: Server) -> None:
    with server.client(TLS_SOURCE) as client:
        assert client.health() == {"status": "ok"}
    plain = server.url.replace("https://", "http://")
    with Client(plain) as client, pytest.raises(httpx.TransportError):
        client.health()  # plain HTTP to the TLS port: no answer
    with Client(server.url) as client, pytest.raises(httpx.ConnectError):
        client.health()  # the system's CAs do not vouch for a self-signed certificate

    tess = register(server, "tess@custodian.example.org", ["auditor"])
    context = ssl.create_default_context(cafile=str(server.ca))
    transport = httpx.HTTPTransport(verify=context, local_address=TLS_SOURCE)
    with httpx.Client(base_url=server.url, transport=transport) as raw:
        answer = raw.post("/auth/login", json={"email": tess.email, "password": tess.password,
                                               "code": code(tess.totp_secret)})
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith("strongroom_session=")
    assert {"secure", "httponly", "samesite"} <= attributes, cookie
    assert "samesite=strict" in cookie.lower(), cookie
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    assert answer.headers["cache-control"] == "no-store"


def test_listening_beyond_loopback_needs_tls(tmp_path: Path) -> None:
    certificate, private_key = self_signed(tmp_path)
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        with pytest.raises(Invalid, match="without TLS"):
            check_listen(host, None, None)
    for host in ("127.0.0.1", "localhost", "::1"):
        check_listen(host, None, None)
    check_listen("0.0.0.0", certificate, private_key)  # with TLS it may
    with pytest.raises(Invalid, match="both"):
        check_listen("0.0.0.0", certificate, None)
    with pytest.raises(Invalid, match="does not exist"):
        check_listen("0.0.0.0", tmp_path / "missing.pem", private_key)


# -- brute force -------------------------------------------------------------------------------

def test_five_wrong_passwords_lock_the_account(server: Server) -> None:
    lou = register(server, "lou@custodian.example.org", ["auditor"])
    with server.client(LOCK_SOURCE) as client:
        for attempt in range(1, 6):
            refusal = refused(client.login, lou.email, f"wrong password number {attempt}",
                              code(lou.totp_secret))
            assert refusal.status == 401, refusal.reasons
        assert "locked" in str(refusal)  # the fifth failure locks
        refusal = refused(client.login, lou.email, lou.password, code(lou.totp_secret))
        assert refusal.status == 401 and "locked" in str(refusal), refusal.reasons
        assert server.admin.people.get(lou.id)["locked_until"] is not None

        assert server.admin.people.unlock(lou.id)["locked_until"] is None
        assert client.login(lou.email, lou.password, code(lou.totp_secret))["person_id"] == lou.id


def test_a_used_code_is_refused(server: Server) -> None:
    rae = register(server, "rae@custodian.example.org", ["auditor"])
    with server.client(REPLAY_SOURCE) as client:
        used = code(rae.totp_secret)
        client.login(rae.email, rae.password, used)
        client.logout()
        assert refused(client.me).status == 401
        refusal = refused(client.login, rae.email, rae.password, used)
        assert refusal.status == 401, refusal.reasons
        # the password was right: the next code works
        client.login(rae.email, rae.password, code(rae.totp_secret, 1))
        assert client.me()["person_id"] == rae.id


def test_more_than_ten_attempts_a_minute_from_one_address_are_limited(server: Server) -> None:
    with server.client(FLOOD_SOURCE) as client:
        for n in range(10):  # different accounts: it is the address that is limited
            assert refused(client.login, f"nobody{n}@example.org", PASSWORD,
                           "000000").status == 401
        limited = refused(client.login, "nobody10@example.org", PASSWORD, "000000")
    assert limited.status == 429 and limited.error == "rate-limited", limited.reasons
    assert limited.retry_after is not None and 0 < limited.retry_after <= 60
    assert "too many sign-in attempts" in str(limited)
    with server.client(OTHER_SOURCE) as other:  # another address is not held back
        assert refused(other.login, "nobody11@example.org", PASSWORD, "000000").status == 401


# -- the enclave and its outputs, over HTTPS --------------------------------------------------

def test_analyse_check_review_and_download_released_bytes(enclave_server: Server) -> None:
    server, admin = enclave_server, enclave_server.admin
    uni = admin.institutions.create("Enclave University", "GB", "UK GDPR", ["127.0.0.0/8"])
    rex = register(server, "rex@enclave.ac.uk", ["researcher"], uni["id"], vetted=True)
    checkers = [register(server, f"checker{i}@custodian.org", ["output-checker"], vetted=True)
                for i in (1, 2)]
    today = dt.date.today()
    project = admin.projects.create("Adiposity", "Body mass index by sex and birth cohort",
                                    rex.id, today, today + dt.timedelta(days=90),
                                    fields=[31, 34, 21001])
    with server.client(MAIN_SOURCE) as researcher:
        researcher.login(rex.email, rex.password, code(rex.totp_secret))
        dummy = zipfile.ZipFile(io.BytesIO(researcher.enclave.dummy(project["id"])))
        assert "participants.parquet" in dummy.namelist()
        defined = researcher.enclave.define(project["id"], "base", (
            "SELECT pid, p31 AS sex, CASE WHEN p34 < 1950 THEN 'early' ELSE 'late' END AS era, "
            "CASE WHEN p31 = 0 THEN 'a' WHEN p34 < 1950 THEN 'b' ELSE 'c' END AS grp, "
            "p21001_i0 AS bmi FROM participants"))
        assert defined["size_ok"] and "pid" in defined["columns"] and "rows" not in defined
        hostile = refused(researcher.enclave.define, project["id"], "x",
                          "SELECT * FROM read_csv('/etc/passwd')")
        assert hostile.status == 400 and hostile.reasons

        safe = researcher.enclave.analyse(project["id"], {
            "kind": "crosstab", "definition": "base", "rows": "sex", "columns": "era"})
        assert safe["verdict"] == "release" and "cells" not in safe  # a verdict, no values
        assert refused(researcher.outputs.download, safe["id"]).status in (403, 409)
        assert safe["sha256"] is None and safe["size"] is None  # no digest to test guesses
        out = researcher.outputs.request_release(safe["id"])
        assert out["status"] == "released"
        payload = researcher.outputs.download(safe["id"])
        assert hashlib.sha256(payload).hexdigest() == out["sha256"]
        assert len(payload) == out["size"]

        # a near-perfect fit goes to people: BMI on itself to the quarter unit (R² ≈ 0.999)
        researcher.enclave.define(project["id"], "fit", (
            "SELECT pid, p21001_i0 AS bmi, round(p21001_i0 * 4) / 4 AS quarter "
            "FROM participants WHERE p21001_i0 IS NOT NULL"))
        held = researcher.enclave.analyse(project["id"], {
            "kind": "ols", "definition": "fit", "outcome": "bmi", "covariates": ["quarter"]})
        assert held["verdict"] == "review", held["findings"]
        researcher.outputs.request_release(held["id"], "a calibration check: the covariate is "
                                                       "the outcome rounded, so R² is near 1")
        for i, checker in enumerate(checkers):
            with server.client(MAIN_SOURCE) as checking:
                checking.login(checker.email, checker.password, code(checker.totp_secret))
                assert checking.outputs.content(held["id"])
                decided = checking.outputs.review(held["id"], True, "a fit by construction")
                assert decided["status"] == ("approved_once", "released")[i]
                assert (decided["sha256"] is None) == (i == 0)
        released = researcher.outputs.download(held["id"])
        assert hashlib.sha256(released).hexdigest() == decided["sha256"]

        # an analysis is awaited however long the server computes: with the client's read
        # timeout at a millisecond, a definition and a model still come back (a GWAS at
        # 500,000 takes minutes; the client used to give up at 30 s while the server went on)
        researcher._http.timeout = httpx.Timeout(30.0, read=0.001)
        researcher.enclave.define(project["id"], "later", "SELECT pid, p21001_i0 AS bmi, "
                                  "p31 AS sex FROM participants WHERE p21001_i0 IS NOT NULL")
        slow = researcher.enclave.analyse(project["id"], {
            "kind": "ols", "definition": "later", "outcome": "bmi", "covariates": ["sex"]})
        assert slow["verdict"] in ("release", "release_with_suppression", "review")
    types = {entry["type"] for entry in admin.audit.entries(limit=1000)}
    assert {"output.checked", "output.released", "output.downloaded",
            "enclave.analysis.refused"} <= types
