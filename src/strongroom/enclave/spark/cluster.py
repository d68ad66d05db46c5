"""Reaching a Spark cluster: its settings, a locked-down session, and a cluster on loopback.

:class:`SparkSettings` is what a custodian writes under ``engine:`` in ``strongroom.yaml``.
:func:`open_session` starts the driver with every wall the enclave needs switched on: RPC
authentication and encryption (``spark.authenticate``, ``spark.network.crypto.enabled``), every
shuffle, spill and cached block encrypted on the workers' disks (``spark.io.encryption``), no
SQL over file paths (``spark.sql.runSQLOnFiles``), no web UI and no event log (they show query
plans), and Parquet decryption through Strongroom's key service (:mod:`.keys`).
:class:`LocalCluster` starts a standalone master and workers on this machine with Spark's own
launch classes: the tests, the benchmarks and a custodian's first try use it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom.enclave.spark.keys import KeyService

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The Java Strongroom adds to Spark: the executors' key client, and the filter that closes
# the master's and workers' web UIs; compiled together into one jar (client_jar).
SOURCES = (Path(__file__).with_name("StrongroomKmsClient.java"),
           Path(__file__).with_name("StrongroomClosedUi.java"))
CLIENT_CLASS = "org.strongroom.StrongroomKmsClient"
CLOSED_UI_CLASS = "org.strongroom.StrongroomClosedUi"
_KEYS = {"master", "store", "key_host", "key_port", "driver_host", "secret_file",
         "executor_memory", "driver_memory", "shuffle_partitions", "python", "conf",
         "rest_port", "master_ui_port"}
# what a standalone master logs once it takes applications and workers
LEADING = "I have been elected leader"
REST_PORT = 6066  # a standalone master's REST submission port, unless it says otherwise
MASTER_UI_PORT = 8080  # and its web UI's


class SparkUnavailableError(RuntimeError):
    """Spark (PySpark, a JDK) is missing or the cluster cannot be reached; says what to do."""


@dataclass(frozen=True)
class SparkSettings:
    """Where the cluster is and how Strongroom talks to it.

    ``master``: the cluster manager (``spark://host:7077``, ``yarn``, ``k8s://…``).
    ``store``: a directory every worker reads at the same path (a shared filesystem); only
    encrypted Parquet is written there. ``key_host``/``key_port``: the address executors reach
    Strongroom's key service at. ``driver_host``: the address executors reach the driver at.
    ``secret_file``: the cluster's shared RPC secret (standalone clusters; YARN and Kubernetes
    make one per application). ``python``: the Python the executors run a GWAS's fits in,
    with Strongroom installed (this one, when the workers share this machine's image).
    ``conf``: further Spark settings; none may switch a wall off. ``rest_port`` and
    ``master_ui_port``: where a standalone master would answer REST submissions and its web
    UI; before the driver starts, :func:`check_cluster` refuses a master that answers either
    without credentials.
    """

    master: str
    store: Path
    key_host: str = "127.0.0.1"
    key_port: int = 0
    driver_host: str = "127.0.0.1"
    secret_file: Path | None = None
    executor_memory: str = "1g"
    driver_memory: str = "2g"  # the driver collects definitions' rows: a row per participant
    shuffle_partitions: int = 8
    python: str = field(default_factory=lambda: sys.executable)
    conf: Mapping[str, str] = field(default_factory=dict)
    rest_port: int = REST_PORT
    master_ui_port: int = MASTER_UI_PORT

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> SparkSettings:
        """From ``strongroom.yaml``'s ``engine:`` section; every problem named at once."""
        problems = [f"unknown setting {k!r}" for k in sorted(set(data) - _KEYS - {"kind"})]
        problems += [f"{k!r} is required" for k in ("master", "store") if not data.get(k)]
        conf = {str(k): str(v) for k, v in dict(data.get("conf") or {}).items()}
        problems += [f"conf {k!r} switches off a wall the enclave needs"
                     for k in sorted(conf) if k in _WALLS]
        if problems:
            raise ValueError("the Spark engine's settings in strongroom.yaml: "
                             + "; ".join(problems))
        secret = data.get("secret_file")
        return cls(master=str(data["master"]), store=Path(data["store"]),
                   key_host=str(data.get("key_host", "127.0.0.1")),
                   key_port=int(data.get("key_port", 0)),
                   driver_host=str(data.get("driver_host", "127.0.0.1")),
                   secret_file=Path(secret) if secret else None,
                   executor_memory=str(data.get("executor_memory", "1g")),
                   driver_memory=str(data.get("driver_memory", "2g")),
                   shuffle_partitions=int(data.get("shuffle_partitions", 8)),
                   python=str(data.get("python") or sys.executable), conf=conf,
                   rest_port=int(data.get("rest_port", REST_PORT)),
                   master_ui_port=int(data.get("master_ui_port", MASTER_UI_PORT)))

    def secret(self) -> str | None:
        if self.secret_file is None:
            return None
        return self.secret_file.read_text().strip()

    def yaml(self) -> str:
        """The ``engine:`` section of ``strongroom.yaml`` that names these settings, to paste."""
        import yaml

        section: dict[str, Any] = {"kind": "spark", "master": self.master,
                                   "store": str(self.store)}
        optional: dict[str, Any] = {
            "key_host": self.key_host, "key_port": self.key_port,
            "driver_host": self.driver_host,
            "secret_file": str(self.secret_file) if self.secret_file else None,
            "executor_memory": self.executor_memory, "driver_memory": self.driver_memory,
            "shuffle_partitions": self.shuffle_partitions, "rest_port": self.rest_port,
            "master_ui_port": self.master_ui_port,
            "conf": dict(self.conf) or None}
        defaults = SparkSettings(master="", store=Path())
        section.update({k: v for k, v in optional.items()
                        if v is not None and v != getattr(defaults, k, None)})
        return yaml.safe_dump({"engine": section}, sort_keys=False)


# The walls: set by open_session, never by a custodian's conf.
_WALLS = frozenset({
    "spark.authenticate", "spark.authenticate.secret", "spark.network.crypto.enabled",
    "spark.io.encryption.enabled", "spark.sql.runSQLOnFiles", "spark.ui.enabled",
    "spark.sql.ansi.enabled", "spark.sql.legacy.timeParserPolicy", "spark.sql.legacy.sizeOfNull",
    "spark.sql.variable.substitute",
    "spark.eventLog.enabled", "spark.jars", "spark.local.dir", "spark.executor.extraJavaOptions",
    "spark.hadoop.parquet.crypto.factory.class",
    "spark.hadoop.parquet.encryption.kms.client.class",
    "spark.hadoop.parquet.encryption.kms.instance.url",
    "spark.hadoop.parquet.encryption.key.access.token",
    "parquet.encryption.kms.instance.url", "parquet.encryption.key.access.token",
    "parquet.encryption.kms.instance.id", "spark.hadoop.parquet.encryption.kms.instance.id",
})


def spark_home() -> Path:
    try:
        import pyspark
    except ImportError:
        raise SparkUnavailableError("the Spark engine needs PySpark: "
                                    "pip install 'strongroom[spark]'") from None
    return Path(pyspark.__file__).parent


def class_path(home: Path) -> list[str]:
    """The class path Spark's own launcher gives the JVMs it starts (a driver, the
    executors): its configuration folder, the SLF4J API first, then every jar of Spark's."""
    jars = home / "jars"
    return [str(home / "conf"), *map(str, sorted(jars.glob("slf4j-api-*.jar"))),
            str(jars / "*")]


def client_jar(cache: Path | None = None) -> Path:
    """The key service's Parquet client and the closed web UI's filter, compiled against this
    PySpark's jars (once: the jar is kept under the sources' and Spark's hash)."""
    home = spark_home()
    jars = sorted(p.name for p in (home / "jars").glob("*.jar")
                  if p.name.startswith(("parquet-hadoop-", "jakarta.servlet-api-")))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES)
                            + "".join(jars).encode()).hexdigest()[:16]
    where = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / \
        "strongroom" / "spark"
    jar = where / f"strongroom-kms-{digest}.jar"
    if jar.exists():
        return jar
    javac, jar_tool = shutil.which("javac"), shutil.which("jar")
    if javac is None or jar_tool is None:
        raise SparkUnavailableError("the Spark engine compiles its key client with a JDK; install "
                               "one (apt-get install default-jdk-headless)")
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=where) as scratch:
        classes = Path(scratch) / "classes"
        _run([javac, "-d", str(classes), "-cp", str(home / "jars" / "*"),
              *map(str, SOURCES)])
        made = Path(scratch) / "kms.jar"
        _run([jar_tool, "cf", str(made), "-C", str(classes), "."])
        made.replace(jar)  # whole, or not at all
    return jar


