"""A server warms as it starts: the model libraries loaded and the raw-row scanner's index
built beside the first requests, never fatally."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from strongroom.attacks.world import AttackWorld
from strongroom.server import run


def test_warming_builds_the_index_and_loads_the_model_libraries(tmp_path: Path) -> None:
    world = AttackWorld.build(tmp_path, cohort=300)
    try:
        version = world.platform.enclave.version()
        run._warm(world.platform)
        assert "statsmodels.api" in sys.modules and "formulaic" in sys.modules
        assert version in world.platform.outputs._index._items  # built, not left to a request
    finally:
        world.close()


def test_a_server_that_cannot_warm_says_so_and_serves_on(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise OSError("the cohort's files are not readable")
    with caplog.at_level(logging.ERROR):
        run._warm(SimpleNamespace(outputs=SimpleNamespace(index=broken)))  # type: ignore[arg-type]
    assert "warming the server failed" in caplog.text
