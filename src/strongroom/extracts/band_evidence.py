"""Evidence from where a suspect's bands start (the band-origin carrier, ``bands.py``).

**Reading a copy.** A suspect column of band labels (``"1941–1945"``, ``"[1.3, 1.8)"``) tells
its width ``W`` and, when 90% of its values are labels starting at the same offset modulo
``W``, its origin ``r = start mod W`` (a share of values, not every label: one junk row must
not hide the origin). Copies mixed or re-banded so that no width and origin hold 90% of the
values give no reading and no evidence. Which field the column holds is decided from the
suspect and the cohort only — its name when it is a storage column, otherwise the numeric
quasi-identifier whose cohort values, banded at ``(W, r)``, have the nearest label
distribution — never from any extract's key.

**The test.** For extract ``j``, the *considered* fields are the fields the copy shows in
bands that ``j`` was granted (``q`` of them: fixed by the file and the grant). Field ``i``
*matches* when ``j`` released it in bands of width ``W`` starting at ``r`` (its project's band
key decides; when the project holds other registered extracts they band alike, a match cannot
tell them apart, and ``j`` gets no band evidence at all: ``BandEvidence.shared``). Under the null
hypothesis (the file holds nothing of ``j``'s copy, so the file is independent of ``j``'s key)
a match needs ``o_{j,i} = r_i``, and ``o_{j,i}`` is uniform on ``CHOICES`` origins whatever the
file, the data and the rest of ``j``'s key material are: so the matches ``S`` are dominated by
independent Bernoulli(1/``CHOICES``) indicators ``S'``. (The width the gate chose may depend on
the origin; that only makes a match rarer.) The p-value is the exact tail
``P(Binomial(q, 1/CHOICES) ≥ s)`` — ``CHOICES^−q`` when every considered field matches, the
product of 1/``CHOICES`` per field; a single mismatch costs more than one factor, which is
what keeps the product honest. Alone this can never approach 10⁻⁹; its worth is beside
membership.

**With membership.** ``accuse`` names by the best kind, each kind's p-value divided by its
weight, so a product of two kinds' p-values needs its own law: for independent valid p-values
``P₁`` (membership) and ``P₂``, ``P(P₁·P₂ ≤ t)`` can exceed ``t`` (for two uniforms it is
``t(1 − ln t)``). Here the second factor is discrete and its law is known, so with
``Q = P₁ · CHOICES^−s``:

``P(Q ≤ t) ≤ Σₐ P(S' = a) · P(P₁ ≤ t·K^a) ≤ Σₐ C(q, a) (1/K)^a (1 − 1/K)^(q−a) · min(1, t·K^a)``

(K = ``CHOICES``), and this sum is the "bands" kind's bound. It needs ``P₁`` independent of the
origins under the null: given everything membership depends on (the file and the key's
withholding outputs), each origin index is still exactly uniform (its PRF input differs), so
the bound holds conditionally and hence overall. Far in the tail it is ``t·(2 − 1/K)^q``: a
matched field multiplies the membership p-value by ``(2 − 1/K)/K`` (0.44 for K = 4), a
considered field that does not match by ``2 − 1/K``. Without membership positions (``P₁ ≡ 1``)
it is the exact tail above.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import gammaln

from strongroom.cohort.dictionary import Dictionary
from strongroom.extracts.bands import CHOICES, Banded
from strongroom.privacy import fields, hierarchies

_INTEGER = re.compile(r"\s*(-?\d+)\s*[–-]\s*(-?\d+)\s*")
_NUMBER = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_INTERVAL = re.compile(rf"\s*\[\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)\s*")
MAX_DISTANCE = 0.1  # largest total-variation distance at which a column is taken as a field's
MARGIN = 0.05  # by how much the nearest field must beat the next
MAX_LABELS = 10_000  # a column with more distinct labels is not one of bands
# bounds beyond this are no cohort value's band, and banding the cohort at such a width would
# overflow 64-bit integers: a junk column of them must read as no bands, not stop attribution
MAX_BOUND = 2.0**53
READ_SHARE = 0.9  # share of a column's values that must be bands of one width and origin


@dataclass(frozen=True)
class Reading:
    """What one suspect column's band labels say."""

    column: str
    width: float
    integer: bool
    residue: float | None  # every start mod width; None: the starts disagree
    field_id: int | None = None  # the cohort field it holds, when one was recognised


