"""Where alerts go: syslog collectors and webhooks, from ``watch.yaml`` in the data directory.

::

    min_severity: low            # alerts below this are not sent (default: info, all)
    syslog:
      - name: soc                # optional; the delivery records name it
        host: siem.example.org
        port: 6514
        protocol: tls            # udp | tcp | tls
        format: rfc5424          # rfc5424 | rfc3164
        facility: authpriv
        ca_file: /etc/strongroom/siem-ca.pem
    webhooks:
      - name: soar
        url: https://soar.example.org/hooks/strongroom
        secret: env:STRONGROOM_WEBHOOK_SECRET     # or file:/etc/strongroom/webhook.secret
        format: ocsf             # ocsf | ecs

A secret is never written in the file: it names an environment variable or a file, read when
an alert is sent (so it can be rotated without a restart) and never logged or stored. A bad
file is refused whole, naming every problem.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from strongroom.errors import Invalid
from strongroom.watch.exports import Format
from strongroom.watch.exports.syslog import FACILITIES, Framing, Protocol
from strongroom.watch.exports.webhooks import MIN_SECRET_BYTES
from strongroom.watch.states import RANK, Severity

CONFIG_FILE = "watch.yaml"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is kept: ``env:NAME`` or ``file:/path``. Its repr names only that."""

    source: str  # "env" | "file"
    name: str

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"

    def read(self) -> bytes:
        """The secret's bytes; Invalid (naming where it was looked for) if it is not there."""
        if self.source == "env":
            value = os.environ.get(self.name)
            if not value:
                raise Invalid(f"the environment variable {self.name} holding a webhook secret "
                              f"is not set")
            secret = value.encode()
        else:
            try:
                secret = Path(self.name).read_bytes().strip()
            except OSError as exc:
                raise Invalid(f"the webhook secret file {self.name} cannot be read "
                              f"({exc.strerror})") from None
        if len(secret) < MIN_SECRET_BYTES:
            raise Invalid(f"the webhook secret in {self} is shorter than {MIN_SECRET_BYTES} "
                          f"bytes; use a long random one (e.g. `openssl rand -hex 32`)")
        return secret


@dataclass(frozen=True)
class SyslogDestination:
    name: str
    host: str
    port: int
    protocol: Protocol = Protocol.UDP
    framing: Framing = Framing.RFC5424
    facility: str = "authpriv"
    app_name: str = "strongroom"
    hostname: str | None = None
    ca_file: str | None = None
    min_severity: Severity = Severity.INFO


@dataclass(frozen=True)
class WebhookDestination:
    name: str
    url: str
    secret: SecretRef
    format: Format = Format.OCSF
    min_severity: Severity = Severity.INFO
    timeout: float = 5.0
    ca_file: str | None = None


Destination = SyslogDestination | WebhookDestination


@dataclass(frozen=True)
class Destinations:
    syslog: tuple[SyslogDestination, ...] = ()
    webhooks: tuple[WebhookDestination, ...] = ()
    source: Path | None = field(default=None, compare=False)

    @property
    def all(self) -> tuple[Destination, ...]:
        return (*self.syslog, *self.webhooks)

    def for_severity(self, severity: Severity) -> list[Destination]:
        return [d for d in self.all if RANK[severity] >= RANK[d.min_severity]]

    def public(self) -> list[dict[str, Any]]:
        """What may be shown or logged: no secret, no URL query string."""
        shown: list[dict[str, Any]] = []
        for d in self.syslog:
            shown.append({"name": d.name, "kind": "syslog", "host": d.host, "port": d.port,
                          "protocol": d.protocol.value, "format": d.framing.value,
                          "facility": d.facility, "min_severity": d.min_severity.value})
        for w in self.webhooks:
            parts = urllib.parse.urlsplit(w.url)
            shown.append({"name": w.name, "kind": "webhook",
                          "url": f"{parts.scheme}://{parts.netloc}{parts.path}",
                          "secret": str(w.secret), "format": w.format.value,
                          "min_severity": w.min_severity.value})
        return shown


def load_destinations(root: Path) -> Destinations:
    """``root/watch.yaml`` (no file: no destinations; alerts stay in the list)."""
    path = root / CONFIG_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Destinations()
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise Invalid(f"{path} is not valid YAML ({exc})") from None
    return parse_destinations(doc, path)


def _choice(value: Any, kind: Any, what: str, problems: list[str], default: Any) -> Any:
    if value is None:
        return default
    try:
        return kind(str(value).lower())
    except ValueError:
        problems.append(f"{what}: {value!r} is not one of {', '.join(v.value for v in kind)}")
        return default


def _unknown(doc: dict[str, Any], known: set[str], where: str, problems: list[str]) -> None:
    for key in sorted(set(doc) - known):
        problems.append(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})")


