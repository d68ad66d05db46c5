"""The real server's log lines are plain JSON text: no terminal escapes in any of them.

uvicorn logs a coloured copy of some messages (``color_message``: "Uvicorn running on" in
bold) that a JSON formatter would otherwise put beside the plain one, and a client can put an
escape in its request line. The server is started as an operator starts it, asked a few
requests (one with an escape in its path, one that fails to sign in, one that is not HTTP),
stopped, and its whole log read.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from pathlib import Path

import httpx

from strongroom.client import StrongroomError
from tests.functional.test_server import HOST, running_server

ESCAPE = "\x1b"


def test_every_log_line_of_the_real_server_is_plain_json(tmp_path: Path) -> None:
    with running_server(tmp_path / "logs", None) as server:
        context = ssl.create_default_context(cafile=str(server.ca))
        with httpx.Client(base_url=server.url, verify=context) as http:
            assert http.get("/health").status_code == 200
            assert http.get("/%1b[31mred%1b[0m").status_code == 404
            assert http.get("/projects").status_code == 401
            assert http.get("/ui/").status_code in (200, 303)
        with server.client("127.0.0.81") as client, contextlib.suppress(StrongroomError):
            client.login("nobody@example.org", "\x1b[2Jnot a password", "000000")
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection((HOST, port)) as raw:  # not TLS: uvicorn says so
            raw.sendall(b"\x1b[31mGET / HTTP/1.1\r\n\r\n")
            raw.settimeout(5)
            with contextlib.suppress(OSError):
                raw.recv(100)
    text = (tmp_path / "logs" / "server.log").read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        assert ESCAPE not in line and "\\u001b" not in line.lower(), line
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a log line that is not JSON: {line!r}") from None
    messages = [str(p.get("message")) for p in parsed]
    # the lines uvicorn colours, and the requests, are there, plain
    assert any(m.startswith("Uvicorn running on https://") for m in messages), messages
    assert any(p.get("status") == 404 for p in parsed)
    assert all("color_message" not in p for p in parsed)
    for entry in parsed:
        for key, value in entry.items():
            assert ESCAPE not in str(key) + str(value), (key, value)