def cluster_properties(secret: str, cleanup_seconds: int = 60) -> dict[str, str]:
    """What a standalone master and each worker must run with (their ``spark-defaults.conf``
    or ``--properties-file``), beside Strongroom's jar on their class path:

    - every connection authenticated with the cluster's secret and encrypted; blocks on disk
      encrypted;
    - no REST submission server (it launches what it is sent with no credentials, and the
      launched code reads the cluster's secret from its environment);
    - the web UIs closed to everyone (:data:`CLOSED_UI_CLASS`; they cannot be switched off,
      and list applications, executors and their logs, and kill them);
    - each finished application's work folder (its executors' output, the jars they
      fetched) removed within ``cleanup_seconds``, and its executors' local files when they
      exit.

    :func:`check_cluster` refuses a master that breaks the first two from outside."""
    return {
        "spark.authenticate": "true",
        "spark.authenticate.secret": secret,
        "spark.network.crypto.enabled": "true",
        "spark.io.encryption.enabled": "true",
        "spark.master.rest.enabled": "false",
        "spark.ui.filters": CLOSED_UI_CLASS,
        "spark.ui.killEnabled": "false",
        "spark.worker.cleanup.enabled": "true",
        "spark.worker.cleanup.interval": str(cleanup_seconds),
        "spark.worker.cleanup.appDataTtl": "0",
        "spark.storage.cleanupFilesAfterExecutorExit": "true",
    }


