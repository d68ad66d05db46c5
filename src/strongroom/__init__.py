"""Strongroom: a trusted research environment for sensitive health cohorts."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# Polars allocates from a jemalloc of its own (its symbols prefixed ``_rjem_``), which keeps
# freed pages for half a second to a second (Polars sets ``dirty_decay_ms:500,
# muzzy_decay_ms:1000`` and appends ``_RJEM_MALLOC_CONF``, whose settings then win: polars
# issue 18088, pull 21829), out of reach of glibc's ``malloc_trim`` and Arrow's pool, and
# reuses them only for what fits them:
# on the Spark engine what one request's rows took (hundreds of MB at 5,000,000 participants)
# stayed in the process and the next request's peak was on top of it (BENCHMARKS.md, issue
# 56, session 49). Pages are given back as they are freed. jemalloc reads this once, when
# Polars is first loaded: it is set here, before any of Strongroom's modules loads Polars,
# unless the process has loaded Polars already or its environment says otherwise
# (``_RJEM_MALLOC_CONF`` set by a custodian is theirs). Measured: about 10 % more time on
# Polars-heavy work, the pages faulted in again.
MALLOC_CONF = "_RJEM_MALLOC_CONF"
POLARS_MALLOC = "dirty_decay_ms:0,muzzy_decay_ms:0"
if "polars" not in _sys.modules:
    _os.environ.setdefault(MALLOC_CONF, POLARS_MALLOC)
