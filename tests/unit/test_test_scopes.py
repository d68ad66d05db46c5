"""The suite's own scheduling (tests/conftest.py): every module that starts the shared Spark
cluster is in the one scope that starts it once."""

from __future__ import annotations

import re

from tests.conftest import SPARK_MODULES, TESTS

# a test or fixture that takes the cluster as a parameter
TAKES_CLUSTER = re.compile(r"def \w+\((?:[^()]|\([^()]*\))*\bspark_cluster\b")


def test_every_module_on_the_shared_cluster_is_in_the_spark_scope() -> None:
    using = {str(path.relative_to(TESTS.parent)) for path in TESTS.rglob("test_*.py")
             if TAKES_CLUSTER.search(path.read_text(encoding="utf-8"))}
    assert using, "no module uses the spark_cluster fixture: is it still in tests/conftest.py?"
    missing = using - SPARK_MODULES
    assert not missing, f"add these to SPARK_MODULES in tests/conftest.py: {sorted(missing)}"


def test_every_module_the_quick_loop_leaves_out_exists() -> None:
    from tests.conftest import QUICK_LOOP_LEAVES_OUT

    missing = [m for m in QUICK_LOOP_LEAVES_OUT if not (TESTS.parent / m).is_file()]
    assert not missing, f"QUICK_LOOP_LEAVES_OUT in tests/conftest.py names no module: {missing}"