def check_cluster(settings: SparkSettings, timeout: float = 5.0) -> None:
    """Refuse, before a driver starts, a standalone cluster with an unauthenticated way in;
    every such wall named at once. Probed from outside: a master that answers REST
    submissions or shows its web UI without credentials. Read from inside, through the
    closed UI's filter with a request signed by the cluster's secret (the only thing it
    opens): the settings the master runs with (a REST server bound to any address of its
    own) and its workers, each of whose web UI must be closed too."""
    if not settings.master.startswith("spark://"):
        return  # YARN and Kubernetes submit through their own authenticated services
    problems = []
    for address in settings.master.removeprefix("spark://").split(","):
        host = address.rsplit(":", 1)[0].strip("[]")
        if _http_status(host, settings.rest_port, "/v1/submissions/status/strongroom-check",
                        timeout) is not None:
            problems.append(f"the master {host} answers REST submissions on port "
                            f"{settings.rest_port} (or listens there and cannot be told "
                            "from a REST server), which launch code with no credentials: "
                            f"{REST_OFF}, and let nothing else listen on that port")
        shown = _http_status(host, settings.master_ui_port, "/json/", timeout)
        if shown is None:
            problems.append(f"nothing answers on the master {host}'s web UI port "
                            f"{settings.master_ui_port}, where Strongroom reads the settings "
                            "it runs with and its workers: set master_ui_port to the port "
                            "its UI listens on")
            continue
        if shown not in (401, 403):
            said = "no HTTP answer in time" if shown == NO_ANSWER else f"HTTP {shown}"
            problems.append(f"the master {host} shows its web UI on port "
                            f"{settings.master_ui_port} to anyone ({said}): {CLOSE_UI}")
            continue
        problems += _inside(host, settings, timeout)
    if problems:
        raise SparkUnavailableError("the Spark cluster breaks a wall the enclave needs: "
                                    + "; ".join(problems)
                                    + " (docs/how-to/run-on-spark.md, 'Lock the cluster')")


REST_OFF = "set spark.master.rest.enabled false on it"
CLOSE_UI = (f"set spark.ui.filters {CLOSED_UI_CLASS} on the master and workers, with "
            "Strongroom's jar on their class path")


