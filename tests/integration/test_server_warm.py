"""A server warms as it starts: the model libraries loaded and the raw-row scanner's index
built beside the first requests, never fatally."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from strongroom.attacks.world import AttackWorld
from strongroom.jobs import sandbox
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


def test_a_server_stopped_while_warming_stops_its_warm_up_before_it_returns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM during the warm-up (under load its imports take many seconds): the caller
    closes the platform, and the interpreter finalises, only once the warm-up has stopped,
    and the step after the one in progress is not begun."""
    importing, imported = threading.Event(), threading.Event()
    built: list[str] = []

    def slow_preload() -> None:
        importing.set()
        imported.wait(30)

    def served(*_: object, **__: object) -> None:  # up, then told to stop mid-import
        assert importing.wait(30)
        threading.Timer(0.5, imported.set).start()

    monkeypatch.setattr(run, "preload", slow_preload)
    monkeypatch.setattr(run.uvicorn, "run", served)
    monkeypatch.setattr(run, "create_app", lambda *_: None)
    monkeypatch.setattr(run.signal, "signal", lambda *_: None)  # not this process's SIGTERM
    nothing = SimpleNamespace(recover=lambda: [])
    platform = SimpleNamespace(jobs=SimpleNamespace(recover=lambda: [], limits=sandbox.Limits()),
                               runs=nothing,
                               outputs=SimpleNamespace(index=lambda: built.append("index")))
    run.serve(platform)  # type: ignore[arg-type]
    assert imported.is_set()  # waited for the import in progress
    assert not [t for t in threading.enumerate() if t.name == "strongroom-warm"]
    assert built == []  # and began nothing after it


def test_a_server_freezes_what_it_built_before_it_takes_a_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The app and every module imported are left out of the collector's walks (each Spark
    request collects) before uvicorn takes a request, so that no request's objects are."""
    seen: list[int] = []
    monkeypatch.setattr(run, "create_app", lambda *_: [[] for _ in range(1000)])
    monkeypatch.setattr(run.uvicorn, "run", lambda app, **_: seen.append(gc.get_freeze_count()))
    monkeypatch.setattr(run.signal, "signal", lambda *_: None)
    nothing = SimpleNamespace(recover=lambda: [])
    platform = SimpleNamespace(jobs=SimpleNamespace(recover=lambda: [], limits=sandbox.Limits()),
                               runs=nothing)
    before = gc.get_freeze_count()
    run.serve(platform, warm=False)  # type: ignore[arg-type]
    assert seen and seen[0] >= before + 1000
