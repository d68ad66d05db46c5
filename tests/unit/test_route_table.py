"""Every app ``create_app`` builds shares one route table (FastAPI builds a table on its first
request, half a second of CPU an app), and each app keeps the routes and state of its own."""

from __future__ import annotations

from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from strongroom.server import app as server


def test_apps_share_the_included_routes_but_not_each_others_own() -> None:
    first, second = server.create_app(None), server.create_app(None)
    shared = {id(route) for route in first.router.routes} & \
        {id(route) for route in second.router.routes}
    assert len(shared) == len(server._included_routes()) >= len(server.ROUTERS)
    assert first.router.routes is not second.router.routes

    @first.get("/only-the-first")
    def only() -> PlainTextResponse:
        return PlainTextResponse("first")

    assert TestClient(first).get("/only-the-first").text == "first"
    assert TestClient(second).get("/only-the-first").status_code == 404
    for app in (first, second):  # a shared route (the console's files) answers in both
        assert TestClient(app).get("/ui/static/app.css").status_code == 200


def test_the_spec_names_every_included_route() -> None:
    paths = server.create_app(None).openapi()["paths"]
    for router in server.ROUTERS:
        for route in router.routes:
            assert getattr(route, "path", None) in paths
