"""Keyed margins: whether a group reaches the threshold, told without a fixed line to find.

Every decision "is this group held by k?" (a count shown or suppressed, a category standing or
counted in the most common, a label shown or left out, the rank a clip is set at) answers one
question about its members. With the line fixed at k, k − 1 accomplices and the target make a
group that reaches it only if the target has the value asked about: the suite's "exactly k"
attacks. So each such decision is taken at k plus a margin from 0 to k − 1, drawn by a keyed
hash (HMAC-SHA-256) of a secret of the project, the request's lineage (its text and the text
and making of every definition it reads, see ``enclave.service.decision_key``) and the
decision's own name (the column, the category, the cell).

Why keyed by the request and not by the data: a margin drawn from the group's members (as the
size verdict once was) can be calibrated, since the attacker can build the group "accomplices
and the target" unconditionally, read whether it stands, and only then ask the conditional
question whose one outcome has that very group. A request that reads the target's value is
never the text of a calibrating request, so its draw is its own. The same request over the same
data always gets the same answer (a release can be reproduced); a reworded one draws afresh,
so what repeated rewordings give is a noisy bit (the odds move by at most one in k per answer),
each answer metered, rationed when the check acts, and watched.

The key lives in a context variable, set by the output service around one request's enclave
run and check (``keyed``): the enclave's own tests, which run without it, see the plain k.

A draw hides the bit only if it is drawn once: one output of 300 copies of "k − 1
accomplices and the target if obese", each named apart, drew 300 lines, and some copy of the
obese target's group stood; 300 copies of one count, each rounded by its own draw, averaged
to the exact count. So a decision about a group is named by its members (``of``), not by
where it is shown: copies of a group share one draw and one rounding. (A calibrating copy,
the accomplices and the target unconditionally, shares the obese target's draw: it then
tells the bit when its group stands, about one request in k, no more than the draw alone
gave; the lean target's group is a different one, k − 1 apart, and hidden as a difference.)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import numpy.typing as npt

_KEY: ContextVar[bytes | None] = ContextVar("strongroom_margin_key", default=None)
# decisions short of k itself (not by a draw), by kind: a group surely that small, which the
# watch reads as an attempt (a drawn line is not evidence of one); never shown to anyone
_SURE: ContextVar[dict[str, int] | None] = ContextVar("strongroom_margin_sure", default=None)


# The threshold's decision on a group of people, by name: a count shown or hidden, and a
# category kept or counted in the most common, take the same draw for the same members, so a
# category kept passes the threshold of its own count (two draws were two questions asked)
THRESHOLD = ("threshold", "participants are behind it")


@contextmanager
def keyed(key: bytes) -> Iterator[None]:
    """Decisions taken inside draw their margins from ``key`` (one request's)."""
    if len(key) < 16:
        raise ValueError("a margin key needs at least 16 bytes")
    token = _KEY.set(key)
    tally = _SURE.set({})
    try:
        yield
    finally:
        _SURE.reset(tally)
        _KEY.reset(token)


def sure() -> dict[str, int]:
    """How many decisions of this request, by kind (their names' first part), fell below k
    itself so far: a copy, so that a caller can count one stretch of work."""
    return dict(_SURE.get() or {})


def reach(k: int, *what: object) -> int:
    """The size a group named ``what`` must reach: ``k`` plus a keyed margin in [0, k − 1]
    (just ``k`` outside a keyed request, or when k < 2)."""
    key = _KEY.get()
    if key is None or k < 2:
        return k
    digest = hmac.new(key, repr(what).encode(), hashlib.sha256).digest()
    return k + int.from_bytes(digest[:8], "big") % k


def short(n: int, k: int, *what: object, members: npt.ArrayLike | None = None) -> bool:
    """Whether a group of ``n`` named ``what`` falls short of its line: below k always, from
    2k − 1 never, between by its draw (hashed only there, where it decides). ``members``:
    the group's (or the difference's) IDs, which then name it (``of``), so that copies of
    one group share the draw."""
    if n < k or n >= highest(k):
        tally = _SURE.get()
        if n < k and tally is not None and what:
            tally[str(what[0])] = tally.get(str(what[0]), 0) + 1
        return n < k
    return n < reach(k, *what, *(() if members is None else (of(members),)))


def salt() -> bytes:
    """The request's key, for other keyed draws of the request (steps.Rounding); empty
    outside a keyed request."""
    return _KEY.get() or b""


def highest(k: int) -> int:
    """The most ``reach`` can ask of a group: 2k − 1 in a keyed request."""
    return 2 * k - 1 if _KEY.get() is not None and k >= 2 else k


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F], dtype=np.uint64)


def of(ids: npt.ArrayLike) -> tuple[int, int, int]:
    """A group named by its members (distinct, in any order): its size and two wrapped sums of
    its IDs mixed by odd constants. Vectorised, so naming a table's every cell costs about a
    millisecond per 500,000 IDs; two different groups share a name by chance about once in
    2¹²⁸, and a crafted collision only makes two decisions share a draw."""
    x = np.ascontiguousarray(ids)
    x = x.view(np.uint64) if x.dtype.itemsize == 8 else x.astype(np.uint64)  # floats: bits
    with np.errstate(over="ignore"):
        first = int((x * _MIX[0]).sum(dtype=np.uint64))
        second = int(((x ^ _MIX[1]) * _MIX[0]).sum(dtype=np.uint64))
    return int(x.size), first, second
