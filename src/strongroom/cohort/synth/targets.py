"""The Showcase mean and SD each generated measure is matched to.

The dictionary carries them; the fallbacks are the same Showcase values, for dictionaries
(subsets, older builds) that lack them.
"""

from __future__ import annotations

from strongroom.cohort.dictionary import Dictionary

# Showcase mean and SD, used only when the dictionary does not carry them.
FALLBACK_MOMENTS: dict[int, tuple[float, float]] = {
    50: (169.482, 9.51556), 21001: (26.1954, 4.20645), 21002: (75.5809, 14.8998),
    48: (88.1707, 12.0275), 49: (99.8584, 7.79927), 23099: (31.2647, 8.29212),
    4080: (139.144, 18.8606), 4079: (78.0713, 10.1921), 102: (65.2699, 10.5915),
    3062: (3.55324, 0.953309), 3063: (2.62375, 0.781495), 20023: (597.089, 111.359),
    30690: (5.69732, 1.18742), 30760: (1.51902, 0.396895), 30780: (3.5435, 0.892003),
    30870: (1.69836, 0.933992), 30750: (36.4932, 5.75617), 30740: (5.0738, 1.06397),
    30700: (75.0458, 17.6178), 30710: (2.33197, 4.05616), 30000: (6.81253, 1.96436),
    30020: (14.195, 1.19104), 189: (-1.29373, 3.09507), 20161: (18.8144, 16.4074),
}  # fmt: skip


def moments(dictionary: Dictionary, field_id: int) -> tuple[float, float]:
    if field_id in dictionary:
        fld = dictionary.field(field_id)
        if fld.mean is not None and fld.sd is not None and fld.sd > 0:
            return fld.mean, fld.sd
    return FALLBACK_MOMENTS[field_id]


def participant_share(dictionary: Dictionary, field_id: int, default: float) -> float:
    """Share of the cohort with a value for the field (Showcase participants / cohort size)."""
    if field_id in dictionary and dictionary.field(field_id).participants:
        return min(dictionary.field(field_id).participants / dictionary.cohort_size, 0.99)
    return default