def _inside(host: str, settings: SparkSettings, timeout: float) -> list[str]:
    """What the master says of itself and its workers to a request signed with the
    cluster's secret (StrongroomClosedUi.java): the walls it breaks. A master that cannot be
    read so is refused: a wall that cannot be checked is not taken on trust."""
    secret = settings.secret()
    where = f"the master {host}'s web UI (port {settings.master_ui_port})"
    if not secret:
        return [f"{where} cannot be asked for its settings and workers without the "
                "cluster's secret: give the engine its secret_file"]
    found = _signed_json(host, settings.master_ui_port, "/strongroom/settings", secret,
                         timeout)
    listed = _signed_json(host, settings.master_ui_port, "/json/", secret, timeout)
    if not isinstance(found, dict) or not isinstance(listed, dict):
        return [f"{where} does not answer a request signed with the cluster's secret for "
                "its settings and workers: run the master and workers with this release's "
                "Strongroom jar and the cluster's secret in their properties file"]
    problems = []
    if str(found.get("spark.master.rest.enabled")).lower() == "true":  # Spark's default: off
        bound = found.get("spark.master.rest.host") or host
        problems.append(f"the master {host} runs a REST submission server (on {bound}, port "
                        f"{found.get('spark.master.rest.port') or REST_PORT}), which launches "
                        f"code with no credentials: {REST_OFF}")
    for worker in listed.get("workers") or []:
        if not isinstance(worker, dict) or worker.get("state") not in (None, "ALIVE"):
            continue
        ui = urllib.parse.urlsplit(str(worker.get("webuiaddress") or ""))
        if ui.hostname is None or ui.port is None:
            problems.append(f"the worker {worker.get('id')} gives no web UI address its "
                            "master can vouch for: it cannot be checked")
            continue
        shown = _http_status(ui.hostname, ui.port, "/json/", timeout)
        if shown is not None and shown not in (401, 403):
            said = "no HTTP answer in time" if shown == NO_ANSWER else f"HTTP {shown}"
            problems.append(f"the worker {worker.get('id')} shows its web UI at "
                            f"{ui.hostname}:{ui.port} to anyone ({said}): {CLOSE_UI}")
    return problems


def _signed_json(host: str, port: int, path: str, secret: str, timeout: float) -> Any:
    """GET ``path`` with the closed UI's proof (HMAC-SHA256 under the cluster's secret of
    the path and this moment); the JSON it answers, or None."""
    import http.client

    moment = str(int(time.time()))
    proof = hmac.new(secret.encode(), f"strongroom-ui:{moment}:{path}".encode(),
                     hashlib.sha256).hexdigest()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"X-Strongroom-Moment": moment,
                                                 "X-Strongroom-Proof": proof})
        answer = connection.getresponse()
        body = answer.read(1 << 20)
        return json.loads(body) if answer.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()


# what a port said when it was not an HTTP status: only a refused connection is closed
NO_ANSWER = -1


def _http_status(host: str, port: int, path: str, timeout: float) -> int | None:
    """The HTTP status ``host:port`` answers ``path`` with; None only if the connection was
    refused (nothing listens). Anything else, a listener that answers late, not at all or not
    in HTTP, is :data:`NO_ANSWER`: it cannot be told from a server that would answer, so it
    is not counted as closed (a loaded master's Jetty can take longer than the timeout)."""
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except ConnectionRefusedError:
        return None
    except (OSError, http.client.HTTPException):
        return NO_ANSWER
    finally:
        connection.close()


# PySpark allows one SparkContext a process: every engine in this process shares it (counted,
# stopped with the last), and each engine's sessions carry their own key service's address
# and token (session settings reach the Parquet reader's Hadoop configuration).
_SHARED: dict[str, Any] = {"session": None, "settings": None, "users": 0, "local": None}
_SHARED_LOCK = threading.Lock()


