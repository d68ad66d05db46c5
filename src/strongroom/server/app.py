"""The FastAPI application: routes, error answers, security headers."""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

import strongroom
from strongroom.access.networks import address_in
from strongroom.audit import AuditError
from strongroom.db import busy
from strongroom.errors import Invalid, NotFound, RateLimited, ServiceError
from strongroom.platform import Platform
from strongroom.server import web
from strongroom.server.middleware import Meter, RequestId, SecurityHeaders
from strongroom.server.routes import (
    admin,
    audit,
    auth,
    enclave,
    jobs,
    outputs,
    privacy,
    runs,
    transfers,
)
from strongroom.server.routes import watch as watch_routes
from strongroom.server.schemas import Problem
from strongroom.server.security import ACTION_KEY, CSRF_HEADER, PUBLIC, SESSION_COOKIE
from strongroom.server.statuses import HTTP_STATUS
from strongroom.server.telemetry import CONTENT_TYPE, Telemetry, readiness

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in [*sorted(set(HTTP_STATUS.values())), 422]
}
# who may read /metrics: the platform team's scraper, on the server's host unless the
# operator names its network (serve's ``metrics_from``)
METRICS_FROM = ("127.0.0.0/8", "::1/128")
METRICS_ELSEWHERE = ("not found: the metrics are served to the platform team's scraper "
                     "only (its network is the operator's setting)")


def problem(status: int, error: str, reasons: list[str],
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(Problem(error=error, reasons=reasons).model_dump(), status_code=status,
                        headers=headers)


# The spec, made once per process: every app ``create_app`` builds has the same routes, and
# generating it builds every route's models (half a second an app)
_SPEC: dict[str, Any] | None = None


def _openapi_with_security(app: FastAPI) -> dict[str, Any]:
    """The generated spec plus how to authenticate (a session cookie or a bearer token)."""
    global _SPEC
    if _SPEC is None:
        spec = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
        spec.setdefault("components", {})["securitySchemes"] = {
            "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                        "description": f"from POST /auth/login; unsafe methods also need "
                                       f"the {CSRF_HEADER} header"},
            "token": {"type": "http", "scheme": "bearer",
                      "description": "a project-scoped API token (srt_…)"},
        }
        for operations in spec["paths"].values():
            for operation in operations.values():
                if operation.get(ACTION_KEY) != PUBLIC:
                    operation["security"] = [{"session": []}, {"token": []}]
        _SPEC = spec
    app.openapi_schema = _SPEC
    return _SPEC


# Threads for the routes (every route is synchronous: anyio runs it on a thread of its
# default limiter, 40 unless set). A request touching data sleeps on its thread until its
# answer's moment (outputs/timing.py), so 40 requests waiting out their floors, any project's,
# made every other request queue: one person's burst held up everyone, and a free request's
# latency told how many of others' requests were waiting. Sleeping threads cost little; the
# rate limits (watch/limits.py) bound how many one person may hold.
REQUEST_THREADS = 512