def read_labels(column: str, series: pl.Series) -> Reading | None:
    """The width and origin of a column of band labels; None if it is not one.

    Read from the share of values, not from every distinct label: when at least
    ``READ_SHARE`` of the column's values (blanks and ``*`` aside) are labels of one width
    and one origin, that is the reading, whatever the rest holds — one junk row must not hide
    a copy's origin (from this evidence and from the class reading, which takes its origin
    from here). Otherwise labels of one width whose origins disagree read with no origin
    (``residue`` None), and anything else is not a column of bands."""
    if series.dtype != pl.String:
        return None
    labels = series.drop_nulls().str.strip_chars()
    labels = labels.filter((labels != "") & (labels != hierarchies.ANY))
    if labels.is_empty():
        return None
    counts = labels.value_counts()
    if counts.height > MAX_LABELS:
        return None
    groups: dict[tuple[bool, float, float], int] = {}
    widths: set[tuple[bool, float]] = set()
    parsed = 0
    for label, count in counts.iter_rows():
        found = _parse(str(label))
        if found is None:
            continue
        integer, low, width = found
        residue = float(np.mod(low, width))
        if math.isclose(residue, width, abs_tol=1e-9 * width):
            residue = 0.0
        residue = round(residue, 9)
        group = next((g for g in groups if g[:2] == (integer, width)
                      and math.isclose(g[2], residue, abs_tol=1e-9 * width)),
                     (integer, width, residue))
        groups[group] = groups.get(group, 0) + int(count)
        widths.add((integer, width))
        parsed += int(count)
    if not groups:
        return None
    (integer, width, residue), most = max(groups.items(), key=lambda item: item[1])
    if most >= READ_SHARE * labels.len():
        return Reading(column, width, integer, residue)
    if parsed == labels.len() and len(widths) == 1:
        return Reading(column, width, integer, None)  # one width, origins that disagree
    return None


def _parse(label: str) -> tuple[bool, float, float] | None:
    """A band label's (integer?, start, width); None if it is not one."""
    if (found := _INTEGER.fullmatch(label)) is not None:
        low, high = float(found[1]), float(found[2])
        integer, width = True, high - low + 1
    elif (found := _INTERVAL.fullmatch(label)) is not None:
        low, high = float(found[1]), float(found[2])
        integer, width = False, round(high - low, 9)
    else:
        return None
    if not (abs(low) <= MAX_BOUND and abs(high) <= MAX_BOUND) or not 0 < width < MAX_BOUND:
        return None
    return integer, low, width


def readings(suspect: pl.DataFrame, master: pl.DataFrame,
             dictionary: Dictionary) -> list[Reading]:
    """Every suspect column of band labels, with the cohort field it holds when recognised."""
    candidates = {c: f.field_id for c in master.columns
                  if (f := fields.field_of(c, dictionary)) is not None
                  and f.role in fields.QUASI_IDENTIFYING_ROLES and f.is_numeric
                  and master[c].dtype.is_numeric()}
    out = []
    for column in suspect.columns:
        found = read_labels(column, suspect[column])
        if found is None:
            continue
        if found.residue is not None:
            field_id = (candidates.get(column) if column in candidates
                        else _nearest(suspect[column], found, master, candidates))
            found = Reading(found.column, found.width, found.integer, found.residue, field_id)
        out.append(found)
    return out


def _nearest(labels: pl.Series, reading: Reading, master: pl.DataFrame,
             candidates: Mapping[str, int]) -> int | None:
    """The field whose cohort values, banded like the suspect, look most like it."""
    assert reading.residue is not None
    rule = hierarchies.Bands(reading.width, reading.integer, reading.residue)
    seen = _shares(labels)
    distances = sorted(
        (_distance(seen, _shares(rule.apply(master[c]))), field_id)
        for c, field_id in candidates.items())
    if not distances or distances[0][0] > MAX_DISTANCE:
        return None
    if len(distances) > 1 and distances[1][1] != distances[0][1] \
            and distances[1][0] < distances[0][0] + MARGIN:
        return None  # two fields fit about as well: no reading
    return distances[0][1]