def open_session(settings: SparkSettings, jar: Path,
                 name: str = "strongroom-enclave") -> SparkSession:
    """A driver on ``settings.master`` with the enclave's walls (see the module's notes);
    shared by the process's engines, so close each with :func:`close_session`."""
    spark_home()
    from pyspark.sql import SparkSession

    with _SHARED_LOCK:
        if _SHARED["session"] is not None:
            if _SHARED["settings"] != settings:
                raise SparkUnavailableError(
                    "this process already drives a Spark cluster with other settings; one "
                    "Strongroom process uses one cluster (PySpark allows one context a "
                    "process)")
            _SHARED["users"] += 1
            return _SHARED["session"]  # type: ignore[no-any-return]
        check_cluster(settings)
        local = Path(tempfile.mkdtemp(prefix="strongroom-spark-driver-"))  # 0700
        quiet = _executor_logging(settings.store)
        walls = {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.eventLog.enabled": "false",
            "spark.network.crypto.enabled": "true",
            "spark.io.encryption.enabled": "true",
            "spark.sql.runSQLOnFiles": "false",
            # no participant's value may make a query fail (sqlguard.harden): with ANSI mode
            # off, a bad cast, a division by zero or an index out of range is NULL, as under
            # DuckDB's TRY; dates that fail to parse are NULL too, not an error naming the value
            "spark.sql.ansi.enabled": "false",
            "spark.sql.legacy.timeParserPolicy": "CORRECTED",
            "spark.sql.legacy.sizeOfNull": "false",  # the length of a NULL list is NULL
            "spark.sql.session.timeZone": "UTC",
            # no ${…} in a query's text is replaced: Spark would put the driver's environment
            # (${env:…}, where the server's keys live), its JVM's properties (${system:…}) or
            # a session setting in place of a string literal that passed the guard
            "spark.sql.variable.substitute": "false",
            "spark.jars": str(jar),
            # the driver's own blocks (broadcasts, results) in a folder of its own, not /tmp
            "spark.local.dir": str(local),
            # executors log nothing: at INFO they write each query's pushed-down predicates
            # (its literals, runtime filters built from the data), and errors can quote values
            "spark.executor.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{quiet}",
            "spark.hadoop.parquet.crypto.factory.class":
                "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory",
            "spark.hadoop.parquet.encryption.kms.client.class": CLIENT_CLASS,
            "spark.authenticate": "true",
        }
        secret = settings.secret()
        if secret:
            walls["spark.authenticate.secret"] = secret
        builder = SparkSession.builder.master(settings.master).appName(name)
        for key, value in {
            "spark.driver.host": settings.driver_host,
            "spark.driver.bindAddress": settings.driver_host,
            "spark.executor.memory": settings.executor_memory,
            "spark.driver.memory": settings.driver_memory,
            "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
            "spark.driver.maxResultSize": "2g",
            **settings.conf, **walls,
        }.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        # the Python each Python function (a GWAS's fits) runs in on the executors: PySpark
        # reads it from PYSPARK_PYTHON when the context starts, which a service should not set
        session.sparkContext.pythonExec = settings.python
        # the driver's log is the server's: Spark's warnings and task failures quote plans and
        # executors' errors (which can hold a value); failures reach the caller as refusals
        # that name their kind only, and nothing of Spark's is logged
        session.sparkContext.setLogLevel("OFF")
        _SHARED.update(session=session, settings=settings, users=1, local=local)
        return session


_QUIET_LOGGING = """\
# Strongroom's executors log nothing: at INFO Spark writes pushed-down predicates, and an
# error's message can quote a value (a pattern, a string that failed to parse)
rootLogger.level = off
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
"""


def _executor_logging(store: Path) -> Path:
    """The executors' log settings (nothing logged), written where every worker reads (the
    cluster's store)."""
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = store / "strongroom-executor-log4j2.properties"
    if not path.exists() or path.read_text() != _QUIET_LOGGING or path.stat().st_mode & 0o077:
        staged = path.with_suffix(".tmp")
        staged.unlink(missing_ok=True)
        staged.touch(mode=0o600)  # the workers' service account's alone
        staged.write_text(_QUIET_LOGGING)
        staged.replace(path)
    return path


def close_session() -> None:
    """One engine is done with the shared context; the last one stops it."""
    with _SHARED_LOCK:
        if _SHARED["session"] is None:
            return
        _SHARED["users"] -= 1
        if _SHARED["users"] <= 0:
            _SHARED["session"].stop()
            shutil.rmtree(_SHARED["local"], ignore_errors=True)
            _SHARED.update(session=None, settings=None, users=0, local=None)


def driver_dir() -> Path | None:
    """Where the running driver writes its blocks (None when none runs)."""
    return _SHARED["local"]  # type: ignore[no-any-return]


def keyed_session(root: SparkSession, keys: KeyService, token: str) -> SparkSession:
    """A session of its own (temporary views no other query sees) whose Parquet reads ask
    ``keys`` for their keys with ``token`` (:meth:`KeyService.grant`)."""
    session = root.newSession()
    session.conf.set("parquet.encryption.kms.instance.url", keys.url)
    session.conf.set("parquet.encryption.kms.instance.id", keys.pin)  # the certificate trusted
    session.conf.set("parquet.encryption.key.access.token", token)
    return session


