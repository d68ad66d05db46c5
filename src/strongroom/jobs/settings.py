"""The sandbox's limits from ``strongroom.yaml``'s ``jobs:`` section, over the defaults.

    jobs:
      wall_seconds: 3600      # a run's wall time, whatever an action's expected_seconds
      cpu_seconds: 14400      # CPU seconds per process (an rlimit)
      memory: 8GiB            # the control group's memory (bytes, or with KiB/MiB/GiB, KB/MB/GB)
      processes: 64
      file_size: 256MiB       # any one file it writes
      output_size: 512MiB     # its output folder
      tmp_size: 1GiB          # /tmp
      shm_size: 256MiB        # /dev/shm
      low_priority: true      # nice 10 in a CPU group of low weight: the server's requests first

Every problem is named at once, and the platform does not open with any of them: a limit
mistyped would otherwise be a wall silently left where it was.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from strongroom.jobs.sandbox import Limits

# the section's names and the Limits field each sets (sizes are written as sizes, not bytes)
_SECONDS = {"wall_seconds": "wall_seconds"}
_COUNTS = {"cpu_seconds": "cpu_seconds", "processes": "processes"}
_SIZES = {"memory": "memory_bytes", "file_size": "file_bytes", "output_size": "output_bytes",
          "tmp_size": "tmp_bytes", "shm_size": "shm_bytes"}
_SWITCHES = {"low_priority": "low_priority"}
KEYS = {**_SECONDS, **_COUNTS, **_SIZES, **_SWITCHES}
MAX_WALL_SECONDS = 7 * 24 * 3600.0  # a week: more is a mistake (a job holds the one job slot)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(value: object) -> int | None:
    """A size in bytes (an integer, or a number with a unit: ``8GiB``, ``512 MB``), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or (found := _SIZE.match(value)) is None:
        return None
    unit = _UNITS.get(found.group(2).lower())
    return None if unit is None else int(float(found.group(1)) * unit)


def job_limits(config: Any, default: Limits | None = None) -> Limits:
    """``jobs:`` over ``default`` (the sandbox's own limits); ValueError naming every problem."""
    base = default if default is not None else Limits()
    if config is None:
        return base
    if not isinstance(config, Mapping):
        raise ValueError("strongroom.yaml's jobs: is a mapping of the sandbox's limits "
                         f"({', '.join(KEYS)}), not {type(config).__name__}")
    problems = [f"unknown setting {k!r} (known: {', '.join(KEYS)})"
                for k in sorted(map(str, set(config) - set(KEYS)))]
    values: dict[str, Any] = {}
    for key, value in config.items():
        if key in _SECONDS:
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value) and 0 < value <= MAX_WALL_SECONDS):
                problems.append(f"{key}: {value!r} is not a number of seconds from 1 to "
                                f"{MAX_WALL_SECONDS:g}")
            else:
                values[_SECONDS[key]] = float(value)
        elif key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{key}: {value!r} is not a whole number of at least 1")
            else:
                values[_COUNTS[key]] = value
        elif key in _SIZES:
            size = parse_size(value)
            if size is None or size < 1 << 20:
                problems.append(f"{key}: {value!r} is not a size of at least 1MiB (bytes, or "
                                f"a number with KiB, MiB, GiB, KB, MB or GB)")
            else:
                values[_SIZES[key]] = size
        elif key in _SWITCHES:
            if not isinstance(value, bool):
                problems.append(f"{key}: {value!r} is not true or false")
            else:
                values[_SWITCHES[key]] = value
    if problems:
        raise ValueError("strongroom.yaml's jobs: " + "; ".join(problems)
                         + "; nothing was opened")
    return replace(base, **values)