def _shares(labels: pl.Series) -> dict[str, float]:
    kept = labels.drop_nulls().str.strip_chars()
    kept = kept.filter(kept != hierarchies.ANY)
    if kept.is_empty():
        return {}
    counts = kept.value_counts()
    total = float(kept.len())
    return {str(k): float(n) / total for k, n in counts.iter_rows()}


def _distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if not a or not b:
        return 1.0
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in {*a, *b})


@dataclass(frozen=True)
class BandEvidence:
    """One extract's band-origin evidence in a suspect file."""

    considered: int  # fields the copy shows in bands that the extract was granted
    matched: int  # of them released by the extract in the copy's bands (width and origin)
    log_p: float  # ln P(Binomial(considered, 1/CHOICES) ≥ matched): the bands alone
    not_theirs: tuple[int, ...] = ()  # considered fields whose bands are not this extract's
    # another registered extract of its project bands alike, so a match says "this project",
    # not "this extract": no evidence against the extract (log_p 0), the match still shown
    shared: bool = False


def evidence(found: Sequence[Reading],
             extracts: Mapping[str, tuple[bytes, frozenset[int], tuple[Banded, ...], bool]]
             ) -> dict[str, BandEvidence]:
    """Each extract's evidence: ``extracts`` maps its id to (its project's band key, granted
    fields, banded, shared), ``shared`` when another registered extract of the same project
    exists (it bands alike: under the null the file may be that one's, so no evidence)."""
    shown = _by_field(found)
    out = {}
    for extract_id, (key, granted, banded, shared) in extracts.items():
        considered = sorted(set(shown) & granted)
        released = {b.field_id: b for b in banded if b.field_id is not None}
        matched = [f for f in considered if f in released
                   and _same(released[f], key, *shown[f])]
        out[extract_id] = BandEvidence(
            len(considered), len(matched),
            0.0 if shared else log_upper_tail(len(matched), len(considered)),
            tuple(f for f in considered if f not in matched), shared)
    return out


def _by_field(found: Sequence[Reading]) -> dict[int, tuple[float, float]]:
    """Field → (width, origin); a field shown twice in different bands: dropped."""
    seen: dict[int, set[tuple[float, float]]] = {}
    for r in found:
        if r.field_id is not None and r.residue is not None:
            seen.setdefault(r.field_id, set()).add((r.width, r.residue))
    return {f: next(iter(v)) for f, v in seen.items() if len(v) == 1}


def _same(banded: Banded, key: bytes, width: float, residue: float) -> bool:
    tolerance = 1e-6 * banded.unit
    return (abs(banded.width - width) <= tolerance
            and abs(banded.origin(key) - residue) <= tolerance)


def _log_binom(q: int, a: int) -> float:
    p = 1.0 / CHOICES
    return float(gammaln(q + 1) - gammaln(a + 1) - gammaln(q - a + 1)
                 + a * math.log(p) + (q - a) * math.log1p(-p))


def log_upper_tail(matched: int, considered: int) -> float:
    """``ln P(Binomial(considered, 1/CHOICES) ≥ matched)``, exactly."""
    if matched <= 0:
        return 0.0
    terms = [_log_binom(considered, a) for a in range(matched, considered + 1)]
    return min(0.0, float(np.logaddexp.reduce(terms)))


def combined_log_p(bands: BandEvidence, membership_log_p: float, membership_held: bool
                   ) -> float:
    """ln of the bound on ``P(P₁ · CHOICES^−s ≤ t)`` at the observed ``t`` (module docstring);
    0 when the copy shows no field the extract was granted. ``membership_held``: whether the
    membership test had any participant to count (otherwise ``P₁ ≡ 1``)."""
    q, s = bands.considered, bands.matched
    if q == 0 or bands.shared:
        return 0.0
    if not membership_held:
        return bands.log_p
    log_t = min(membership_log_p, 0.0) - s * math.log(CHOICES)
    terms = [_log_binom(q, a) + min(0.0, log_t + a * math.log(CHOICES))
             for a in range(q + 1)]
    return min(0.0, float(np.logaddexp.reduce(terms)))