class LocalCluster:
    """A standalone master and ``workers`` workers on loopback, each worker with ``cores``
    cores and ``memory``; their work and local directories under ``root``."""

    def __init__(self, root: Path, workers: int = 2, cores: int = 1, memory: str = "1g",
                 properties: Mapping[str, str] | None = None):
        self.root = root
        self.workers = workers
        self.cores = cores
        self.memory = memory
        # further settings for the master and workers, after the walls (a custodian trying
        # a setting; a test breaking a wall to see the driver refuse the cluster)
        self.properties = dict(properties or {})
        self.port = _free_port()
        self.ui_port = _free_port()
        self.rest_port = _free_port()  # where REST would answer, were it switched on
        self.secret_file = root / "cluster.secret"
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def master(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> SparkSettings:
        values: dict[str, Any] = {"master": self.master, "store": self.root / "store",
                                  "secret_file": self.secret_file, "executor_memory": "512m",
                                  "shuffle_partitions": 2 * self.workers * self.cores,
                                  "rest_port": self.rest_port, "master_ui_port": self.ui_port}
        return SparkSettings(**{**values, **overrides})

    def start(self, timeout: float = 600.0) -> LocalCluster:
        """Start the master and workers; wait (up to ``timeout`` s: a busy machine's JVMs
        start slowly) until the master leads and every worker has registered."""
        home = spark_home()
        jar = client_jar()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.secret_file.touch(mode=0o600)
        self.secret_file.write_text(secrets.token_hex(32))
        properties = self.root / "cluster.properties"
        properties.touch(mode=0o600)
        walls = cluster_properties(self.secret_file.read_text(), cleanup_seconds=5)
        written = {**walls, "spark.master.rest.port": str(self.rest_port),
                   **self.properties}
        properties.write_text("".join(f"{k} {v}\n" for k, v in written.items()))
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_SCALA_VERSION": "2.13"}
        # as Spark's launcher starts its drivers and executors (the same classes first: a JVM
        # given a class-data archive of them reads them from it), then Strongroom's jar
        classpath = os.pathsep.join([*class_path(home), str(jar)])
        java = ["java", "-Xmx256m", "-cp", classpath]
        self._spawn([*java, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(self.port), "--webui-port", str(self.ui_port),
                     "--properties-file", str(properties)], env, "master")
        for i in range(self.workers):
            local = self.root / f"worker{i}" / "local"
            local.mkdir(parents=True, exist_ok=True)
            self._spawn([*java, "org.apache.spark.deploy.worker.Worker", self.master,
                         "--host", "127.0.0.1", "--cores", str(self.cores),
                         "--memory", self.memory, "--webui-port", "0",
                         "--work-dir", str(self.root / f"worker{i}" / "work"),
                         "--properties-file", str(properties)],
                        {**env, "SPARK_LOCAL_DIRS": str(local)}, f"worker{i}")
        self._wait(timeout)
        return self

    def ui_ports(self) -> list[int]:
        """The ports the master's and workers' web UIs answer on (read from their logs)."""
        ports = []
        for name in ["master", *(f"worker{i}" for i in range(self.workers))]:
            log = (self.root / f"{name}.log").read_text(errors="replace")
            found = re.search(r"Successfully started service '(Master|Worker)UI' on port (\d+)",
                              log)
            if found:
                ports.append(int(found.group(2)))
        return ports

    def local_dirs(self) -> list[Path]:
        """Where the workers and their executors write (shuffles, spills, executor logs)."""
        return [self.root / f"worker{i}" for i in range(self.workers)]

    def _spawn(self, command: list[str], env: dict[str, str], name: str) -> None:
        with open(self.root / f"{name}.log", "wb") as log:  # the process keeps its own copy
            self._processes.append(subprocess.Popen(command, env=env, stdout=log,  # noqa: S603
                                                    stderr=subprocess.STDOUT, cwd=self.root))

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        log = self.root / "master.log"
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            # the master taking work (a cluster of no worker too), and every worker registered
            if LEADING in text and text.count("Registering worker") >= self.workers:
                return
            dead = [p for p in self._processes if p.poll() is not None]
            if dead:
                self.stop()
                raise SparkUnavailableError(f"a Spark process of the local cluster exited; see "
                                       f"the logs in {self.root}")
            time.sleep(0.2)
        self.stop()
        raise SparkUnavailableError(f"the local Spark cluster did not start in {timeout:g} s; "
                                    f"see the logs in {self.root}, or give start() a longer "
                                    "timeout on a busy machine")

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self._processes.clear()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, check=False)  # noqa: S603
    if done.returncode:
        raise SparkUnavailableError(f"{Path(command[0]).name} failed: "
                               + done.stderr.decode(errors="replace")[-2000:])