@asynccontextmanager
async def _threads(app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
    platform = getattr(app.state, "platform", None)
    if platform is not None:  # the DP engines start now, not in the first query's time
        threading.Thread(target=platform.privacy.warm, name="dp-warm", daemon=True).start()
    yield


def _blank_app() -> FastAPI:
    return FastAPI(
        lifespan=_threads,
        title="Strongroom",
        version=strongroom.__version__,
        description="A trusted research environment for sensitive health cohorts: "
                    "authentication, administration and audit. Every route names the action "
                    "it takes in `x-strongroom-action`; every refusal lists its reasons.",
        responses=ERROR_RESPONSES,
        docs_url=None,  # Swagger UI loads from a CDN; nothing is fetched from the internet
        redoc_url=None,
    )


ROUTERS = (auth.router, admin.router, audit.router, enclave.router, outputs.router,
           transfers.router, privacy.router, jobs.router, runs.router, watch_routes.router)
# The included routes, made once per process and shared by every app ``create_app`` builds.
# FastAPI builds an included router's route table (each route's models and handler) on its
# first request and keeps it on the object ``include_router`` made: half a second to a
# second of CPU for each new app otherwise. A route holds no app: a handler finds its
# platform in ``request.app.state``, so one table serves every app.
@functools.cache
def _included_routes() -> list[BaseRoute]:
    template = _blank_app()  # the same parent settings (error responses) as every app
    before = len(template.router.routes)
    for router in ROUTERS:
        template.include_router(router)
    web.mount(template)
    if template.router.on_startup or template.router.on_shutdown:
        raise RuntimeError("a router has startup or shutdown events, which a shared route "
                           "table would drop: include it in create_app instead")
    return template.router.routes[before:]


def create_app(platform: Platform | None,
               metrics_from: Sequence[str] = METRICS_FROM) -> FastAPI:
    """The application over ``platform`` (None builds the spec only, as the docs script does).
    ``metrics_from``: the networks whose peers may read ``/metrics`` (the platform team's
    scraper; loopback by default)."""
    app = _blank_app()
    app.state.platform = platform
    app.openapi = lambda: _openapi_with_security(app)  # type: ignore[method-assign]
    app.router.routes.extend(_included_routes())

    telemetry = Telemetry(platform)
    app.state.telemetry = telemetry

    @app.get("/health", openapi_extra={"x-strongroom-action": "public"}, tags=["meta"])
    def health() -> dict[str, str]:
        """Liveness only: says nothing about people, projects or data."""
        return {"status": "ok"}

    @app.get("/health/ready", openapi_extra={"x-strongroom-action": "public"}, tags=["meta"],
             responses={503: {"description": "not ready: the checks say what is wrong"}})
    def ready(request: Request) -> JSONResponse:
        """Readiness: the database answers, the key is the store's, the audit writer records.
        Each check is "ok" or what is wrong; nothing about people, projects or data."""
        found = readiness(request.app.state.platform)
        return JSONResponse({"status": "ready" if found.ready else "not-ready",
                             "checks": found.checks}, status_code=200 if found.ready else 503)

    @app.get("/metrics", openapi_extra={"x-strongroom-action": "public"}, tags=["meta"],
             response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus metrics: counts and timings by route template, watch's alerts by
        detector, the audit writer's lag; never an ID, a person or a value. Served to the
        platform team's scraper only (a peer in ``metrics_from``): the counts move as each
        request is answered, with the alerts watch raises and the audit entries they make,
        and findings on a withheld output feed watch's detectors, so a researcher reading
        them against their own requests learnt what the check found (the HTTP red team)."""
        peer = request.client.host if request.client else None
        if not address_in(peer, metrics_from):
            return problem(404, "not-found", [METRICS_ELSEWHERE])
        return Response(telemetry.exposition(), media_type=CONTENT_TYPE)

    @app.exception_handler(ServiceError)
    def service_error(request: Request, exc: ServiceError) -> Response:
        if web.is_page(request):
            return web.error_page(request, exc, HTTP_STATUS[exc.status])
        headers = ({"Retry-After": str(exc.retry_after)}
                   if isinstance(exc, RateLimited) else None)
        if exc.status == "unauthenticated":
            headers = {"WWW-Authenticate": 'Bearer realm="strongroom"'}
        return problem(HTTP_STATUS[exc.status], exc.status, exc.reasons, headers)

    @app.exception_handler(AuditError)
    def unrecorded(_: Request, exc: AuditError) -> JSONResponse:
        return problem(503, "unavailable", ["the audit log could not record this request, so "
                                            "the platform stops until it can; tell the "
                                            "custodian's team"])

    @app.exception_handler(DataError)
    def unstorable(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL text cannot hold: the request, not the server
        return problem(400, "invalid", ["a value in this request cannot be stored (a NUL "
                                        "character or a number out of range); remove it"])

    @app.exception_handler(OperationalError)
    def database_failed(_: Request, exc: OperationalError) -> JSONResponse:
        if busy(exc):  # its turn to write did not come in time: its transaction rolled back
            return problem(503, "unavailable", [
                "the platform is busy: this request waited too long for its turn to write and "
                "was stopped (its unfinished step was rolled back); try again in a few "
                "seconds"], {"Retry-After": "2"})
        raise exc

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        reasons = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            reasons.append(f"{where}: {err.get('msg', 'invalid')}")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if (not web.is_page(request) and kind and not kind.endswith("json")
                and any(e.get("type") in ("model_attributes_type", "dict_type")
                        and tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors())):
            # curl -d sends a form's content type: the body was not read as JSON at all
            reasons.append(f"the body was sent as {kind}, not as JSON: send it with "
                           f"Content-Type: application/json (curl: -H \"Content-Type: "
                           f"application/json\")")
        if web.is_page(request):
            return web.error_page(request, Invalid(reasons or ["the form is not valid"]), 422)
        return problem(422, "invalid", reasons or ["the request is not valid"])

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        if web.is_page(request):
            error = NotFound if exc.status_code == 404 else Invalid
            return web.error_page(request, error(str(exc.detail)), exc.status_code)
        return problem(exc.status_code, "not-found" if exc.status_code == 404 else "invalid",
                       [str(exc.detail)], dict(exc.headers or {}))

    # the last added is the outermost: the security headers go on every answer, the request
    # id's too, and the meter sees the answer first
    app.add_middleware(Meter, platform=platform, telemetry=telemetry)
    app.add_middleware(RequestId)
    app.add_middleware(SecurityHeaders)
    return app
