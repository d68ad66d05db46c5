"""How far from being named an innocent recipient must stay in the attribution tests.

An innocent's p-value is a p-value (its key never touched the suspect): over millions of keys
never used for any file, scored on four worlds' readings of ``test_attribution_dates``, the
share at or below ``a`` was about 0.35 × ``a`` at ordinary levels, rising to 0.6–0.7 × ``a``
at 10⁻⁵ and 10⁻⁶ (BENCHMARKS.md, "Null p-values of the linkage-free readings"). So a margin
the tests demand of every innocent is also about the chance each check fails with nothing
wrong: 10⁻⁴, over the few hundred innocents the suite scores, would fail about one run in a
hundred. 10⁻⁶ fails one run in thousands and is still a thousand times above the naming
threshold (10⁻⁹ before its union bound).
"""

from __future__ import annotations

import math

P_INNOCENT = 1e-6
INNOCENT = math.log(P_INNOCENT)  # ln: every innocent's ln P stays above this
