"""The suite's own scheduling (tests/conftest.py): every module that starts the shared Spark
cluster is in the one scope that starts it once."""

from __future__ import annotations

import re

import pytest

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


def test_every_long_scope_dealt_first_is_a_scope_of_the_suite() -> None:
    """LONG_SCOPES names scopes as the scheduler makes them: the two shared ones, or a module
    that is its own scope (or is split into several: each gets its share of the seconds)."""
    from tests.conftest import BROWSER_IDS, LONG_SCOPES, SPLIT_INTO_SCOPES, scope_seconds

    for scope in LONG_SCOPES:
        if scope in ("spark", "browser"):
            continue
        assert (TESTS.parent / scope).is_file(), f"LONG_SCOPES in tests/conftest.py: {scope}?"
        assert scope not in SPARK_MODULES and not scope.startswith(BROWSER_IDS), \
            f"{scope} runs in a shared scope: name that scope in LONG_SCOPES instead"
    split = next(iter(SPLIT_INTO_SCOPES))
    assert scope_seconds(f"{split}::0") * SPLIT_INTO_SCOPES[split] == \
        pytest.approx(LONG_SCOPES.get(split, 0))
    assert scope_seconds("tests/unit/test_test_scopes.py") == 0
