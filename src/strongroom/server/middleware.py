"""The gateway's layers around every request: metering, the request id, security headers.

Plain ASGI, not ``@app.middleware("http")``: each of those ran the rest of the app in an
anyio task group behind memory streams, a cost every request paid once a layer (issue 59).
Each layer here acts on the answer's ``http.response.start`` before passing it on, which is
when ``call_next`` returned: the client has no byte of an answer until the layers inside
it are done (a client holding its answer finds its meter row written). An exception the
exception handlers do not answer passes through all three untouched, as it did, to the
server's plain 500."""

from __future__ import annotations

import time

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.platform import Platform
from strongroom.server import logs, web
from strongroom.server.metering import observation, route_of
from strongroom.server.telemetry import Telemetry
from strongroom.watch.models import AlertRow
from strongroom.watch.service import Ticket

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
HSTS = "max-age=31536000"


def _headers(message: Message) -> MutableHeaders:
    """The answer's headers, changed in place in its ``http.response.start``."""
    message.setdefault("headers", [])
    return MutableHeaders(scope=message)


class Meter:
    """Every request is metered once its answer is ready (watch judges it there). A request
    that takes data reserved its meter row before it read any (``Watch.guard``, on the
    ticket held here); its answer completes that row, or releases what it reserved if it
    failed."""

    def __init__(self, app: ASGIApp, platform: Platform | None, telemetry: Telemetry) -> None:
        self.app, self.platform, self.telemetry = app, platform, telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        platform, request = self.platform, Request(scope)
        started = time.perf_counter()
        ticket: Ticket | None = None

        async def metered(message: Message) -> None:
            if message["type"] == "http.response.start":
                seconds = time.perf_counter() - started
                status = message["status"]
                alerts: list[AlertRow] = []
                if platform is not None:
                    obs = observation(request, status, _headers(message), seconds * 1000,
                                      platform.access.clock())
                    alerts = await run_in_threadpool(platform.watch.observe, obs, ticket)
                self.telemetry.observe(route_of(request)[0].split(" ", 1)[-1], request.method,
                                       status, seconds, [a.detector for a in alerts])
            await send(message)

        if platform is None:
            await self.app(scope, receive, metered)
        else:
            with platform.watch.request() as ticket:
                await self.app(scope, receive, metered)


class RequestId:
    """Each request gets an id, in every log line it causes and in its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request_id = logs.new_request_id()
        token = logs.REQUEST_ID.set(request_id)
        started = time.perf_counter()

        async def identified(message: Message) -> None:
            if message["type"] == "http.response.start":
                _headers(message)[logs.HEADER] = request_id
                logs.access(request.method, route_of(request)[0].split(" ", 1)[-1],
                            message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, identified)
        finally:
            logs.REQUEST_ID.reset(token)


class SecurityHeaders:
    """The security headers on every answer, unless a route set its own; a page's CSP;
    HSTS over https."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _headers(message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if web.is_page(request):
                    headers["Content-Security-Policy"] = web.PAGE_CSP
                if request.url.scheme == "https":
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, secured)
