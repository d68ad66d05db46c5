"""The Spark cluster is locked: every path into it without the cluster's secret is closed, and
a query's key service token opens only that query's tables.

Each wall is attacked on a real standalone master and two workers on loopback, started with
Strongroom's settings (``cluster_properties``), the ground truth read from the master's own log
and the workers' folders:

- REST submissions (Spark's port 6066 launches what it is sent with no credentials): nothing
  listens;
- the master's and workers' web UIs (they list applications and executors' logs, and kill
  them): 403 for every page;
- an RPC submission without the secret, or with a wrong one: refused, nothing launched (with
  the secret, the same client reaches the master: the test can tell);
- a token granted for one query's tables: refused another's, and its own once revoked;
- after the application: no work folder, jar or executor output left on a worker;
- a master that breaks a wall: refused before a driver starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from strongroom.enclave.spark.cluster import (
    LocalCluster,
    SparkUnavailableError,
    check_cluster,
    class_path,
    client_jar,
    driver_dir,
    spark_home,
)
from strongroom.enclave.spark.engine import SparkEngine
from tests.conftest import end_the_application, quick_jvms

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SECRET = bytes(range(32))


@pytest.fixture(scope="module")
def cluster(spark_cluster: LocalCluster) -> LocalCluster:
    return spark_cluster  # tests/conftest.py: one per test process, shared with conformance's


@pytest.fixture(scope="module")
def engine(cluster: LocalCluster) -> Iterator[SparkEngine]:
    running = SparkEngine(cluster.settings(), SECRET)
    yield running
    running.close()


def _status(method: str, url: str, body: bytes | None = None) -> int | str:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code
    except OSError as nothing:
        return type(nothing.reason if isinstance(nothing, urllib.error.URLError)
                    else nothing).__name__


def test_no_rest_submission_server_listens(cluster: LocalCluster) -> None:
    submission = json.dumps({
        "action": "CreateSubmissionRequest", "appResource": "file:/bin/true",
        "mainClass": "org.example.Main", "appArgs": [], "clientSparkVersion": "4.0.0",
        "environmentVariables": {}, "sparkProperties": {"spark.master": cluster.master},
    }).encode()
    answer = _status("POST", f"http://127.0.0.1:{cluster.rest_port}/v1/submissions/create",
                     submission)
    assert answer == "ConnectionRefusedError"
    log = (cluster.root / "master.log").read_text()
    assert "REST server" not in log and "Driver submitted" not in log


def test_every_web_ui_page_is_closed_to_everyone(cluster: LocalCluster) -> None:
    ports = cluster.ui_ports()
    assert len(ports) == 1 + cluster.workers  # the master's and each worker's
    for port in ports:
        for method, path in [("GET", "/"), ("GET", "/json/"), ("GET", "/static/spark-logo.png"),
                             ("GET", "/logPage/?appId=x&executorId=0&logType=stderr"),
                             ("POST", "/app/kill/?id=x&terminate=true"),
                             ("GET", "/environment/"), ("GET", "/metrics/master/json")]:
            assert _status(method, f"http://127.0.0.1:{port}{path}") == 403, (port, path)


def _client(cluster: LocalCluster, *options: str, action: str = "launch"
            ) -> subprocess.Popen[bytes]:
    """Spark's own RPC submission client, started against the master with ``options``."""
    home = spark_home()
    target = ([f"file://{client_jar()}", "org.strongroom.Nothing"] if action == "launch"
              else ["driver-20000101000000-0000"])
    return subprocess.Popen(["java", *options, "-cp", os.pathsep.join(class_path(home)),
                             "org.apache.spark.deploy.Client", action, cluster.master, *target],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "SPARK_HOME": str(home)})


def test_an_rpc_submission_without_the_secret_launches_nothing(cluster: LocalCluster) -> None:
    before = (cluster.root / "master.log").read_text()
    secret = cluster.secret_file.read_text().strip()
    # no secret; a wrong one; and the control: with the cluster's secret the same client is
    # heard (asked to kill a driver that does not exist, so nothing is launched). The three
    # at once: what the master logs after them is theirs alone.
    clients = [_client(cluster, *options) for options in (
        [], ["-Dspark.authenticate=true", "-Dspark.authenticate.secret=" + "0" * 64,
             "-Dspark.network.crypto.enabled=true"])]
    control = _client(cluster, "-Dspark.authenticate=true",
                      f"-Dspark.authenticate.secret={secret}",
                      "-Dspark.network.crypto.enabled=true", action="kill")
    try:
        for client in [*clients, control]:
            client.wait(timeout=180)
    finally:
        for client in [*clients, control]:
            client.kill()
            client.wait()
    new = (cluster.root / "master.log").read_text()[len(before):]
    assert "Driver submitted" not in new and "Launching driver" not in new
    assert "Asked to kill driver" in new


