"""The gateway's plain ASGI layers: what each adds to an answer, and when the meter runs."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from anyio.from_thread import start_blocking_portal
from fastapi import Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from strongroom.platform import Platform
from strongroom.server import logs, web
from strongroom.server.app import create_app
from strongroom.server.middleware import SECURITY_HEADERS, Meter
from strongroom.server.telemetry import Telemetry
from strongroom.watch.history import Observation
from strongroom.watch.service import TICKET, Ticket


def client(https: bool = False, raise_server_exceptions: bool = True) -> TestClient:
    app = create_app(None)

    @app.get("/own-frame")
    def own_frame() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Frame-Options": "SAMEORIGIN"})

    @app.get("/id")
    def request_id() -> PlainTextResponse:
        return PlainTextResponse(logs.REQUEST_ID.get())

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("not answered by any handler")

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a", b"b", b"c"]), media_type="text/plain")

    return TestClient(app, base_url="https://testserver" if https else "http://testserver",
                      raise_server_exceptions=raise_server_exceptions)


def test_security_headers_go_on_every_answer_unless_the_route_set_its_own() -> None:
    answer = client().get("/own-frame")
    assert answer.headers["X-Frame-Options"] == "SAMEORIGIN"
    for name, value in SECURITY_HEADERS.items():
        if name != "X-Frame-Options":
            assert answer.headers[name] == value
    assert "Strict-Transport-Security" not in answer.headers
    assert client(https=True).get("/health").headers["Strict-Transport-Security"] == \
        "max-age=31536000"
    page = client().get("/ui/static/app.css")  # the console's: its own CSP
    assert page.headers["Content-Security-Policy"] == web.PAGE_CSP


def test_each_answer_carries_the_request_id_it_was_logged_with(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="strongroom.access"):
        answer = client().get("/id")
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers[logs.HEADER])
    assert answer.text == answer.headers[logs.HEADER]  # the route ran under the same id
    assert logs.REQUEST_ID.get() == "-"  # and it was reset after
    [line] = [r for r in caplog.records if r.name == "strongroom.access"]
    assert line.getMessage() == "GET /id 200"


def test_an_unhandled_exception_reaches_the_servers_plain_500_untouched() -> None:
    answer = client(raise_server_exceptions=False).get("/boom")
    assert answer.status_code == 500 and answer.text == "Internal Server Error"
    assert logs.HEADER not in answer.headers and "Cache-Control" not in answer.headers
    with pytest.raises(RuntimeError):
        client().get("/boom")


def test_a_streamed_answer_is_whole_and_has_the_headers() -> None:
    answer = client().get("/stream")
    assert answer.text == "abc" and answer.headers["Cache-Control"] == "no-store"
    assert logs.HEADER in answer.headers


class _Watch:
    """Watch as the meter sees it: the ticket held around a request, then observe."""

    def __init__(self, seen: list[str]):
        self.seen = seen
        self.observed: list[tuple[Observation, Ticket | None]] = []

    @contextmanager
    def request(self) -> Iterator[Ticket]:
        ticket = Ticket(row_id=7)
        token = TICKET.set(ticket)
        try:
            yield ticket
        finally:
            TICKET.reset(token)

    def observe(self, obs: Observation, ticket: Ticket | None) -> list[Any]:
        self.seen.append("metered")
        self.observed.append((obs, ticket))
        return []


class _Platform:
    def __init__(self, seen: list[str]):
        self.watch = _Watch(seen)
        self.access = self  # the meter reads ``platform.access.clock``

    def clock(self) -> dt.datetime:
        return dt.datetime(2026, 11, 21, tzinfo=dt.UTC)


def test_the_answer_is_metered_before_a_byte_of_it_is_sent() -> None:
    seen: list[str] = []
    platform = _Platform(seen)
    tickets: list[Ticket | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        tickets.append(TICKET.get())  # the route reserves on the meter's ticket
        Request(scope).state.principal = None
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-length", b"2")]})
        seen.append("body produced")
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        seen.append(message["type"])

    meter = Meter(app, cast(Platform, platform), Telemetry(None))
    # an event loop of its own in a thread of its own: a worker's session-wide browser (the
    # Playwright sync API) keeps a loop running in this thread, where anyio.run refuses
    with start_blocking_portal() as portal:
        portal.call(meter, {"type": "http", "method": "POST", "path": "/x", "headers": [],
                            "query_string": b"", "client": ("10.0.0.1", 1)}, receive, send)
    assert seen == ["metered", "http.response.start", "body produced", "http.response.body"]
    [(obs, ticket)] = platform.watch.observed
    assert ticket is tickets[0] and ticket is not None and ticket.row_id == 7
    assert (obs.status, obs.bytes_out, obs.source, obs.route) == (201, 2, "10.0.0.1",
                                                                  "POST (no route)")