def parse_destinations(doc: Any, source: Path | None = None) -> Destinations:
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise Invalid(f"{source or CONFIG_FILE} must be a mapping with syslog: and webhooks:")
    _unknown(doc, {"min_severity", "syslog", "webhooks"}, "watch.yaml", problems)
    floor = _choice(doc.get("min_severity"), Severity, "min_severity", problems, Severity.INFO)
    syslog = [_syslog(entry, n, floor, problems)
              for n, entry in enumerate(_entries(doc, "syslog", problems), start=1)]
    hooks = [_webhook(entry, n, floor, problems)
             for n, entry in enumerate(_entries(doc, "webhooks", problems), start=1)]
    names = [d.name for d in (*syslog, *hooks) if d is not None]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"two destinations are named {name!r}; names must be unique")
    if problems:
        raise Invalid([f"{source or CONFIG_FILE}: {p}" for p in problems])
    return Destinations(tuple(s for s in syslog if s is not None),
                        tuple(h for h in hooks if h is not None), source)


def _entries(doc: dict[str, Any], key: str, problems: list[str]) -> list[dict[str, Any]]:
    found = doc.get(key) or []
    if not isinstance(found, list) or not all(isinstance(e, dict) for e in found):
        problems.append(f"{key}: a list of mappings, one per destination")
        return []
    return found


def _port(value: Any, where: str, problems: list[str]) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    problems.append(f"{where}: port must be a number from 1 to 65535")
    return 0


def _syslog(entry: dict[str, Any], n: int, floor: Severity,
            problems: list[str]) -> SyslogDestination | None:
    where = f"syslog #{n}"
    _unknown(entry, {"name", "host", "port", "protocol", "format", "facility", "app_name",
                     "hostname", "ca_file", "min_severity"}, where, problems)
    host = str(entry.get("host") or "").strip()
    if not host:
        problems.append(f"{where}: host is required")
    protocol = _choice(entry.get("protocol"), Protocol, f"{where} protocol", problems,
                       Protocol.UDP)
    port = _port(entry.get("port", 6514 if protocol is Protocol.TLS else 514), where, problems)
    facility = str(entry.get("facility", "authpriv")).lower()
    if facility not in FACILITIES:
        problems.append(f"{where}: facility {facility!r} is not a syslog facility")
    before = len(problems)
    made = SyslogDestination(
        name=str(entry.get("name") or f"syslog-{n}"), host=host, port=port, protocol=protocol,
        framing=_choice(entry.get("format"), Framing, f"{where} format", problems,
                        Framing.RFC5424),
        facility=facility, app_name=str(entry.get("app_name") or "strongroom"),
        hostname=entry.get("hostname"), ca_file=entry.get("ca_file"),
        min_severity=_choice(entry.get("min_severity"), Severity, f"{where} min_severity",
                             problems, floor))
    return made if len(problems) == before else None


def _secret(value: Any, where: str, problems: list[str]) -> SecretRef | None:
    text = str(value or "")
    source, _, name = text.partition(":")
    if source in ("env", "file") and name.strip():
        return SecretRef(source, name.strip())
    # never echo the value: it may be a secret someone pasted in
    problems.append(f"{where}: secret must name where it is kept, as env:VARIABLE or "
                    f"file:/path (never the secret itself)")
    return None


def _webhook(entry: dict[str, Any], n: int, floor: Severity,
             problems: list[str]) -> WebhookDestination | None:
    where = f"webhook #{n}"
    before = len(problems)
    _unknown(entry, {"name", "url", "secret", "format", "min_severity", "timeout", "ca_file"},
             where, problems)
    url = str(entry.get("url") or "").strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{where}: url must be an http(s) URL")
    elif parts.scheme == "http" and parts.hostname not in LOOPBACK:
        problems.append(f"{where}: url must use https (plain http only to this machine)")
    secret = _secret(entry.get("secret"), where, problems)
    fmt = _choice(entry.get("format"), Format, f"{where} format", problems, Format.OCSF)
    if fmt is Format.CEF:
        problems.append(f"{where}: format is ocsf or ecs (a webhook posts JSON)")
    timeout = entry.get("timeout", 5.0)
    if not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        problems.append(f"{where}: timeout is 0 to 60 seconds")
        timeout = 5.0
    level = _choice(entry.get("min_severity"), Severity, f"{where} min_severity", problems,
                    floor)
    if secret is None or len(problems) > before:
        return None
    return WebhookDestination(name=str(entry.get("name") or f"webhook-{n}"), url=url,
                              secret=secret, format=fmt, min_severity=level,
                              timeout=float(timeout), ca_file=entry.get("ca_file"))
