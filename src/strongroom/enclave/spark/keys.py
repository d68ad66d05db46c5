"""Strongroom's key service for the cluster: the master keys of encrypted Parquet never leave.

Tables published to the cluster are Parquet files under modular encryption (the format's own
AES-GCM encryption of every page, column index and the footer, read natively by Spark and
Arrow). Each file's data keys are wrapped, through Parquet's key tools, by a *master key* that
lives only here: derived from the store key (HKDF-SHA256, its own ``info`` and the key's
identifier), one per published table, so a table dropped from the cluster is one whose key
the service will no longer unwrap.

Strongroom writes the files (PyArrow, :meth:`KeyService.crypto_factory`); Spark's executors
read them through ``org.strongroom.StrongroomKmsClient`` (``StrongroomKmsClient.java``),
which asks this service to unwrap a key over HTTPS with the session's bearer token. The
cluster never sees a master key, only the data keys of the files it reads, and only while
a token granted for that table and the table's identifier are live.

Tokens are granted per query (:meth:`KeyService.grant`): each opens only the tables that
query reads, and is revoked when the query ends. One project's query, or whoever holds its
token, cannot unwrap another project's tables, nor its own once the query is over.

The service's TLS certificate is made when it starts (ECDSA P-256, for its address only) and
pinned: executors learn its SHA-256 with the session's settings (Parquet's KMS instance id)
and trust no other certificate, so an unwrapped key crosses the network only encrypted, to
no one but the executor that asked, even on a network someone else can answer on.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import ssl
import tempfile
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet.encryption as pe
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"strongroom cluster parquet master key v1\0"
_NONCE = 12
# the body of an unwrap request: an identifier and a wrapped key of a few hundred bytes
_MAX_BODY = 4096


class KeyService:
    """Wraps and unwraps Parquet keys under master keys derived from ``secret``.

    ``host``/``port``: where the cluster's executors reach the service (loopback for a
    cluster on this machine; an address the workers can route to otherwise). Until
    :meth:`start` it answers nobody; :meth:`close` stops it and forgets the token."""

    def __init__(self, secret: bytes, host: str = "127.0.0.1", port: int = 0):
        if len(secret) < 32:
            raise ValueError("the cluster's master keys derive from a secret of 32 bytes")
        self._secret = secret
        self._host = host
        self._port = port
        self._live: set[str] = set()
        self._grants: dict[str, frozenset[str]] = {}  # token: the identifiers it opens
        self._lock = threading.Lock()
        self.unwraps = 0  # how many keys the cluster has asked for (tests read it)
        self._server: ThreadingHTTPServer | None = None
        self.certificate: bytes = b""  # PEM, made by start()

    def __repr__(self) -> str:  # the secret and the token stay out of logs and tracebacks
        return f"KeyService(url={self.url!r}, tables={len(self._live)})"

    # -- identifiers ----------------------------------------------------------------------

    def new_identifier(self) -> str:
        """A fresh master key identifier, live until :meth:`forget`."""
        identifier = "t" + secrets.token_hex(12)
        with self._lock:
            self._live.add(identifier)
        return identifier

    def forget(self, identifier: str) -> None:
        """Unwrap nothing more under ``identifier`` (its table left the cluster)."""
        with self._lock:
            self._live.discard(identifier)

    def grant(self, identifiers: Iterable[str]) -> str:
        """A fresh token that unwraps keys under ``identifiers`` only, until :meth:`revoke`."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._grants[token] = frozenset(identifiers)
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._grants.pop(token, None)

    def opens(self, header: str | None) -> frozenset[str] | None:
        """The identifiers the bearer token in ``header`` was granted (None: no live token)."""
        if header is None or not header.startswith("Bearer "):
            return None
        offered = header.removeprefix("Bearer ").encode()
        with self._lock:
            grants = list(self._grants.items())
        found = None
        for token, identifiers in grants:  # every grant compared, in constant time each
            if hmac.compare_digest(offered, token.encode()):
                found = identifiers
        return found

    def _master_key(self, identifier: str, granted: frozenset[str] | None = None) -> AESGCM:
        with self._lock:
            if identifier not in self._live:
                raise PermissionError(f"master key {identifier!r} is not one of this session's "
                                      "published tables")
        if granted is not None and identifier not in granted:
            raise PermissionError(f"the token was not granted master key {identifier!r}: a "
                                  "token opens only the tables of the query it was made for")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=_INFO + identifier.encode()).derive(self._secret)
        return AESGCM(key)

    # -- wrapping -------------------------------------------------------------------------

    def wrap(self, key: bytes, identifier: str) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._master_key(identifier).encrypt(nonce, key, identifier.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap(self, wrapped: str, identifier: str,
               granted: frozenset[str] | None = None) -> bytes:
        """The key ``wrapped`` under ``identifier``; over HTTP, only if ``granted`` holds it."""
        try:
            raw = base64.b64decode(wrapped, validate=True)
            return self._master_key(identifier, granted).decrypt(raw[:_NONCE], raw[_NONCE:],
                                                                 identifier.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise PermissionError("the wrapped key was not made by this service") from None

    def crypto_factory(self) -> pe.CryptoFactory:
        """PyArrow's key tools, wrapping with this service (in process, no HTTP)."""
        service = self

        class _Client(pe.KmsClient):  # type: ignore[misc]
            def __init__(self, _config: Any):
                pe.KmsClient.__init__(self)

            def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
                return service.wrap(key_bytes, master_key_identifier)

            def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
                return service.unwrap(wrapped_key, master_key_identifier)

        return pe.CryptoFactory(_Client)

    def encryption(self, identifier: str, columns: Mapping[str, str] | None = None
                   ) -> tuple[pe.CryptoFactory, pe.KmsConnectionConfig,
                              pe.EncryptionConfiguration]:
        """What :func:`pyarrow.parquet.write_table` needs to encrypt a file under
        ``identifier``: every column and the footer (so the column names too). ``columns``:
        a master key of its own for each column (name: identifier), the footer's being
        ``identifier``, so that a token granted a query's columns opens no others; it must
        name every column the file holds (one left out would be written in the clear)."""
        if not columns:
            return (self.crypto_factory(), pe.KmsConnectionConfig(),
                    pe.EncryptionConfiguration(footer_key=identifier, uniform_encryption=True,
                                               plaintext_footer=False, double_wrapping=True))
        grouped: dict[str, list[str]] = {}
        for column, key in columns.items():
            grouped.setdefault(key, []).append(column)
        return (self.crypto_factory(), pe.KmsConnectionConfig(),
                pe.EncryptionConfiguration(footer_key=identifier, column_keys=grouped,
                                           uniform_encryption=False, plaintext_footer=False,
                                           double_wrapping=True))

    # -- the HTTP side --------------------------------------------------------------------

    @property
    def url(self) -> str:
        port = self._port if self._server is None else self._server.server_address[1]
        return f"https://{_url_host(self._host)}:{port}"

    @property
    def pin(self) -> str:
        """What executors trust: ``sha256:`` and the hex digest of the certificate's DER."""
        der = x509.load_pem_x509_certificate(self.certificate).public_bytes(
            serialization.Encoding.DER)
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def start(self) -> KeyService:
        if self._server is None:
            server = _Server((self._host, self._port), _handler(self))
            self.certificate, context = _tls(self._host)
            # the handshake happens in the request's own thread, not in the accept loop
            server.socket = context.wrap_socket(server.socket, server_side=True,
                                                do_handshake_on_connect=False)
            server.daemon_threads = True
            self._server = server
            threading.Thread(target=server.serve_forever, name="strongroom-keys",
                             daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:  # whatever the cluster held is worth nothing
            self._grants.clear()
            self._live.clear()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that fails the TLS handshake or hangs up: nothing to log (and nothing
        about keys ever is)."""


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _tls(host: str) -> tuple[bytes, ssl.SSLContext]:
    """A certificate for ``host`` alone, a day long, and a server context holding it (its
    private key is loaded from a file that exists only while it is read)."""
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "strongroom key service")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
                   .sign(key, hashes.SHA256()))
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as scratch:  # ssl loads a chain from files only
        chain = Path(scratch) / "chain.pem"
        chain.touch(mode=0o600)
        chain.write_bytes(pem + key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        context.load_cert_chain(chain)
    return pem, context


def _handler(service: KeyService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "strongroom-keys"
        timeout = 30  # seconds a connection may idle (the TLS handshake included)

        def do_POST(self) -> None:
            if self.path != "/unwrap":
                return self._answer(404, "only POST /unwrap is served")
            granted = service.opens(self.headers.get("Authorization"))
            if granted is None:
                return self._answer(403, "a live token granted for a query is required")
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= _MAX_BODY:
                return self._answer(400, "the body is an identifier and a wrapped key")
            try:
                identifier, wrapped = self.rfile.read(length).decode().split("\n", 1)
                key = service.unwrap(wrapped.strip(), identifier.strip(), granted)
            except (ValueError, UnicodeDecodeError):
                return self._answer(400, "the body is an identifier and a wrapped key")
            except PermissionError as exc:
                return self._answer(403, str(exc))
            service.unwraps += 1
            return self._answer(200, base64.b64encode(key).decode())

        def _answer(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # requests carry keys: nothing is logged
            return

    return Handler