def test_a_query_token_opens_only_its_own_tables(engine: SparkEngine) -> None:
    # held while their copies are read (the engine keeps a copy as long as its frame lives)
    frames = [pl.DataFrame({"eid": [1, 2, 3], "bmi": [20.5, 31.0, 27.2]}),
              pl.DataFrame({"eid": [7, 8], "sbp": [120, 141]})]
    mine, theirs = (engine.publish(frame) for frame in frames)
    with engine.reading([mine]) as session:
        assert session.read.parquet(str(mine)).count() == 3
        with pytest.raises(Exception, match=r"KeyAccessDenied|not granted|403"):
            session.read.parquet(str(theirs)).count()
        token = session.conf.get("parquet.encryption.key.access.token")
    # over the key service's own HTTPS: the token is refused another table's key, and once
    # the query is over it opens nothing at all
    import ssl

    trusted = ssl.create_default_context(cadata=engine.keys.certificate.decode())
    identifier = theirs.name
    wrapped = _wrapped_key(theirs)
    refused = httpx.post(f"{engine.keys.url}/unwrap", content=f"{identifier}\n{wrapped}",
                         headers={"Authorization": f"Bearer {token}"}, verify=trusted)
    assert refused.status_code == 403
    with engine.reading([theirs]) as session:
        other = session.conf.get("parquet.encryption.key.access.token")
        opened = httpx.post(f"{engine.keys.url}/unwrap", content=f"{identifier}\n{wrapped}",
                            headers={"Authorization": f"Bearer {other}"}, verify=trusted)
        assert opened.status_code == 200  # the control: the right token opens it
    for spent in (token, other):
        late = httpx.post(f"{engine.keys.url}/unwrap", content=f"{identifier}\n{wrapped}",
                          headers={"Authorization": f"Bearer {spent}"}, verify=trusted)
        assert late.status_code == 403


def _wrapped_key(path: Path) -> str:
    """A key the table's files hold wrapped under its master key (Parquet keeps them in the
    footer's key metadata, itself inside the encrypted footer: read them through PyArrow's
    key tools, which ask the same service in process)."""
    found: list[str] = []

    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pe

    class Spy(pe.KmsClient):  # type: ignore[misc]
        def __init__(self, _config: object):
            pe.KmsClient.__init__(self)

        def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
            raise AssertionError("only reading")

        def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
            found.append(wrapped_key)
            raise PermissionError("the spy only looks")

    factory = pe.CryptoFactory(Spy)
    properties = factory.file_decryption_properties(pe.KmsConnectionConfig())
    with pytest.raises(OSError):
        pq.read_table(next(path.glob("*.parquet")), decryption_properties=properties)
    assert found
    return found[0]


def test_the_executors_log_settings_are_the_service_accounts_alone(
        engine: SparkEngine, cluster: LocalCluster) -> None:
    with engine.reading([]):
        pass  # the session has started: its settings are written
    settings = cluster.root / "store" / "strongroom-executor-log4j2.properties"
    assert settings.stat().st_mode & 0o077 == 0


def test_a_master_that_breaks_a_wall_is_refused_before_a_driver_starts(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAVA_TOOL_OPTIONS", quick_jvms())  # as every Spark test's JVMs
        # a master alone: what it answers from outside is all check_cluster needs to refuse it
        broken = LocalCluster(tmp_path_factory.mktemp("open"), workers=0,
                              properties={"spark.master.rest.enabled": "true",
                                          "spark.ui.filters": ""})
        with broken, pytest.raises(SparkUnavailableError) as refused:
            check_cluster(broken.settings())
    text = str(refused.value)
    assert "REST submissions" in text and "web UI" in text


def test_nothing_is_left_on_the_workers_after_the_application(
        engine: SparkEngine, cluster: LocalCluster) -> None:
    """Last in the Spark scope (tests/conftest.py ENDS_THE_APPLICATION): it ends the
    application every module's engines shared."""
    frame = pl.DataFrame({"eid": list(range(1000)), "x": [1.5] * 1000})  # held while read
    table = engine.publish(frame)
    with engine.reading([table]) as session:
        assert session.read.parquet(str(table)).groupBy("x").count().count() == 1
    works = [where / "work" for where in cluster.local_dirs()]
    assert any(any(w.glob("app-*")) for w in works)  # while it runs: its work folders
    engine.close()
    end_the_application()
    assert driver_dir() is None  # no engine holds it: the application has ended
    deadline = time.monotonic() + 120
    left: list[Path] = []
    while time.monotonic() < deadline:
        left = [p for w in works for p in w.rglob("*")]
        left += [p for where in cluster.local_dirs() for p in (where / "local").rglob("*")
                 if p.is_file()]
        if not left:
            break
        time.sleep(0.2)
    assert left == []
