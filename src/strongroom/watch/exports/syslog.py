"""Send lines (CEF) to a syslog collector: RFC 5424 or RFC 3164 messages, over UDP
(RFC 5426, one message per datagram), TCP (RFC 6587 octet counting: ``LEN SP MSG``) or TLS
(RFC 5425, the same framing inside TLS).

The message text is the CEF line; the syslog severity follows the alert's, the facility is
configured (``authpriv`` by default: security messages).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum

from strongroom.watch.states import Severity

FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
              "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12,
              "security": 13, "console": 14, "solaris-cron": 15,
              **{f"local{n}": 16 + n for n in range(8)}}
# syslog severities: 2 critical, 3 error, 4 warning, 5 notice, 6 informational
SYSLOG_SEVERITY: dict[Severity, int] = {Severity.CRITICAL: 2, Severity.HIGH: 3,
                                        Severity.MEDIUM: 4, Severity.LOW: 5,
                                        Severity.INFO: 6}
MAX_UDP = 8192  # one datagram; longer messages are cut (a CEF alert line is far shorter)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_PRINTABLE = re.compile(r"[^\x21-\x7e]")


class Protocol(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


class Framing(StrEnum):
    RFC5424 = "rfc5424"
    RFC3164 = "rfc3164"


def _token(value: str, limit: int) -> str:
    """A header field: printable ASCII without spaces, or the nil value ``-``."""
    cleaned = _PRINTABLE.sub("", value)[:limit]
    return cleaned or "-"


def priority(facility: str, severity: Severity) -> int:
    return FACILITIES[facility] * 8 + SYSLOG_SEVERITY[severity]


def rfc5424(message: str, severity: Severity, *, at: dt.datetime, facility: str = "authpriv",
            hostname: str | None = None, app_name: str = "strongroom",
            msgid: str = "watch-alert") -> bytes:
    """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`` (no structured data)."""
    stamp = at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    head = (f"<{priority(facility, severity)}>1 {stamp} "
            f"{_token(hostname or socket.gethostname(), 255)} {_token(app_name, 48)} "
            f"{_token(str(os.getpid()), 128)} {_token(msgid, 32)} -")
    return f"{head} {message}".encode()


def rfc3164(message: str, severity: Severity, *, at: dt.datetime, facility: str = "authpriv",
            hostname: str | None = None, app_name: str = "strongroom") -> bytes:
    """``<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG`` (BSD syslog; time in UTC)."""
    utc = at.astimezone(dt.UTC)
    stamp = f"{MONTHS[utc.month - 1]} {utc.day:>2} {utc:%H:%M:%S}"
    tag = re.sub(r"[^A-Za-z0-9]", "", app_name)[:32] or "strongroom"
    host = _token(hostname or socket.gethostname(), 255)
    return f"<{priority(facility, severity)}>{stamp} {host} {tag}: {message}".encode()


@dataclass(frozen=True)
class SyslogTarget:
    host: str
    port: int
    protocol: Protocol = Protocol.UDP
    framing: Framing = Framing.RFC5424
    facility: str = "authpriv"
    app_name: str = "strongroom"
    hostname: str | None = None  # what the messages say they come from (default: this host)
    ca_file: str | None = None  # TLS: the collector's CA (default: the system's)
    timeout: float = 5.0

    def render(self, message: str, severity: Severity, at: dt.datetime) -> bytes:
        if self.framing is Framing.RFC3164:
            return rfc3164(message, severity, at=at, facility=self.facility,
                           hostname=self.hostname, app_name=self.app_name)
        return rfc5424(message, severity, at=at, facility=self.facility,
                       hostname=self.hostname, app_name=self.app_name)

    def send(self, message: str, severity: Severity, at: dt.datetime | None = None) -> None:
        """Send one message; raises OSError (or ssl.SSLError) when it cannot."""
        data = self.render(message, severity, at or dt.datetime.now(dt.UTC))
        if self.protocol is Protocol.UDP:
            self._datagram(data[:MAX_UDP])
        else:
            self._stream(f"{len(data)} ".encode() + data)

    def _datagram(self, data: bytes) -> None:
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(self.timeout)
            sock.sendto(data, address)

    def _stream(self, data: bytes) -> None:
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as raw:
            if self.protocol is Protocol.TLS:
                context = ssl.create_default_context(cafile=self.ca_file)
                secure = context.wrap_socket(raw, server_hostname=self.host,
                                             do_handshake_on_connect=False)
                try:  # a collector whose certificate does not check out gets nothing
                    secure.do_handshake()
                    secure.sendall(data)
                finally:
                    secure.close()
                return
            raw.sendall(data)
