"""strongroom.yaml's jobs: section — the sandbox's limits over its defaults, every problem
named at once, nothing opened with one."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.cohort.store import StoreConfig, StoreError
from strongroom.jobs.sandbox import Limits
from strongroom.jobs.settings import KEYS, job_limits, parse_size


def test_no_section_is_the_sandbox_s_own_limits() -> None:
    assert job_limits(None) == Limits()
    assert job_limits({}) == Limits()
    assert job_limits(None, Limits(processes=3)) == Limits(processes=3)


def test_each_setting_sets_its_limit_and_leaves_the_rest() -> None:
    found = job_limits({"wall_seconds": 600, "cpu_seconds": 1200, "memory": "2GiB",
                        "processes": 16, "file_size": "64MiB", "output_size": 100_000_000,
                        "tmp_size": "512 MB", "shm_size": "1GB", "low_priority": False})
    assert found == Limits(wall_seconds=600.0, cpu_seconds=1200, memory_bytes=2 << 30,
                           processes=16, file_bytes=64 << 20, output_bytes=100_000_000,
                           tmp_bytes=512 * 10**6, shm_bytes=10**9, low_priority=False)
    assert job_limits({"low_priority": False}) == Limits(low_priority=False)
    # every field of Limits can be set, by one name each
    assert len(set(KEYS.values())) == len(KEYS) == len(Limits.__dataclass_fields__)


@pytest.mark.parametrize(("text", "size"), [
    ("8GiB", 8 << 30), ("8 gib", 8 << 30), ("1.5MiB", 3 << 19), ("512MB", 512 * 10**6),
    ("1048576", 1 << 20), (1 << 20, 1 << 20), ("2 TiB", 2 << 40)])
def test_sizes_are_bytes_or_a_number_with_a_unit(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["8 GB of RAM", "lots", "-1MiB", "8Gb/s", True, 1.5e9, None,
                                  [8]])
def test_a_size_that_is_not_one_is_none(text: object) -> None:
    assert parse_size(text) is None


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ValueError) as refused:
        job_limits({"wall_secs": 60, "wall_seconds": 0, "cpu_seconds": 1.5, "memory": "8GB RAM",
                    "processes": True, "tmp_size": 1024, "low_priority": "no"})
    text = str(refused.value)
    for problem in ("unknown setting 'wall_secs'", "wall_seconds: 0 is not a number of seconds",
                    "cpu_seconds: 1.5 is not a whole number", "memory: '8GB RAM' is not a size",
                    "processes: True is not a whole number", "tmp_size: 1024 is not a size of at "
                    "least 1MiB", "low_priority: 'no' is not true or false"):
        assert problem in text, (problem, text)
    assert text.startswith("strongroom.yaml's jobs: ") and text.endswith("nothing was opened")


@pytest.mark.parametrize("wall", [float("nan"), float("inf"), -5, 8 * 24 * 3600, "3600"])
def test_a_wall_time_that_is_no_wall_is_refused(wall: object) -> None:
    with pytest.raises(ValueError, match=r"wall_seconds: .* is not a number of seconds"):
        job_limits({"wall_seconds": wall})


def test_the_section_is_read_and_written_with_the_store_s_configuration(tmp_path: Path) -> None:
    config = StoreConfig("s", "k", None, jobs={"wall_seconds": 900, "memory": "4GiB"})
    config.save(tmp_path)
    loaded = StoreConfig.load(tmp_path)
    assert loaded == config
    assert job_limits(loaded.jobs) == Limits(wall_seconds=900.0, memory_bytes=4 << 30)
    (tmp_path / "strongroom.yaml").write_text("store_id: s\nkey_id: k\nkey_file: null\n"
                                              "jobs: [wall_seconds]\n")
    with pytest.raises(StoreError, match="jobs: is a mapping"):
        StoreConfig.load(tmp_path)
