"""Readiness and Prometheus metrics, through the real application: each readiness check fails
for its own reason, and the metrics count by route template, never by ID, person or value."""

from __future__ import annotations

import io
import json
import logging.config
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from strongroom.server import logs
from strongroom.server.app import create_app
from tests.access_world import World, build_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path)
    yield built
    built.platform.close()


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def test_ready_says_each_check_and_fails_closed_when_one_fails(world: World) -> None:
    with TestClient(create_app(world.platform), client=("127.0.0.1", 50000)) as client:
        answer = client.get("/health/ready")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ready", "checks": dict.fromkeys(
            ("database", "key", "audit"), "ok")}
        world.platform.audit.close()  # the writer stops: nothing may run, and ready says so
        answer = client.get("/health/ready")
        assert answer.status_code == 503 and answer.json()["status"] == "not-ready"
        assert "audit writer has stopped" in answer.json()["checks"]["audit"]
        assert answer.json()["checks"]["database"] == "ok"
        assert client.get("/health").status_code == 200  # alive, but not ready


def test_metrics_count_requests_by_route_never_by_id(world: World) -> None:
    secret_id = "prj_not_a_real_one_4242"
    with TestClient(create_app(world.platform), client=("127.0.0.1", 50000)) as client:
        assert client.get(f"/projects/{secret_id}").status_code in (401, 403)
        client.get("/health")
        text = client.get("/metrics").text
        samples = _samples(client)
    assert secret_id not in text
    routes = {dict(labels).get("route") for (_, labels) in samples}
    assert "/projects/{project_id}" in routes and "/health" in routes
    refused = [v for (name, labels), v in samples.items()
               if name == "strongroom_refusals_total"
               and dict(labels)["route"] == "/projects/{project_id}"]
    assert refused == [1.0]
    assert samples[("strongroom_audit_writing", ())] == 1.0
    assert ("strongroom_audit_queue", ()) in samples


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The server's logging configuration, into a buffer, undone afterwards (other tests read
    the logs)."""
    written = io.StringIO()
    configured = logs.config(stream=written)
    logging.config.dictConfig(configured)
    yield written
    for name in configured["loggers"]:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_every_answer_has_a_request_id_and_logs_are_json_lines_with_it(
        world: World, json_logs: io.StringIO) -> None:
    seen: list[str] = []
    with TestClient(create_app(world.platform), client=("127.0.0.1", 50000)) as client:
        for _ in range(2):
            answer = client.get("/health")
            seen.append(answer.headers[logs.HEADER])
    assert len(set(seen)) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", s) for s in seen)
    answered = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    access = [line for line in answered if line["logger"] == "strongroom.access"]
    assert [a["request_id"] for a in access] == seen
    assert access[0]["route"] == "/health" and access[0]["status"] == 200
    token = logs.REQUEST_ID.set("abc123")
    try:
        logging.getLogger("strongroom.test").warning("a sentence for the platform team")
    finally:
        logs.REQUEST_ID.reset(token)
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    line = lines[-1]
    assert line["request_id"] == "abc123" and line["level"] == "WARNING"
    assert line["logger"] == "strongroom.test" and line["message"].startswith("a sentence")
