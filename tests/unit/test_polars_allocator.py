"""Polars' own allocator gives freed pages back at once where Strongroom loads it (issue 56:
what one request's rows took stayed in the host and the next request's peak stood on it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import strongroom

# a process that loads Strongroom, then Polars, makes and drops about 300 MB of frames, and
# reports its resident size with them and straight after
_PROBE = """
import gc, json, os
import strongroom  # first, as every entry point does
import numpy as np
import polars as pl

def resident():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) / 1024

frame = pl.DataFrame({"a": np.random.default_rng(1).random(10_000_000)})
made = frame.with_columns((pl.col("a") * 2).alias("b")).sort("a")
del frame
gc.collect()
held = resident()
del made
gc.collect()
print(json.dumps({"conf": os.environ.get("_RJEM_MALLOC_CONF"), "held": held,
                  "after": resident()}))
"""


def _probe(conf: str | None) -> dict[str, float | str | None]:
    env = {k: v for k, v in os.environ.items() if k != strongroom.MALLOC_CONF}
    if conf is not None:
        env[strongroom.MALLOC_CONF] = conf
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, check=True, timeout=120)
    found: dict[str, float | str | None] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_strongroom_sets_polars_allocator_and_the_pages_come_back_at_once() -> None:
    found = _probe(None)
    # Polars puts its own defaults first; the later settings are the ones jemalloc keeps
    assert str(found["conf"]).endswith("," + strongroom.POLARS_MALLOC)
    held, after = float(found["held"] or 0), float(found["after"] or 0)
    # the frame's 160 MB (two columns of 10,000,000 floats) gone from the process at once
    assert held - after > 120, found


def test_the_setting_is_what_gives_them_back() -> None:
    # a custodian's own setting is kept and is what decides: with pages never given back (not
    # Polars' own 0.5 s decay, a race on a slow machine) the frames' pages are still held after
    kept = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
    found = _probe(kept)
    assert str(found["conf"]).endswith("," + kept), found
    held, after = float(found["held"] or 0), float(found["after"] or 0)
    assert held - after < 60, found
