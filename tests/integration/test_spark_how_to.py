"""docs/how-to/run-on-spark.md walked as written (issue 55), against the session's loopback
cluster (tests/conftest.py ``spark_cluster``): its properties script run as printed, its
``engine:`` example read by the same code that reads strongroom.yaml, its two curl checks run
against the cluster's ports, the section a LocalCluster prints pasted into a data directory's
strongroom.yaml and a researcher's query answered there, on the cluster, and its test command
named as the suite has it. What the page promises of the walls is
test_cluster_walls.py's and test_redteam_cluster.py's; here the page's own words are held.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from strongroom.enclave import engines
from strongroom.enclave.spark.cluster import LocalCluster, cluster_properties
from strongroom.enclave.spark.engine import SparkEngine
from strongroom.outputs.render import Format
from strongroom.outputs.verdicts import Verdict
from tests.access_world import World, build_world
from tests.conftest import SPARK_MODULES

pytestmark = [pytest.mark.spark, pytest.mark.slow]

PAGE = Path(__file__).parents[2] / "docs" / "how-to" / "run-on-spark.md"
TEXT = PAGE.read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.S)


@pytest.fixture(scope="module")
def cluster(spark_cluster: LocalCluster) -> LocalCluster:
    return spark_cluster


def test_the_properties_script_prints_every_setting_the_table_explains(tmp_path: Path) -> None:
    script = next(b for b in _blocks("python") if "cluster_properties" in b)
    secret = tmp_path / "spark.secret"
    secret.write_text("a" * 64 + "\n")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(script.replace("/etc/strongroom/spark.secret", str(secret)), {})
    lines = printed.getvalue().splitlines()
    properties = dict(line.split(" ", 1) for line in lines[:-1])
    assert properties == cluster_properties("a" * 64)
    assert Path(lines[-1]).suffix == ".jar" and Path(lines[-1]).exists()
    table = TEXT[TEXT.index("| setting | why |"):TEXT.index("The closed UI is")]
    explained = re.findall(r"`(spark\.[\w.]+)(?: ([^`]+))?`", table)
    assert len(explained) >= 10, explained
    for key, value in explained:
        assert key in properties, f"the table explains {key}, which the script does not print"
        if value and key != "spark.authenticate.secret":
            assert properties[key] == value, (key, properties[key], value)


def test_the_engine_example_is_read_as_strongroom_yaml_reads_it(tmp_path: Path) -> None:
    example = yaml.safe_load(next(b for b in _blocks("yaml") if "kind: spark" in b))["engine"]
    settings = dict(example)
    limits = settings.pop("limits")
    floor = settings.pop("floor_seconds")
    settings.pop("kind")
    from strongroom.enclave.spark.cluster import SparkSettings

    read = SparkSettings.from_config(settings)  # every key known, nothing refused
    assert str(read.store) == example["store"] and read.conf == {"spark.executor.cores": "4"}
    assert engines.limits_from(limits, engines.SPARK_LIMITS).seconds == 300
    # the page's default: 300 s on a cluster, DuckDB's 10 s
    assert engines.SPARK_LIMITS.seconds == 300 and engines.DUCKDB_LIMITS.seconds == 10
    # the answers' floors: the page's figure is the default, and DuckDB's is 0
    assert engines.floor_seconds_from(floor, 0.0) == engines.SPARK_FLOOR_SECONDS == 30
    assert engines.DUCKDB_FLOOR_SECONDS == 0
    # "Every problem in the section is named at once"
    with pytest.raises(ValueError) as refused:
        SparkSettings.from_config({"mastr": "x", "conf": {"spark.io.encryption.enabled": "false"}})
    for named in ("unknown setting 'mastr'", "'store' is required",
                  "conf 'spark.io.encryption.enabled' switches off a wall the enclave needs"):
        assert named in str(refused.value), (named, refused.value)


def test_the_curl_checks_answer_as_the_page_says(cluster: LocalCluster) -> None:
    block = next(b for b in _blocks("sh") if "curl" in b)
    answers = []
    for line in block.splitlines():
        command, expected = line.split("#", 1)
        command = (command.replace("spark-master.internal:6066", f"127.0.0.1:{cluster.rest_port}")
                   .replace("spark-master.internal:8080", f"127.0.0.1:{cluster.ui_port}"))
        ran = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
        answers.append((ran.stdout.strip(), re.search(r"\d{3}", expected)))
    assert [(got, want.group() if want else None) for got, want in answers] == \
        [("000", "000"), ("403", "403")]


def test_the_local_cluster_snippet_is_the_api_it_names() -> None:
    snippet = next(b for b in _blocks("python") if "LocalCluster" in b)
    assert "LocalCluster(Path(" in snippet and "workers=2" in snippet
    assert "cluster.settings().yaml()" in snippet
    # "up to 600 s … cluster.start(timeout=…) changes it"
    assert inspect.signature(LocalCluster.start).parameters["timeout"].default == 600.0
    assert "up to 600 s" in TEXT and "cluster.start(timeout=" in TEXT


@pytest.fixture(scope="module")
def pasted(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A data directory whose strongroom.yaml holds what the LocalCluster printed, pasted."""
    printed = cluster.settings().yaml()
    assert printed.startswith("engine:\n  kind: spark\n")
    found = build_world(tmp_path_factory.mktemp("spark-how-to"), cohort=400,
                        engine=yaml.safe_load(printed)["engine"])
    yield found
    found.platform.close()


def test_the_printed_section_pasted_answers_a_researcher_on_the_cluster(pasted: World) -> None:
    assert isinstance(pasted.platform.enclave.engine, SparkEngine)
    assert pasted.researcher is not None
    who = pasted.sign_in(pasted.researcher)
    counted = pasted.platform.outputs.analyse(who, pasted.project_id, {
        "kind": "aggregate_sql",
        "sql": "SELECT p31 AS sex, count(*) AS n FROM participants GROUP BY p31"},
        Format("json"))
    assert counted.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), counted.report.findings


def test_the_test_command_names_the_suite_as_it_is() -> None:
    command = next(b for b in _blocks("sh") if "pytest" in b).split()
    modules = [part for part in command if part.endswith(".py")]
    assert command[:3] == [".venv/bin/pytest", "-m", "spark"] and modules
    for module in modules:
        assert Path(module).exists() and module in SPARK_MODULES, module
