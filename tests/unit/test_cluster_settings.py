"""The engine's limits from strongroom.yaml, the Spark settings as YAML to paste, and the
start-up check that refuses a cluster whose master answers anyone (no Spark needed: the
master's REST port and web UI are played by plain HTTP servers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from strongroom.enclave.engine import Limits
from strongroom.enclave.engines import DUCKDB_LIMITS, SPARK_LIMITS, engine_from, limits_from
from strongroom.enclave.spark.cluster import (
    SparkSettings,
    SparkUnavailableError,
    check_cluster,
    cluster_properties,
)

SECRET = bytes(range(32))


def test_each_engine_has_its_own_limits_and_strongroom_yaml_sets_them(tmp_path: Path) -> None:
    assert engine_from(None, SECRET).limits == DUCKDB_LIMITS
    assert SPARK_LIMITS.seconds > DUCKDB_LIMITS.seconds  # a cluster schedules every query
    spark = engine_from({"kind": "spark", "master": "spark://h:7077", "store": str(tmp_path),
                         "limits": {"seconds": 3600, "max_rows": 10_000_000}}, SECRET)
    assert spark.limits == Limits(seconds=3600.0, max_rows=10_000_000)
    duck = engine_from({"kind": "duckdb", "limits": {"seconds": 30, "memory": "2GB"}}, SECRET)
    assert duck.limits == Limits(seconds=30.0, memory="2GB")


@pytest.mark.parametrize(("limits", "named"), [
    ({"second": 30}, "unknown limit 'second'"),
    ({"seconds": "soon"}, "seconds: 'soon' is not a float"),
    ({"seconds": -1}, "must be positive"),
    ({"memory": "lots"}, "not like '512MB'"),
    ("30", "is a mapping"),
])
def test_a_bad_limit_is_named(limits: object, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        limits_from(limits, DUCKDB_LIMITS)


def test_the_settings_print_as_the_yaml_to_paste(tmp_path: Path) -> None:
    settings = SparkSettings(master="spark://10.0.0.5:7077", store=tmp_path,
                             secret_file=tmp_path / "s", executor_memory="4g", rest_port=7066,
                             conf={"spark.executor.cores": "2"})
    pasted = yaml.safe_load(settings.yaml())["engine"]
    assert pasted["kind"] == "spark"
    assert SparkSettings.from_config(pasted) == settings  # what is pasted is what was shown


def test_the_master_and_workers_run_with_every_wall() -> None:
    walls = cluster_properties("s3cret")
    assert walls["spark.master.rest.enabled"] == "false"
    assert walls["spark.ui.filters"] == "org.strongroom.StrongroomClosedUi"
    assert walls["spark.authenticate"] == walls["spark.network.crypto.enabled"] == "true"
    assert walls["spark.worker.cleanup.enabled"] == "true"


def _server(status: int) -> Iterator[int]:
    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def answers_200() -> Iterator[int]:
    yield from _server(200)


@pytest.fixture
def answers_403() -> Iterator[int]:
    yield from _server(403)


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_master_that_answers_rest_or_shows_its_ui_is_refused_before_a_driver_starts(
        tmp_path: Path, answers_200: int, answers_403: int) -> None:
    def settings(rest: int, ui: int) -> SparkSettings:
        return SparkSettings(master="spark://127.0.0.1:7077", store=tmp_path, rest_port=rest,
                             master_ui_port=ui)

    # a master whose own settings and workers cannot be read is not taken on trust: no UI
    # where it should be, or a UI closed to the cluster's own signed request too (a real
    # master with the closed UI's filter is read through it: tests/integration)
    with pytest.raises(SparkUnavailableError, match="nothing answers on the master"):
        check_cluster(settings(_closed_port(), _closed_port()))
    with pytest.raises(SparkUnavailableError, match="without the cluster's secret"):
        check_cluster(settings(_closed_port(), answers_403))
    secret = tmp_path / "cluster.secret"
    secret.write_text("s" * 64)
    with pytest.raises(SparkUnavailableError, match="does not answer a request signed"):
        check_cluster(SparkSettings(master="spark://127.0.0.1:7077", store=tmp_path,
                                    rest_port=_closed_port(), master_ui_port=answers_403,
                                    secret_file=secret))
    with pytest.raises(SparkUnavailableError) as refused:
        check_cluster(settings(answers_403, answers_200))
    text = str(refused.value)
    assert "spark.master.rest.enabled false" in text  # any REST answer: even a 403
    assert "web UI" in text and "HTTP 200" in text and "StrongroomClosedUi" in text
    check_cluster(SparkSettings(master="yarn", store=tmp_path, rest_port=answers_200))
