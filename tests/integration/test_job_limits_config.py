"""The platform's jobs run under strongroom.yaml's jobs: limits; a section with a mistake
keeps the platform closed, naming it, and changes nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from strongroom.cohort.store import init_store
from strongroom.jobs.sandbox import Limits
from strongroom.platform import Platform
from tests.access_world import SETTINGS


def _configured(root: Path, jobs: dict[str, object]) -> bytes:
    store = init_store(root / "data", key_file=root / "master.key")
    try:
        dataclasses.replace(store.config, jobs=jobs).save(store.root)
    finally:
        store.close()
    return (root / "data" / "strongroom.yaml").read_bytes()


def test_the_jobs_section_sets_the_sandbox_s_limits(tmp_path: Path) -> None:
    _configured(tmp_path, {"wall_seconds": 900, "memory": "2GiB", "low_priority": False})
    with Platform.open(tmp_path / "data", tmp_path / "master.key", settings=SETTINGS) as opened:
        assert opened.jobs.limits == Limits(wall_seconds=900.0, memory_bytes=2 << 30,
                                            low_priority=False)


def test_a_mistake_in_the_section_keeps_the_platform_closed(tmp_path: Path) -> None:
    written = _configured(tmp_path, {"wall_seconds": 900, "memroy": "2GiB"})
    with pytest.raises(ValueError, match=r"jobs: unknown setting 'memroy'.*nothing was opened"):
        Platform.open(tmp_path / "data", tmp_path / "master.key", settings=SETTINGS)
    assert (tmp_path / "data" / "strongroom.yaml").read_bytes() == written
    assert without(tmp_path / "data" / "strongroom.yaml", "memroy")  # the custodian's fix
    with Platform.open(tmp_path / "data", tmp_path / "master.key", settings=SETTINGS) as opened:
        assert opened.jobs.limits == Limits(wall_seconds=900.0)  # the lock was let go


def without(path: Path, key: str) -> bool:
    """The configuration file with one of the jobs: section's settings taken out by hand."""
    data = yaml.safe_load(path.read_text())
    found = data["jobs"].pop(key, None) is not None
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return found
